"""What the report-type commands (``analyze``, ``report``, ``export``) show, built from an experiment and its
ledger events: plain dicts and lists, so every renderer stays pure. No git here: the commands read at the edge.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from experiment_core.clock import format_ts
from experiment_core.store.ledger import Event
from experiment_core.store.spec import Experiment

if TYPE_CHECKING:
    from experiment_core.evidence.units import ExperimentData


def analysis_dict(exp: Experiment, data: ExperimentData, now: dt.datetime, skipped: int,
                  timing: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    """The ``analyze --json`` document (``schema`` first among its keys; ``skipped_events`` added), from the
    experiment's data (the ledger index, or :class:`units.EventData` of its events); ``timing`` says how its
    trials were timed (``measure.timing.describe_timing``)."""
    from experiment_core.evidence.analysis import analyze_data

    result = analyze_data(exp, data, now).to_dict()
    result["skipped_events"] = skipped
    result["timing"] = timing
    return result


def exp_dict(exp: Experiment) -> dict[str, Any]:
    """The registry entry as plain data (what the renderers read)."""
    return {
        "id": exp.id,
        "name": exp.name,
        "status": exp.status,
        "hypothesis": exp.hypothesis,
        "created": exp.created,
        "files": dict(exp.files),
        "metric": {"name": exp.metric.name, "direction": exp.metric.direction, "unit": exp.metric.unit,
                   "command": exp.metric.command},
        "targets": {"improvement_threshold": exp.targets.improvement_threshold,
                    "max_regression": exp.targets.max_regression, "alpha": exp.targets.alpha},
    }


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def settings_rows(exp: Experiment) -> list[tuple[str, str]]:
    """The settings that decide, in the order a reader checks them."""
    m = exp.metric
    rows = [
        ("primary metric", f"{m.name} ({m.direction} is better, unit {m.unit})"),
        ("command", m.command or "(none: values are recorded)"),
        ("secondary metrics", ", ".join(f"{s.name} ({s.direction})" for s in exp.secondary) or "(none)"),
        ("files", ", ".join(f"{target} ← {treatment}" for target, treatment in exp.files.items())),
        ("sample size", f"{exp.sample_size} units per arm"),
        ("promote when improvement ≥", f"{exp.targets.improvement_threshold:g} %"),
        ("roll back when worse by >", f"{exp.targets.max_regression:g} %"),
        ("alpha", f"{exp.targets.alpha:g} (intervals at {100 * (1 - exp.targets.alpha):g} %)"),
        ("analysis", f"{exp.analysis} ({exp.test} test)"),
        ("split", f"{exp.split:g} of units to treatment"),
        ("max duration", f"{exp.max_duration_days:g} days, then {exp.on_expiry}"),
        ("auto promote / auto rollback", f"{_yes(exp.auto_promote)} / {_yes(exp.auto_rollback)}"),
    ]
    return rows


def experiment_report(exp: Experiment, events: Sequence[Event], analysis: Mapping[str, Any], now: dt.datetime,
                      version: str) -> Any:  # fmt: skip
    """The :class:`~experiment_core.reports.report_html.ExperimentReport` of one experiment."""
    from experiment_core.evidence.units import collect_units
    from experiment_core.reports.history import order_series, sequential_path, trials_in_order
    from experiment_core.reports.report_html import ExperimentReport

    trials = trials_in_order(events, exp.id, exp.metric.name)
    units = collect_units(events, exp.id, exp.metric.name)
    path = sequential_path(trials, exp.id, exp.metric.name, direction=exp.metric.direction or "lower",
                           alpha=exp.targets.alpha, sample_size=exp.sample_size,
                           test=exp.test, block=exp.block_by != "none")  # fmt: skip
    return ExperimentReport(
        exp=exp_dict(exp),
        analysis=analysis,
        settings=settings_rows(exp),
        path=path,
        units={"control": units.control, "treatment": units.treatment},
        series=order_series(trials),
        decisions=[e for e in events if e.get("type") == "decision"],
        alerts=[e for e in events if e.get("type") == "alert"],
        generated=format_ts(now),
        version=version,
    )
