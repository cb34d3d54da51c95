"""``experiment-hook export EXP -o FILE``: trials (.csv), events (.jsonl), analysis (.json) or a Markdown table
(.md), picked by the extension or ``--format``; ``-o -`` writes to standard output."""

from __future__ import annotations

from pathlib import Path

import click

from experiment_core.clock import utc_now
from experiment_core.errors import UserError
from experiment_core.fsutil import atomic_write_text
from experiment_core.gitio import Git
from experiment_core.reports.exports import (
    FORMATS,
    analysis_json,
    events_jsonl,
    pick_format,
    summary_markdown,
    trials_csv,
)
from experiment_core.state import state_dir
from experiment_core.store import ledger_index
from experiment_core.store.spec import load_registry


@click.command("export")
@click.argument("exp_id", metavar="EXP")
@click.option("-o", "--output", required=True, help="FILE.csv | FILE.jsonl | FILE.json | FILE.md, or - for stdout.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="Override the file extension.")
def export(exp_id: str, output: str, fmt: str | None) -> None:
    """Export experiment EXP's trials, events, analysis or a Markdown summary."""
    chosen = pick_format(output, fmt)
    if chosen is None:
        raise UserError(output, "cannot tell the format from the extension",
                        f"name it .csv, .jsonl, .json or .md, or give --format ({', '.join(FORMATS)})")  # fmt: skip
    git = Git.discover()
    exp = load_registry(git.root, state_dir(git)).get(exp_id)
    events, skipped = ledger_index.read_with(git, lambda index: (index.events(exp.id), index.skipped), progress=True)
    if chosen == "csv":
        text = trials_csv(events)
    elif chosen == "jsonl":
        text = events_jsonl(events)
    else:
        from experiment_core.evidence.units import EventData
        from experiment_core.measure.timing import describe_timing
        from experiment_core.reports.report_data import analysis_dict

        analysis = analysis_dict(exp, EventData(events, exp.id), utc_now(), skipped,
                                 describe_timing(events, exp.metric.name))
        if chosen == "json":
            text = analysis_json(analysis)
        else:
            alerts = [str(e["message"]) for e in events if e["type"] == "alert"]
            text = summary_markdown(exp.id, exp.name, analysis, exp.metric.unit, alerts)
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    click.echo(f"Wrote {chosen} export of {exp.id} to {path}")
