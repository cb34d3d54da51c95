"""``experiment-hook migrate``: copy the legacy ledger ref's events into per-experiment refs (sync does it too)."""

from __future__ import annotations

import click

from experiment_core.gitio import Git


@click.command("migrate")
def migrate() -> None:
    """Copy the events of refs/notes/experiments (what clones before 0.3 write) into each experiment's own ref.

    Idempotent: events already copied are not copied again, and readers count each event once. The legacy ref
    stays: clones still on the previous version keep writing it, and every sync copies what they add.
    """
    from experiment_core.store import migrate as migrate_mod
    from experiment_core.store import refs

    git = Git.discover()
    done = migrate_mod.migrate(git)
    if not done.refs:
        click.echo(f"nothing to copy: every event of {refs.LEGACY} is in its experiment's ref.")
        return
    events = f"{done.copied} event{'s' if done.copied != 1 else ''}"
    count = f"{len(done.refs)} per-experiment ref{'s' if len(done.refs) != 1 else ''}"
    click.echo(f"copied {events} of {refs.LEGACY} into {count} "
               f"({', '.join(r.removeprefix('refs/notes/') for r in done.refs[:5])}"
               f"{', ...' if len(done.refs) > 5 else ''}).")  # fmt: skip
