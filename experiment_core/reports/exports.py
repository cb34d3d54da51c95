"""Exports of one experiment, pure: events and analysis in, text out (the ``export`` command writes them).

* ``csv`` — long format, one row per trial: ``arm,metric,value,unit,commit,ts,exit_code,pair,machine``. ``unit`` is the
  randomization unit, ``value`` is written with ``repr`` (exact), ``ts`` as the ledger has it. ``record
  --from-csv`` reads it back into the same trials, hence the same analysis.
* ``jsonl`` — the experiment's ledger events, one canonical JSON object per line, in time order.
* ``json`` — the ``analyze --json`` document (``schema`` key).
* ``md`` — a GitHub-flavoured summary for a pull request or ``$GITHUB_STEP_SUMMARY``: verdict, one row per
  metric, warnings.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from experiment_core.reports.report import metrics_table_markdown, verdict_line, warnings
from experiment_core.store.ledger import encode

FORMATS = ("csv", "jsonl", "json", "md")
CSV_COLUMNS = ("arm", "metric", "value", "unit", "commit", "ts", "exit_code", "pair", "machine")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def trials_csv(events: Iterable[Mapping[str, Any]]) -> str:
    """Every trial event (all metrics), in ledger order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for ev in events:
        if ev.get("type") == "trial":
            writer.writerow([_cell(ev.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


def events_jsonl(events: Iterable[Mapping[str, Any]]) -> str:
    return "".join(encode(ev) + "\n" for ev in events)


def analysis_json(analysis: Mapping[str, Any]) -> str:
    return json.dumps(analysis, indent=2, sort_keys=True) + "\n"


def summary_markdown(exp_id: str, name: str, analysis: Mapping[str, Any], unit: str = "",
                     alerts: Sequence[str] = ()) -> str:  # fmt: skip
    """Verdict (bold), one table row per metric, warnings last."""
    lines = [f"### {exp_id}: {name}".rstrip(": "), "", f"**{verdict_line(exp_id, analysis)}**", "",
             metrics_table_markdown(analysis, unit).rstrip("\n")]  # fmt: skip
    found = warnings(analysis, alerts)
    if found:
        lines += ["", *[f"> ⚠️ {w}  " for w in found]]
    return "\n".join(lines) + "\n"


def pick_format(filename: str, fmt: str | None) -> str | None:
    """``fmt`` if given, else the format named by the file's extension (None when unknown)."""
    if fmt:
        return fmt
    lowered = filename.lower()
    for candidate in FORMATS:
        if lowered.endswith("." + candidate):
            return candidate
    if lowered.endswith(".markdown"):
        return "md"
    return None
