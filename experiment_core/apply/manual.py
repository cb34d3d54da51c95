"""Promote or roll back by hand: show the numbers, ask, apply through the lifecycle."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from experiment_core.apply import lifecycle
from experiment_core.clock import utc_now
from experiment_core.gitio import Git
from experiment_core.reports.report import verdict_line
from experiment_core.state import state_dir
from experiment_core.store import ledger, ledger_index
from experiment_core.store.spec import load_registry

if TYPE_CHECKING:
    from experiment_core.evidence.analysis import AnalysisResult


def decide_by_hand(exp_id: str, action: str, *, yes: bool, dry_run: bool) -> None:
    git = Git.discover()
    lifecycle.recover(git)
    exp = load_registry(git.root, state_dir(git)).get(exp_id)
    from experiment_core.evidence.analysis import analyze_data

    now = utc_now()

    def read(index: ledger_index.LedgerIndex) -> tuple[AnalysisResult, list[ledger.Event]]:
        return analyze_data(exp, index.data(exp.id), now), index.events(exp.id, ("created",))

    analysis, created = ledger_index.read_with(git, read, progress=True)
    data = analysis.to_dict()
    click.echo(verdict_line(exp.id, data))
    if analysis.decision.action != action:
        click.echo(f"Note: the numbers do not call for {action} ({'; '.join(analysis.decision.reasons)}).")
    reasons = [f"{action} by hand", *analysis.decision.reasons] if analysis.decision.action != action \
        else list(analysis.decision.reasons)  # fmt: skip
    files = ", ".join(exp.files)
    what = "deploy the treatment of" if action == "promote" else "restore the control of"
    if dry_run:
        lifecycle.plan(git, exp, action, data, reasons, created, action == "promote")  # validates only
        click.echo(f"Dry run: would {what} {files}, set status, record the decision and commit.")
        return
    if not yes:
        click.confirm(f"{action.capitalize()} {exp.id}: {what} {files} and commit?", abort=True)
    outcome = lifecycle.apply(git, exp, action, data, reasons, created)
    where = f"commit {outcome.commit[:10]}" if outcome.commit else "the work tree only (detached HEAD: not committed)"
    if outcome.branch:
        where += f" on branch {outcome.branch} (off the default branch; this branch is not touched)"
    click.echo(f"{'✅' if action == 'promote' else '↩️'} {exp.id} {outcome.status}: {where}")
    if outcome.branch:
        _publish(git)


def _publish(git: Git) -> None:
    """A decision by hand becomes the team's at once: the ledger synced, the decision branch pushed (or waiting
    for the next sync or push when the remote cannot be reached)."""
    from experiment_core.apply import decision_branch

    settings = load_registry(git.root, state_dir(git)).settings
    remote = decision_branch.target(git, settings)
    if remote is None:
        return

    def run() -> None:
        decision_branch.sync_team(git, remote, settings, click.echo)

    decision_branch.safe(run, click.echo, "ledger not synced")
