"""Pure statistics on arrays of numbers: no I/O, no repository.

Importing this module is cheap (stdlib only), and so is every function the analysis runs on a person's path: the
t, normal and χ² functions come from :mod:`distributions` (standard library, checked against scipy), Mann-Whitney
and the Hodges-Lehmann shift are computed here. scipy and numpy are imported lazily by the few functions that
need them (the bootstrap, ``plan``'s power search), which no hook, ``status``, ``analyze --json`` or ``--auto``
calls.

Conventions
-----------
* ``control`` and ``treatment`` are sequences of floats, one value per independent unit.
* Differences are always ``treatment - control`` (the sign of ``difference``, ``statistic``, Cohen's d and
  ``ci``); whether that is *better* depends on the metric's direction and is decided by the caller.
* Undefined numbers (too few values, zero variance) are ``None``, never NaN.
* Sequential inference uses the asymptotic confidence sequence of Waudby-Smith et al. (2023) in the
  parameterisation of GrowthBook (gbstats ``SequentialTwoSidedTTest``) and Eppo: ``N`` is the total number of
  units in both arms and the tuning parameter is the *planned* total ``N*``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from experiment_core.evidence import distributions as dist
from experiment_core.evidence.sums import SCALE, Sums, sums_of

__all__ = [
    "BlockedResult",
    "BootstrapResult",
    "MannWhitneyResult",
    "Moments",
    "PairedResult",
    "ProportionResult",
    "RelativeCI",
    "SRMResult",
    "SequentialResult",
    "Summary",
    "TTestResult",
    "blocked_difference",
    "blocked_from_sums",
    "bootstrap_ci",
    "cohens_d",
    "fieller_interval",
    "hedges_g",
    "holm",
    "mann_whitney",
    "modified_z_scores",
    "moments",
    "moments_from_sums",
    "moments_of",
    "paired_from_sums",
    "paired_log_ratio",
    "power_two_sample",
    "relative_ci",
    "relative_ci_fieller",
    "sample_size_per_arm",
    "sequential_critical",
    "sequential_halfwidth",
    "sequential_p_value",
    "sequential_rho",
    "sequential_test",
    "srm_test",
    "student_t",
    "summarize",
    "summarize_sufficient",
    "t_test",
    "t_to_z",
    "two_proportion_test",
    "welch_df",
    "welch_t",
    "z_to_t",
]

HL_MAX_PAIRS = 2_000_000  # above this many pairwise differences the Hodges-Lehmann shift is skipped
OUTLIER_Z = 3.5  # Iglewicz & Hoaglin's cut-off for the modified z-score


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------------------


class Moments(NamedTuple):
    """Sufficient statistics of one arm: n, mean and *sample* variance (ddof = 1; None when n < 2)."""

    n: int
    mean: float | None
    var: float | None


def exp_ratio(log_ratio: float, minus_one: bool = False) -> float:
    """``exp`` (or ``expm1``) of a log ratio, ``inf`` where it overflows: an interval of a ratio of geometric
    means from a handful of trials can be unbounded above, and says so instead of raising."""
    try:
        return math.expm1(log_ratio) if minus_one else math.exp(log_ratio)
    except OverflowError:
        return math.inf


def moments(values: Sequence[float]) -> Moments:
    """n, mean and sample variance of the values, each rounded once from their exact sums."""
    return moments_of(sums_of(values))


def moments_of(s: Sums) -> Moments:
    """The moments of exact sums (:class:`sums.Sums`)."""
    return Moments(s.n, s.mean, s.var)


def moments_from_sums(n: int, sum_x: float, sum_x2: float) -> Moments:
    """Moments from n, Σx and Σx² (as gbstats' SampleMeanStatistic)."""
    if n <= 0:
        return Moments(0, None, None)
    mean = sum_x / n
    if n < 2:
        return Moments(n, mean, None)
    var = max((sum_x2 - sum_x * sum_x / n) / (n - 1), 0.0)
    return Moments(n, mean, var)


class Summary(NamedTuple):
    n: int
    mean: float | None
    std: float | None
    min: float | None
    median: float | None
    max: float | None
    outliers: tuple[int, ...]  # indices of the values flagged as outliers

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "median": self.median,
            "max": self.max,
            "outliers": list(self.outliers),
        }


def modified_z_scores(values: Sequence[float]) -> list[float | None]:
    """Iglewicz-Hoaglin modified z-scores 0.6745·(x − median)/MAD; None for all when MAD = 0."""
    if not values:
        return []
    med = statistics.median(values)
    mad = statistics.median([abs(x - med) for x in values])
    if mad == 0:
        return [None for _ in values]
    return [0.6745 * (x - med) / mad for x in values]


def summarize(values: Sequence[float], *, outlier_z: float = OUTLIER_Z) -> Summary:
    m = moments(values)
    if m.n == 0:
        return Summary(0, None, None, None, None, None, ())
    zs = modified_z_scores(values)
    outliers = tuple(i for i, z in enumerate(zs) if z is not None and abs(z) > outlier_z)
    std = math.sqrt(m.var) if m.var is not None else None
    return Summary(m.n, m.mean, std, min(values), statistics.median(values), max(values), outliers)


def summarize_sufficient(n: int, sum_x: float, sum_x2: float) -> Summary:
    """Summary from sufficient statistics: min/median/max/outliers are unknown (None / empty)."""
    m = moments_from_sums(n, sum_x, sum_x2)
    std = math.sqrt(m.var) if m.var is not None else None
    return Summary(m.n, m.mean, std, None, None, None, ())


# ---------------------------------------------------------------------------------------------------------
# Two-sample tests on means
# ---------------------------------------------------------------------------------------------------------


class TTestResult(NamedTuple):
    test: str  # "welch" | "student"
    difference: float | None  # treatment mean − control mean
    se: float | None
    statistic: float | None  # difference / se
    df: float | None
    p_value: float | None
    ci: tuple[float, float] | None  # (1 − alpha) CI of the difference


def welch_df(c: Moments, t: Moments) -> float | None:
    if c.var is None or t.var is None:
        return None
    a, b = c.var / c.n, t.var / t.n
    den = a * a / (c.n - 1) + b * b / (t.n - 1)
    if den == 0:
        return None
    return (a + b) ** 2 / den


def t_test(c: Moments, t: Moments, *, equal_var: bool = False, alpha: float = 0.05) -> TTestResult:
    """Welch's (default) or Student's two-sample t-test of treatment − control, with its CI."""
    name = "student" if equal_var else "welch"
    if c.mean is None or t.mean is None:
        return TTestResult(name, None, None, None, None, None, None)
    diff = t.mean - c.mean
    if c.var is None or t.var is None:
        return TTestResult(name, diff, None, None, None, None, None)
    if equal_var:
        df: float | None = float(c.n + t.n - 2)
        sp2 = ((c.n - 1) * c.var + (t.n - 1) * t.var) / (c.n + t.n - 2)
        se = math.sqrt(sp2 * (1 / c.n + 1 / t.n))
    else:
        se = math.sqrt(c.var / c.n + t.var / t.n)
        df = welch_df(c, t)
    if se == 0 or df is None:
        return TTestResult(name, diff, se, None, df, None, None)
    stat = diff / se
    p = 2 * dist.t_sf(abs(stat), df)
    q = dist.t_ppf(1 - alpha / 2, df)
    return TTestResult(name, diff, se, stat, df, p, (diff - q * se, diff + q * se))


def welch_t(control: Sequence[float], treatment: Sequence[float], *, alpha: float = 0.05) -> TTestResult:
    return t_test(moments(control), moments(treatment), equal_var=False, alpha=alpha)


def student_t(control: Sequence[float], treatment: Sequence[float], *, alpha: float = 0.05) -> TTestResult:
    return t_test(moments(control), moments(treatment), equal_var=True, alpha=alpha)


class MannWhitneyResult(NamedTuple):
    statistic: float | None  # U of the treatment sample (scipy's mannwhitneyu(treatment, control))
    p_value: float | None
    shift: float | None  # Hodges-Lehmann estimate of treatment − control
    ci: tuple[float, float] | None  # asymptotic (1 − alpha) CI of the shift (Moses / Bauer)


def mann_whitney(
    control: Sequence[float], treatment: Sequence[float], *, alpha: float = 0.05
) -> MannWhitneyResult:
    """Mann-Whitney U (two-sided, as scipy's ``mannwhitneyu(treatment, control)`` with its automatic method) and
    the Hodges-Lehmann shift with its CI.

    scipy's choice: the exact null distribution when one arm has at most 8 values and there are no ties, else the
    normal approximation with the tie and continuity corrections. The shift is the median of the n·m pairwise
    differences, found without forming them above a few thousand (see :func:`_kth_differences`); above
    ``HL_MAX_PAIRS`` it is left out (None).

    The CI takes the order statistics k and nm + 1 − k of the nm pairwise differences, with
    k = round(nm/2 − z·sqrt(nm(n+m+1)/12)) (normal approximation, no tie correction).
    """
    n, m = len(control), len(treatment)
    if n == 0 or m == 0:
        return MannWhitneyResult(None, None, None, None)
    u1, p = _mann_whitney_u(treatment, control)
    if n * m > HL_MAX_PAIRS:
        return MannWhitneyResult(u1, p, None, None)
    nm = n * m
    z = dist.norm_ppf(1 - alpha / 2)
    k = round(nm / 2 - z * math.sqrt(nm * (n + m + 1) / 12))
    ranks = [(nm + 1) // 2, nm // 2 + 1] + ([k, nm + 1 - k] if k >= 1 else [])
    found = _kth_differences(sorted(map(float, treatment)), sorted(map(float, control)), ranks)
    shift = (found[0] + found[1]) / 2
    ci = (found[2], found[3]) if k >= 1 else None
    return MannWhitneyResult(u1, p, shift, ci)


def _mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> tuple[float, float | None]:
    """(U of x, two-sided p) exactly as scipy's ``mannwhitneyu(x, y)`` (method "auto", continuity corrected)."""
    n1, n2 = len(x), len(y)
    pooled = sorted([(float(v), 0) for v in x] + [(float(v), 1) for v in y])
    r1 = tie_term = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        t = j - i + 1
        tie_term += t**3 - t
        rank = (i + j) / 2 + 1
        r1 += rank * sum(1 for v in pooled[i : j + 1] if v[1] == 0)
        i = j + 1
    u1 = r1 - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    if (n1 <= 8 or n2 <= 8) and tie_term == 0:
        p = 2 * _mwu_exact_cdf(n1, n2, round(n1 * n2 - u))
    else:
        n = n1 + n2
        s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
        p = 2 * dist.norm_sf((u - n1 * n2 / 2 - 0.5) / s) if s > 0 else 2.0
    return u1, _finite(min(max(p, 0.0), 1.0))


def _mwu_exact_cdf(n1: int, n2: int, k: int) -> float:
    """P(U ≤ k) under the null: counts of U are the coefficients of the Gaussian binomial [n1+n2, n1]_q,
    ∏_{i ≤ n1} (1 − q^(n2+i)) / (1 − q^i), here in exact integers up to degree k."""
    small, large = min(n1, n2), max(n1, n2)
    coef = [1] + [0] * k
    for i in range(1, small + 1):
        for d in range(k, large + i - 1, -1):  # times (1 − q^(large+i))
            coef[d] -= coef[d - large - i]
    for i in range(1, small + 1):
        for d in range(i, k + 1):  # divided by (1 − q^i)
            coef[d] += coef[d - i]
    return sum(coef) / math.comb(n1 + n2, n1)


def _kth_differences(t: Sequence[float], c: Sequence[float], ranks: Sequence[int]) -> list[float]:
    """The order statistics (1-based ``ranks``) of the pairwise differences t_i − c_j, both arms sorted.

    Few pairs: all of them, sorted. Many: bisection on the value with a linear count of the pairs at or below it
    (for sorted arms, the c_j with t_i − c_j ≤ v are a suffix that moves one way as t_i grows), until few enough
    pairs lie between the bounds to sort them: O((n + m)·log) instead of n·m."""
    if len(t) * len(c) <= 20_000:
        diffs = sorted([ti - cj for ti in t for cj in c])
        return [diffs[k - 1] for k in ranks]
    return [_kth_difference(t, c, k) for k in ranks]


def _count_at_most(t: Sequence[float], c: Sequence[float], v: float) -> tuple[int, list[int]]:
    """How many t_i − c_j ≤ v, and for each i the first j of its suffix."""
    m, j, total = len(c), 0, 0
    starts = []
    for ti in t:
        while j < m and ti - c[j] > v:
            j += 1
        starts.append(j)
        total += m - j
    return total, starts


def _kth_difference(t: Sequence[float], c: Sequence[float], k: int) -> float:
    lo = math.nextafter(t[0] - c[-1], -math.inf)
    hi = t[-1] - c[0]
    (n_lo, s_lo), (n_hi, s_hi) = (0, [len(c)] * len(t)), _count_at_most(t, c, hi)
    while n_hi - n_lo > 4 * (len(t) + len(c)):
        mid = lo + (hi - lo) / 2
        if not lo < mid < hi:
            break
        n_mid, s_mid = _count_at_most(t, c, mid)
        if n_mid >= k:
            hi, n_hi, s_hi = mid, n_mid, s_mid
        else:
            lo, n_lo, s_lo = mid, n_mid, s_mid
    between = sorted(t[i] - c[j] for i in range(len(t)) for j in range(s_hi[i], s_lo[i]))
    return between[k - n_lo - 1]


class ProportionResult(NamedTuple):
    rate_control: float | None
    rate_treatment: float | None
    statistic: float | None  # z of treatment − control, pooled standard error
    p_value: float | None


def two_proportion_test(
    x_control: int, n_control: int, x_treatment: int, n_treatment: int, *, alternative: str = "two-sided"
) -> ProportionResult:
    """Pooled two-proportion z-test (as statsmodels ``proportions_ztest``) of treatment − control.

    ``alternative``: "two-sided", "larger" (treatment rate larger) or "smaller".
    """
    if n_control <= 0 or n_treatment <= 0:
        return ProportionResult(None, None, None, None)
    pc, pt = x_control / n_control, x_treatment / n_treatment
    pool = (x_control + x_treatment) / (n_control + n_treatment)
    se = math.sqrt(pool * (1 - pool) * (1 / n_control + 1 / n_treatment))
    if se == 0:
        return ProportionResult(pc, pt, None, 1.0)
    z = (pt - pc) / se
    if alternative == "two-sided":
        p = 2 * dist.norm_sf(abs(z))
    elif alternative == "larger":
        p = dist.norm_sf(z)
    elif alternative == "smaller":
        p = dist.norm_cdf(z)
    else:
        raise ValueError(f"unknown alternative {alternative!r}")
    return ProportionResult(pc, pt, z, p)


# ---------------------------------------------------------------------------------------------------------
# Effect sizes and intervals
# ---------------------------------------------------------------------------------------------------------


def cohens_d(c: Moments, t: Moments) -> float | None:
    """(treatment mean − control mean) / pooled sd, exactly as the seed computes it."""
    if c.mean is None or t.mean is None or c.var is None or t.var is None:
        return None
    pooled = math.sqrt(((c.n - 1) * c.var + (t.n - 1) * t.var) / (c.n + t.n - 2))
    if pooled == 0:
        return None
    return (t.mean - c.mean) / pooled


def hedges_g(c: Moments, t: Moments) -> float | None:
    """Cohen's d times the exact small-sample correction J(df) = Γ(df/2) / (sqrt(df/2)·Γ((df−1)/2))."""
    d = cohens_d(c, t)
    if d is None:
        return None
    df = c.n + t.n - 2
    if df < 2:
        return None
    j = math.exp(math.lgamma(df / 2) - math.lgamma((df - 1) / 2)) / math.sqrt(df / 2)
    return d * j


class RelativeCI(NamedTuple):
    """Relative change (treatment − control)/|control mean| as a fraction, delta-method SE and CI."""

    estimate: float | None
    se: float | None
    df: float | None
    ci: tuple[float, float] | None


def relative_variance(c: Moments, t: Moments) -> float | None:
    """Delta-method variance of (mean_t − mean_c)/|mean_c| (gbstats' ``frequentist_variance``)."""
    if c.mean is None or t.mean is None or c.var is None or t.var is None or c.mean == 0:
        return None
    return t.var / (c.mean**2 * t.n) + c.var * t.mean**2 / (c.mean**4 * c.n)


def relative_ci(c: Moments, t: Moments, *, alpha: float = 0.05) -> RelativeCI:
    """Delta-method CI of the relative change with Welch's df (as gbstats' TwoSidedTTest, relative).

    The denominator is ``|control mean|``, so that a negative baseline cannot flip the sign.
    """
    if c.mean is None or t.mean is None or c.mean == 0:
        return RelativeCI(None, None, None, None)
    est = (t.mean - c.mean) / abs(c.mean)
    var = relative_variance(c, t)
    df = welch_df(c, t)
    if var is None or df is None or var <= 0:
        return RelativeCI(est, None, df, None)
    se = math.sqrt(var)
    q = dist.t_ppf(1 - alpha / 2, df)
    return RelativeCI(est, se, df, (est - q * se, est + q * se))


def fieller_interval(c: Moments, t: Moments, q: float) -> tuple[float, float] | None:
    """Fieller's interval of the relative change (mean_t − mean_c)/|mean_c| at critical value ``q``.

    The set of ratios θ = mean_t/mean_c with (x̄t − θ·x̄c)² ≤ q²·(s²t/nt + θ²·s²c/nc): Welch's variance of
    x̄t − θ·x̄c, so θ = 1 lies outside exactly when |Welch's t| > q — the interval excludes 0 exactly when the
    test with the same critical value rejects. None when the set is unbounded (x̄c² ≤ q²·s²c/nc: the control
    mean itself is not distinguishable from 0) or undefined (no variance).
    """
    if c.mean is None or t.mean is None or c.var is None or t.var is None or c.mean == 0:
        return None
    vc, vt = c.var / c.n, t.var / t.n
    if vc + vt <= 0 or not math.isfinite(q):
        return None
    q2 = q * q
    a = c.mean * c.mean - q2 * vc
    if a <= 0:
        return None
    b = t.mean * c.mean
    disc = max(b * b - a * (t.mean * t.mean - q2 * vt), 0.0)
    root = math.sqrt(disc)
    lo, hi = (b - root) / a, (b + root) / a  # of θ
    if c.mean > 0:
        return (lo - 1.0, hi - 1.0)
    return (1.0 - hi, 1.0 - lo)  # (t − c)/|c| = 1 − θ when the control mean is negative


def relative_ci_fieller(c: Moments, t: Moments, *, alpha: float = 0.05) -> RelativeCI:
    """The relative change with Fieller's interval (Welch's variance, Welch's df of the difference); ``se`` is
    the delta-method SE, for information. The interval excludes 0 exactly when Welch's test rejects at alpha."""
    if c.mean is None or t.mean is None or c.mean == 0:
        return RelativeCI(None, None, None, None)
    est = (t.mean - c.mean) / abs(c.mean)
    var = relative_variance(c, t)
    df = welch_df(c, t)
    se = math.sqrt(var) if var is not None and var > 0 else None
    if df is None:
        return RelativeCI(est, se, df, None)
    q = dist.t_ppf(1 - alpha / 2, df)
    return RelativeCI(est, se, df, fieller_interval(c, t, q))


class BlockedResult(NamedTuple):
    """Treatment − control difference with blocks as fixed effects (OLS of y on arm + block dummies)."""

    estimate: float | None
    se: float | None
    df: float | None
    n: int  # units in blocks holding both arms
    blocks: int  # blocks holding both arms


def blocked_difference(values: Sequence[float], treated: Sequence[bool], blocks: Sequence[str]) -> BlockedResult:
    """OLS ``y ~ treated + C(block)`` from per-unit values (see :func:`blocked_from_sums`)."""
    cells: dict[str, tuple[Sums, Sums]] = {}
    for y, tr, b in zip(values, treated, blocks, strict=True):
        c, t = cells.get(b, (Sums(), Sums()))
        cells[b] = (c, t.plus(Sums.of(y))) if tr else (c.plus(Sums.of(y)), t)
    return blocked_from_sums(cells.values())


def blocked_from_sums(cells: Iterable[tuple[Sums, Sums]]) -> BlockedResult:
    """OLS ``y ~ treated + C(block)`` in closed form from each block's (control, treatment) sums of y.

    The estimate is Σ w_b·d_b / Σ w_b with d_b = ȳ_tb − ȳ_cb and w_b = n_cb·n_tb/(n_cb + n_tb); the residual
    sum of squares is the within-cell sum of squares plus Σ w_b·(d_b − estimate)², on N − B − 1 degrees of
    freedom (B counts every block, one-armed blocks included: their dummies fit their means), and
    SE² = σ̂²/Σ w_b — the same numbers as statsmodels' OLS with block dummies.
    """
    within: list[float] = []
    diffs: list[tuple[float, float]] = []
    n_all = b_all = used_n = 0
    for c, t in cells:
        if not c.n and not t.n:
            continue
        n_all += c.n + t.n
        b_all += 1
        within += [c.ss, t.ss]
        if c.n and t.n:
            d = (t.s1 * c.n - c.s1 * t.n) / ((c.n * t.n) << SCALE)  # ȳ_t − ȳ_c, rounded once
            diffs.append((c.n * t.n / (c.n + t.n), d))
            used_n += c.n + t.n
    if not diffs:
        return BlockedResult(None, None, None, 0, 0)
    sw = math.fsum(w for w, _ in diffs)
    est = math.fsum(w * d for w, d in diffs) / sw
    df = n_all - b_all - 1
    if df < 1:
        return BlockedResult(est, None, None, used_n, len(diffs))
    rss = math.fsum(within) + math.fsum(w * (d - est) ** 2 for w, d in diffs)
    se = math.sqrt(max(rss, 0.0) / df / sw)
    return BlockedResult(est, se, float(df), used_n, len(diffs))


class BootstrapResult(NamedTuple):
    estimate: float | None
    ci: tuple[float, float] | None
    n_resamples: int
    seed: int


def bootstrap_ci(
    control: Sequence[float],
    treatment: Sequence[float],
    *,
    alpha: float = 0.05,
    n_resamples: int = 4000,
    seed: int = 0,
    relative: bool = False,
) -> BootstrapResult:
    """Seeded, vectorized percentile bootstrap CI of the mean difference (or relative change)."""
    if len(control) < 2 or len(treatment) < 2:
        return BootstrapResult(None, None, n_resamples, seed)
    import numpy as np

    rng = np.random.default_rng(seed)
    c = np.asarray(control, float)
    t = np.asarray(treatment, float)
    mc = c[rng.integers(0, len(c), size=(n_resamples, len(c)))].mean(axis=1)
    mt = t[rng.integers(0, len(t), size=(n_resamples, len(t)))].mean(axis=1)
    if relative:
        if c.mean() == 0:
            return BootstrapResult(None, None, n_resamples, seed)
        with np.errstate(divide="ignore", invalid="ignore"):
            stats_ = (mt - mc) / np.abs(mc)
        est = float((t.mean() - c.mean()) / abs(c.mean()))
    else:
        stats_ = mt - mc
        est = float(t.mean() - c.mean())
    lo, hi = np.quantile(stats_, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(est, (float(lo), float(hi)), n_resamples, seed)


class PairedResult(NamedTuple):
    """Paired analysis on log(treatment/control) within each pair: ratio of geometric means."""

    n: int
    mean_log_ratio: float | None
    sd_log_ratio: float | None
    ratio: float | None  # exp(mean log ratio): treatment / control
    ci: tuple[float, float] | None  # CI of the ratio
    statistic: float | None
    df: float | None
    p_value: float | None


def paired_log_ratio(
    control: Sequence[float], treatment: Sequence[float], *, alpha: float = 0.05
) -> PairedResult:
    """One-sample t-test on log(t_i / c_i) (pairs aligned by index; all values must be > 0)."""
    if len(control) != len(treatment):
        raise ValueError("paired analysis needs as many control as treatment values")
    if any(x <= 0 for x in control) or any(x <= 0 for x in treatment):
        raise ValueError("paired log-ratio analysis needs positive values")
    return paired_from_sums(sums_of(math.log(t) - math.log(c) for c, t in zip(control, treatment, strict=False)),
                            alpha=alpha)  # fmt: skip


def paired_from_sums(log_ratio: Sums, *, alpha: float = 0.05) -> PairedResult:
    """The paired t-test from the sums of the pairs' log ratios."""
    m = moments_of(log_ratio)
    if m.mean is None:
        return PairedResult(0, None, None, None, None, None, None, None)
    ratio = exp_ratio(m.mean)
    if m.var is None or m.var == 0:
        return PairedResult(m.n, m.mean, None if m.var is None else 0.0, ratio, None, None, None, None)
    se = math.sqrt(m.var / m.n)
    df = m.n - 1
    stat = m.mean / se
    p = 2 * dist.t_sf(abs(stat), df)
    q = dist.t_ppf(1 - alpha / 2, df)
    ci = (exp_ratio(m.mean - q * se), exp_ratio(m.mean + q * se))
    return PairedResult(m.n, m.mean, math.sqrt(m.var), ratio, ci, stat, float(df), p)


# ---------------------------------------------------------------------------------------------------------
# Sequential (always-valid) inference
# ---------------------------------------------------------------------------------------------------------


def sequential_rho(alpha: float, n_planned: float) -> float:
    """ρ that makes the confidence sequence tightest at N = n_planned (Waudby-Smith eq. 161; gbstats)."""
    la = -2 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1)) / n_planned)


def sequential_halfwidth(se: float, n: float, rho: float, alpha: float) -> float:
    """SE·sqrt(2(Nρ²+1)/(Nρ²)·ln(sqrt(Nρ²+1)/α)), N = total units in both arms."""
    nr2 = n * rho * rho
    return se * math.sqrt(2 * (nr2 + 1) / nr2 * math.log(math.sqrt(nr2 + 1) / alpha))


def sequential_p_value(estimate: float, se: float, n: float, rho: float, null: float = 0.0) -> float:
    """Always-valid p-value: min(1, sqrt(Nρ²+1)·exp(−z²·Nρ²/(2(Nρ²+1)))), z = (estimate − null)/SE."""
    if se <= 0:
        return 0.0 if estimate != null else 1.0
    z2 = ((estimate - null) / se) ** 2
    nr2 = n * rho * rho
    log_p = 0.5 * math.log(nr2 + 1) - z2 * nr2 / (2 * (nr2 + 1))
    return min(1.0, math.exp(min(log_p, 0.0)))


class SequentialResult(NamedTuple):
    estimate: float
    se: float
    n: int  # total units (both arms)
    n_planned: float
    rho: float
    p_value: float
    ci: tuple[float, float]


def t_to_z(t: float, df: float) -> float:
    """The normal deviate with the same tail probability as Student's t with ``df`` degrees of freedom."""
    return math.copysign(dist.norm_isf(dist.t_sf(abs(t), df)), t)


def z_to_t(z: float, df: float) -> float:
    """The t quantile (``df`` degrees of freedom) with the same tail probability as the normal deviate z."""
    return math.copysign(dist.t_isf(dist.norm_sf(abs(z)), df), z)


def sequential_critical(n: float, *, n_planned: float, alpha: float, df: float | None = None) -> float:
    """The boundary of :func:`sequential_test` on the t (or z) scale: |estimate/SE| beyond it ⇔ p < alpha."""
    b = sequential_halfwidth(1.0, n, sequential_rho(alpha, n_planned), alpha)
    return b if df is None else z_to_t(b, df)


def sequential_test(
    estimate: float,
    se: float,
    n: int,
    *,
    n_planned: float,
    alpha: float = 0.05,
    df: float | None = None,
) -> SequentialResult:
    """Confidence sequence and always-valid p-value for an asymptotically normal estimate.

    Without ``df`` this is exactly gbstats' SequentialTwoSidedTTest. With ``df`` (Welch's), a small-sample
    correction: the boundary, a normal deviate b, is replaced by the t quantile of the same tail probability,
    and the p-value uses the normal deviate equivalent to the t statistic. It makes no difference for large
    samples and keeps the few-units looks of a hook-driven experiment from being anti-conservative.
    """
    rho = sequential_rho(alpha, n_planned)
    if df is None:
        hw = sequential_halfwidth(se, n, rho, alpha)
        p = sequential_p_value(estimate, se, n, rho)
    else:
        hw = se * z_to_t(sequential_halfwidth(1.0, n, rho, alpha), df)
        z = t_to_z(estimate / se, df) if se > 0 else (math.inf if estimate else 0.0)
        p = sequential_p_value(z, 1.0, n, rho)
    return SequentialResult(estimate, se, n, n_planned, rho, p, (estimate - hw, estimate + hw))


# ---------------------------------------------------------------------------------------------------------
# Checks, corrections, planning
# ---------------------------------------------------------------------------------------------------------


class SRMResult(NamedTuple):
    n_control: int
    n_treatment: int
    expected_split: float  # expected treatment share
    statistic: float | None
    p_value: float | None


def srm_test(n_control: int, n_treatment: int, split: float = 0.5) -> SRMResult:
    """χ² goodness-of-fit (1 df) of the unit counts against the configured treatment share."""
    total = n_control + n_treatment
    if total == 0 or not 0 < split < 1:
        return SRMResult(n_control, n_treatment, split, None, None)
    ec, et = total * (1 - split), total * split
    chi2 = (n_control - ec) ** 2 / ec + (n_treatment - et) ** 2 / et
    return SRMResult(n_control, n_treatment, split, chi2, dist.chi2_sf(chi2, 1))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values (None entries are kept and not counted)."""
    idx = sorted((i for i, p in enumerate(p_values) if p is not None), key=lambda i: p_values[i] or 0.0)
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(idx):
        p = p_values[i]
        assert p is not None
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def power_two_sample(effect_size: float, n_per_arm: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample t-test (equal n and sd) for a standardized effect size."""
    from scipy import stats as st

    df = 2 * n_per_arm - 2
    nc = abs(effect_size) * math.sqrt(n_per_arm / 2)
    q = float(st.t.ppf(1 - alpha / 2, df))
    return float(st.nct.sf(q, df, nc) + st.nct.cdf(-q, df, nc))


def sample_size_per_arm_exact(mde_pct: float, cv: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Real-valued n per arm solving power_two_sample(mde/cv, n) = power (as statsmodels' solve_power)."""
    if mde_pct <= 0 or cv <= 0:
        raise ValueError("mde and cv must be positive")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must be in (0, 1)")
    from scipy.optimize import brentq

    d = (mde_pct / 100) / cv
    hi = 4.0
    while power_two_sample(d, hi, alpha=alpha) < power:
        hi *= 2
        if hi > 1e9:
            raise ValueError("sample size too large")
    return float(brentq(lambda n: power_two_sample(d, n, alpha=alpha) - power, 1.5, hi, xtol=1e-10))


def sample_size_per_arm(mde_pct: float, cv: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a two-sided test to detect a relative change of ``mde_pct`` % when the metric's
    coefficient of variation (sd / mean, same in both arms) is ``cv``."""
    return math.ceil(sample_size_per_arm_exact(mde_pct, cv, alpha=alpha, power=power) - 1e-9)
