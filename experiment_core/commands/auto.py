"""``experiment-hook auto`` (also ``experiment-hook --auto``): the seed's automatic experiment management."""

from __future__ import annotations

from collections.abc import Callable

import click

from experiment_core import engine
from experiment_core.gitio import Git
from experiment_core.spec import utc_now

ICON = {"promote": "✅", "rollback": "❌", "expire": "⏱️", "hold": "⚠️", "continue": "📊"}


def print_result(result: engine.EngineResult, dry_run: bool, say: Callable[[str], None] = click.echo) -> None:
    if result.skipped_evaluation:
        say("experiment-hook: nothing due (no new trials since the last evaluation)")
        return
    applied = {o.exp_id: o for o in result.applied}
    refused = dict(result.refused)
    for v in result.verdicts:
        why = v.reasons[0] if v.reasons else ""
        if v.exp_id in applied:
            o = applied[v.exp_id]
            where = f"commit {o.commit[:10]}" if o.commit else "work tree only (detached HEAD: not committed)"
            say(f"{ICON.get(v.action, '')} {o.action} {v.exp_id}: {o.status} ({where}) — {why}")
        elif v.exp_id in refused:
            say(f"⚠️  {v.action} {v.exp_id} refused: {refused[v.exp_id]}")
        elif v.action in ("promote", "rollback", "expire"):
            verb = "would" if dry_run and v.automatic else "needs a person to"
            say(f"{ICON.get(v.action, '')} {v.exp_id}: {verb} {v.action} — {why}")
        else:
            say(f"{ICON.get(v.action, '')} {v.exp_id}: {v.action} — {'; '.join(v.reasons) or 'no data yet'}")
    for exp_id, kind, message in result.alerts:
        say(f"⚠️  alert {exp_id} [{kind}]: {message}")


@click.command("auto")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
def auto(dry_run: bool = False) -> None:
    """Evaluate every running experiment; promote, roll back or expire as its settings allow."""
    git = Git.discover()
    result = engine.evaluate(git, utc_now(), dry_run=dry_run, say=click.echo)
    print_result(result, dry_run)
