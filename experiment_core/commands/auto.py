"""``experiment-hook auto`` (also ``experiment-hook --auto``): the seed's automatic experiment management, also
from CI (a shallow checkout, a detached HEAD, no hooks): the ledger synced first, the decisions due made, their
branches pushed."""

from __future__ import annotations

import click

from experiment_core.apply import engine
from experiment_core.clock import utc_now
from experiment_core.gitio import Git


@click.command("auto")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing (the ledger is not synced).")
def auto(dry_run: bool = False) -> None:
    """Sync the ledger, evaluate every running experiment, promote, roll back or expire as its settings allow,
    and push the decision branch (settings.decision_commits)."""
    from experiment_core.hookpaths.pre_push import WAITS, team_sync
    from experiment_core.state import state_dir
    from experiment_core.store import sync
    from experiment_core.store.spec import load_registry

    git = Git.discover()
    settings = load_registry(git.root, state_dir(git)).settings
    remote = sync.default_remote(git, settings.remote) if git.remotes() and not dry_run else None
    changed = remote is not None and team_sync(git, remote, settings, click.echo)
    result = engine.evaluate(git, utc_now(), dry_run=dry_run, say=click.echo)
    for line in engine.describe(result, dry_run):
        click.echo(line)
    if remote is not None and result.applied:
        team_sync(git, remote, settings, click.echo, announce=False, failed=WAITS)
    if changed:
        from experiment_core.hookpaths.pre_push import follow_now

        follow_now(git)
