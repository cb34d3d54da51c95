"""``experiment-hook rate N [EXP]``: score the last use of an experimented assistant command (``/rate N`` from
inside the assistant does the same): recorded as ``user_satisfaction`` under that use's unit and arm."""

from __future__ import annotations

import click

from experiment_core.errors import UserError
from experiment_core.gitio import Git


@click.command("rate")
@click.argument("score", type=click.IntRange(1, 5))
@click.argument("exp_id", metavar="[EXP]", required=False)
def rate(score: int, exp_id: str | None) -> None:
    """Score the last use (of EXP) from 1 (poor) to 5 (great), as user_satisfaction."""
    from experiment_core.agents import trials

    git = Git.discover()
    wt = trials.Worktree(str(git.root), str(git.git_path(".")))
    with trials.locked(wt):
        event = trials.rate(wt, score, exp_id)
    if event is None:
        what = f"no use of {exp_id}" if exp_id else "no use of an experimented assistant command"
        raise UserError("rate", f"{what} in this worktree yet", "use the command in the assistant first")
    click.echo(f"Recorded user_satisfaction={score} for the last use of {event['command']} ({event['exp']}).")
