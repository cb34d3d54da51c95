"""The vectorized twin of the primary comparison, for simulations: numpy arrays of per-arm moments in, the
``Evidence`` fields ``decide_vectorized`` reads out (sequential or fixed, Welch/Student, linear scale). Tested
equal to ``analyze_samples(...).evidence()`` case by case; the A/A and team simulations in ``benchmarks/`` run on
it. numpy and scipy are imported inside the functions.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from experiment_core.evidence.decide import Settings


class _ArmArrays(NamedTuple):
    """One arm's moments, as arrays (or scalars) that broadcast together."""

    n: Any
    mean: Any
    var: Any


def evidence_arrays(
    settings: Settings,
    *,
    direction: str,
    n_control: Any,
    mean_control: Any,
    var_control: Any,
    n_treatment: Any,
    mean_treatment: Any,
    var_treatment: Any,
    fixed: tuple[Any, Any, Any, Any, Any, Any] | None = None,
    equal_var: bool = False,
) -> dict[str, Any]:
    """Arrays of the Evidence fields used by ``decide_vectorized`` from per-arm moments (NaN = None).

    Sequential mode: the always-valid p of the difference and the confidence sequence of the relative
    change. Fixed mode also needs ``fixed`` = (n, mean, var of control, n, mean, var of treatment) of the
    first ``sample_size`` units of each arm: p and the improvement come from the t-test on those once both
    arms have them, while the guardrail interval stays the confidence sequence on all units. Also returns
    ``naive_p`` (the t-test p at this look on all units) for comparison. Welch or Student only.
    """
    import numpy as np

    c, t = _ArmArrays(n_control, mean_control, var_control), _ArmArrays(n_treatment, mean_treatment, var_treatment)
    seq = _arrays_one(settings, "sequential", c, t, direction=direction, equal_var=equal_var)
    if settings.mode == "sequential":
        return seq
    if fixed is None:
        raise ValueError("fixed mode needs the moments of the first sample_size units (fixed=...)")
    fc, ft = _ArmArrays(*fixed[:3]), _ArmArrays(*fixed[3:])
    fx = _arrays_one(settings, "fixed", fc, ft, direction=direction, equal_var=equal_var)
    reached = np.minimum(np.asarray(n_control), np.asarray(n_treatment)) >= settings.sample_size
    out = dict(seq)
    out["improvement_pct"] = np.where(reached, fx["improvement_pct"], seq["improvement_pct"])
    out["p_value"] = np.where(reached, fx["p_value"], np.nan)
    return out


def _arrays_one(settings: Settings, mode: str, c: _ArmArrays, t: _ArmArrays, *, direction: str,
                equal_var: bool = False) -> dict[str, Any]:  # fmt: skip
    """Improvement, its interval and p for one evaluation mode (sequential: CS; fixed: t-test)."""
    import numpy as np
    from scipy import stats as st

    nc, nt = np.asarray(c.n, float), np.asarray(t.n, float)
    mc, mt = np.asarray(c.mean, float), np.asarray(t.mean, float)
    vc, vt = np.asarray(c.var, float), np.asarray(t.var, float)
    alpha = settings.alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = mt - mc
        a, b = vc / nc, vt / nt
        se = np.sqrt(a + b)
        welch_df = (a + b) ** 2 / (a * a / (nc - 1) + b * b / (nt - 1))
        naive_p = _t_test_p_arrays(diff, nc, nt, vc, vt, se, welch_df, equal_var)
        rel = diff / np.abs(mc)
        if mode == "sequential":
            p, q = _sequential_arrays(settings, diff, se, welch_df, nc + nt)
        else:
            p, q = naive_p, st.t.ppf(1 - alpha / 2, welch_df)
        lo_rel, hi_rel = fieller_arrays(mc, mt, a, b, q)
        rel = np.where(mc != 0, rel, np.nan)
    if direction == "lower":
        imp, lo, hi = -100 * rel, -100 * hi_rel, -100 * lo_rel
    else:
        imp, lo, hi = 100 * rel, 100 * lo_rel, 100 * hi_rel
    return {
        "n_control": nc,
        "n_treatment": nt,
        "improvement_pct": imp,
        "improvement_lo_pct": lo,
        "improvement_hi_pct": hi,
        "p_value": np.where(np.isfinite(p), p, np.nan),
        "naive_p": naive_p,
    }


def _t_test_p_arrays(diff: Any, nc: Any, nt: Any, vc: Any, vt: Any, se: Any, welch_df: Any, equal_var: bool) -> Any:
    """The two-sided p of Welch's t-test (or Student's, with the pooled variance) at this look."""
    import numpy as np
    from scipy import stats as st

    if equal_var:
        df = nc + nt - 2
        sp2 = ((nc - 1) * vc + (nt - 1) * vt) / df
        se_t = np.sqrt(sp2 * (1 / nc + 1 / nt))
    else:
        df, se_t = welch_df, se
    return 2 * st.t.sf(np.abs(diff / se_t), df)


def _sequential_arrays(settings: Settings, diff: Any, se: Any, welch_df: Any, n: Any) -> tuple[Any, Any]:
    """(always-valid p, critical value of the confidence sequence) at ``n`` units in all, as
    :func:`experiment_core.evidence.stats.sequential_test` with the t -> z small-sample correction."""
    import numpy as np
    from scipy import stats as st

    alpha = settings.alpha
    n_planned = 2.0 * max(settings.sample_size, 1)
    la = -2 * math.log(alpha)
    rho2 = (la + math.log(la + 1)) / n_planned
    nr2 = n * rho2
    z = st.norm.isf(st.t.sf(np.abs(diff / se), welch_df))  # small-sample correction (t -> z)
    log_p = 0.5 * np.log(nr2 + 1) - z**2 * nr2 / (2 * (nr2 + 1))
    p = np.exp(np.minimum(log_p, 0.0))
    factor = np.sqrt(2 * (nr2 + 1) / nr2 * np.log(np.sqrt(nr2 + 1) / alpha))
    q = st.t.isf(st.norm.sf(factor), welch_df)
    return np.where(se > 0, p, np.nan), q


def fieller_arrays(mc: Any, mt: Any, vc_n: Any, vt_n: Any, q: Any) -> tuple[Any, Any]:
    """Vectorized :func:`experiment_core.evidence.stats.fieller_interval` (relative change; NaN where undefined) from
    the means and the variances of the means (s²/n)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        q2 = q * q
        a = mc * mc - q2 * vc_n
        b = mt * mc
        root = np.sqrt(np.maximum(b * b - a * (mt * mt - q2 * vt_n), 0.0))
        th_lo, th_hi = (b - root) / a, (b + root) / a
        ok = (a > 0) & (vc_n + vt_n > 0) & np.isfinite(q) & (mc != 0) & np.isfinite(th_lo) & np.isfinite(th_hi)
        lo = np.where(mc > 0, th_lo - 1, 1 - th_hi)
        hi = np.where(mc > 0, th_hi - 1, 1 - th_lo)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)
