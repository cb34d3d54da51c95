"""``experiment-hook install``: write the git hooks, configure the filter driver, make fetch bring the ledger."""

from __future__ import annotations

import click

from experiment_core.gitio import Git
from experiment_core.hookpaths.githooks import install as install_hooks
from experiment_core.store import ledger


@click.command("install")
def install() -> None:
    """Install the git hooks (for repositories without pre-commit), chaining any hook already there."""
    git = Git.discover()
    for change in install_hooks(git):
        chained = change.action == "chained"
        note = f" (the previous hook runs first: {change.path.name}.pre-experiment-hook)" if chained else ""
        click.echo(f"{change.action:>9}  {change.path}{note}")
    ledger.ensure_config(git)
    if git.remotes():  # a clone: make plain `git fetch` bring the team's ledger (notes are not fetched by default)
        from experiment_core.store import sync

        remote = sync.default_remote(git)
        sync.setup_remote(git, remote)
        click.echo(f"{'fetch':>9}  {remote} now brings the team's ledger; run `experiment-hook sync` to merge it")
    from experiment_core.hookpaths.post_checkout import follow

    follow(git, new_units=False, head=git.head())  # filter driver set up; a clone of 0.1 moves over
    click.echo("Every branch checkout now starts a unit of each running experiment; commits record trials;")
    click.echo("pulls, merges and rebases bring teammates' decisions into this work tree.")
