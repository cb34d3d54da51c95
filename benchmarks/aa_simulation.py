"""A/A and power simulation of experiment-hook's automatic decisions, checked at every push.

Each simulated experiment receives one trial per arm per push (a look every 2 trials), up to 200 per arm,
and stops at its first promote or rollback. Values are log-normal timings (lower is better) with a
coefficient of variation of 0.2. The decisions are made by ``experiment_core.evidence.decide.decide_vectorized``
on the evidence of ``experiment_core.evidence.vectorized.evidence_arrays`` — the vectorized twins of the rules users
get, tested equal to ``decide`` / ``analyze_samples`` (tests/test_decide.py, tests/test_analysis.py) and
re-checked here on a sample of looks through the scalar ``analyze_samples`` path.

    python benchmarks/aa_simulation.py            # 2,000 experiments per scenario
    python benchmarks/aa_simulation.py --quick    # 300 experiments, fewer looks
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiment_core.evidence import stats
from experiment_core.evidence.analysis import analyze_samples
from experiment_core.evidence.decide import ACTIONS, Settings, decide_vectorized
from experiment_core.evidence.vectorized import evidence_arrays

PROMOTE, ROLLBACK = ACTIONS.index("promote"), ACTIONS.index("rollback")


def simulate(
    rng: np.random.Generator, n_exp: int, max_n: int, effect: float, cv: float
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Log-normal values with mean 100 (control) and 100·(1 − effect) (treatment), both with CV ``cv``."""
    sigma = math.sqrt(math.log(1 + cv * cv))
    mu_c = math.log(100.0) - sigma * sigma / 2
    mu_t = math.log(100.0 * (1 - effect)) - sigma * sigma / 2
    return rng.lognormal(mu_c, sigma, (n_exp, max_n)), rng.lognormal(mu_t, sigma, (n_exp, max_n))


def cumulative_moments(x: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
    n = np.arange(1, x.shape[1] + 1, dtype=float)
    s = np.cumsum(x, axis=1)
    q = np.cumsum((x - x[:, :1]) ** 2, axis=1)  # shifted for numerical stability
    d = np.cumsum(x - x[:, :1], axis=1)
    mean = s / n
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (q - d * d / n) / (n - 1)
    var[:, 0] = np.nan
    return np.broadcast_to(n, x.shape), mean, var


def run_scenario(settings: Settings, c: np.ndarray[Any, Any], t: np.ndarray[Any, Any]) -> dict[str, Any]:
    n, mc, vc = cumulative_moments(c)
    _, mt, vt = cumulative_moments(t)
    fixed = None
    if settings.mode == "fixed":  # the fixed-horizon test uses the first sample_size units of each arm
        k = settings.sample_size
        cols = np.minimum(np.arange(c.shape[1]), k - 1)
        nk = np.broadcast_to(np.minimum(n[0], k), c.shape)
        fixed = (nk, mc[:, cols], vc[:, cols], nk, mt[:, cols], vt[:, cols])
    ev = evidence_arrays(
        settings,
        direction="lower",
        n_control=n,
        mean_control=mc,
        var_control=vc,
        n_treatment=n,
        mean_treatment=mt,
        var_treatment=vt,
        fixed=fixed,
    )
    codes = decide_vectorized(
        settings,
        n_control=ev["n_control"],
        n_treatment=ev["n_treatment"],
        improvement_pct=ev["improvement_pct"],
        improvement_lo_pct=ev["improvement_lo_pct"],
        improvement_hi_pct=ev["improvement_hi_pct"],
        p_value=ev["p_value"],
    )
    decided = codes != 0
    any_dec = decided.any(axis=1)
    first = np.where(any_dec, decided.argmax(axis=1), -1)
    rows = np.arange(len(first))
    final = np.where(any_dec, codes[rows, np.maximum(first, 0)], 0)
    naive_sig = ev["naive_p"] < settings.alpha
    n_looks = n[0]
    from_min = n_looks >= settings.sample_size
    with np.errstate(invalid="ignore"):
        seed_rule = naive_sig & from_min & (ev["improvement_pct"] > settings.improvement_threshold)
    return {
        "codes": codes,
        "final": final,
        "first_n": np.where(any_dec, n_looks[np.maximum(first, 0)], np.nan),
        "naive_any": (naive_sig & (n_looks >= 2)).any(axis=1),
        "sequential_any": (ev["p_value"] < settings.alpha).any(axis=1),
        "naive_from_min": (naive_sig & from_min).any(axis=1),
        "seed_rule_any": seed_rule.any(axis=1),
        "evidence": ev,
    }


def scalar_check(
    settings: Settings,
    c: np.ndarray[Any, Any],
    t: np.ndarray[Any, Any],
    codes: np.ndarray[Any, Any],
    rng: np.random.Generator,
    k: int,
) -> int:
    """Re-decide k random (experiment, look) cells through analyze_samples; return the number that differ."""
    bad = 0
    for _ in range(k):
        i = int(rng.integers(0, c.shape[0]))
        j = int(rng.integers(1, c.shape[1]))
        r = analyze_samples(
            c[i, : j + 1],
            t[i, : j + 1],
            alpha=settings.alpha,
            sample_size=settings.sample_size,
            improvement_threshold=settings.improvement_threshold,
            max_regression=settings.max_regression,
            mode=settings.mode,
        )
        if ACTIONS[int(codes[i, j])] != r.decision.action:
            bad += 1
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300 experiments, up to 100 per arm")
    ap.add_argument("--experiments", type=int, default=2000)
    ap.add_argument("--max-n", type=int, default=200, help="trials per arm")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--cv", type=float, default=0.2)
    ap.add_argument("--effect", type=float, default=0.20, help="true improvement for the power scenario")
    ap.add_argument("--check", type=int, default=200, help="cells re-decided through the scalar path")
    args = ap.parse_args(argv)
    if args.quick:
        args.experiments, args.max_n, args.check = 300, 100, 50
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    settings = Settings()  # the registry defaults
    alpha = settings.alpha
    fixed_n = stats.sample_size_per_arm(100 * args.effect, args.cv, alpha=alpha, power=0.8)

    print(
        f"experiment-hook A/A and power simulation: {args.experiments} experiments per scenario, a look "
        f"every 2 trials (1 per arm) up to {args.max_n} per arm, log-normal values with CV {args.cv:g}"
    )
    print(
        f"rules: registry defaults (sequential, alpha {alpha:g}, sample_size {settings.sample_size}, "
        f"improvement_threshold {settings.improvement_threshold:g} %, max_regression "
        f"{settings.max_regression:g} %)"
    )
    print()

    c, t = simulate(rng, args.experiments, args.max_n, 0.0, args.cv)
    aa = run_scenario(settings, c, t)
    mism = scalar_check(settings, c, t, aa["codes"], rng, args.check)
    print("A/A (no true difference)")
    print(f"  false promote rate           {np.mean(aa['final'] == PROMOTE):7.2%}   (goal ≤ {alpha:.0%})")
    print(f"  false rollback rate          {np.mean(aa['final'] == ROLLBACK):7.2%}   (goal ≤ {alpha:.0%})")
    print(
        f"  always-valid test alone      {np.mean(aa['sequential_any']):7.2%}   "
        f"(always-valid p < {alpha:g} at any look, either direction, no threshold)"
    )
    print(f"  naive t-test, any look ≥ 2   {np.mean(aa['naive_any']):7.2%}   (p < {alpha:g} at any look)")
    print(f"  naive t-test, any look ≥ {settings.sample_size:<3d} {np.mean(aa['naive_from_min']):7.2%}")
    print(
        f"  seed's rule re-run per look  {np.mean(aa['seed_rule_any']):7.2%}   "
        f"(n ≥ {settings.sample_size}, p < {alpha:g}, improvement > {settings.improvement_threshold:g} %)"
    )
    print()

    fixed = Settings(mode="fixed")
    fx = run_scenario(fixed, c, t)
    mism += scalar_check(fixed, c, t, fx["codes"], rng, args.check // 4)
    print("A/A, fixed-horizon mode (decides once at the pre-registered n, whatever the number of looks)")
    print(f"  false promote rate           {np.mean(fx['final'] == PROMOTE):7.2%}   (goal ≤ {alpha:.0%})")
    print(f"  false rollback rate          {np.mean(fx['final'] == ROLLBACK):7.2%}   (goal ≤ {alpha:.0%})")
    print()

    c2, t2 = simulate(rng, args.experiments, args.max_n, args.effect, args.cv)
    pw = run_scenario(settings, c2, t2)
    mism += scalar_check(settings, c2, t2, pw["codes"], rng, args.check)
    promoted = pw["final"] == PROMOTE
    med = float(np.median(pw["first_n"][promoted])) if promoted.any() else float("nan")
    print(f"true {100 * args.effect:g} % improvement (CV {args.cv:g})")
    print(f"  power (promoted)             {np.mean(promoted):7.2%}")
    print(f"  wrong rollback               {np.mean(pw['final'] == ROLLBACK):7.2%}")
    print(
        f"  median trials per arm to promote  {med:g}   (90th percentile "
        f"{float(np.percentile(pw['first_n'][promoted], 90)) if promoted.any() else float('nan'):g})"
    )
    print(
        f"  fixed-horizon sample size (power 80 %, two-sided) {fixed_n} per arm; ratio "
        f"{med / fixed_n:.2f}x (goal ≤ 1.5x)"
    )
    fp = run_scenario(fixed, c2, t2)
    print(
        f"  fixed-horizon mode: power    {np.mean(fp['final'] == PROMOTE):7.2%}   "
        f"(decided at {fixed.sample_size} per arm)"
    )
    print()
    n_checked = 2 * args.check + args.check // 4
    print(f"scalar check: {n_checked} random looks re-decided through analyze_samples: {mism} differ")
    print(f"elapsed {time.perf_counter() - t0:.1f} s")
    return 1 if mism else 0


if __name__ == "__main__":
    raise SystemExit(main())
