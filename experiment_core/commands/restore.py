"""``experiment-hook restore [EXP]``: take the variant out of this worktree through git (the experiment pauses
here until the next branch checkout; an edit stays, on top of the control)."""

from __future__ import annotations

import click

from experiment_core.deploy.release import restore as restore_files
from experiment_core.gitio import Git


@click.command("restore")
@click.argument("exp_id", metavar="[EXP]", required=False)
def restore(exp_id: str | None = None) -> None:
    """Put the committed content back into experimented files and let git see them again (your edits stay)."""
    git = Git.discover()
    results = restore_files(git, [exp_id] if exp_id else None)
    if not results:
        click.echo("Nothing to restore.")
    for r in results:
        click.echo(f"{r.exp}  {r.target}: {r.outcome}")
    if results:
        click.echo("Paused until the next branch checkout; git sees these files as they are.")
