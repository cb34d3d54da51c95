"""``experiment-hook run [-e EXP] [-n N] -- CMD ...``: N timed runs per arm, randomized in balanced pairs."""

from __future__ import annotations

import shlex
import statistics
import sys
from typing import Any

import click

from experiment_core.errors import UserError
from experiment_core.gitio import Git
from experiment_core.measure.run_trials import Interrupted, RunTrial, run_trials
from experiment_core.measure.timing import timing_words
from experiment_core.state import state_dir
from experiment_core.store.spec import Experiment, load_registry


def pick_experiment(running: list[Experiment], exp_id: str | None) -> Experiment:
    if exp_id is not None:
        for exp in running:
            if exp.id == exp_id:
                return exp
        raise UserError(f"-e {exp_id}", "no running experiment with that id", "see `experiment-hook status`")
    if len(running) != 1:
        what = "no running experiment" if not running else f"{len(running)} running experiments"
        raise UserError("run", what, "name one with -e EXP" if running else "create one first")
    return running[0]


def summary_lines(trials: list[RunTrial], unit: str) -> list[str]:
    lines = []
    for arm in ("control", "treatment"):
        values = [t.measurement.seconds for t in trials if t.arm == arm]
        if values:
            lines.append(f"  {arm:<9}  n={len(values):<3} mean {statistics.fmean(values):.4f} {unit}"
                         f"  median {statistics.median(values):.4f} {unit}")  # fmt: skip
    return lines


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.option("-e", "--experiment", "exp_id", default=None, help="Experiment id (default: the only running one).")
@click.option("-n", "--runs", "n", type=click.IntRange(min=1), default=20, show_default=True,
              help="Runs per arm (as hyperfine's --runs): 2N runs in N pairs of one control and one treatment, "
                   "each pair in random order.")  # fmt: skip
@click.option("--seed", default=None, help="Seed the order (reproducible runs); default: OS randomness.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(exp_id: str | None, n: int, seed: str | None, command: tuple[str, ...]) -> None:
    """Time CMD N times under each arm: 2N runs in N pairs of one control and one treatment, each pair in random
    order; record every trial.

    Without CMD, the experiment's own metric command runs. Timing is hyperfine's: a command that needs no shell
    is spawned directly, any other runs through sh with the shell's start-up subtracted. The working tree is
    left exactly as it was, also when interrupted.
    """
    git = Git.discover()
    exp = pick_experiment(load_registry(git.root, state_dir(git)).running(), exp_id)
    if command:
        shell_command = shlex.join(command)
    elif exp.metric.command is not None:
        shell_command = exp.metric.command
    else:
        raise UserError("run", f"{exp.id} has no metric command", "give one after --: run -- CMD ...")
    total = 2 * n
    from experiment_core.reports import terminal

    live = not terminal.is_static(sys.stderr)
    failures: list[RunTrial] = []
    advance: Any = None

    def show(trial: RunTrial) -> None:
        if trial.measurement.exit_code != 0:
            failures.append(trial)
        if advance is not None:
            advance(f"{trial.arm} {trial.measurement.seconds:.3f}s")
        else:
            click.echo(f"  run {trial.index + 1:>3}/{total}  {trial.arm:<9}  {trial.measurement.seconds:.4f} s"
                       + ("" if trial.measurement.ok else f"  (exit {trial.measurement.exit_code})"))  # fmt: skip

    click.echo(f"{exp.id}: {n} runs per arm of `{shell_command}`, {n} pairs of one control and one treatment "
               "in random order")  # fmt: skip
    trials: list[RunTrial] = []
    try:
        if live:  # a person watches: a live bar (rich); in a pipe or under pre-commit, one line per run
            with terminal.progress("runs", total, stream=sys.stderr) as step:
                advance = step
                trials = run_trials(git, exp, shell_command, n, show, seed)
        else:
            trials = run_trials(git, exp, shell_command, n, show, seed)
    except (KeyboardInterrupt, Interrupted) as exc:
        reason = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc)
        click.echo(f"Interrupted ({reason}); the trials recorded so far are kept and the working tree is as before.",
                   err=True)  # fmt: skip
        sys.exit(130)
    for line in summary_lines(trials, exp.metric.unit):
        click.echo(line)
    if trials:
        click.echo(f"  timing: {timing_words(trials[-1].measurement)}")
    if failures:
        first = failures[0].measurement
        click.echo(f"{len(failures)} run(s) failed; first failure (exit {first.exit_code}):\n{first.output.rstrip()}",
                   err=True)  # fmt: skip
    click.echo(f"Recorded {len(trials)} trials for {exp.id}; working tree as before.")
