"""Ledger scale (issue 6 item 6) and CLI latency (issue 2): real git, real processes, figures printed as ratios.

    python benchmarks/ledger_scale.py [--sizes 10000,100000] [--per-note 1] [--repeat 3]

For each size it builds a ledger with ``git fast-import`` (N events as notes on N/per_note commits: seconds, not
hours), then measures, in the same run:

* append: the median time of ``ledger.append`` of one event on a new commit, on the small and the big ledger
  (it must stay flat as the ledger grows);
* cold read: ``ledger.read(cache=False)`` beside the git plumbing floor (``git notes list`` + one
  ``git cat-file --batch`` of those blobs, output captured, nothing decoded); goal <= 1.3x;
* warm read: ``ledger.read`` when the worktree's cache matches the notes commit; goal <= 0.2 s at 100k;
  and "warm+1": the read right after one new record (the cache is brought forward by reading the changed note);
* CLI latency: median of ``experiment-hook record`` beside ``python -c pass`` (the interpreter floor).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from experiment_core import ledger  # noqa: E402
from experiment_core.gitio import Git  # noqa: E402

ENV_IDENT = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
             "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}  # fmt: skip


def _git(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    import os

    env = dict(os.environ, **ENV_IDENT)
    return subprocess.run(["git", *args], cwd=repo, input=input, capture_output=True, check=True, env=env).stdout


def build_ledger(repo: Path, n_events: int, per_note: int = 1, exp: str = "exp-20261124-101700",
                 branch: str = "refs/heads/bench-ledger") -> list[str]:  # fmt: skip
    """Add ``n_events`` valid trial events to ``repo``'s ledger as notes on ``n_events/per_note`` new commits of
    ``branch``, with one ``git fast-import``. Keeps any existing notes. Returns the event ids."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        _git(repo, "init", "-q", "-b", "main")
    old_notes = _git(repo, "for-each-ref", "--format=%(objectname)", ledger.NOTES_REF).strip().decode()
    n_commits = -(-n_events // per_note)
    out: list[bytes] = []
    ids: list[str] = []
    for i in range(n_commits):
        out.append(b"commit %s\nmark :%d\ncommitter B <b@x> %d +0000\ndata 0\n\n" % (branch.encode(), i + 1,
                                                                                    1700000000 + i))  # fmt: skip
    out.append(b"commit %s\ncommitter B <b@x> 1800000000 +0000\ndata 0\n" % ledger.NOTES_REF.encode())
    if old_notes:
        out.append(b"from %s\n" % old_notes.encode())
    out.append(b"\n")
    k = 0
    for i in range(n_commits):
        lines = []
        for _ in range(min(per_note, n_events - k)):
            event = ledger.make_event("trial", exp, arm="control" if k % 2 else "treatment", metric="t",
                                      value=1.0 + k % 97, unit=f"u{k}", exit_code=0, commit=None)  # fmt: skip
            ids.append(event["id"])
            lines.append(ledger.encode(event).encode())
            k += 1
        body = b"\n".join(lines) + b"\n"
        out.append(b"N inline :%d\ndata %d\n%s\n" % (i + 1, len(body), body))
    _git(repo, "fast-import", "--quiet", "--force", input=b"".join(out))
    return ids


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def plumbing_floor(repo: Path) -> None:
    listing = subprocess.run(["git", "notes", f"--ref={ledger.NOTES_REF}", "list"], cwd=repo, capture_output=True,
                             check=True).stdout  # fmt: skip
    blobs = b"".join(line.split()[0] + b"\n" for line in listing.splitlines() if line.strip())
    subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input=blobs, capture_output=True, check=True)


def append_one(g: Git, repo: Path, i: int) -> float:
    """One append of one event on a new commit (as post-commit would do), timed without the commit itself."""
    _git(repo, "commit", "-q", "--allow-empty", "-m", f"work {i}")
    event = ledger.make_event("trial", "exp-20261124-101700", arm="control", metric="t", value=float(i), unit=f"a{i}")
    t = time.perf_counter()
    ledger.append(g, [event])
    return time.perf_counter() - t


def bench_size(base: Path, n: int, per_note: int, repeat: int) -> dict[str, float]:
    repo = base / f"ledger-{n}"
    _git(base, "init", "-q", "-b", "main", str(repo))
    _git(repo, "commit", "-q", "--allow-empty", "-m", "root")
    t = time.perf_counter()
    build_ledger(repo, n, per_note)
    build_s = time.perf_counter() - t
    g = Git(repo)
    appends = [append_one(g, repo, i) for i in range(max(5, repeat * 3))]
    floor = median_time(lambda: plumbing_floor(repo), repeat)
    cold = median_time(lambda: ledger.read(g, cache=False), repeat)
    count = len(ledger.read(g).events)  # also fills the cache
    warm = median_time(lambda: ledger.read(g), repeat)
    incremental = []
    for i in range(repeat):  # a record arrives, then a hook reads: only the changed note is read again
        append_one(g, repo, 1000 + i)
        t = time.perf_counter()
        ledger.read(g)
        incremental.append(time.perf_counter() - t)
    return {"n": n, "events": count, "build_s": build_s, "append_s": statistics.median(appends), "floor_s": floor,
            "cold_s": cold, "warm_s": warm, "incr_s": statistics.median(incremental)}  # fmt: skip


def cli_latency(base: Path, repeat: int) -> dict[str, float]:
    import json
    import os

    repo = base / "cli"
    _git(base, "init", "-q", "-b", "main", str(repo))
    (repo / "tool.cfg").write_text("workers = 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    env = dict(os.environ, PYTHONPATH=str(PROJECT), **ENV_IDENT)
    cmd = [sys.executable, "-m", "experiment_core"]
    out = subprocess.run([*cmd, "create", "--name", "b", "--file", "tool.cfg", "--command", "true", "--json"],
                         cwd=repo, env=env, capture_output=True, check=True, text=True).stdout  # fmt: skip
    exp = json.loads(out)["id"]

    def record() -> None:
        subprocess.run([*cmd, "record", exp, "--arm", "control", "--value", "1.5"], cwd=repo, env=env, check=True,
                       capture_output=True)  # fmt: skip

    def python_pass() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    record()  # warm the registry cache and the OS page cache
    reps = max(repeat * 3, 9)
    return {"record_s": median_time(record, reps), "python_pass_s": median_time(python_pass, reps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--per-note", type=int, default=1, help="events per note (1: one note per commit)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the scratch repositories")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="eh-bench-"))
    try:
        print(f"git {_git(base, 'version').decode().split()[-1]}, python {sys.version.split()[0]}, "
              f"{args.per_note} event(s) per note, median of {args.repeat}")  # fmt: skip
        rows = [bench_size(base, int(n), args.per_note, args.repeat) for n in args.sizes.split(",")]
        print(f"{'events':>8} {'append':>9} {'floor':>8} {'cold':>8} {'cold/floor':>10} {'warm':>8} "
              f"{'warm+1':>8}  (seconds; warm+1: read after one new record)")  # fmt: skip
        for r in rows:
            print(f"{int(r['events']):>8} {r['append_s']:>9.4f} {r['floor_s']:>8.3f} {r['cold_s']:>8.3f} "
                  f"{r['cold_s'] / r['floor_s']:>9.2f}x {r['warm_s']:>8.3f} {r['incr_s']:>8.3f}")  # fmt: skip
        if len(rows) > 1:
            print(f"append time, largest / smallest ledger: {rows[-1]['append_s'] / rows[0]['append_s']:.2f}x "
                  f"(goal: flat); cold read / floor at {int(rows[-1]['events'])}: "
                  f"{rows[-1]['cold_s'] / rows[-1]['floor_s']:.2f}x (goal <= 1.3x); "
                  f"warm read: {rows[-1]['warm_s']:.3f} s (goal <= 0.2 s)")  # fmt: skip
        lat = cli_latency(base, args.repeat)
        print(f"experiment-hook record: {lat['record_s'] * 1000:.1f} ms median; python -c pass: "
              f"{lat['python_pass_s'] * 1000:.1f} ms; ratio {lat['record_s'] / lat['python_pass_s']:.1f}x")  # fmt: skip
    finally:
        if args.keep:
            print(f"kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
