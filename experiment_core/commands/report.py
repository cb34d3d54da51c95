"""``experiment-hook report [EXP] -o FILE``: one self-contained HTML file (or, for ``.png``, the plots drawn by
matplotlib, the optional ``png`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from experiment_core import __version__
from experiment_core.clock import utc_now
from experiment_core.errors import UserError
from experiment_core.fsutil import atomic_write_text
from experiment_core.gitio import Git
from experiment_core.state import state_dir
from experiment_core.store import ledger_index
from experiment_core.store.spec import load_registry

FORMATS = ("html", "png")


def pick_format(output: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = output.suffix.lower().lstrip(".")
    if suffix in ("html", "htm"):
        return "html"
    if suffix == "png":
        return "png"
    raise UserError(str(output), "cannot tell the format from the extension", "name it .html or .png, or give --format")


@click.command("report")
@click.argument("exp_id", metavar="[EXP]", required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Where to write: FILE.html (self-contained page) or FILE.png (plots; needs the png extra).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="Override the file extension.")
def report(exp_id: str | None, output: Path, fmt: str | None) -> None:
    """Write the report of EXP (or an index of every experiment) to one file."""
    fmt = pick_format(output, fmt)
    git = Git.discover()
    registry = load_registry(git.root, state_dir(git))
    experiments = [registry.get(exp_id)] if exp_id else list(registry.experiments)
    if fmt == "png" and not experiments:
        raise UserError("report", "no experiments yet", "create one first")
    now = utc_now()
    from experiment_core.measure.timing import describe_timing
    from experiment_core.reports.report_data import analysis_dict, experiment_report

    def read(index: ledger_index.LedgerIndex) -> list[Any]:
        reports = []
        for exp in experiments:
            events = index.events(exp.id)
            analysis = analysis_dict(exp, index.data(exp.id), now, index.skipped,
                                     describe_timing(events, exp.metric.name))
            reports.append(experiment_report(exp, events, analysis, now, __version__))
        return reports

    reports = ledger_index.read_with(git, read, progress=True)
    if fmt == "png":
        from experiment_core.reports.report_png import write_png

        write_png(reports if exp_id is None else reports[:1], output)
    else:
        from experiment_core.clock import format_ts
        from experiment_core.reports.report_html import experiment_html, index_html

        html = experiment_html(reports[0]) if exp_id else index_html(reports, generated=format_ts(now),
                                                                     version=__version__)  # fmt: skip
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output, html)
    what = exp_id or f"{len(reports)} experiment{'s' if len(reports) != 1 else ''}"
    click.echo(f"Wrote the report of {what} to {output}")
