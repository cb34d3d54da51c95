"""``experiment-hook status [EXP]``: the seed's Status Report (progress bar, results, action, summary)."""

from __future__ import annotations

import json
from typing import Any

import click

from experiment_core import ledger
from experiment_core.gitio import Git
from experiment_core.report import experiment_status_markdown, summary_markdown, verdict_line
from experiment_core.spec import Experiment, load_registry, utc_now
from experiment_core.state import state_dir


def experiment_row(exp: Experiment, analysis: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": exp.id,
        "name": exp.name,
        "status": exp.status,
        "hypothesis": exp.hypothesis,
        "created": exp.created,
        "sample_size": exp.sample_size,
        "unit": exp.metric.unit,
        "trials": {arm: (analysis.get(arm) or {}).get("n", 0) for arm in ("control", "treatment")},
        "analysis": analysis,
    }


def summarize(rows: list[dict[str, Any]], skipped: int) -> dict[str, Any]:
    return {
        "active": sum(r["status"] == "running" for r in rows),
        "successful": sum(r["status"] == "promoted" for r in rows),
        "failed": sum(r["status"] in ("rolled_back", "expired") for r in rows),
        "skipped_events": skipped,
    }


@click.command("status")
@click.argument("exp_id", metavar="[EXP]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys documented in the README).")
def status(exp_id: str | None = None, as_json: bool = False) -> None:
    """Progress and current results of every experiment (or of EXP)."""
    git = Git.discover()
    registry = load_registry(git.root, state_dir(git))
    experiments = [registry.get(exp_id)] if exp_id else list(registry.experiments)
    read = ledger.read(git) if experiments else ledger.LedgerRead([], 0, None)
    rows = []
    if experiments:
        from experiment_core.analysis import analyze_experiment

        now = utc_now()
        for exp in experiments:
            analysis = analyze_experiment(exp, ledger.for_experiment(read.events, exp.id), now).to_dict()
            rows.append(experiment_row(exp, analysis))
    summary = summarize(rows, read.skipped)
    if as_json:
        click.echo(json.dumps({"schema": 1, "experiments": rows, "summary": summary}, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("No experiments yet. Start one with `experiment-hook create --help`.")
        return
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
