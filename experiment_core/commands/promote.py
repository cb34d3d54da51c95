"""``experiment-hook promote EXP``: deploy the treatment for good, by hand (asks first; ``--yes`` skips)."""

from __future__ import annotations

import click

from experiment_core.apply.manual import decide_by_hand


@click.command("promote")
@click.argument("exp_id", metavar="EXP")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
def promote(exp_id: str, yes: bool, dry_run: bool) -> None:
    """Promote experiment EXP: its treatment becomes the committed content."""
    decide_by_hand(exp_id, "promote", yes=yes, dry_run=dry_run)
