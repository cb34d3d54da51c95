"""Analysis glue, still pure (no git, no files): arrays or ledger events in, AnalysisResult out.

* :func:`analyze_samples` — two arrays (one value per independent unit) and the registry defaults.
* :func:`analyze_experiment` — an experiment record and its ledger events (plain dicts): trials are grouped
  by arm and metric and averaged per randomization unit, so that ``n`` counts units.

The steps, kept apart as in GrowthBook's gbstats (``_build`` calls them in order): each arm's sufficient
statistics (:func:`stats.moments`) → one metric's tests (:func:`compare_arms`: pooled, or within machines or
pairs; fixed-horizon and always-valid) → the :class:`~experiment_core.evidence.decide.Evidence` the rules read →
:func:`~experiment_core.evidence.decide.decide` → the document, one function per section.

All intervals are at level 1 − alpha (95 % with the default alpha; the ``ci95`` keys keep their names).
Undefined numbers are None (JSON null), never NaN.

``AnalysisResult.to_dict()`` (the ``analyze --json`` document; keys are kept, new ones may be added):

* ``schema`` (1), ``experiment`` (id or None), ``metric``, ``direction`` ("lower" | "higher"), ``mode``
  ("sequential" | "fixed"), ``alpha``, ``confidence_level``, ``log_scale``;
* ``control`` / ``treatment``: ``n`` (units), ``mean``, ``std``, ``min``, ``median``, ``max``, ``outliers``
  (indices, in unit order, of values whose modified z-score exceeds 3.5);
* ``improvement_pct`` (positive = better whatever the direction; ratio of geometric means on the log scale),
  ``difference`` (treatment mean − control mean), ``test``, ``statistic``, ``df``, ``p_value`` (of ``test``),
  ``effect_size`` (Cohen's d, treatment − control over the pooled sd), ``hedges_g``, ``ci95`` (of the
  difference), ``relative_ci95`` (of the improvement, in %);
* ``sequential``: ``p_value`` (always-valid), ``ci95`` (confidence sequence of the difference; of the
  difference of log means on the log scale), ``relative_ci95`` (in % improvement), ``rho``, ``n_planned``
  (N* = 2·sample_size), ``n``, ``scale``;
* ``fixed``: ``n_per_arm``, ``p_value``, ``relative_ci95``, ``improvement_pct`` (first sample_size units);
* ``mann_whitney`` (``statistic``, ``p_value``, ``hodges_lehmann``, ``ci95``), ``paired`` (None, or ``n``,
  ``ratio``, ``ratio_ci95``, ``improvement_pct``, ``relative_ci95``, ``statistic``, ``df``, ``p_value``),
  ``srm`` (``p_value``, ``expected_split``, ``statistic``, ``units``, ``mismatch``), ``error_rate``
  (``control``, ``treatment``, ``p_value``, ``p_value_sequential``, ``errors``, ``trials``), ``secondary``
  (per metric: ``metric``, ``direction``, ``control``, ``treatment``, ``improvement_pct``, ``relative_ci95``,
  ``p_value``, ``p_holm``, ``significant``), ``more_trials_needed`` (per arm, or None), ``bootstrap``;
* ``blocking`` ("machine" | "pair" | "none"), ``blocks``, ``pooled`` (the pooled numbers a within-block
  comparison replaced, or None); secondary rows add ``blocking``, ``blocks`` and ``guardrail``;
* ``decision``: ``action``, ``reasons`` (sentences), ``alerts``, ``automatic``, ``expired``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from experiment_core.evidence import stats
from experiment_core.evidence.decide import (
    SRM_ALPHA,
    Decision,
    Evidence,
    ExperimentLike,
    GuardrailEvidence,
    LevelCheck,
    Settings,
    decide,
)
from experiment_core.evidence.distributions import t_ppf, t_sf
from experiment_core.evidence.sums import Cell, MetricSums, PairSums, Sums, metric_sums, pair_sums_of, total
from experiment_core.evidence.units import (
    ArmOrder,
    EventData,
    ExperimentData,
    Orders,
    UnitData,
    dedup_events,
    orders_of,
)

__all__ = ["SCHEMA", "AnalysisResult", "analyze_data", "analyze_experiment", "analyze_samples"]

SCHEMA = 1
DEFAULT_METRIC = "time_to_complete"
TESTS = ("welch", "student", "mann-whitney")
MODES = ("sequential", "fixed")
DIRECTIONS = ("lower", "higher")

Interval = tuple[float, float]


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _expm1(log_ratio: float) -> float:
    return stats.exp_ratio(log_ratio, minus_one=True)


def _iv(ci: Interval | None) -> list[float | None] | None:
    return None if ci is None else [_num(ci[0]), _num(ci[1])]


def improvement_from_rel(rel: float | None, direction: str) -> float | None:
    """Relative change (t − c)/|c| as a fraction -> improvement in %, positive = better."""
    if rel is None:
        return None
    return 100.0 * (-rel if direction == "lower" else rel)


def improvement_interval(ci: Interval | None, direction: str) -> Interval | None:
    if ci is None:
        return None
    lo, hi = 100.0 * ci[0], 100.0 * ci[1]
    return (-hi, -lo) if direction == "lower" else (lo, hi)


# ---------------------------------------------------------------------------------------------------------
# One metric's comparison: the tests on each arm's moments (pooled, or within blocks), at a fixed horizon and
# always-valid
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Comparison:
    """Every number of one metric's comparison."""

    control: stats.Summary
    treatment: stats.Summary
    difference: float | None
    test: str
    statistic: float | None
    df: float | None
    p_value: float | None
    effect_size: float | None
    hedges_g: float | None
    ci: Interval | None
    rel: float | None  # relative change (t − c)/|c| (ratio of geometric means − 1 on the log scale)
    rel_ci: Interval | None
    seq_p: float | None
    seq_ci: Interval | None  # of the difference (of log means on the log scale or when blocked)
    seq_rel_ci: Interval | None
    seq_rho: float | None
    mann_whitney: stats.MannWhitneyResult | None
    more_trials: int | None
    cm: stats.Moments  # moments on the analysis scale (log values on the log scale)
    tm: stats.Moments
    log_scale: bool
    blocking: str = "none"  # "machine" | "pair" | "none"
    blocked: stats.BlockedResult | None = None
    pooled: dict[str, Any] | None = None  # the pooled numbers, when a blocked comparison replaced them

    @property
    def blocks(self) -> int:
        return self.blocked.blocks if self.blocked is not None else 0


def seq_band(cmp_: _Comparison, alpha: float, n_planned: float) -> Interval | None:
    """The always-valid band of the relative change at level ``alpha``, on the comparison's own scale: it
    excludes 0 exactly when the always-valid p at that level is below it."""
    b = cmp_.blocked
    if b is not None:
        if b.estimate is None or b.se is None or b.df is None or b.se <= 0:
            return None
        q = stats.sequential_critical(b.n, n_planned=n_planned, alpha=alpha, df=b.df)
        return (_expm1(b.estimate - q * b.se), _expm1(b.estimate + q * b.se))
    cm, tm = cmp_.cm, cmp_.tm
    if cm.mean is None or tm.mean is None or cm.var is None or tm.var is None:
        return None
    wdf = stats.welch_df(cm, tm)
    se = math.sqrt(cm.var / cm.n + tm.var / tm.n)
    if wdf is None or se <= 0:
        return None
    q = stats.sequential_critical(cm.n + tm.n, n_planned=n_planned, alpha=alpha, df=wdf)
    if cmp_.log_scale:
        d = tm.mean - cm.mean
        return (_expm1(d - q * se), _expm1(d + q * se))
    return stats.fieller_interval(cm, tm, q)  # Fieller's set at the sequence's boundary


def _seq_more_trials(
    c: stats.Moments, t: stats.Moments, diff: float, n_planned: float, alpha: float
) -> int | None:
    """Smallest n per arm at which the CS would exclude 0 if the estimate and the variances stayed as now."""
    if c.var is None or t.var is None or diff == 0:
        return None
    rho = stats.sequential_rho(alpha, n_planned)

    def ok(m: int) -> bool:
        a, b = c.var / m, t.var / m  # type: ignore[operator]
        df = stats.welch_df(stats.Moments(m, 0.0, c.var), stats.Moments(m, 0.0, t.var))
        bound = stats.sequential_halfwidth(1.0, 2 * m, rho, alpha)
        if df is not None:
            bound = stats.z_to_t(bound, df)
        return math.sqrt(a + b) * bound < abs(diff)

    return _smallest_ok(max(c.n, t.n, 2), ok)


def _more_trials_scaled(estimate: float, se: float, n_min: int, df: float, n_planned: float,
                        alpha: float) -> int | None:  # fmt: skip
    """Smallest n per arm at which the CS would exclude 0 if the estimate stayed and the SE shrank as 1/√n."""
    if estimate == 0 or se <= 0 or n_min < 1:
        return None
    per_unit_df = df / n_min

    def ok(m: int) -> bool:
        bound = stats.sequential_critical(2 * m, n_planned=n_planned, alpha=alpha, df=max(per_unit_df * m, 1.0))
        return se * math.sqrt(n_min / m) * bound < abs(estimate)

    return _smallest_ok(max(n_min, 2), ok)


def _smallest_ok(lo: int, ok: Callable[[int], bool]) -> int | None:
    """The smallest m ≥ ``lo`` with ``ok(m)``, for a monotone ``ok`` (doubling, then bisection); None past 10⁷."""
    if ok(lo):
        return lo
    hi = lo * 2
    while not ok(hi):
        hi *= 2
        if hi > 10**7:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


Blocks = tuple[Sequence[str], Sequence[str]]


def choose_blocking(s: MetricSums, *, machines: bool, pairs: bool) -> tuple[str, stats.BlockedResult] | None:
    """Blocks as fixed effects on the log scale: run's pairs, or machines — whichever compares more units —
    when at least two blocks hold both arms (and every value is positive); None: the pooled test."""
    options: list[tuple[str, stats.BlockedResult]] = []
    if pairs and s.pairs.k >= 2 and not s.pairs.nonpositive:
        options.append(("pair", _pairs_blocked(s.pairs.log_ratio)))
    if machines and not total((*s.control.values(), *s.treatment.values())).nonpositive:
        cells = [(s.control.get(b, Cell()).log, s.treatment.get(b, Cell()).log)
                 for b in sorted({*s.control, *s.treatment})]  # fmt: skip
        options.append(("machine", stats.blocked_from_sums(cells)))
    usable = [(name, r) for name, r in options if r.blocks >= 2 and r.se is not None and r.se > 0]
    if not usable:
        return None
    return max(usable, key=lambda o: (o[1].n, o[0] == "pair"))


def _pairs_blocked(log_ratio: Sums) -> stats.BlockedResult:
    """Pairs as blocks of one unit per arm: the OLS with pair dummies is the paired t on the log ratios (estimate
    their mean, SE² their variance / k, k − 1 degrees of freedom)."""
    k, m = log_ratio.n, stats.moments_of(log_ratio)
    se = None if m.var is None else math.sqrt(m.var / k)
    return stats.BlockedResult(m.mean, se, float(k - 1) if k > 1 else None, 2 * k, k)


def compare_arms(
    control: Sequence[float],
    treatment: Sequence[float],
    *,
    alpha: float,
    test: str,
    log_scale: bool,
    n_planned: float,
    machines: Blocks | None = None,
    pairs: tuple[Sequence[float], Sequence[float]] | None = None,
) -> _Comparison:
    """One metric's comparison from per-unit values. With ``machines`` (each unit's machine, aligned with the
    values) or ``pairs``, a within-block comparison replaces the pooled test when possible
    (see :func:`choose_blocking`)."""
    return compare_sums(metric_sums(control, treatment, machines, pairs),
                        orders_of(control, treatment, alpha=alpha, log_scale=log_scale), alpha=alpha, test=test,
                        log_scale=log_scale, n_planned=n_planned, machines=machines is not None,
                        pairs=pairs is not None)  # fmt: skip


def compare_sums(s: MetricSums, orders: Orders | None, *, alpha: float, test: str, log_scale: bool,
                 n_planned: float, machines: bool, pairs: bool) -> _Comparison:  # fmt: skip
    """One metric's comparison from its sums (and the order statistics, None when only the means are wanted:
    then the summaries have no min, median, max or outliers, and there is no Mann-Whitney test)."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {', '.join(TESTS)}")
    pooled = _pooled_comparison(s, orders, alpha=alpha, test=test, log_scale=log_scale, n_planned=n_planned)
    chosen = None if test == "mann-whitney" else choose_blocking(s, machines=machines, pairs=pairs)
    if chosen is None:
        return pooled
    return _within_blocks(pooled, *chosen, alpha=alpha, n_planned=n_planned)


def _summary(m: stats.Moments, order: ArmOrder | None) -> stats.Summary:
    if not m.n:
        return stats.Summary(0, None, None, None, None, None, ())
    o = order or ArmOrder()
    return stats.Summary(m.n, m.mean, None if m.var is None else math.sqrt(m.var), o.min, o.median, o.max,
                         o.outliers)  # fmt: skip


def _pooled_comparison(s: MetricSums, orders: Orders | None, *, alpha: float, test: str, log_scale: bool,
                       n_planned: float) -> _Comparison:  # fmt: skip
    """The pooled comparison: summaries, the difference and its interval, and the effect sizes on the raw values;
    the test, the relative change and the always-valid inference on the analysis scale (the logs on the log
    scale, which needs positive values)."""
    c_all, t_all = total(s.control.values()), total(s.treatment.values())
    if log_scale and (c_all.nonpositive or t_all.nonpositive):
        raise ValueError("log_scale needs positive values")
    cm_raw, tm_raw = stats.moments_of(c_all.linear), stats.moments_of(t_all.linear)
    cm, tm = (stats.moments_of(c_all.log), stats.moments_of(t_all.log)) if log_scale else (cm_raw, tm_raw)
    equal_var = test == "student"
    difference = None if cm_raw.mean is None or tm_raw.mean is None else tm_raw.mean - cm_raw.mean
    ci_raw = stats.t_test(cm_raw, tm_raw, equal_var=equal_var, alpha=alpha).ci
    mw = None if orders is None else orders.mann_whitney
    tt = stats.t_test(cm, tm, equal_var=equal_var, alpha=alpha)
    statistic, df, p = _chosen_test(test, tt, mw)
    rel, rel_ci = _relative_change(cm, tm, tt, log_scale=log_scale, alpha=alpha)
    fixed_look = _Comparison(
        control=_summary(cm_raw, orders and orders.control), treatment=_summary(tm_raw, orders and orders.treatment),
        difference=difference, test=test, statistic=statistic, df=df, p_value=p,
        effect_size=stats.cohens_d(cm_raw, tm_raw), hedges_g=stats.hedges_g(cm_raw, tm_raw), ci=ci_raw, rel=rel,
        rel_ci=rel_ci, seq_p=None, seq_ci=None, seq_rel_ci=None, seq_rho=None, mann_whitney=mw, more_trials=None,
        cm=cm, tm=tm, log_scale=log_scale,
    )  # fmt: skip
    return _with_sequential(fixed_look, tt.difference, alpha=alpha, n_planned=n_planned)


def _chosen_test(test: str, tt: stats.TTestResult, mw: stats.MannWhitneyResult | None,
                 ) -> tuple[float | None, float | None, float | None]:  # fmt: skip
    """(statistic, df, p) of the test the experiment chose."""
    if test != "mann-whitney":
        return tt.statistic, tt.df, tt.p_value
    return (mw.statistic, None, mw.p_value) if mw else (None, None, None)


def _relative_change(cm: stats.Moments, tm: stats.Moments, tt: stats.TTestResult, *, log_scale: bool,
                     alpha: float) -> tuple[float | None, Interval | None]:  # fmt: skip
    """(t − c)/|c| and its interval: the ratio of geometric means − 1 on the log scale, else Fieller's."""
    if log_scale:
        rel = None if tt.difference is None else _expm1(tt.difference)
        return rel, None if tt.ci is None else (_expm1(tt.ci[0]), _expm1(tt.ci[1]))
    r = stats.relative_ci_fieller(cm, tm, alpha=alpha)
    return r.estimate, r.ci


def _with_sequential(cmp_: _Comparison, difference: float | None, *, alpha: float, n_planned: float) -> _Comparison:
    """``cmp_`` with the always-valid inference (Welch's SE and df): p, the confidence sequence, its band of the
    relative change and the trials it would need; unchanged when the difference has no SE yet."""
    cm, tm = cmp_.cm, cmp_.tm
    if difference is None or cm.var is None or tm.var is None:
        return cmp_
    se = math.sqrt(cm.var / cm.n + tm.var / tm.n)
    wdf = stats.welch_df(cm, tm)
    if not (se > 0 and wdf is not None):
        return cmp_
    sq = stats.sequential_test(difference, se, cm.n + tm.n, n_planned=n_planned, alpha=alpha, df=wdf)
    out = replace(cmp_, seq_p=sq.p_value, seq_ci=sq.ci, seq_rho=sq.rho,
                  more_trials=_seq_more_trials(cm, tm, difference, n_planned, alpha))  # fmt: skip
    return replace(out, seq_rel_ci=seq_band(out, alpha, n_planned))


def _within_blocks(pooled: _Comparison, name: str, b: stats.BlockedResult, *, alpha: float,
                   n_planned: float) -> _Comparison:  # fmt: skip
    """``pooled`` with its tests replaced by the within-block comparison ``b`` (blocks as fixed effects on the
    log scale, t with the residual df); the pooled numbers it replaced are kept in ``pooled``."""
    assert b.estimate is not None and b.se is not None and b.df is not None
    stat_b = b.estimate / b.se
    q = t_ppf(1 - alpha / 2, b.df)
    sq = stats.sequential_test(b.estimate, b.se, b.n, n_planned=n_planned, alpha=alpha, df=b.df)
    replaced = {
        "improvement_rel": pooled.rel, "relative_ci": pooled.rel_ci, "p_value": pooled.p_value,
        "sequential_p_value": pooled.seq_p, "sequential_relative_ci": pooled.seq_rel_ci,
    }  # fmt: skip
    blocked = replace(
        pooled, statistic=stat_b, df=b.df, p_value=2 * t_sf(abs(stat_b), b.df),
        rel=_expm1(b.estimate), rel_ci=(_expm1(b.estimate - q * b.se), _expm1(b.estimate + q * b.se)),
        seq_p=sq.p_value, seq_ci=sq.ci, seq_rho=sq.rho,
        more_trials=_more_trials_scaled(b.estimate, b.se, min(pooled.cm.n, pooled.tm.n), b.df, n_planned, alpha),
        blocking=name, blocked=b, pooled=replaced,
    )  # fmt: skip
    return replace(blocked, seq_rel_ci=seq_band(blocked, alpha, n_planned))


@dataclass(frozen=True)
class AnalysisResult:
    """Typed analysis result; :meth:`to_dict` gives the ``analyze --json`` document."""

    experiment: str | None
    metric: str
    direction: str
    mode: str
    alpha: float
    log_scale: bool
    control: stats.Summary
    treatment: stats.Summary
    improvement_pct: float | None
    difference: float | None
    test: str
    statistic: float | None
    df: float | None
    p_value: float | None
    effect_size: float | None
    hedges_g: float | None
    ci95: Interval | None
    relative_ci95: Interval | None  # in % improvement
    sequential: dict[str, Any]
    fixed: dict[str, Any]
    mann_whitney: dict[str, Any] | None
    paired: dict[str, Any] | None
    srm: dict[str, Any]
    error_rate: dict[str, Any]
    secondary: list[dict[str, Any]]
    more_trials_needed: int | None
    bootstrap: dict[str, Any] | None
    evidence_: Evidence
    decision: Decision = field(default_factory=lambda: Decision("continue"))
    blocking: str = "none"
    blocks: int = 0
    pooled: dict[str, Any] | None = None

    def evidence(self) -> Evidence:
        """The numbers the decision rules use."""
        return self.evidence_

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "experiment": self.experiment,
            "metric": self.metric,
            "direction": self.direction,
            "mode": self.mode,
            "alpha": self.alpha,
            "confidence_level": 1 - self.alpha,
            "log_scale": self.log_scale,
            "control": self.control.to_dict(),
            "treatment": self.treatment.to_dict(),
            "improvement_pct": _num(self.improvement_pct),
            "difference": _num(self.difference),
            "test": self.test,
            "statistic": _num(self.statistic),
            "df": _num(self.df),
            "p_value": _num(self.p_value),
            "effect_size": _num(self.effect_size),
            "hedges_g": _num(self.hedges_g),
            "ci95": _iv(self.ci95),
            "relative_ci95": _iv(self.relative_ci95),
            "sequential": dict(self.sequential),
            "fixed": dict(self.fixed),
            "mann_whitney": None if self.mann_whitney is None else dict(self.mann_whitney),
            "paired": None if self.paired is None else dict(self.paired),
            "srm": dict(self.srm),
            "error_rate": dict(self.error_rate),
            "secondary": [dict(s) for s in self.secondary],
            "more_trials_needed": self.more_trials_needed,
            "bootstrap": None if self.bootstrap is None else dict(self.bootstrap),
            "blocking": self.blocking,
            "blocks": self.blocks,
            "pooled": None if self.pooled is None else dict(self.pooled),
            "decision": self.decision.to_dict(),
        }


# ---------------------------------------------------------------------------------------------------------
# One analysis, in named steps (_build): the comparisons, the error rate and the sample ratio -> the evidence
# -> the rules (decide) -> the document
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """The choices one metric's analysis runs with: the settings, its direction, the test and the scale."""

    settings: Settings
    direction: str
    test: str
    log_scale: bool

    @property
    def alpha(self) -> float:
        return self.settings.alpha

    @property
    def n_planned(self) -> float:
        """N* = 2·sample_size, the planned total the confidence sequence is tuned for."""
        return 2.0 * max(self.settings.sample_size, 1)

    def improvement(self, rel: float | None) -> float | None:
        return improvement_from_rel(rel, self.direction)

    def interval(self, ci: Interval | None) -> Interval | None:
        return improvement_interval(ci, self.direction)

    def compare(self, control: Sequence[float], treatment: Sequence[float], machines: Blocks | None = None,
                pairs: tuple[Sequence[float], Sequence[float]] | None = None) -> _Comparison:  # fmt: skip
        return compare_arms(control, treatment, alpha=self.alpha, test=self.test, log_scale=self.log_scale,
                            n_planned=self.n_planned, machines=machines, pairs=pairs)  # fmt: skip

    def compare_sums(self, s: MetricSums, orders: Orders | None, *, machines: bool, pairs: bool) -> _Comparison:
        return compare_sums(s, orders, alpha=self.alpha, test=self.test, log_scale=self.log_scale,
                            n_planned=self.n_planned, machines=machines, pairs=pairs)  # fmt: skip


@dataclass(frozen=True)
class _Primary:
    """What the analysis reads of the primary metric: its sums and order statistics; its first k units (the
    fixed horizon) and every unit (the bootstrap) only when asked."""

    sums: MetricSums
    orders: Orders
    first: Callable[[int], UnitData]  # the first k units of each arm, the first k complete pairs
    every: Callable[[], UnitData]
    pairs: Sums | None = None  # the complete pairs' log ratios, for the paired analysis (None: not paired)
    errors: tuple[int, int, int, int] | None = None  # errors_c, trials_c, errors_t, trials_t
    unit_counts: tuple[int, int] | None = None  # assigned units per arm (None: the values')
    block_machines: bool = False
    block_pairs: bool = False  # the pairs may also block the comparison


class _Secondary(NamedTuple):
    """The secondary metrics' rows of the document, the guardrails and the alert levels the rules read."""

    rows: Sequence[dict[str, Any]] = ()
    guardrails: Sequence[GuardrailEvidence] = ()
    levels: Sequence[LevelCheck] = ()


_NO_SECONDARY = _Secondary()


def _build(
    data: _Primary,
    run: _Run,
    *,
    metric: str,
    experiment: str | None,
    now: datetime | None,
    secondary: _Secondary = _NO_SECONDARY,
    bootstrap: bool = False,
    seed: int = 0,
) -> AnalysisResult:
    """The steps of one analysis: the primary comparison on all units and at the fixed horizon, the error rate
    and the sample ratio, the evidence the rules read, then the document and the decision."""
    if run.direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {run.direction!r}; expected 'lower' or 'higher'")
    if run.settings.mode not in MODES:
        raise ValueError(f"unknown mode {run.settings.mode!r}; expected 'sequential' or 'fixed'")
    n_c, n_t = data.sums.n
    cmp_ = run.compare_sums(data.sums, data.orders, machines=data.block_machines, pairs=data.block_pairs)
    fixed_cmp = _fixed_comparison(run, data)
    error_rate, error_p = _error_rate(run, data.errors)
    units = data.unit_counts if data.unit_counts is not None else (n_c, n_t)
    srm = stats.srm_test(units[0], units[1], run.settings.split)
    more = _more_trials_needed(run, cmp_, min(n_c, n_t))
    evidence = _evidence(run, cmp_, fixed_cmp, (n_c, n_t), error_rate=error_rate, error_p=error_p,
                         srm_p=srm.p_value, more=more, secondary=secondary)  # fmt: skip
    return AnalysisResult(
        experiment=experiment, metric=metric, direction=run.direction, mode=run.settings.mode, alpha=run.alpha,
        log_scale=run.log_scale, control=cmp_.control, treatment=cmp_.treatment,
        improvement_pct=run.improvement(cmp_.rel), difference=cmp_.difference, test=run.test,
        statistic=cmp_.statistic, df=cmp_.df, p_value=cmp_.p_value, effect_size=cmp_.effect_size,
        hedges_g=cmp_.hedges_g, ci95=cmp_.ci, relative_ci95=run.interval(cmp_.rel_ci),
        sequential=_sequential_section(run, cmp_, n_c + n_t), fixed=_fixed_section(run, fixed_cmp),
        mann_whitney=_mann_whitney_section(cmp_.mann_whitney, run.log_scale),
        paired=_paired_section(run, data.pairs), srm=_srm_section(srm, units, run.settings.split),
        error_rate=error_rate, secondary=list(secondary.rows), more_trials_needed=more,
        bootstrap=_bootstrap_section(data, run.alpha, seed) if bootstrap else None, evidence_=evidence,
        decision=decide(run.settings, evidence, now), blocking=cmp_.blocking, blocks=cmp_.blocks,
        pooled=None if cmp_.pooled is None else _pooled_dict(cmp_.pooled, run.direction),
    )  # fmt: skip


def _fixed_comparison(run: _Run, data: _Primary) -> _Comparison | None:
    """The fixed-horizon comparison: the first sample_size units of each arm, once both arms have them."""
    k = run.settings.sample_size
    if min(data.sums.n) < k:
        return None
    u = data.first(k)
    return run.compare(u.control, u.treatment, (u.control_machines, u.treatment_machines) if data.block_machines
                       else None, u.pairs if data.block_pairs and u.pairs[0] else None)  # fmt: skip


_ERROR_KEYS = ("control", "treatment", "p_value", "p_value_sequential", "errors", "trials")


def _error_rate(run: _Run, errors: tuple[int, int, int, int] | None) -> tuple[dict[str, Any], float | None]:
    """The error-rate section and the p the rollback rule reads (one-sided: the treatment's rate is higher)."""
    if errors is None:
        return dict.fromkeys(_ERROR_KEYS), None
    ec, tc, et, tt = errors
    pr = stats.two_proportion_test(ec, tc, et, tt, alternative="larger")
    seq_p = _sequential_error_p(pr, tc + tt, run)
    section = {"control": pr.rate_control, "treatment": pr.rate_treatment, "p_value": _num(pr.p_value),
               "p_value_sequential": _num(seq_p), "errors": [ec, et], "trials": [tc, tt]}  # fmt: skip
    if run.settings.mode == "sequential":
        # the two-sided always-valid p used one-sidedly, and only when the treatment is the worse one
        return section, seq_p if (pr.statistic or 0) > 0 else 1.0
    return section, pr.p_value


def _sequential_error_p(pr: stats.ProportionResult, n: int, run: _Run) -> float | None:
    """The always-valid p of the difference of error rates (its SE recovered from the z statistic)."""
    if pr.statistic is None or pr.rate_control is None or pr.rate_treatment is None:
        return None
    d = pr.rate_treatment - pr.rate_control
    se = d / pr.statistic if pr.statistic != 0 else None
    if se is not None and se > 0:
        return stats.sequential_test(d, se, n, n_planned=run.n_planned, alpha=run.alpha).p_value
    return 1.0 if pr.statistic == 0 else None


def _more_trials_needed(run: _Run, cmp_: _Comparison, n_min: int) -> int | None:
    """Trials per arm still needed: up to sample_size; in sequential mode, when the estimate reaches the target,
    until the confidence sequence would exclude 0 (None when it already does not, with all trials in)."""
    s = run.settings
    more = s.sample_size - n_min if n_min < s.sample_size else None
    improvement = run.improvement(cmp_.rel)
    target_reachable = improvement is not None and improvement >= s.improvement_threshold
    if s.mode == "sequential" and target_reachable and cmp_.more_trials is not None:
        more = max(more or 0, cmp_.more_trials - n_min)
        if more == 0 and (cmp_.seq_p is None or cmp_.seq_p >= run.alpha):
            more = None
    return more


def _evidence(run: _Run, cmp_: _Comparison, fixed_cmp: _Comparison | None, n: tuple[int, int], *,
              error_rate: Mapping[str, Any], error_p: float | None, srm_p: float | None, more: int | None,
              secondary: _Secondary) -> Evidence:  # fmt: skip
    """The numbers the rules read. The interval is the confidence sequence on all units in both modes (harm can
    show at any look); promotion reads the always-valid p (sequential) or the fixed-horizon test on the first
    sample_size units, once (fixed). With guardrails, the primary's regression band is at alpha / m."""
    if run.settings.mode == "sequential":
        p, improvement = cmp_.seq_p, run.improvement(cmp_.rel)
    else:
        p = fixed_cmp.p_value if fixed_cmp is not None else None
        improvement = run.improvement((fixed_cmp if fixed_cmp is not None else cmp_).rel)
    band = run.interval(cmp_.seq_rel_ci)
    regression_hi: float | None = None
    if secondary.guardrails:  # Bonferroni: the primary's regression test and each guardrail at alpha / m
        regression = run.interval(seq_band(cmp_, run.alpha / (1 + len(secondary.guardrails)), run.n_planned))
        regression_hi = None if regression is None else regression[1]
    return Evidence(
        mode=run.settings.mode, regression_hi_pct=regression_hi, guardrails=tuple(secondary.guardrails),
        levels=tuple(secondary.levels), n_control=n[0], n_treatment=n[1], improvement_pct=improvement,
        improvement_lo_pct=None if band is None else band[0], improvement_hi_pct=None if band is None else band[1],
        p_value=p, error_rate_control=error_rate["control"], error_rate_treatment=error_rate["treatment"],
        error_p_value=error_p, srm_p_value=srm_p, more_trials=more,
        outliers=len(cmp_.control.outliers) + len(cmp_.treatment.outliers),
    )  # fmt: skip


# The document's sections (JSON-ready: undefined numbers are None)


def _sequential_section(run: _Run, cmp_: _Comparison, n_units: int) -> dict[str, Any]:
    return {
        "p_value": _num(cmp_.seq_p),
        "ci95": _iv(cmp_.seq_ci),
        "relative_ci95": _iv(run.interval(cmp_.seq_rel_ci)),
        "rho": _num(cmp_.seq_rho),
        "n_planned": run.n_planned,
        "n": n_units if cmp_.blocked is None else cmp_.blocked.n,
        "scale": "log" if run.log_scale or cmp_.blocked is not None else "linear",
    }


def _fixed_section(run: _Run, fixed_cmp: _Comparison | None) -> dict[str, Any]:
    return {
        "n_per_arm": run.settings.sample_size,
        "p_value": None if fixed_cmp is None else _num(fixed_cmp.p_value),
        "relative_ci95": None if fixed_cmp is None else _iv(run.interval(fixed_cmp.rel_ci)),
        "improvement_pct": None if fixed_cmp is None else _num(run.improvement(fixed_cmp.rel)),
    }


def _mann_whitney_section(mw: stats.MannWhitneyResult | None, log_scale: bool) -> dict[str, Any] | None:
    if mw is None:
        return None
    return {
        "statistic": _num(mw.statistic),
        "p_value": _num(mw.p_value),
        "hodges_lehmann": _num(mw.shift),
        "ci95": _iv(mw.ci),
        "scale": "log" if log_scale else "linear",
    }


def _paired_section(run: _Run, pairs: Sums | None) -> dict[str, Any] | None:
    """The paired analysis: a one-sample t-test on the log ratio within each pair."""
    if pairs is None or pairs.n < 1:
        return None
    pr = stats.paired_from_sums(pairs, alpha=run.alpha)
    rel = None if pr.ratio is None else pr.ratio - 1
    rel_ci = None if pr.ci is None else (pr.ci[0] - 1, pr.ci[1] - 1)
    return {
        "n": pr.n,
        "ratio": _num(pr.ratio),
        "ratio_ci95": _iv(pr.ci),
        "improvement_pct": _num(run.improvement(rel)),
        "relative_ci95": _iv(run.interval(rel_ci)),
        "statistic": _num(pr.statistic),
        "df": _num(pr.df),
        "p_value": _num(pr.p_value),
    }


def _srm_section(srm: stats.SRMResult, units: tuple[int, int], split: float) -> dict[str, Any]:
    return {
        "p_value": _num(srm.p_value),
        "expected_split": split,
        "statistic": _num(srm.statistic),
        "units": {"control": units[0], "treatment": units[1]},
        "mismatch": bool(srm.p_value is not None and srm.p_value < SRM_ALPHA),
    }


def _bootstrap_section(data: _Primary, alpha: float, seed: int) -> dict[str, Any]:
    u = data.every()
    b = stats.bootstrap_ci(u.control, u.treatment, alpha=alpha, seed=seed)
    return {"ci95": _iv(b.ci), "n_resamples": b.n_resamples, "seed": b.seed}


def _pooled_dict(pooled: Mapping[str, Any], direction: str) -> dict[str, Any]:
    return {
        "improvement_pct": _num(improvement_from_rel(pooled["improvement_rel"], direction)),
        "relative_ci95": _iv(improvement_interval(pooled["relative_ci"], direction)),
        "p_value": _num(pooled["p_value"]),
        "sequential_p_value": _num(pooled["sequential_p_value"]),
        "sequential_relative_ci95": _iv(improvement_interval(pooled["sequential_relative_ci"], direction)),
    }


def analyze_samples(
    control: Sequence[float],
    treatment: Sequence[float],
    *,
    direction: str = "lower",
    alpha: float = 0.05,
    improvement_threshold: float = 15.0,
    max_regression: float = 10.0,
    sample_size: int = 10,
    mode: str = "sequential",
    test: str = "welch",
    log_scale: bool = False,
    metric: str = DEFAULT_METRIC,
    experiment: str | None = None,
    split: float = 0.5,
    max_duration_days: float = 14.0,
    created: str | None = None,
    now: datetime | None = None,
    on_expiry: str = "rollback",
    auto_promote: bool = True,
    auto_rollback: bool = True,
    paired: bool = False,
    bootstrap: bool = False,
    seed: int = 0,
    machines: tuple[Sequence[str], Sequence[str]] | None = None,
) -> AnalysisResult:
    """Analyze two arrays of values, one per independent unit, with the registry defaults.

    ``paired=True`` treats ``control[i]`` and ``treatment[i]`` as an interleaved pair and adds the paired
    analysis (log ratio within each pair). ``created``/``now`` enable the expiry rule. ``machines`` (each
    unit's machine, aligned with the values) enables the within-machine comparison.
    """
    c = [float(x) for x in control]
    t = [float(x) for x in treatment]
    if not all(math.isfinite(x) for x in (*c, *t)):
        raise ValueError("values must be finite numbers (no NaN or infinity)")
    settings = Settings(
        alpha=alpha, improvement_threshold=improvement_threshold, max_regression=max_regression,
        sample_size=sample_size, max_duration_days=max_duration_days, auto_promote=auto_promote,
        auto_rollback=auto_rollback, mode=mode, on_expiry=on_expiry, created=created, split=split,
    )  # fmt: skip
    m = None if machines is None else (list(machines[0]), list(machines[1]))
    if paired and (len(c) != len(t) or any(x <= 0 for x in (*c, *t))):
        raise ValueError("paired analysis needs as many control as treatment values, all positive")
    u = UnitData(c, t, (c, t) if paired else ([], []), (0, 0, 0, 0), *(m or ([], [])))
    data = _Primary(metric_sums(c, t, m, (c, t) if paired else None), orders_of(c, t, alpha=alpha, log_scale=log_scale),
                    first=u.first, every=lambda: u, pairs=pair_sums_of((c, t)).log_ratio if paired else None,
                    block_machines=m is not None)  # fmt: skip
    return _build(data, _Run(settings, direction, test, log_scale), metric=metric, experiment=experiment, now=now,
                  bootstrap=bootstrap, seed=seed)  # fmt: skip


def analyze_experiment(
    exp: ExperimentLike,
    events: Iterable[Mapping[str, Any]],
    now: datetime | None = None,
    *,
    log_scale: bool = False,
    bootstrap: bool = False,
) -> AnalysisResult:
    """Analyze one experiment from its ledger events (see the module docstring)."""
    data = EventData(dedup_events(events, exp.id), exp.id)
    return analyze_data(exp, data, now, log_scale=log_scale, bootstrap=bootstrap)


def analyze_data(
    exp: ExperimentLike,
    data: ExperimentData,
    now: datetime | None = None,
    *,
    log_scale: bool = False,
    bootstrap: bool = False,
) -> AnalysisResult:
    """Analyze one experiment from its per-unit data (events or the ledger index)."""
    settings = Settings.of(exp)
    test = getattr(exp, "test", "welch") or "welch"
    block = getattr(exp, "block_by", "machine") != "none"
    name = exp.metric.name
    s = data.sums(name)
    secondary = _secondary_metrics(exp, data, settings, test=test, block=block)
    primary = _Primary(
        s, data.orders(name, alpha=settings.alpha, log_scale=log_scale), first=lambda k: data.first_units(name, k),
        every=lambda: data.units(name), pairs=_positive_pairs(s.pairs),
        errors=s.errors if (s.errors[1] or s.errors[3]) else None, unit_counts=data.unit_counts(),
        block_machines=block, block_pairs=block,
    )  # fmt: skip
    c_all, t_all = total(s.control.values()).linear, total(s.treatment.values()).linear
    levels = [*_level_checks(exp.metric, t_all.n, (c_all.mean, t_all.mean)), *secondary.levels]
    run = _Run(settings, exp.metric.direction or "lower", test, log_scale)
    return _build(primary, run, metric=exp.metric.name, experiment=exp.id, now=now,
                  secondary=secondary._replace(levels=levels), bootstrap=bootstrap)  # fmt: skip


def _positive_pairs(pairs: PairSums) -> Sums | None:
    """The complete pairs' log ratios, when there are any and all are positive (the log ratio needs them)."""
    return pairs.log_ratio if pairs.k and not pairs.nonpositive else None


def _secondary_metrics(exp: ExperimentLike, data: ExperimentData, settings: Settings, *, test: str,
                       block: bool) -> _Secondary:  # fmt: skip
    """Each secondary metric compared on the linear scale (within blocks when allowed), a guardrail's band at the
    Bonferroni level over the rollback tests, its alert levels; then Holm's adjustment over all the p-values."""
    guarded = [m for m in exp.secondary if getattr(m, "guardrail", False)]
    level = settings.alpha / (1 + len(guarded))  # Bonferroni over the rollback tests
    rows: list[dict[str, Any]] = []
    guardrails: list[GuardrailEvidence] = []
    levels: list[LevelCheck] = []
    for m in exp.secondary:
        run = _Run(settings, m.direction, test, log_scale=False)
        orders = data.orders(m.name, alpha=settings.alpha, log_scale=False) if test == "mann-whitney" else None
        c2 = run.compare_sums(data.sums(m.name), orders, machines=block, pairs=block)
        row = _secondary_row(m.name, run, c2)
        if getattr(m, "guardrail", False):
            g, row["guardrail"] = _guardrail(m, run, c2, level)
            guardrails.append(g)
        levels += _level_checks(m, c2.treatment.n, (c2.control.mean, c2.treatment.mean))
        rows.append(row)
    adj = stats.holm([r["p_value"] for r in rows])
    for r, a in zip(rows, adj, strict=False):
        r["p_holm"] = _num(a)
        r["significant"] = a is not None and a < settings.alpha
    return _Secondary(rows, guardrails, levels)


def _secondary_row(name: str, run: _Run, c2: _Comparison) -> dict[str, Any]:
    return {
        "metric": name,
        "direction": run.direction,
        "control": {"n": c2.control.n, "mean": _num(c2.control.mean)},
        "treatment": {"n": c2.treatment.n, "mean": _num(c2.treatment.mean)},
        "improvement_pct": _num(run.improvement(c2.rel)),
        "relative_ci95": _iv(run.interval(c2.rel_ci)),
        "p_value": _num(c2.p_value),
        "blocking": c2.blocking,
        "blocks": c2.blocks,
        "guardrail": None,
    }


def _guardrail(m: Any, run: _Run, c2: _Comparison, level: float) -> tuple[GuardrailEvidence, dict[str, Any]]:
    """A guardrail metric's evidence (its always-valid band at ``level``) and its ``guardrail`` entry."""
    own = getattr(m, "max_regression", None)
    limit = own if own is not None else run.settings.max_regression
    band = run.interval(seq_band(c2, level, run.n_planned))
    g = GuardrailEvidence(metric=m.name, max_regression=float(limit), n_control=c2.control.n,
                          n_treatment=c2.treatment.n, improvement_pct=_num(run.improvement(c2.rel)),
                          hi_pct=None if band is None else _num(band[1]), level=level)  # fmt: skip
    return g, {"max_regression": g.max_regression, "level": level, "relative_ci": _iv(band)}


def _level_checks(m: Any, n_treatment: int, means: tuple[float | None, float | None]) -> list[LevelCheck]:
    """A metric's alert levels (``alert_below`` / ``alert_above``) with the (control, treatment) means."""
    below, above = getattr(m, "alert_below", None), getattr(m, "alert_above", None)
    if below is None and above is None:
        return []
    return [LevelCheck(metric=m.name, n_treatment=n_treatment, treatment_mean=means[1], control_mean=means[0],
                       alert_below=below, alert_above=above)]  # fmt: skip
