"""Timing an experiment's command: monotonic clock, exit code kept, timeout, output captured."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_EXIT = 124  # what coreutils `timeout` reports


@dataclass(frozen=True)
class Measurement:
    seconds: float
    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def time_command(command: str, cwd: Path, timeout: float = 600.0) -> Measurement:
    """Run ``command`` through the shell (it comes from the repository's own experiments.yaml, never from the
    ledger) and time it with a monotonic clock. Output is captured, to be shown only on failure."""
    env = dict(os.environ)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command, shell=True, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        out = exc.output.decode("utf-8", "replace") if isinstance(exc.output, bytes) else ""
        return Measurement(time.perf_counter() - start, TIMEOUT_EXIT, out + f"\n[timed out after {timeout:g} s]")
    elapsed = time.perf_counter() - start
    return Measurement(elapsed, proc.returncode, proc.stdout.decode("utf-8", "replace"))
