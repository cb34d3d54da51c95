"""``experiment-hook uninstall``: remove the hooks ``install`` wrote, putting back any hook they chained."""

from __future__ import annotations

import click

from experiment_core.githooks import uninstall as uninstall_hooks
from experiment_core.gitio import Git


@click.command("uninstall")
def uninstall() -> None:
    """Remove the git hooks written by `install` (hooks that are not ours are left alone)."""
    git = Git.discover()
    for change in uninstall_hooks(git):
        click.echo(f"{change.action:>9}  {change.path}")
    click.echo("Run `experiment-hook restore` to hand experimented files back to git.")
