"""``experiment-hook run``: N timed runs of a command per arm, each randomized with balanced interleaving, trials
recorded as they come, and the working tree put back exactly as it was afterwards (variants go in and out through
git's filter driver, so git sees no change at any time) (also on Ctrl-C or SIGTERM).

Each run is its own randomization unit; consecutive runs form pairs (one control, one treatment, in random
order) whose trials share a ``pair`` id, so drift over time (a warming cache, a busy machine) hits both arms alike.
Timing is :func:`~experiment_core.measure.timing.time_command`'s (as hyperfine); a shell start-up it needs is measured
afresh once per ``run`` and left in the state dir for the post-commit job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import FrameType

from experiment_core.deploy.assign import TREATMENT, balanced_order, make_rng
from experiment_core.deploy.variants import (
    Deployed,
    IndexEntry,
    ensure_filter,
    filter_state,
    index_entries,
    modified,
    read_deployed,
    redeploy,
)
from experiment_core.deploy.worktree import desired_records
from experiment_core.errors import UserError
from experiment_core.gitio import INTERNAL_ENV, Git
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
from experiment_core.store.spec import Experiment


@dataclass(frozen=True)
class Arms:
    """What each target's filter record is now (to put back) and under the treatment arm."""

    original: Mapping[str, Deployed | None]
    treatment: Mapping[str, Deployed]


@dataclass(frozen=True)
class RunTrial:
    index: int
    arm: str
    measurement: Measurement
    event: ledger.Event


class Interrupted(Exception):
    """SIGTERM/SIGHUP during a run: handled like Ctrl-C."""


def read_arms(git: Git, exp: Experiment) -> Arms:
    """Read every target's current filter record and the treatment's; refuse a user's edit."""
    entries: dict[str, IndexEntry] = index_entries(git, exp.files)
    for target, treatment_path in exp.files.items():
        entry = entries.get(target)
        if entry is None or entry.stage != 0 or not (git.root / target).exists():
            raise UserError(target, "not a tracked, merged file here", "check out a branch that has the experiment")
        if not (git.root / treatment_path).is_file():
            raise UserError(treatment_path, "treatment file missing", "check out a branch that has the experiment")
    for target in sorted(modified(git, exp.files)):
        raise UserError(target, "holds an edit the experiment did not write",
                        "commit or save it elsewhere, or run `experiment-hook restore` first")  # fmt: skip
    records = read_deployed(filter_state(git))
    treatment = desired_records(git, exp, entries)
    assert treatment is not None  # usable: checked above
    return Arms({t: records.get(t) for t in exp.files}, treatment)


def deploy(git: Git, wanted: Mapping[str, Deployed | None]) -> None:
    """Give each target the filter record ``wanted`` says (None: control), through git."""
    state = filter_state(git)
    before = read_deployed(state)
    records = dict(before)
    for target, record in wanted.items():
        if record is None:
            records.pop(target, None)
        else:
            records[target] = record
    ensure_filter(git, wanted)
    redeploy(git, state, before, records, wanted)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` (SIGINT already raises KeyboardInterrupt)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    saved = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP while a ledger write is in flight (delivered right after)."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def internal_env() -> Iterator[None]:
    """The measured command runs with the re-entry guard: a commit it makes must not record a trial of ours."""
    saved = os.environ.get(INTERNAL_ENV)
    os.environ[INTERNAL_ENV] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(INTERNAL_ENV, None)
        else:
            os.environ[INTERNAL_ENV] = saved


def put_back(git: Git, arms: Arms) -> None:
    """The tree exactly as before: the original variant in every target, written through git."""
    deploy(git, arms.original)


def run_trials(
    git: Git,
    exp: Experiment,
    command: str,
    n: int,
    on_trial: Callable[[RunTrial], None],
    seed: str | None = None,
) -> list[RunTrial]:
    """Run the shell command ``command`` ``n`` times per arm (``2 n`` runs) in pairs of one control and one
    treatment in random order; record each trial at once; restore the tree.

    Raises KeyboardInterrupt / :class:`Interrupted` after restoring when interrupted (recorded trials stay).
    """
    arms = read_arms(git, exp)
    order = balanced_order(2 * n, make_rng(seed))
    run_id = uuid.uuid4().hex[:12]
    head = git.head()
    machine = machine_id(git)
    startup = cached_shell_startup(git.root, state_dir(git) / CALIBRATION_FILE, max_age=0.0)
    done: list[RunTrial] = []
    with signals_as_interrupts(), internal_env():
        try:
            for index, arm in enumerate(order):  # each variant goes in through git: git sees no change
                deploy(git, {t: arms.treatment[t] if arm == TREATMENT else None for t in arms.original})
                m = time_command(command, git.root, exp.timeout, startup)
                event = ledger.make_event(
                    "trial", exp.id, arm=arm, metric=exp.metric.name, value=m.seconds,
                    unit=f"run-{run_id}-{index}", exit_code=m.exit_code, commit=head,
                    pair=f"{run_id}-{index // 2}", source="run", machine=machine, **timing_fields(m),
                )  # fmt: skip
                with signals_deferred():
                    ledger.append(git, [event], commit=head)
                trial = RunTrial(index, arm, m, event)
                done.append(trial)
                on_trial(trial)
        finally:
            put_back(git, arms)
    return done
