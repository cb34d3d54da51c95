"""The measurement job post-commit starts: time each active experiment's command under its arm and record the
``trial`` events of the commit (plus, on a unit's first commit, the time from assignment to commit).

Run as ``python -m experiment_core.measure.commit_trials JOB ROOT COMMIT COMMITTED_AT EXP:UNIT:FIRST...`` (see
:func:`experiment_core.measure.jobs.spawn`). A trial is dropped (and said so in the job's log) when a
target no longer holds what the arm wrote, before or after the measurement: a checkout or an edit in between
would make it measure the wrong thing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiment_core.clock import parse_ts
from experiment_core.deploy.assign import Assignment, load_unit
from experiment_core.deploy.variants import blob_id, read_bytes
from experiment_core.gitio import Git
from experiment_core.measure import jobs
from experiment_core.measure.machine import machine_id
from experiment_core.measure.timing import (
    CALIBRATION_FILE,
    Measurement,
    cached_shell_startup,
    time_command,
    timing_fields,
)
from experiment_core.state import state_dir
from experiment_core.store import ledger
from experiment_core.store.spec import DEFAULT_METRIC, Experiment, load_registry

ELAPSED_FALLBACK = "time_to_commit"


def elapsed_metric_name(exp: Experiment) -> str:
    """The name the time from assignment to commit is recorded under: the primary metric when the experiment
    has no command (the seed's ``time_to_complete``), else ``time_to_complete`` unless the command's timing
    already uses that name (then ``time_to_commit``)."""
    if exp.metric.command is None:
        return exp.metric.name
    return DEFAULT_METRIC if exp.metric.name != DEFAULT_METRIC else ELAPSED_FALLBACK


def targets_intact(root: Path, written: Mapping[str, str]) -> list[str]:
    """Targets that no longer hold the content the arm wrote (empty: all intact)."""
    changed = []
    for target, expected in written.items():
        data = read_bytes(root / target)
        if data is None or blob_id(data, expected) != expected:
            changed.append(target)
    return changed


@dataclass(frozen=True)
class UnitJob:
    """One active unit at the commit, as post-commit saw it (``EXP:UNIT:FIRST`` on the job's command line)."""

    exp: str
    unit: str
    first_commit: bool

    @classmethod
    def parse(cls, text: str) -> UnitJob:
        exp, unit, first = text.rsplit(":", 2)
        return cls(exp, unit, first == "1")


def trial_event(a: Assignment, metric: str, value: float, commit: str, exit_code: int | None,
                machine: str = "", **fields: Any) -> ledger.Event:  # fmt: skip
    return ledger.make_event(
        "trial", a.exp, arm=a.arm, metric=metric, value=value, unit=a.unit, exit_code=exit_code, commit=commit,
        source="post-commit", machine=machine, **fields,
    )  # fmt: skip


def measure_unit(root: Path, exp: Experiment, a: Assignment, first_commit: bool, commit: str, committed_at: float,
                 log: Any, machine: str = "",
                 shell_startup: Callable[[], float] | None = None) -> list[ledger.Event]:  # fmt: skip
    """The trial events of one experiment for this commit (possibly none); ``shell_startup`` as for
    :func:`~experiment_core.measure.timing.time_command`."""
    changed = targets_intact(root, a.written)
    if changed:
        print(f"{exp.id}: {', '.join(changed)} changed since the assignment; no trial for this commit", file=log)
        return []
    events: list[ledger.Event] = []
    timed = [(exp.metric.name, exp.metric.command)] + [(m.name, m.command) for m in exp.secondary]
    for metric, command in timed:  # the primary metric's command, then each secondary metric's, if any
        if command is None:
            continue
        m: Measurement = time_command(command, root, exp.timeout, shell_startup)
        changed = targets_intact(root, a.written)
        if changed:
            message = f"{', '.join(changed)} changed during a measurement; trial dropped"
            print(f"{exp.id}: {message}", file=log)
            return [ledger.make_event("alert", exp.id, kind="dropped_trial", message=message, arm=a.arm)]
        if not m.ok:
            print(f"{exp.id}: `{command}` exited {m.exit_code}:\n{m.output.rstrip()}", file=log)
        events.append(trial_event(a, metric, m.seconds, commit, m.exit_code, machine, **timing_fields(m)))
    assigned = parse_ts(a.assigned_at)
    if first_commit and assigned is not None:
        elapsed = max(0.0, committed_at - assigned.timestamp())
        events.append(trial_event(a, elapsed_metric_name(exp), elapsed, commit, None, machine))
    return events


def run_job(args: list[str], log: Any) -> bool:
    """``ROOT COMMIT COMMITTED_AT EXP:UNIT:FIRST...``: measure and record; True when every command exited 0
    (a failure's output went to ``log``)."""
    root, commit, committed_at = Path(args[0]), args[1], float(args[2])
    git = Git(root)
    state = state_dir(git)
    registry = load_registry(root, state)
    startup = cached_shell_startup(root, state / CALIBRATION_FILE)  # measured only if a command needs the shell
    events: list[ledger.Event] = []
    machine = machine_id(git)
    for job in map(UnitJob.parse, args[3:]):
        exp = next((e for e in registry.experiments if e.id == job.exp and e.running), None)
        a = load_unit(git, job.unit)
        if exp is None or a is None or not a.active or a.exp != job.exp:
            print(f"{job.exp}: unit {job.unit} unknown or experiment not running; no trial", file=log)
            continue
        if exp.metric.source == "agent":  # its trials come from the assistant's hooks (experiment_core.agents)
            continue
        events.extend(measure_unit(root, exp, a, job.first_commit, commit, committed_at, log, machine, startup))
    if events:
        ledger.append(git, events, commit=commit)
    return all(e.get("exit_code") in (None, 0) for e in events)


def main(argv: list[str]) -> int:
    """Exit 0 when the trials were recorded (a failing command is a recorded trial, its output kept in the
    job's log or shown in the foreground); 1 when the job itself failed."""
    job_path = argv[0]
    code, clean = 1, False
    try:
        clean = run_job(argv[1:], sys.stderr)
        code = 0
    except Exception as exc:
        print(f"experiment-hook: measurement job failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        jobs.finish(job_path, keep_log=not clean)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
