"""Instant answers (issue 18): what a person waits on, as ratios to an interpreter measured in the same run.

    python benchmarks/instant_answers.py [--events 10000] [--experiments 3] [--repeat 5] [--keep]

A repository with three running experiments and 10,000 events in its ledger (built as ``ledger_scale.py`` builds
its ledger), a local bare remote, the hooks installed directly (``experiment-hook install``). Timed, interleaved
with the baseline (an interpreter importing click, sqlite3, json and subprocess), medians of ``--repeat`` runs:

* ``status --json``, ``status`` (to a pipe), ``analyze EXP --json``, ``--auto --dry-run``: goal <= 2.5x;
* ``record`` (one append): goal <= 1.5x;
* ``sync`` with one new local event;
* ``git push`` of a new commit after one new trial, with the hooks and with ``--no-verify``: the hooked push may
  cost at most 3x the baseline more than the plain one.

Also printed: whether scipy, numpy or rich were loaded by ``status``/``analyze``/``--auto`` (``-X importtime``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ledger_scale as ls

BASELINE = [sys.executable, "-c", "import click, sqlite3, json, subprocess"]
HEAVY = ("scipy", "numpy", "rich")


def timed(cmd: list[str], cwd: Path, input: bytes | None = None) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, input=input, capture_output=True, env=ls._env())
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout.decode()}\n{proc.stderr.decode()}")
    return wall


def heavy_imports(cmd: list[str], cwd: Path) -> list[str]:
    """The heavy packages ``cmd`` (a ``python -m experiment_core`` line) imports, from ``-X importtime``."""
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], cwd=cwd, capture_output=True, env=ls._env())
    names = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.decode().splitlines() if "|" in line}
    return [h for h in HEAVY if h in names]


def setup(base: Path, n: int, n_exps: int) -> tuple[Path, Path]:
    repos = ls.setup(base, n, n_exps, 4)
    work = repos["work"]
    timed(ls.cli("install"), work)
    ls._git(work, "push", "-q", "--no-verify", "origin", "main")
    return repos["origin"], work


def bench(work: Path, exp: str, repeat: int) -> dict[str, list[float]]:
    counter = iter(range(10**6))
    out: dict[str, list[float]] = {}

    def push(no_verify: bool) -> float:
        """A new trial recorded (as post-commit would), a new commit, and its push to a new branch."""
        i = next(counter)
        timed(ls.record_cmd(exp, i), work)
        (work / "notes.txt").write_text(f"{i}\n")
        ls._git(work, "add", "notes.txt")
        ls._git(work, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", f"change {i}")
        flags = ["--no-verify"] if no_verify else []
        return timed(["git", "push", "-q", *flags, "origin", f"HEAD:refs/heads/b{i}"], work)

    cases: dict[str, Callable[[], float]] = {
        "baseline": lambda: timed(BASELINE, work),
        "status --json": lambda: timed(ls.cli("status", "--json"), work),
        "status": lambda: timed(ls.cli("status"), work),
        "analyze EXP --json": lambda: timed(ls.cli("analyze", exp, "--json"), work),
        "--auto --dry-run": lambda: timed(ls.cli("--auto", "--dry-run"), work),
        "record": lambda: timed(ls.record_cmd(exp, next(counter)), work),
        "sync (one new local event)": lambda: (timed(ls.record_cmd(exp, next(counter)), work),
                                               timed(ls.cli("sync"), work))[1],
        "git push --no-verify": lambda: push(True),
        "git push (hooks)": lambda: push(False),
    }
    timed(ls.cli("status", "--json"), work)  # warm the index
    for _ in range(repeat):  # round-robin, so that a busy moment hits every case alike
        for name, fn in cases.items():
            out.setdefault(name, []).append(fn())
    return out


GOALS = {"status --json": 2.5, "status": 2.5, "analyze EXP --json": 2.5, "--auto --dry-run": 2.5, "record": 1.5}


def report(res: dict[str, list[float]], work: Path, exp: str) -> None:
    med = {k: statistics.median(v) for k, v in res.items()}
    base = med["baseline"]
    print("| what | median | ratio to the baseline | goal |\n| --- | --- | --- | --- |")
    for name, t in med.items():
        goal = f"<= {GOALS[name]}x" if name in GOALS else ""
        print(f"| {name} | {t * 1000:.0f} ms | {t / base:.2f}x | {goal} |")
    extra = med["git push (hooks)"] - med["git push --no-verify"]
    print(f"| hooked push minus --no-verify push | {extra * 1000:.0f} ms | {extra / base:.2f}x | <= 3x |")
    for args in (("status", "--json"), ("analyze", exp, "--json"), ("--auto", "--dry-run")):
        loaded = heavy_imports(ls.cli(*args), work)
        print(f"`{' '.join(args)}` loads: {', '.join(loaded) or 'none of ' + ', '.join(HEAVY)}")


def compiled() -> None:
    """Byte-compile the project first and let the children read the bytecode, as an installed package does
    (``pip`` compiles on install): otherwise every run would time Python's compiler, not ours."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ls.PROJECT / "experiment_core")], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--experiments", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the scratch repositories")
    args = parser.parse_args()
    compiled()
    with ls.scratch("eh-instant-", args.keep) as base:
        _, work = setup(base, args.events, args.experiments)
        exp = ls.exp_ids(args.experiments)[0]
        print(f"{args.experiments} running experiments, {args.events} events, median of {args.repeat} "
              f"(interleaved); baseline: {' '.join(BASELINE[1:])}")  # fmt: skip
        report(bench(work, exp, args.repeat), work, exp)

if __name__ == "__main__":
    main()
