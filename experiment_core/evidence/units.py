"""What the analysis reads of one experiment, as gbstats keeps its models apart from its tests.

:class:`ExperimentData` is the interface: per metric, the exact sums the tests on means read (``sums``, a
:class:`sums.MetricSums` — O(blocks), whatever the number of units), the order statistics of all units
(``orders``: each arm's min, median, max and outliers, and the Mann-Whitney test), the first k units of each arm
(``first_units``, for the fixed-horizon test) and, for what needs every value (the bootstrap, plots), ``units``.

:class:`UnitData` is a metric's per-unit data: each unit's mean (the mean of its successful trials), in order of
the unit's first trial, the pair-aligned means, the error counts and each unit's machine. :func:`collect_units`
builds it from ledger events (plain dicts, deduplicated by id), and :class:`EventData` everything else from it;
the local ledger index keeps the sums and caches the order statistics (``store/ledger_index``), and is tested equal
to it. Pure: no git, no files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from experiment_core.evidence import stats
from experiment_core.evidence.sums import MetricSums, metric_sums


@dataclass(frozen=True)
class UnitData:
    """Per-unit means of one metric, in order of each unit's first trial."""

    control: list[float]
    treatment: list[float]
    pairs: tuple[list[float], list[float]]  # pair-aligned (control, treatment) means, complete pairs only
    errors: tuple[int, int, int, int]  # errors_c, trials_c, errors_t, trials_t (all trials of the metric)
    control_machines: list[str] = field(default_factory=list)  # aligned with control: the machine of the
    treatment_machines: list[str] = field(default_factory=list)  # unit's first trial, "" when unknown

    def sums(self) -> MetricSums:
        return metric_sums(self.control, self.treatment, (self.control_machines, self.treatment_machines),
                           self.pairs, self.errors)  # fmt: skip

    def first(self, k: int) -> UnitData:
        """The first ``k`` units of each arm and the first ``k`` complete pairs (no error counts)."""
        return UnitData(self.control[:k], self.treatment[:k], (self.pairs[0][:k], self.pairs[1][:k]), (0, 0, 0, 0),
                        self.control_machines[:k], self.treatment_machines[:k])  # fmt: skip


class ArmOrder(NamedTuple):
    """An arm's order statistics: min, median, max and the outliers (indices, in unit order, of the values whose
    modified z-score is above 3.5)."""

    min: float | None = None
    median: float | None = None
    max: float | None = None
    outliers: tuple[int, ...] = ()


class Orders(NamedTuple):
    """What the analysis reads of every unit's value beyond the sums: each arm's order statistics, and the
    Mann-Whitney test on the analysis scale (None below 3 units or with an empty arm)."""

    control: ArmOrder
    treatment: ArmOrder
    mann_whitney: stats.MannWhitneyResult | None

    def to_json(self) -> list[Any]:
        mw = self.mann_whitney
        return [list(self.control), list(self.treatment), None if mw is None else list(mw)]

    @classmethod
    def from_json(cls, doc: list[Any]) -> Orders:
        c, t, mw = doc
        arm = [ArmOrder(a[0], a[1], a[2], tuple(a[3])) for a in (c, t)]
        return cls(arm[0], arm[1], None if mw is None else stats.MannWhitneyResult(
            mw[0], mw[1], mw[2], None if mw[3] is None else (mw[3][0], mw[3][1])))  # fmt: skip


def _arm_order(values: Sequence[float]) -> ArmOrder:
    s = stats.summarize(values)
    return ArmOrder(s.min, s.median, s.max, s.outliers)


def orders_of(control: Sequence[float], treatment: Sequence[float], *, alpha: float, log_scale: bool) -> Orders:
    """The order statistics of per-unit values (Mann-Whitney on their logs on the log scale, which needs them
    positive)."""
    mw = None
    if control and treatment and len(control) + len(treatment) >= 3:
        if log_scale:
            if any(x <= 0 for x in (*control, *treatment)):
                raise ValueError("log_scale needs positive values")
            mw = stats.mann_whitney([math.log(x) for x in control], [math.log(x) for x in treatment], alpha=alpha)
        else:
            mw = stats.mann_whitney(control, treatment, alpha=alpha)
    return Orders(_arm_order(control), _arm_order(treatment), mw)


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
    """What the analysis reads of one experiment (see the module docstring). Built from events
    (:class:`EventData`) or from the local ledger index (``ledger_index.ExperimentView``)."""

    def sums(self, metric: str) -> MetricSums: ...

    def orders(self, metric: str, *, alpha: float, log_scale: bool) -> Orders: ...

    def first_units(self, metric: str, k: int) -> UnitData: ...

    def units(self, metric: str) -> UnitData: ...

    def unit_counts(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class EventData:
    """:class:`ExperimentData` from an experiment's ledger events (deduplicated, in time order)."""

    events: Sequence[Mapping[str, Any]]
    exp_id: str
    _units: dict[str, UnitData] = field(default_factory=dict, compare=False, repr=False)

    def units(self, metric: str) -> UnitData:
        if metric not in self._units:
            self._units[metric] = collect_units(self.events, self.exp_id, metric)
        return self._units[metric]

    def sums(self, metric: str) -> MetricSums:
        return self.units(metric).sums()

    def orders(self, metric: str, *, alpha: float, log_scale: bool) -> Orders:
        u = self.units(metric)
        return orders_of(u.control, u.treatment, alpha=alpha, log_scale=log_scale)

    def first_units(self, metric: str, k: int) -> UnitData:
        return self.units(metric).first(k)

    def unit_counts(self) -> tuple[int, int]:
        return _unit_counts(self.events)
