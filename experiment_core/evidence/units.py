"""Per-unit sufficient statistics of one experiment, as gbstats keeps its models apart from its tests.

:class:`UnitData` is what the analysis reads of a metric: each unit's mean (the mean of its successful trials),
in order of the unit's first trial, the pair-aligned means, the error counts and each unit's machine.
:func:`collect_units` builds it from ledger events (plain dicts, deduplicated by id); the local ledger index builds
the same record from its aggregates (``store/ledger_index``), and is tested equal to it. Pure: no git, no files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class UnitData:
    """Per-unit means of one metric, in order of each unit's first trial."""

    control: list[float]
    treatment: list[float]
    pairs: tuple[list[float], list[float]]  # pair-aligned (control, treatment) means, complete pairs only
    errors: tuple[int, int, int, int]  # errors_c, trials_c, errors_t, trials_t (all trials of the metric)
    control_machines: list[str] = field(default_factory=list)  # aligned with control: the machine of the
    treatment_machines: list[str] = field(default_factory=list)  # unit's first trial, "" when unknown


def is_error(ev: Mapping[str, Any]) -> bool:
    code = ev.get("exit_code")
    return isinstance(code, int) and not isinstance(code, bool) and code != 0


def valid_trial(ev: Mapping[str, Any]) -> bool:
    v = ev.get("value")
    return (
        ev.get("arm") in ("control", "treatment")
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(float(v))
    )


def dedup_events(events: Iterable[Mapping[str, Any]], exp_id: str) -> list[Mapping[str, Any]]:
    seen: set[str] = set()
    out: list[Mapping[str, Any]] = []
    for ev in events:
        if not isinstance(ev, Mapping) or ev.get("exp") != exp_id:
            continue
        eid = ev.get("id")
        if isinstance(eid, str):
            if eid in seen:
                continue
            seen.add(eid)
        out.append(ev)
    out.sort(key=lambda e: str(e.get("ts", "")))
    return out


def collect_units(events: Iterable[Mapping[str, Any]], exp_id: str, metric: str) -> UnitData:
    """Group an experiment's trials of ``metric`` by arm and unit (mean of a unit's successful trials).

    Trials with a non-zero ``exit_code`` count towards the error rate but not the metric's values.
    """
    per_unit: dict[tuple[str, str], list[float]] = {}
    per_pair: dict[str, dict[str, list[float]]] = {}
    machine_of: dict[tuple[str, str], str] = {}
    ec = tc = et = tt = 0
    for ev in dedup_events(events, exp_id):
        if ev.get("type") != "trial" or ev.get("metric") != metric or not valid_trial(ev):
            continue
        arm = str(ev["arm"])
        bad = is_error(ev)
        if arm == "control":
            tc += 1
            ec += bad
        else:
            tt += 1
            et += bad
        if bad:
            continue
        value = float(ev["value"])
        unit = str(ev.get("unit") or ev.get("id") or "")
        if (arm, unit) not in per_unit:
            machine = ev.get("machine")
            machine_of[(arm, unit)] = machine if isinstance(machine, str) else ""
        per_unit.setdefault((arm, unit), []).append(value)
        pair = ev.get("pair")
        if isinstance(pair, str) and pair:
            per_pair.setdefault(pair, {}).setdefault(arm, []).append(value)
    control = [math.fsum(v) / len(v) for (a, _), v in per_unit.items() if a == "control"]
    treatment = [math.fsum(v) / len(v) for (a, _), v in per_unit.items() if a == "treatment"]
    pc: list[float] = []
    pt: list[float] = []
    for arms in per_pair.values():
        if "control" in arms and "treatment" in arms:
            pc.append(math.fsum(arms["control"]) / len(arms["control"]))
            pt.append(math.fsum(arms["treatment"]) / len(arms["treatment"]))
    machines = {arm: [machine_of[k] for k in per_unit if k[0] == arm] for arm in ("control", "treatment")}
    return UnitData(control, treatment, (pc, pt), (ec, tc, et, tt), machines["control"], machines["treatment"])


def _unit_counts(events: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    units: dict[str, set[str]] = {"control": set(), "treatment": set()}
    for ev in events:
        if ev.get("type") in ("assign", "trial") and ev.get("arm") in units and ev.get("unit") is not None:
            units[str(ev["arm"])].add(str(ev["unit"]))
    return len(units["control"]), len(units["treatment"])


class ExperimentData(Protocol):
    """What the analysis reads of one experiment: per-unit data of a metric, and the units of each arm. Built
    from events (:class:`EventData`) or from the local ledger index (``ledger_index.ExperimentView``)."""

    def units(self, metric: str) -> UnitData: ...

    def unit_counts(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class EventData:
    """:class:`ExperimentData` from an experiment's ledger events (deduplicated, in time order)."""

    events: Sequence[Mapping[str, Any]]
    exp_id: str

    def units(self, metric: str) -> UnitData:
        return collect_units(self.events, self.exp_id, metric)

    def unit_counts(self) -> tuple[int, int]:
        return _unit_counts(self.events)
