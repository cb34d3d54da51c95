"""``experiment-hook recover``: finish a decision that a crash interrupted."""

from __future__ import annotations

import click

from experiment_core.apply import lifecycle
from experiment_core.gitio import Git


@click.command("recover")
def recover() -> None:
    """Finish an interrupted promote/rollback/expiry (other commands do this too, first thing)."""
    outcome = lifecycle.recover(Git.discover())
    if outcome is None:
        click.echo("Nothing to recover.")
    else:
        click.echo(f"Finished the interrupted {outcome.action} of {outcome.exp_id}: {outcome.status}.")
