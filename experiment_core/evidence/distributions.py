"""The normal, Student's t and χ² distributions in the standard library: cdf, sf, ppf and isf.

The paths a person waits on (hooks, ``status``, ``analyze``, ``--auto``) need a handful of tail probabilities and
quantiles; ``scipy.stats`` costs 0.8–1.35 s to import for them. These are the textbook algorithms, checked against
scipy as the oracle in ``tests/test_distributions.py`` (≤ 1e-10 relative over a grid of values, tails included, and
of the degrees of freedom we use, Welch's fractional ones too):

* normal: ``math.erfc`` for the tails, ``statistics.NormalDist.inv_cdf`` (Wichura's AS241) for the quantiles;
* t: the regularized incomplete beta function I_x(df/2, 1/2) by its continued fraction (modified Lentz), with
  x = df/(df + t²) and its complement computed separately and log Γ ratios by Stirling's series for large df, so
  that the tails keep their relative accuracy;
* χ²: the regularized incomplete gamma function by its series (P) or continued fraction (Q);
* quantiles: Newton's method on the log of the tail probability from a closed-form start, kept inside a bracket.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

__all__ = [
    "chi2_cdf",
    "chi2_isf",
    "chi2_ppf",
    "chi2_sf",
    "norm_cdf",
    "norm_isf",
    "norm_ppf",
    "norm_sf",
    "t_cdf",
    "t_isf",
    "t_ppf",
    "t_sf",
]

_STD = statistics.NormalDist()
_SQRT2 = math.sqrt(2.0)
_EPS = 1e-16
_TINY = 1e-300
_MAX_ITER = 100_000
_LOG_2PI_HALF = 0.5 * math.log(2 * math.pi)


# ---- normal ---------------------------------------------------------------------------------------------


def norm_sf(x: float) -> float:
    return 0.5 * math.erfc(x / _SQRT2)


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def norm_ppf(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return _edge(p, -math.inf, math.inf)
    if p > 0.5:
        return -_STD.inv_cdf(1.0 - p) if 1.0 - p < 1e-3 else _STD.inv_cdf(p)
    return _STD.inv_cdf(p)


def norm_isf(p: float) -> float:
    return -norm_ppf(p)


def _edge(p: float, at0: float, at1: float) -> float:
    if p == 0.0:
        return at0
    if p == 1.0:
        return at1
    return math.nan


# ---- log Γ ratios, accurate when the arguments are large ----------------------------------------------------


def _stirling_tail(z: float) -> float:
    """log Γ(z) − ((z − ½)·ln z − z + ½·ln 2π) for z ≥ 10 (Stirling's series to z⁻¹¹)."""
    z2 = z * z
    return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - (1 / 1188 - 691 / 360360 / z2) / z2) / z2) / z2) / z2) / z


def _lgamma_ratio(a: float, b: float) -> float:
    """log Γ(a + b) − log Γ(a) for a ≥ 10, b ≥ 0 without the cancellation of two large log Γ values."""
    return (a - 0.5) * math.log1p(b / a) + b * math.log(a + b) - b + _stirling_tail(a + b) - _stirling_tail(a)


def _lbeta(a: float, b: float) -> float:
    """log B(a, b)."""
    small, large = min(a, b), max(a, b)
    if large >= 10 and small <= large:
        return math.lgamma(small) - _lgamma_ratio(large, small)
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


# ---- Student's t -------------------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf, modified Lentz; the even and the odd step
    of each iteration written out: this loop is most of what a t test costs)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITER):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def _ibeta(a: float, b: float, x: float, y: float, log_x: float, log_y: float) -> float:
    """I_x(a, b), given x, y = 1 − x and their logs computed without cancellation by the caller."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _ibeta(b, a, y, x, log_y, log_x)
    front = math.exp(a * log_x + b * log_y - _lbeta(a, b)) / a
    return front * _betacf(a, b, x)


def _t_two_tail(t: float, df: float) -> float:
    """P(|T| > |t|) = I_{df/(df+t²)}(df/2, ½)."""
    if math.isinf(t):
        return 0.0
    if abs(t) > 1e150:  # t² overflows: x = df/t², y = 1 to the last bit
        log_x = math.log(df) - 2 * math.log(abs(t))
        return _ibeta(df / 2, 0.5, math.exp(log_x), 1.0, log_x, 0.0)
    t2 = t * t
    s = df + t2
    x, y = df / s, t2 / s
    log_x = -math.log1p(t2 / df)
    log_y = math.log(t2) - math.log(s) if t2 > 0 else -math.inf
    return _ibeta(df / 2, 0.5, x, y, log_x, log_y)


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` (> 0, fractional allowed) degrees of freedom."""
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return math.nan
    if math.isinf(df):
        return norm_sf(t)
    half = 0.5 * _t_two_tail(t, df)
    return half if t > 0 else 1.0 - half


def t_cdf(t: float, df: float) -> float:
    return t_sf(-t, df)


def _t_pdf(t: float, df: float) -> float:
    log_c = -_lbeta(df / 2, 0.5) - 0.5 * math.log(df)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df))


def _t_start(p: float, df: float) -> float:
    """A start for the upper quantile (p ≤ ½): exact for df 1 and 2, else Cornish-Fisher from the normal's."""
    if df == 1.0:
        return math.tan(math.pi * (0.5 - p))
    if df == 2.0:
        return (1 - 2 * p) / math.sqrt(2 * p * (1 - p))
    z = norm_isf(p)
    z2 = z * z
    g1 = (z2 + 1) * z / 4
    g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
    g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
    x = z + g1 / df + g2 / (df * df) + g3 / (df * df * df)
    return x if math.isfinite(x) and x > 0 else z


def t_isf(p: float, df: float) -> float:
    """The t with P(T > t) = p."""
    if math.isnan(p) or math.isnan(df) or df <= 0 or not 0.0 < p < 1.0:
        return math.nan if math.isnan(df) or df <= 0 else _edge(p, math.inf, -math.inf)
    if math.isinf(df):
        return norm_isf(p)
    if p > 0.5:
        return -t_isf(1.0 - p, df)
    if p == 0.5:
        return 0.0
    return _solve(lambda x: t_sf(x, df), lambda x: _t_pdf(x, df), p, _t_start(p, df), False)


def t_ppf(p: float, df: float) -> float:
    """The t with P(T ≤ t) = p."""
    if p < 0.5:
        return -t_isf(p, df)
    return t_isf(1.0 - p, df) if p < 1.0 else _edge(p, -math.inf, math.inf)


# ---- χ² ----------------------------------------------------------------------------------------------------


def _gamma_p_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    ap = a
    for _ in range(_MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(a * math.log(x) - x - math.lgamma(a))


def _gamma_q_cf(a: float, x: float) -> float:
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(a * math.log(x) - x - math.lgamma(a)) * h


def _gamma_pq(a: float, x: float) -> tuple[float, float]:
    """(P(a, x), Q(a, x)), the smaller one computed directly."""
    if x <= 0.0:
        return 0.0, 1.0
    if math.isinf(x):
        return 1.0, 0.0
    if a == 0.5:  # χ² with one degree of freedom: erf and erfc exactly
        r = math.sqrt(x)
        return math.erf(r), math.erfc(r)
    if x < a + 1.0:
        p = _gamma_p_series(a, x)
        return p, 1.0 - p
    q = _gamma_q_cf(a, x)
    return 1.0 - q, q


def chi2_sf(x: float, df: float) -> float:
    if math.isnan(x) or math.isnan(df) or df <= 0:
        return math.nan
    return _gamma_pq(df / 2, x / 2)[1]


def chi2_cdf(x: float, df: float) -> float:
    if math.isnan(x) or math.isnan(df) or df <= 0:
        return math.nan
    return _gamma_pq(df / 2, x / 2)[0]


def _chi2_pdf(x: float, df: float) -> float:
    if x <= 0:
        return 0.0
    a = df / 2
    return math.exp((a - 1) * math.log(x / 2) - x / 2 - math.lgamma(a)) / 2


def _chi2_start(p: float, df: float, upper: bool) -> float:
    """Wilson-Hilferty's approximation of the quantile (upper: P(X > x) = p)."""
    z = norm_isf(p) if upper else norm_ppf(p)
    h = 2.0 / (9.0 * df)
    x = df * (1.0 - h + z * math.sqrt(h)) ** 3
    return x if x > 0 else df * 1e-3


def chi2_isf(p: float, df: float) -> float:
    """The x with P(X > x) = p."""
    if math.isnan(p) or math.isnan(df) or df <= 0 or not 0.0 < p < 1.0:
        return math.nan if math.isnan(p) or math.isnan(df) or df <= 0 else _edge(p, math.inf, 0.0)
    if p > 0.5:
        return chi2_ppf(1.0 - p, df)
    return _solve(lambda x: chi2_sf(x, df), lambda x: _chi2_pdf(x, df), p, _chi2_start(p, df, True), False)


def chi2_ppf(p: float, df: float) -> float:
    """The x with P(X ≤ x) = p."""
    if math.isnan(p) or math.isnan(df) or df <= 0 or not 0.0 < p < 1.0:
        return math.nan if math.isnan(p) or math.isnan(df) or df <= 0 else _edge(p, 0.0, math.inf)
    if p > 0.5:
        return chi2_isf(1.0 - p, df)
    return _solve(lambda x: chi2_cdf(x, df), lambda x: _chi2_pdf(x, df), p, _chi2_start(p, df, False), True)


# ---- quantiles by Newton's method, in a bracket --------------------------------------------------------------


def _solve(tail: Callable[[float], float], pdf: Callable[[float], float], p: float, x: float, rising: bool) -> float:
    """The x > 0 with tail(x) = p, ``tail`` an sf (decreasing) or, ``rising``, a cdf: Newton's method on the log of
    the tail, bisection when it leaves the bracket."""
    sign = -1.0 if rising else 1.0
    lo, hi = 0.0, math.inf
    log_p = math.log(p)
    for _ in range(200):
        f = tail(x)
        if f == p:
            return x
        if (f < p) == rising:
            lo = x
        else:
            hi = x
        dens = pdf(x)
        step = sign * (math.log(f) - log_p) * f / dens if f > 0 and dens > 0 else math.nan
        nxt = x + step
        if abs(step) <= 1e-6 * abs(x) and lo < nxt < hi:  # quadratic convergence: the error is now ~step²
            return nxt
        if not (lo < nxt < hi) or math.isnan(nxt):
            nxt = (lo + hi) / 2 if math.isfinite(hi) else max(2 * x, x + 1.0)
        if abs(nxt - x) <= 4 * _EPS * abs(nxt):
            return nxt
        x = nxt
    return x

