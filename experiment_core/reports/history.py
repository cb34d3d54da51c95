"""An experiment over time, for the report's plots: pure functions of the ledger events (plain dicts).

* :func:`trials_in_order` — the primary metric's valid trials, deduplicated, in time order;
* :func:`sequential_path` — the improvement estimate and its always-valid band recomputed on growing prefixes
  of those trials (the same formulas as ``analyze``: its last point equals ``sequential.relative_ci95``);
* :func:`order_series` — (trial order, value) per arm, for drift and warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from experiment_core.evidence.units import collect_units, dedup_events, is_error, valid_trial
from experiment_core.reports.svg import SeqPoint

MAX_POINTS = 240  # evaluate at most this many prefixes (evenly spread; the last one always)


def trials_in_order(events: Iterable[Mapping[str, Any]], exp_id: str, metric: str) -> list[Mapping[str, Any]]:
    """The metric's valid trials of ``exp_id``, deduplicated by id, in time order."""
    return [
        ev for ev in dedup_events(events, exp_id)
        if ev.get("type") == "trial" and ev.get("metric") == metric and valid_trial(ev)
    ]  # fmt: skip


def order_series(trials: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Per arm, (1-based position among all trials in time order, value) of each successful trial."""
    series: dict[str, list[tuple[int, float]]] = {"control": [], "treatment": []}
    for i, ev in enumerate(trials, start=1):
        if not is_error(ev):
            series[str(ev["arm"])].append((i, float(ev["value"])))
    return series


def sequential_point(control: Sequence[float], treatment: Sequence[float], *, direction: str, alpha: float,
                     n_planned: float, test: str = "welch", machines: Any = None,
                     pairs: Any = None) -> SeqPoint | None:  # fmt: skip
    """The improvement (%) and its always-valid band from two arms of unit values, computed by the very code
    ``analyze`` runs (so the two can never drift apart); None before the band exists."""
    from experiment_core.evidence.analysis import (  # one implementation of the band
        compare_arms,
        improvement_from_rel,
        improvement_interval,
    )

    if min(len(control), len(treatment)) < 2:
        return None
    cmp_ = compare_arms(control, treatment, alpha=alpha, test=test, log_scale=False, n_planned=n_planned,
                        machines=machines, pairs=pairs)  # fmt: skip
    estimate = improvement_from_rel(cmp_.rel, direction)
    band = improvement_interval(cmp_.seq_rel_ci, direction)
    if estimate is None or band is None:
        return None
    return SeqPoint(n=len(control) + len(treatment), estimate=estimate, lo=band[0], hi=band[1])


def sequential_path(trials: Sequence[Mapping[str, Any]], exp_id: str, metric: str, *, direction: str, alpha: float,
                    sample_size: int, test: str = "welch", max_points: int = MAX_POINTS,
                    block: bool = False) -> list[SeqPoint]:  # fmt: skip
    """The always-valid band on growing prefixes of ``trials`` (time order), one point per distinct unit count;
    ``block``: compared within machines or pairs when possible, as ``analyze`` does (``block_by: machine``)."""
    n_planned = 2.0 * max(sample_size, 1)
    total = len(trials)
    if total == 0:
        return []
    step = max(1, math.ceil(total / max_points))
    cuts = sorted({*range(step, total + 1, step), total})
    path: list[SeqPoint] = []
    for k in cuts:
        units = collect_units(trials[:k], exp_id, metric)
        point = sequential_point(units.control, units.treatment, direction=direction, alpha=alpha,
                                 n_planned=n_planned, test=test,
                                 machines=(units.control_machines, units.treatment_machines) if block else None,
                                 pairs=units.pairs if block else None)  # fmt: skip
        if point is None:
            continue
        if path and path[-1].n == point.n:
            path[-1] = point
        else:
            path.append(point)
    return path
