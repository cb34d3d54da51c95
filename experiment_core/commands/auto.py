"""``experiment-hook auto`` (also ``experiment-hook --auto``): the seed's automatic experiment management."""

from __future__ import annotations

import click

from experiment_core.apply import engine
from experiment_core.clock import utc_now
from experiment_core.gitio import Git


@click.command("auto")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
def auto(dry_run: bool = False) -> None:
    """Evaluate every running experiment; promote, roll back or expire as its settings allow."""
    git = Git.discover()
    result = engine.evaluate(git, utc_now(), dry_run=dry_run, say=click.echo)
    for line in engine.describe(result, dry_run):
        click.echo(line)
