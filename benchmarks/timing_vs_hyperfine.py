"""Our timing of a few commands beside hyperfine's mean for the same command, from one run.

For each command, rounds alternate (so a busy machine hits every column alike): `hyperfine --runs N` (its default:
through `sh -c`, the shell's start-up subtracted), `hyperfine -N` (no shell), our `measure.time_command` (what
`run` and the post-commit job use; a shell start-up measured once per round, as once per `run`), and
the v0.1 timing as a baseline (`subprocess.run(shell=True)` with pipes and a timeout, nothing subtracted).
Prints the means in ms, our difference from hyperfine's default in ms (with the half-width of its 95 % interval
over the rounds: the run's own noise) and in %, and whether it is within max(0.3 ms, 3 %).
Needs hyperfine on PATH (Debian: `apt-get install hyperfine`).

Usage: `python benchmarks/timing_vs_hyperfine.py [--rounds R] [--scale X] [--only TEXT]` (X multiplies the runs
per round; TEXT picks the commands that contain it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from experiment_core.measure.timing import Measurement, measure_shell_startup, time_command  # noqa: E402

# (command, runs per round)
PYTHON = shlex.quote(sys.executable)  # the interpreter itself, not a pyenv shim (a shell script: ~80 ms more)
COMMANDS = [("true", 200), ("sh noop.sh", 200), ("sleep 0.02", 40), (f"{PYTHON} -c pass", 30)]
WARMUP = 3


def tolerance(reference_ms: float) -> float:
    return max(0.3, 0.03 * reference_ms)


def hyperfine_mean(command: str, runs: int, cwd: Path, no_shell: bool) -> float:
    out = cwd / "hyperfine.json"
    args = ["hyperfine", "--warmup", str(WARMUP), "--runs", str(runs), "--export-json", str(out), "--style", "none"]
    subprocess.run([*args, *(["-N"] if no_shell else []), command], cwd=cwd, check=True, capture_output=True)
    return float(json.loads(out.read_text())["results"][0]["mean"])


def ours(command: str, runs: int, cwd: Path) -> tuple[float, Measurement]:
    """As one `run` does: the shell start-up (if the command needs the shell) measured once, then the runs."""
    startup: list[float] = []

    def shell_startup() -> float:
        if not startup:
            startup.append(measure_shell_startup(cwd))
        return startup[0]

    for _ in range(WARMUP):
        m = time_command(command, cwd, 60.0, shell_startup)
    values = [time_command(command, cwd, 60.0, shell_startup).seconds for _ in range(runs)]
    return statistics.fmean(values), m


def half_width(diffs: list[float]) -> float:
    """Half the 95 % t-interval of the mean of the per-round differences (the run's own noise)."""
    from scipy.stats import t

    return float(t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5)


def v01(command: str, runs: int, cwd: Path) -> float:
    """The timing of v0.1, verbatim."""
    values = []
    for i in range(WARMUP + runs):
        start = time.perf_counter()
        subprocess.run(command, shell=True, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600)  # fmt: skip
        if i >= WARMUP:
            values.append(time.perf_counter() - start)
    return statistics.fmean(values)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", default="", help="only the commands containing this text")
    opts = parser.parse_args()
    if shutil.which("hyperfine") is None:
        print("hyperfine is not on PATH (Debian: apt-get install hyperfine)", file=sys.stderr)
        return 2
    version = subprocess.run(["hyperfine", "--version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "noop.sh").write_text("#!/bin/sh\n")
        print(f"{version}; {opts.rounds} rounds per command, columns in a fresh random order each round; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")  # fmt: skip
        header = (f"{'command':<16} {'timing':<7} {'hyperfine':>9} {'hf -N':>8} {'ours':>8} {'diff ms':>8} "
                  f"{'±95%':>6} {'diff %':>7} {'within':>7} {'v0.1':>8} {'v0.1 diff':>9}")  # fmt: skip
        print(header)
        print("-" * len(header))
        all_within = True
        for command, runs in [(c, r) for c, r in COMMANDS if opts.only in c]:
            n = max(5, round(runs * opts.scale))
            cols: dict[str, list[float]] = {"hf": [], "hfN": [], "ours": [], "v01": []}
            timing = ""
            for _ in range(opts.rounds):
                for col in random.sample(list(cols), len(cols)):  # a fresh order each round
                    if col == "ours":
                        mean, m = ours(command, n, cwd)
                        timing = m.timing
                    elif col == "v01":
                        mean = v01(command, n, cwd)
                    else:
                        mean = hyperfine_mean(command, n, cwd, no_shell=col == "hfN")
                    cols[col].append(1000 * mean)
            ms = {k: statistics.fmean(v) for k, v in cols.items()}
            diff = ms["ours"] - ms["hf"]
            noise = half_width([o - h for o, h in zip(cols["ours"], cols["hf"], strict=True)])
            pct = 100 * diff / ms["hf"] if ms["hf"] > 0 else float("nan")
            within = abs(diff) <= tolerance(ms["hf"])
            all_within &= within
            label = "python -c pass" if command.startswith(PYTHON) else command
            print(f"{label:<16} {timing:<7} {ms['hf']:>9.3f} {ms['hfN']:>8.3f} {ms['ours']:>8.3f} {diff:>+8.3f} "
                  f"{noise:>6.3f} {pct:>+6.1f}% {'yes' if within else 'NO':>7} {ms['v01']:>8.3f} "
                  f"{ms['v01'] - ms['hf']:>+9.3f}")  # fmt: skip
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}. ±95%: half-width of the interval of our difference "
          "from hyperfine over the rounds;\nwhen it exceeds the tolerance the machine is too busy for this run to "
          "tell.")  # fmt: skip
    print("\nGoal: ours within max(0.3 ms, 3 %) of hyperfine's mean for every command:",
          "met" if all_within else "NOT met")  # fmt: skip
    return 0 if all_within else 1


if __name__ == "__main__":
    sys.exit(main())
