"""``experiment-hook status [EXP]``: the seed's Status Report (progress bar, results, action, summary)."""

from __future__ import annotations

import json
from typing import Any

import click

from experiment_core.clock import utc_now
from experiment_core.deploy.assign import current_assignment
from experiment_core.gitio import Git
from experiment_core.reports.report import experiment_status_markdown, progress, summary_markdown, verdict_line
from experiment_core.state import state_dir
from experiment_core.store import ledger, ledger_index
from experiment_core.store.spec import Experiment, Registry, load_registry

TrialSpan = tuple[int, "float | None", "float | None"]  # trials, epoch seconds of the first and the last


def runs_per_month(span: TrialSpan) -> float:
    """Runs per 30 days as seen in the ledger (span from first to last trial, at least one day)."""
    count, first, last = span
    if not count or first is None or last is None:
        return 0.0
    span_days = max((last - first) / 86400, 1.0)
    return count / span_days * 30


def time_saved_per_month(exp: Experiment, analysis: dict[str, Any], span: TrialSpan) -> float | None:
    """Seconds saved per month by a promoted timing experiment: saving per run × runs per month."""
    if exp.status != "promoted" or exp.metric.unit != "s" or exp.metric.direction != "lower":
        return None
    diff = analysis.get("difference")
    if diff is None:
        return None
    return max(-float(diff), 0.0) * runs_per_month(span)


def experiment_row(exp: Experiment, analysis: dict[str, Any], alerts: list[ledger.Event],
                   span: TrialSpan) -> dict[str, Any]:  # fmt: skip
    return {
        "id": exp.id,
        "name": exp.name,
        "status": exp.status,
        "hypothesis": exp.hypothesis,
        "files": dict(exp.files),
        "created": exp.created,
        "sample_size": exp.sample_size,
        "unit": exp.metric.unit,
        "trials": {arm: (analysis.get(arm) or {}).get("n", 0) for arm in ("control", "treatment")},
        "progress": dict(zip(("done", "needed", "open_ended"), progress(analysis, exp.sample_size), strict=True)),
        "analysis": analysis,
        "alerts": [e["message"] for e in alerts],
        "time_saved_per_month_s": time_saved_per_month(exp, analysis, span),
    }


# Alerts the analysis recomputes on every read (it lists them itself while they hold); a ledger alert of these kinds
# is the record of when one first appeared, not a current one.
ANALYSIS_ALERTS = ("srm", "guardrail", "alert_below", "alert_above", "error_rate", "outliers", "regression")


def holding(alerts: list[ledger.Event]) -> list[ledger.Event]:
    """The ledger's alerts that still hold as recorded (a conflict, a dropped trial, a duration): those the
    analysis derives are listed from the analysis itself, with today's numbers."""
    return [e for e in alerts if e.get("kind") not in ANALYSIS_ALERTS]


def decision_row(git: Git, decision: Any, branch_registry: Registry) -> dict[str, Any] | None:
    """What the team decided for an experiment, when, by which clone, and where the decision commit is."""
    if decision is None:
        return None
    from experiment_core.apply.decision_branch import summary

    exp = next((e for e in branch_registry.experiments if e.id == decision.exp), None)
    holds = exp is not None and not exp.running
    return {"action": decision.action, "status": decision.status, "ts": decision.ts, "by_clone": decision.by,
            "commit": decision.commit, "branch": decision.branch, "merged_here": holds,
            "summary": summary(git, decision, holds)}  # fmt: skip


def summarize(rows: list[dict[str, Any]], skipped: int) -> dict[str, Any]:
    return {
        "active": sum(r["status"] == "running" for r in rows),
        "successful": sum(r["status"] == "promoted" for r in rows),
        "failed": sum(r["status"] in ("rolled_back", "expired") for r in rows),
        "skipped_events": skipped,
        "time_saved_per_month_s": sum(r["time_saved_per_month_s"] or 0.0 for r in rows),
    }


def summary_line(summary: dict[str, Any]) -> str:
    parts = [f"{summary['active']} active", f"{summary['successful']} promoted", f"{summary['failed']} failed"]
    if summary.get("time_saved_per_month_s"):
        parts.append(f"{summary['time_saved_per_month_s'] / 3600:.1f} h/month saved")
    if summary.get("skipped_events"):
        parts.append(f"{summary['skipped_events']} unreadable ledger line(s) skipped")
    return " · ".join(parts)


@click.command("status")
@click.argument("exp_id", metavar="[EXP]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys documented in the README).")
@click.option("--markdown", "as_markdown", is_flag=True, help="The full status report in Markdown (the seed's format).")
def status(exp_id: str | None = None, as_json: bool = False, as_markdown: bool = False) -> None:
    """Progress and current results of every experiment (or of EXP)."""
    git = Git.discover()
    branch_registry = load_registry(git.root, state_dir(git))
    from experiment_core.store import decisions

    known = decisions.refresh(git) if branch_registry.experiments else {}
    registry = decisions.overlay(branch_registry, known)  # the team's decisions over this branch's registry
    experiments = [registry.get(exp_id)] if exp_id else list(registry.experiments)
    rows: list[dict[str, Any]] = []
    skipped = 0
    if experiments:
        from experiment_core.evidence.analysis import analyze_data

        now = utc_now()

        def read_rows(index: ledger_index.LedgerIndex) -> tuple[list[dict[str, Any]], int]:
            out = []
            for exp in experiments:
                analysis = analyze_data(exp, index.data(exp.id), now).to_dict()
                span = index.trial_span(exp.id, exp.metric.name)
                out.append(experiment_row(exp, analysis, holding(index.events(exp.id, ("alert",))), span))
            return out, index.skipped

        rows, skipped = ledger_index.read_with(git, read_rows, progress=True)
        for exp, row in zip(experiments, rows, strict=True):
            local = current_assignment(git, exp.id) if exp.running else None
            row["this_worktree"] = local.arm if local else None
            row["decision"] = decision_row(git, known.get(exp.id), branch_registry)
    summary = summarize(rows, skipped)
    if as_json:
        click.echo(json.dumps({"schema": 1, "experiments": rows, "summary": summary}, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("No experiments yet. Start one with `experiment-hook create --help`.")
        return
    from experiment_core.reports import terminal

    decided = [f"{r['id']}: {r['decision']['summary']}" for r in rows if r.get("decision")]
    if not as_markdown and terminal.is_static():
        for row in rows:  # under pre-commit or in a pipe: one static line per experiment, pre-commit's rhythm
            click.echo(terminal.experiment_line(row))
    elif not as_markdown:
        from experiment_core.reports.report import warnings

        found = {r["id"]: warnings(r["analysis"], r["alerts"]) for r in rows}
        terminal.print_status_table(rows, {k: v for k, v in found.items() if v}, summary_line(summary))
    else:
        _markdown(rows, summary)
    for line in decided:  # what the team decided, when, by which clone, where the decision commit is
        click.echo(line)


def _markdown(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    for row in rows:
        click.echo(verdict_line(row["id"], row["analysis"]) if row["status"] == "running"
                   else f"{row['status'].upper()} {row['id']}")  # fmt: skip
    click.echo("")
    active = [r for r in rows if r["status"] == "running"]
    ended = [r for r in rows if r["status"] != "running"]
    index = 1
    for title, group in (("ACTIVE EXPERIMENTS", active), ("COMPLETED EXPERIMENTS", ended)):
        if not group:
            continue
        click.echo(f"## {title}\n")
        for row in group:
            click.echo(experiment_status_markdown(index, row, row["analysis"], row["sample_size"]))
            index += 1
    click.echo(summary_markdown(summary))
