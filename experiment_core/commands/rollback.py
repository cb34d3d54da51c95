"""``experiment-hook rollback EXP``: restore the control for good, by hand (asks first; ``--yes`` skips)."""

from __future__ import annotations

import click

from experiment_core.apply.manual import decide_by_hand


@click.command("rollback")
@click.argument("exp_id", metavar="EXP")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
def rollback(exp_id: str, yes: bool, dry_run: bool) -> None:
    """Roll back experiment EXP: the control (the backup taken at create) is restored."""
    decide_by_hand(exp_id, "rollback", yes=yes, dry_run=dry_run)
