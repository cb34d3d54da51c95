"""A year of a team's ledger (issue 12): every command of the issue's table at N events beside its 1k twin.

    python benchmarks/ledger_scale.py [--events 1000000] [--twin 1000] [--experiments 50] [--per-note 4]
                                      [--repeat 3] [--keep]

The ledger is what a team of 50 writes in a year, built with ``git fast-import`` (seconds, not hours): N events
as notes of N/per_note commits, 4 events per note, spread over ``--experiments`` running experiments, each
experiment's notes in its own ref (``refs/notes/experiments-<exp-id>``, the layout of 0.3); a unit
(a branch) is 20 consecutive notes of one experiment (fewer in a small ledger, so that every experiment of the
twin has units in both arms too), its first note carrying the ``assign``, arms alternating; trials of the
primary metric carry a machine, one in 50 fails. The same stream goes into a bare "origin" and a working clone,
so both hold the whole ledger without a push. Then, in one run, for the twin and for N:

* ``status --json`` warm, and right after one new record; ``analyze EXP --json``; ``--auto --dry-run``;
* ``sync`` with one new local event (the push side), and with one new event on each side (a true merge);
* the whole pre-push hook right after a new record (decisions turned off: every experiment is evaluated, none
  applied, so the repository stays the same between repeats); ``record`` (one append);
* the first ``status --json`` in a fresh clone (the index is built) beside the git plumbing floor for the same
  notes: ``git notes list`` + one ``git cat-file --batch`` of those blobs; and the CPU time (user + system) of the
  status's processes and of the floor's git processes, which bounds the wall time a build can reach on this
  machine's cores.

Each figure is the median wall time of ``--repeat`` runs of the real CLI in a subprocess and the peak resident
memory of that process tree (``/usr/bin/time -v``, or the children's rusage where it is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from experiment_core.store import ledger, refs  # noqa: E402

ENV_IDENT = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
             "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}  # fmt: skip
NOTES_PER_UNIT = 20
EPOCH = 1767225600  # 2026-01-01T00:00:00Z: a year of trials, one note every ~2 minutes
PRIMARY = "time_to_complete"


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(PROJECT), **ENV_IDENT)
    env.pop("EXPERIMENT_HOOK_INTERNAL", None)
    return env


def _git(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=repo, input=input, capture_output=True, check=True, env=_env()).stdout


def exp_ids(n: int) -> list[str]:
    return [f"exp-20261201-{i // 60:02d}{i % 60:02d}00" for i in range(n)]


def ledger_stream(n_events: int, per_note: int = 4, exps: list[str] | None = None, first_commit: int = 0,
                  branch: str = "refs/heads/bench-ledger", seed: int = 12, ids: list[str] | None = None,
                  tips: dict[str, str] | None = None) -> bytes:  # fmt: skip
    """A ``git fast-import`` stream adding ``n_events`` valid events as notes on new commits of ``branch``, each
    note in its experiment's ref (``tips``: the refs' current commits, continued). Deterministic for a given seed;
    the event ids go to ``ids`` when given."""
    rng = random.Random(seed + first_commit)
    exps = exps or ["exp-1"]
    n_commits = -(-n_events // per_note)
    out: list[bytes] = []
    for i in range(n_commits):
        stamp = EPOCH + first_commit + i
        out.append(b"commit %s\nmark :%d\ncommitter B <b@x> %d +0000\ndata 0\n\n" % (branch.encode(), i + 1, stamp))
    notes: dict[str, list[bytes]] = {}
    k = 0
    per_unit = notes_per_unit(n_events, per_note, len(exps))
    for i in range(n_commits):
        unit_no, in_unit = divmod(first_commit + i, per_unit)
        exp = exps[unit_no % len(exps)]
        unit = f"b{unit_no}"
        arm = ("control", "treatment")[(unit_no // len(exps)) % 2]
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(EPOCH + (first_commit + i) * 120)) + ".000000Z"
        lines = []
        for j in range(min(per_note, n_events - k)):
            ev: dict[str, object] = {"v": 1, "id": f"{rng.getrandbits(128):032x}", "exp": exp, "ts": ts}
            if in_unit == 0 and j == 0:
                ev.update(type="assign", arm=arm, unit=unit)
            else:
                ev.update(type="trial", arm=arm, metric=PRIMARY, value=round(rng.gauss(10.0, 1.0), 6), unit=unit,
                          exit_code=1 if rng.random() < 0.02 else 0, machine=f"m{unit_no % 8}")  # fmt: skip
            lines.append(ledger.encode(ev).encode())
            if ids is not None:
                ids.append(str(ev["id"]))
            k += 1
        body = b"\n".join(lines) + b"\n"
        notes.setdefault(refs.exp_ref(exp), []).append(b"N inline :%d\ndata %d\n%s\n" % (i + 1, len(body), body))
    for ref, changes in notes.items():
        stamp = EPOCH + first_commit + n_commits
        out.append(b"commit %s\ncommitter B <b@x> %d +0000\ndata 0\n" % (ref.encode(), stamp))
        if tips and ref in tips:  # continue the existing notes history
            out.append(b"from %s\n" % tips[ref].encode())
        out += changes
        out.append(b"\n")
    return b"".join(out)


def notes_per_unit(n_events: int, per_note: int, n_exps: int) -> int:
    """20 notes (a branch of 20 commits), fewer in a small ledger so that every experiment has a few units in
    each arm: the twin runs the same statistics as the big ledger, on fewer units."""
    return max(1, min(NOTES_PER_UNIT, n_events // per_note // (n_exps * 4)))


def build_ledger(repo: Path, n_events: int, per_note: int = 1, exps: list[str] | None = None,
                 first_commit: int = 0) -> list[str]:  # fmt: skip
    """Add ``n_events`` events to ``repo``'s ledger with one ``git fast-import`` (tests use it too); their ids."""
    ids: list[str] = []
    tips = refs.parse_refs(_git(repo, "for-each-ref", "--format=%(objectname) %(refname)", refs.PREFIX + "*").decode())
    _fast_import(repo, ledger_stream(n_events, per_note, exps, first_commit, ids=ids, tips=tips))
    return ids


def _fast_import(repo: Path, stream: bytes) -> None:
    _git(repo, "fast-import", "--quiet", "--force", input=stream)


def registry_yaml(exps: list[str]) -> str:
    """Running experiments that decide nothing by themselves (so repeats see the same repository)."""
    out = ["settings:", "  sync_on_push: true", "experiments:"]
    for exp in exps:
        out += [f"  - id: {exp}", f"    name: {exp}", "    hypothesis: h", "    status: running",
                "    created: '2026-12-01T00:00:00.000000Z'", "    files:",
                f"      tool.cfg: .experiments/{exp}/tool.cfg",
                "    metric:", f"      name: {PRIMARY}", "      command: 'true'", "      direction: lower",
                "      unit: s", "    sample_size: 100000", "    max_duration_days: 3650",
                "    auto_promote: false", "    auto_rollback: false"]  # fmt: skip
    return "\n".join(out) + "\n"


# ---- measuring -----------------------------------------------------------------------------------------
_RSS_RE = re.compile(rb"Maximum resident set size \(kbytes\): (\d+)")


def run_measured(cmd: list[str], cwd: Path, input: bytes | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB of the process tree) of one run of ``cmd``."""
    timed = ["/usr/bin/time", "-v", *cmd] if Path("/usr/bin/time").exists() else cmd
    t = time.perf_counter()
    proc = subprocess.run(timed, cwd=cwd, input=input, capture_output=True, env=_env())
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout.decode()}\n{proc.stderr.decode()}")
    m = _RSS_RE.search(proc.stderr)
    if m:
        return wall, int(m.group(1)) / 1024
    import resource

    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "experiment_core", *args]


def record_cmd(exp: str, i: int) -> list[str]:
    return cli("record", exp, "--arm", "control" if i % 2 else "treatment", "--value", f"{10 + i % 3}",
               "--unit", f"new{i}")  # fmt: skip


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process this benchmark has waited for so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_of(fn: object, repeat: int) -> tuple[float, float]:
    runs = [fn() for _ in range(repeat)]  # type: ignore[operator]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def plumbing_floor(repo: Path) -> tuple[float, float]:
    """``git notes list`` of each ref + one ``git cat-file --batch`` of those blobs, output captured, nothing
    decoded."""
    t = time.perf_counter()
    names = _git(repo, "for-each-ref", "--format=%(refname)", refs.PREFIX + "*").decode().split()
    listing = b"".join(subprocess.run(["git", "notes", f"--ref={ref}", "list"], cwd=repo, capture_output=True,
                                      check=True).stdout for ref in names)  # fmt: skip
    blobs = b"".join(line.split()[0] + b"\n" for line in listing.splitlines() if line.strip())
    subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input=blobs, capture_output=True, check=True)
    return time.perf_counter() - t, 0.0


def setup(base: Path, n: int, n_exps: int, per_note: int) -> dict[str, Path]:
    """origin (bare) and work, both holding the n-event ledger; work has the registry and the index."""
    exps = exp_ids(n_exps)
    base.mkdir(parents=True, exist_ok=True)
    origin, work = base / "origin.git", base / "work"
    _git(base, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(base, "init", "-q", "-b", "main", str(work))
    (work / "tool.cfg").write_text("workers = 1\n")
    for exp in exps:
        (work / ".experiments" / exp).mkdir(parents=True)
        (work / ".experiments" / exp / "tool.cfg").write_text("workers = 2\n")
    (work / "experiments.yaml").write_text(registry_yaml(exps))
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "experiments")
    _git(work, "remote", "add", "origin", str(origin))
    _git(work, "push", "-q", "origin", "main")
    _git(work, "branch", "-q", "--set-upstream-to=origin/main")
    stream = ledger_stream(n, per_note, exps)
    for repo in (origin, work):
        _fast_import(repo, stream)
    run_measured(cli("sync"), work)  # configures the remote, builds the index
    return {"origin": origin, "work": work}


def bench(base: Path, n: int, n_exps: int, per_note: int, repeat: int) -> dict[str, tuple[float, float]]:
    t = time.perf_counter()
    repos = setup(base, n, n_exps, per_note)
    origin, work = repos["origin"], repos["work"]
    exp = exp_ids(n_exps)[0]
    res: dict[str, tuple[float, float]] = {"build": (time.perf_counter() - t, 0.0)}
    counter = iter(range(10**6))

    def recorded(cmd: list[str], repo: Path = work) -> tuple[float, float]:
        run_measured(record_cmd(exp, next(counter)), repo)
        return run_measured(cmd, repo)

    res["record"] = median_of(lambda: run_measured(record_cmd(exp, next(counter)), work), repeat)
    run_measured(cli("status", "--json"), work)
    res["status"] = median_of(lambda: run_measured(cli("status", "--json"), work), repeat)
    res["status+1"] = median_of(lambda: recorded(cli("status", "--json")), repeat)
    res["analyze"] = median_of(lambda: run_measured(cli("analyze", exp, "--json"), work), repeat)
    res["auto"] = median_of(lambda: run_measured(cli("--auto", "--dry-run"), work), repeat)
    res["reads"] = median_of(lambda: (float(run_measured_out([sys.executable, "-c", INDEX_READS, str(work)], work)),
                                      0.0), repeat)  # fmt: skip
    res["sync+1"] = median_of(lambda: recorded(cli("sync")), repeat)
    push_line = b"refs/heads/main 0 refs/heads/main 0\n"
    hook = [sys.executable, "-m", "experiment_core.hooks.pre_push", "origin", str(origin)]
    res["pre-push+1"] = median_of(lambda: (run_measured(record_cmd(exp, next(counter)), work),
                                           run_measured(hook, work, input=push_line))[1], repeat)  # fmt: skip
    # a fresh clone: the first command builds the index; then it is the other side of a true merge
    fresh = base / "fresh"
    _git(base, "clone", "-q", str(origin), str(fresh))
    _git(fresh, "fetch", "-q", "origin", f"+{refs.GLOB}:{refs.GLOB}")
    before = children_cpu()
    res["floor"] = min(plumbing_floor(fresh) for _ in range(2))
    floor_done = children_cpu()
    res["cold"] = run_measured(cli("status", "--json"), fresh)
    res["cpu"] = (children_cpu() - floor_done, (floor_done - before) / 2)  # the status's processes; one floor's gits

    def both_sides() -> tuple[float, float]:
        run_measured(record_cmd(exp, next(counter)), fresh)
        run_measured(cli("sync"), fresh)
        return recorded(cli("sync"))

    res["sync-merge"] = median_of(both_sides, repeat)

    def git_push_floor() -> tuple[float, float]:
        """What git itself costs for the same push: one note appended by hand, then a plain ``git push``."""
        line = ledger.encode(ledger.make_event("trial", exp, arm="control", metric=PRIMARY, value=1.0, unit="g"))
        _git(work, "notes", f"--ref={refs.exp_ref(exp)}", "append", "-m", line, "HEAD")
        return run_measured(["git", "push", "-q", "--no-verify", "origin", refs.exp_ref(exp)], work)

    res["push-floor"] = median_of(git_push_floor, repeat)
    with_events = json.loads(run_measured_out(cli("sync", "--json"), work))["ledger"]["events"]
    res["events"] = (float(with_events), 0.0)
    return res


INDEX_READS = """
import sys, time
from pathlib import Path
from experiment_core.store import ledger_index
from experiment_core.gitio import Git
from experiment_core.store.spec import load_registry
g = Git(Path(sys.argv[1]))
exps = load_registry(g.root).running()
t = time.perf_counter()
with ledger_index.open_index(g) as index:
    for exp in exps:
        index.sums(exp.id, exp.metric.name), index.orders(exp.id, exp.metric.name, alpha=0.05, log_scale=False)
        index.unit_counts(exp.id), index.events(exp.id, ("alert",)), index.trial_span(exp.id, exp.metric.name)
print(time.perf_counter() - t)
"""


def run_measured_out(cmd: list[str], cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, check=True, env=_env(), text=True).stdout


ROWS = [("status", "`status --json` (warm)"), ("status+1", "`status --json` right after one new record"),
        ("analyze", "`analyze EXP --json` (warm)"), ("auto", "`--auto --dry-run`"),
        ("reads", "of which: what `status` reads of the index for its 50 experiments (in-process)"),
        ("sync+1", "`sync` with one new local event"), ("sync-merge", "`sync` with one new event on each side"),
        ("pre-push+1", "whole pre-push hook right after one new record"), ("record", "`record` (one append)"),
        ("cold", "first `status --json` in a fresh clone")]  # fmt: skip


@contextlib.contextmanager
def scratch(prefix: str, keep: bool) -> Iterator[Path]:
    """A scratch directory for a benchmark's repositories: removed at the end, or kept (and named) with --keep."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield base
    finally:
        if keep:
            print(f"kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--twin", type=int, default=1000)
    parser.add_argument("--experiments", type=int, default=50)
    parser.add_argument("--per-note", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the scratch repositories")
    args = parser.parse_args()
    with scratch("eh-scale-", args.keep) as base:
        print(f"git {_git(base, 'version').decode().split()[-1]}, python {sys.version.split()[0]}, "
              f"{args.experiments} experiments, {args.per_note} events per note, median of {args.repeat}")  # fmt: skip
        small = bench(base / "twin", args.twin, args.experiments, args.per_note, args.repeat)
        big = bench(base / "big", args.events, args.experiments, args.per_note, args.repeat)
        n_small, n_big = int(small["events"][0]), int(big["events"][0])
        print(f"ledger built in {small['build'][0]:.1f} s ({n_small} events) and {big['build'][0]:.1f} s "
              f"({n_big} events)")  # fmt: skip
        print(f"| command | {n_small} events | {n_big} events | ratio (goal <= 1.5x) | peak memory at {n_big} |")
        print("| --- | --- | --- | --- | --- |")
        for key, label in ROWS:
            (ts, ms), (tb, mb) = small[key], big[key]
            if key == "cold":
                fs, fb = small["floor"][0], big["floor"][0]
                print(f"| {label} | {ts:.2f} s (floor {fs:.2f} s) | {tb:.2f} s (git plumbing floor {fb:.2f} s: "
                      f"{tb / fb:.2f}x the floor, goal <= 1.5x) | {tb / ts:.1f}x | {mb:.0f} MB |")  # fmt: skip
                (cs, fcs), (cb, fcb), cores = small["cpu"], big["cpu"], os.cpu_count() or 1
                print(f"| (CPU, user + system, of its processes) | {cs:.2f} s (floor's git {fcs:.2f} s) | "
                      f"{cb:.2f} s (floor's git {fcb:.2f} s): on {cores} cores, >= {cb / cores:.2f} s of wall time "
                      "| | |")  # fmt: skip
                continue
            memory = f"{mb:.0f} MB (twin {ms:.0f} MB)" if mb else ""
            print(f"| {label} | {ts:.3f} s | {tb:.3f} s | {tb / ts:.2f}x | {memory} |")
            if key == "sync+1":
                (fs, _), (fb, _) = small["push-floor"], big["push-floor"]
                print(f"| (git floor: plain `git push` of one new note) | {fs:.3f} s | {fb:.3f} s | {fb / fs:.2f}x | |")


if __name__ == "__main__":
    main()
