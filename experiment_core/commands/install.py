"""``experiment-hook install``: write the post-checkout, post-commit and pre-push git hooks."""

from __future__ import annotations

import click

from experiment_core import ledger
from experiment_core.githooks import install as install_hooks
from experiment_core.gitio import Git


@click.command("install")
def install() -> None:
    """Install the three git hooks (for repositories without pre-commit), chaining any hook already there."""
    git = Git.discover()
    for change in install_hooks(git):
        chained = change.action == "chained"
        note = f" (the previous hook runs first: {change.path.name}.pre-experiment-hook)" if chained else ""
        click.echo(f"{change.action:>9}  {change.path}{note}")
    ledger.ensure_config(git)
    click.echo("Every branch checkout now starts a unit of each running experiment; commits record trials.")
