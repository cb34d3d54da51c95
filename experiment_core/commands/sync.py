"""``experiment-hook sync [REMOTE]``: exchange the ledger (git notes) and backup refs with a remote."""

from __future__ import annotations

import json

import click

from experiment_core.gitio import Git
from experiment_core.store import ledger_index


@click.command("sync")
@click.argument("remote", required=False)
@click.option("--no-push", is_flag=True, help="Fetch and merge only.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def sync(remote: str | None, no_push: bool, as_json: bool) -> None:
    """Fetch the remote's ledger into a side ref, merge it (exact union), push ours back with a lease; follow the
    team's decisions and push a decision branch that waits.

    REMOTE defaults to settings.remote in experiments.yaml, else the branch's remote, else origin. The first
    sync also configures REMOTE so a plain `git fetch` brings the ledger (fresh clones fetch no notes).
    """
    from experiment_core.state import state_dir
    from experiment_core.store import sync as sync_mod
    from experiment_core.store.spec import load_registry

    git = Git.discover()
    registry = load_registry(git.root, state_dir(git))
    if remote is None:
        remote = sync_mod.default_remote(git, registry.settings.remote)
    else:
        sync_mod.check_remote(git, remote)
    from experiment_core.apply import decision_branch

    said: list[str] = []
    result, changed = decision_branch.sync_team(git, remote, registry.settings, said.append, push=not no_push)
    if changed:  # the team decided: this work tree follows at once
        from experiment_core.hookpaths.pre_push import follow_now

        follow_now(git)
    known = [e.id for e in registry.experiments]

    def read(index: ledger_index.LedgerIndex) -> dict[str, int]:  # brings the index forward for the next reads
        return {"events": index.count(), "skipped_lines": index.skipped,
                "unknown_experiment_events": index.count_unknown(known)}  # fmt: skip

    health = ledger_index.read_with(git, read, progress=True)
    if as_json:
        click.echo(json.dumps({"schema": 1, **result.__dict__, "ledger": health, "messages": said}, sort_keys=True))
        return
    for line in said:  # the sync's summary first, then what the team's decisions changed here
        click.echo(line)
    note = f"Ledger: {health['events']} events"
    if health["skipped_lines"]:
        note += f", {health['skipped_lines']} unreadable line(s) skipped"
    if health["unknown_experiment_events"]:
        note += f", {health['unknown_experiment_events']} for experiments not in experiments.yaml (ignored)"
    click.echo(note + ".")
    for ref in result.rejected_backups:
        click.echo(f"warning: {ref} differs on {remote} and was not pushed (kept locally)", err=True)
