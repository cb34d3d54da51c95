"""The standard-library normal, t and χ² functions against scipy, the oracle: ≤ 1e-10 relative over a grid.

The grid holds the degrees of freedom the analysis uses (a handful of units up to many thousands, Welch's
fractional df, blocked residual df) and the tails (p down to 1e-30, |t| up to 1e5). Run as a script, it prints
the worst relative error of each function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
from scipy import stats as st

from experiment_core.evidence import distributions as d

TOL = 1e-10
T_DFS = (1, 1.5, 2, 2.7, 3, 4.3, 5, 7.9, 9, 10, 14.2, 18, 19.31, 29.6, 38, 50, 99.5, 200, 1000, 5432.1, 1e4, 1e5)
T_XS = (0.0, 1e-3, 0.05, 0.1, 0.5, 1, 1.5, 1.96, 2, 2.2622, 2.5, 3, 4, 5, 7, 10, 20, 35, 50, 100, 1e3, 1e5)
PS = (1e-30, 1e-15, 1e-10, 1e-6, 1e-4, 1e-3, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75,
      0.9, 0.95, 0.975, 0.99, 0.999, 1 - 1e-6, 1 - 1e-10)  # fmt: skip
CHI2_DFS = (1, 2, 3, 4, 5, 7.5, 10, 20, 30, 50, 100)
CHI2_XS = (1e-6, 0.01, 0.1, 0.5, 1, 2, 3.84, 5, 10, 10.83, 20, 50, 100, 200, 500)
NORM_XS = (0.0, 1e-8, 0.1, 0.5, 1, 1.645, 1.96, 2.5758, 3, 5, 8, 10, 20, 30, 37)

Case = tuple[str, Callable[..., float], Callable[..., float], tuple[float, ...]]


def cases() -> Iterator[Case]:
    """(name, ours, scipy's, arguments) over the whole grid."""
    for df in T_DFS:
        for x in T_XS:
            for v in (x, -x):
                yield "t_sf", d.t_sf, st.t.sf, (v, df)
                yield "t_cdf", d.t_cdf, st.t.cdf, (v, df)
        for p in PS:
            yield "t_ppf", d.t_ppf, st.t.ppf, (p, df)
            yield "t_isf", d.t_isf, st.t.isf, (p, df)
    for x in NORM_XS:
        for v in (x, -x):
            yield "norm_sf", d.norm_sf, st.norm.sf, (v,)
            yield "norm_cdf", d.norm_cdf, st.norm.cdf, (v,)
    for p in (1e-300, 1e-100, *PS):
        yield "norm_ppf", d.norm_ppf, st.norm.ppf, (p,)
        yield "norm_isf", d.norm_isf, st.norm.isf, (p,)
    for df in CHI2_DFS:
        for x in CHI2_XS:
            yield "chi2_sf", d.chi2_sf, st.chi2.sf, (x, df)
            yield "chi2_cdf", d.chi2_cdf, st.chi2.cdf, (x, df)
        for p in PS:
            yield "chi2_ppf", d.chi2_ppf, st.chi2.ppf, (p, df)
            yield "chi2_isf", d.chi2_isf, st.chi2.isf, (p, df)


def relative_error(ours: float, oracle: float) -> float:
    if ours == oracle:
        return 0.0
    return abs(ours - oracle) / abs(oracle) if oracle else abs(ours)


def worst() -> dict[str, tuple[float, tuple[float, ...]]]:
    """The worst relative error of each function over the grid (where scipy's value is a normal float)."""
    out: dict[str, tuple[float, tuple[float, ...]]] = {}
    for name, ours, oracle, args in cases():
        expected = float(oracle(*args))
        if not math.isfinite(expected) or 0 < abs(expected) < 1e-290:
            continue
        err = relative_error(ours(*args), expected)
        if err >= out.get(name, (-1.0, ()))[0]:
            out[name] = (err, args)
    return out


def test_every_function_matches_scipy_over_the_grid() -> None:
    found = worst()
    assert set(found) == {f"{k}_{f}" for k in ("t", "norm", "chi2") for f in ("sf", "cdf", "ppf", "isf")}
    bad = {name: w for name, w in found.items() if w[0] > TOL}
    assert not bad, bad


@pytest.mark.parametrize("df", [1, 3.5, 40])
def test_edges_and_symmetry(df: float) -> None:
    assert d.t_sf(0.0, df) == 0.5 and d.t_isf(0.5, df) == 0.0
    assert d.t_sf(math.inf, df) == 0.0 and d.t_cdf(math.inf, df) == 1.0
    assert d.t_ppf(0.0, df) == -math.inf and d.t_ppf(1.0, df) == math.inf
    assert math.isnan(d.t_sf(math.nan, df)) and math.isnan(d.t_ppf(1.5, df)) and math.isnan(d.t_sf(1.0, -1.0))
    assert d.t_ppf(0.025, df) == -d.t_isf(0.025, df)
    assert d.chi2_sf(0.0, df) == 1.0 and d.chi2_cdf(math.inf, df) == 1.0
    assert d.chi2_isf(1.0, df) == 0.0 and d.chi2_ppf(1.0, df) == math.inf
    assert d.t_sf(2.0, math.inf) == d.norm_sf(2.0)


def test_the_values_the_decisions_read() -> None:
    """Quantiles a 95 % interval uses, as published (scipy's, to 16 digits)."""
    assert d.t_ppf(0.975, 9) == pytest.approx(2.262157162798205, rel=1e-14)
    assert d.norm_ppf(0.975) == pytest.approx(1.959963984540054, rel=1e-15)
    assert d.chi2_isf(0.05, 1) == pytest.approx(3.8414588206941285, rel=1e-14)


if __name__ == "__main__":
    for name, (err, args) in sorted(worst().items()):
        print(f"{name:9} worst relative error {err:.2e} at {args}")
