"""The single-file HTML report: pure functions from plain data to one HTML string.

The page references nothing outside itself: no scripts, no stylesheets, fonts or images by URL; the plots are
inline SVG from :mod:`experiment_core.reports.svg`. It opens from ``file://`` offline and survives as a CI artifact.
Layout, verdict first: the decision line, one row per metric, the four plots, the hypothesis, the settings, the
decision log with reasons, the alerts, and every number of ``analyze --json`` in a collapsed block.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from experiment_core.reports import svg
from experiment_core.reports.report import METRIC_HEADERS, metric_cells, metric_rows, verdict_line, warnings

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #1f2328;
  margin: 0 auto; max-width: 1340px; padding: 24px 28px 48px; background: #ffffff; line-height: 1.45; }
h1 { font-size: 22px; margin: 6px 0 2px; } h2 { font-size: 17px; margin: 28px 0 8px;
  border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.verdict { font-size: 19px; font-weight: 700; padding: 12px 16px; border-radius: 8px; margin: 0 0 6px;
  border-left: 8px solid; background: #f6f8fa; }
.v-promote { border-color: #1a7f37; color: #116329; } .v-rollback { border-color: #cf222e; color: #a40e26; }
.v-hold { border-color: #8250df; color: #6639ba; } .v-expire { border-color: #9a6700; color: #7d4e00; }
.v-continue { border-color: #0969da; color: #0550ae; }
.meta { color: #656d76; font-size: 13px; margin: 0; }
table { border-collapse: collapse; font-size: 13.5px; margin: 4px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 14px; }
figure { margin: 0; border: 1px solid #d0d7de; border-radius: 8px; padding: 6px; background: #fff; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: #656d76; padding: 2px 6px 4px; }
.alerts li { color: #9a6700; } .reasons { margin: 0; padding-left: 18px; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; font-size: 12px; border-radius: 6px; }
footer { margin-top: 36px; color: #656d76; font-size: 12px; }
"""

CAPTIONS = {
    "a": "Improvement in % (positive = better) with its 95 % interval (the table's CI), against the promote margin "
    "(green) and the rollback margin (red). Colour = decision; secondary metrics are grey unless significant.",
    "b": "The estimate recomputed after every unit, with the always-valid (sequential) band the decision uses: "
    "valid at every look, so watching it does not inflate false positives.",
    "c": "Box = quartiles, whiskers = min to max, thick line = median, diamond = mean; "
    "dots = every randomization unit's value.",
    "d": "Each trial's value in time order with a trailing moving average per arm: a slope is drift, "
    "a high start is warm-up.",
}


@dataclass(frozen=True)
class ExperimentReport:
    """Everything the page shows, as plain data (built at the edge from the registry and the ledger)."""

    exp: Mapping[str, Any]  # id, name, status, hypothesis, created, files, metric{name,direction,unit,command}, …
    analysis: Mapping[str, Any]  # the analyze --json document
    settings: Sequence[tuple[str, str]]  # (name, value) rows, in display order
    path: Sequence[svg.SeqPoint] = ()
    units: Mapping[str, Sequence[float]] = field(default_factory=dict)
    series: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)
    decisions: Sequence[Mapping[str, Any]] = ()  # decision events from the ledger
    alerts: Sequence[Mapping[str, Any]] = ()  # alert events from the ledger
    generated: str = ""
    version: str = ""


def _action(analysis: Mapping[str, Any]) -> str:
    return str((analysis.get("decision") or {}).get("action", "continue"))


def metrics_table_html(analysis: Mapping[str, Any], unit: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in METRIC_HEADERS)
    body = []
    for row in metric_rows(analysis):
        cells = metric_cells(row, unit)
        tds = [f"<td>{escape(cells[0])}</td>"]
        tds += [f'<td class="num">{escape(c)}</td>' for c in cells[1:6]]
        tds.append(f"<td>{escape(cells[6])}</td>")
        body.append(f'<tr class="metric-{escape(str(row["role"]))}">' + "".join(tds) + "</tr>")
    return f'<table id="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def changes(analysis: Mapping[str, Any]) -> list[svg.Change]:
    """Plot (a)'s rows: the primary coloured by the decision, each secondary by its significance."""
    ci = analysis.get("relative_ci95") or [None, None]
    out = [svg.Change(str(analysis.get("metric")), analysis.get("improvement_pct"), ci[0], ci[1], _action(analysis))]
    for sec in analysis.get("secondary") or []:
        sci = sec.get("relative_ci95") or [None, None]
        imp = sec.get("improvement_pct")
        action = "none"
        if sec.get("significant") and imp is not None:
            action = "promote" if imp >= 0 else "rollback"
        out.append(svg.Change(str(sec.get("metric")), imp, sci[0], sci[1], action))
    return out


def margins(exp: Mapping[str, Any]) -> tuple[float, float]:
    targets = exp.get("targets") or {}
    return float(targets.get("improvement_threshold", 15.0)), float(targets.get("max_regression", 10.0))


def plots_html(report: ExperimentReport) -> str:
    promote, rollback = margins(report.exp)
    unit = str((report.exp.get("metric") or {}).get("unit", ""))
    figures = [
        ("a", svg.change_plot(changes(report.analysis), promote, rollback)),
        ("b", svg.sequential_plot(report.path, promote, rollback)),
        ("c", svg.distribution_plot(report.units, unit)),
        ("d", svg.order_plot(report.series, unit)),
    ]
    return '<div class="plots">' + "".join(
        f'<figure id="figure-{key}">{plot}<figcaption>{escape(CAPTIONS[key])}</figcaption></figure>'
        for key, plot in figures
    ) + "</div>"


def settings_table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="settings">{body}</table>'


def decision_log_html(decisions: Sequence[Mapping[str, Any]], analysis: Mapping[str, Any]) -> str:
    """Recorded decisions (from the ledger), then today's evaluation, each with its reasons."""
    rows = []
    for ev in decisions:
        reasons = "".join(f"<li>{escape(str(r))}</li>" for r in ev.get("reasons") or [])
        who = " (automatic)" if ev.get("automatic") else ""
        rows.append(f"<tr><td>{escape(str(ev.get('ts', '')))}</td><td>{escape(str(ev.get('action', '')))}{who}</td>"
                    f'<td><ul class="reasons">{reasons}</ul></td></tr>')  # fmt: skip
    decision = analysis.get("decision") or {}
    reasons = "".join(f"<li>{escape(str(r))}</li>" for r in decision.get("reasons") or []) or "<li>no data yet</li>"
    rows.append(f"<tr><td>now (this report)</td><td>{escape(str(decision.get('action', 'continue')))}"
                f'{" (may apply automatically)" if decision.get("automatic") else ""}</td>'
                f'<td><ul class="reasons">{reasons}</ul></td></tr>')  # fmt: skip
    return ('<table id="decision-log"><thead><tr><th>when</th><th>action</th><th>reasons</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")  # fmt: skip


def alerts_html(analysis: Mapping[str, Any], alerts: Sequence[Mapping[str, Any]]) -> str:
    found = warnings(analysis, [str(a.get("message", "")) for a in alerts])
    if not found:
        return '<p id="alerts">None.</p>'
    return '<ul id="alerts" class="alerts">' + "".join(f"<li>{escape(w)}</li>" for w in found) + "</ul>"


def page(title: str, body: str, *, generated: str, version: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}"
        f"<footer>experiment-hook {escape(version)} · generated {escape(generated)} · a single file: no network, "
        "no JavaScript</footer></body></html>\n"
    )


def experiment_html(report: ExperimentReport) -> str:
    """The report of one experiment."""
    exp, analysis = report.exp, report.analysis
    exp_id = str(exp.get("id"))
    unit = str((exp.get("metric") or {}).get("unit", ""))
    action = _action(analysis)
    created = f" · created {exp.get('created')}" if exp.get("created") else ""
    parts = [
        f'<p class="verdict v-{escape(action)}" id="verdict">{escape(verdict_line(exp_id, analysis))}</p>',
        f"<h1>{escape(str(exp.get('name', exp_id)))}</h1>",
        f'<p class="meta">{escape(exp_id)} · status {escape(str(exp.get("status", "")))}{escape(created)}</p>',
        "<h2>Metrics</h2>", metrics_table_html(analysis, unit),
        "<h2>Plots</h2>", plots_html(report),
        "<h2>Hypothesis</h2>", f'<p id="hypothesis">{escape(str(exp.get("hypothesis") or "(none)"))}</p>',
        "<h2>Settings</h2>", settings_table(report.settings),
        "<h2>Decision log</h2>", decision_log_html(report.decisions, analysis),
        "<h2>Alerts</h2>", alerts_html(analysis, report.alerts),
        "<h2>All numbers</h2>",
        "<details><summary>The analysis as <code>analyze --json</code> prints it</summary>"
        f'<pre id="analysis-json">{escape(json.dumps(analysis, indent=2, sort_keys=True))}</pre></details>',
    ]  # fmt: skip
    return page(f"{exp_id}: {verdict_line(exp_id, analysis)}", "".join(parts), generated=report.generated,
                version=report.version)  # fmt: skip


def index_html(reports: Sequence[ExperimentReport], *, generated: str, version: str) -> str:
    """All experiments on one page: a table (verdict first) and, per experiment, its change plot and metrics."""
    if not reports:
        body = "<h1>Experiments</h1><p>No experiments yet. Start one with <code>experiment-hook create</code>.</p>"
        return page("experiment-hook: experiments", body, generated=generated, version=version)
    head = "<tr><th>experiment</th><th>name</th><th>status</th><th>verdict</th></tr>"
    rows = []
    sections = []
    for r in reports:
        exp_id = str(r.exp.get("id"))
        anchor = f"exp-{escape(exp_id)}"
        rows.append(f'<tr><td><a href="#{anchor}">{escape(exp_id)}</a></td><td>{escape(str(r.exp.get("name", "")))}'
                    f'</td><td>{escape(str(r.exp.get("status", "")))}</td>'
                    f'<td>{escape(verdict_line(exp_id, r.analysis))}</td></tr>')  # fmt: skip
        promote, rollback = margins(r.exp)
        unit = str((r.exp.get("metric") or {}).get("unit", ""))
        plot = svg.change_plot(changes(r.analysis), promote, rollback, plot_id=f"plot-change-{exp_id}",
                               title=f"{exp_id}: change, 95 % CI")  # fmt: skip
        sections.append(
            f'<section id="{anchor}"><h2>{escape(exp_id)} · {escape(str(r.exp.get("name", "")))}</h2>'
            f'<p class="verdict v-{escape(_action(r.analysis))}">{escape(verdict_line(exp_id, r.analysis))}</p>'
            f"{metrics_table_html(r.analysis, unit)}<figure>{plot}</figure>"
            f'<p class="meta">Hypothesis: {escape(str(r.exp.get("hypothesis") or "(none)"))} · full report: '
            f"<code>experiment-hook report {escape(exp_id)} -o {escape(exp_id)}.html</code></p></section>"
        )
    body = (f"<h1>Experiments ({len(reports)})</h1><table id=\"index\"><thead>{head}</thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{''.join(sections)}")  # fmt: skip
    return page("experiment-hook: experiments", body, generated=generated, version=version)
