"""``experiment-hook analyze EXP``: the seed's statistical analysis report (verdict first), ``--json``, or
``--markdown`` (a GitHub-flavoured summary, also appended to ``$GITHUB_STEP_SUMMARY`` when that is set)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from experiment_core.clock import utc_now
from experiment_core.errors import UserError
from experiment_core.gitio import Git
from experiment_core.reports.report import analysis_markdown
from experiment_core.state import state_dir
from experiment_core.store import ledger_index
from experiment_core.store.spec import load_registry

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def append_step_summary(text: str) -> Path | None:
    """Append to the file GitHub Actions names in ``$GITHUB_STEP_SUMMARY`` (if any); return its path."""
    target = os.environ.get(STEP_SUMMARY_ENV)
    if not target:
        return None
    path = Path(target)
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise UserError(f"${STEP_SUMMARY_ENV}={target}", f"cannot append to it ({exc})", "fix or unset it") from None
    return path


def _timing(doc: Any) -> dict[str, Any] | None:
    if doc is not None and not isinstance(doc, dict):
        raise TypeError(doc)
    return doc


@click.command("analyze")
@click.argument("exp_id", metavar="EXP")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys documented in the README).")
@click.option("--markdown", "as_markdown", is_flag=True,
              help=f"A GitHub-flavoured summary (verdict, one row per metric); also appended to ${STEP_SUMMARY_ENV}.")
def analyze(exp_id: str, as_json: bool, as_markdown: bool = False) -> None:
    """Statistical analysis of experiment EXP and the decision it supports."""
    if as_json and as_markdown:
        raise UserError("analyze", "--json and --markdown exclude each other", "pick one")
    git = Git.discover()
    exp = load_registry(git.root, state_dir(git)).get(exp_id)
    from experiment_core.measure.timing import describe_timing
    from experiment_core.reports.report_data import analysis_dict

    now = utc_now()

    def read(index: ledger_index.LedgerIndex) -> tuple[dict[str, Any], list[str]]:
        alerts = [str(e["message"]) for e in index.events(exp.id, ("alert",))]
        timing = index.cached(exp.id, exp.metric.name, "timing",
                              lambda: describe_timing(index.events(exp.id, ("trial",)), exp.metric.name), _timing)
        return analysis_dict(exp, index.data(exp.id), now, index.skipped, timing), alerts

    result, alerts = ledger_index.read_with(git, read, progress=True)
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
    elif as_markdown:
        from experiment_core.reports.exports import summary_markdown

        text = summary_markdown(exp.id, exp.name, result, exp.metric.unit, alerts)
        click.echo(text, nl=False)
        append_step_summary(text)
    else:
        click.echo(analysis_markdown(exp.id, result, exp.metric.unit, alerts))
