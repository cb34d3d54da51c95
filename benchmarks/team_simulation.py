"""A real team's experiments, simulated: machines of different speed, and guardrail metrics (issue 11).

Every simulated experiment receives one unit per arm per push (a look every 2 units), up to ``--max-n`` per
arm, and stops at its first promote or rollback. Units are timings (lower is better). The decisions are made by
``experiment_core.evidence.decide.decide_vectorized`` on evidence computed here, vectorized over experiments and looks,
by the formulas ``analyze`` uses:

* pooled — ``experiment_core.evidence.vectorized.evidence_arrays`` (Welch, Fieller's always-valid band, linear scale);
* machine-aware — OLS of log(value) on arm + machine dummies in closed form (the estimator of
  ``stats.blocked_difference``) fed to the same confidence sequence, falling back to pooled while fewer than
  two machines hold both arms (as ``analysis.choose_blocking``);
* guardrails — the primary's regression test and each guardrail's always-valid band at alpha / m (Bonferroni,
  m = 1 + guardrails).

Random looks are re-decided through the scalar path the product runs (``analyze_samples`` with machines,
``analyze_experiment`` on ledger events for guardrails); the number that differ is printed and must be 0.

    python benchmarks/team_simulation.py            # 1,000 experiments per scenario
    python benchmarks/team_simulation.py --quick    # 200 experiments
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiment_core.evidence.analysis import analyze_experiment, analyze_samples
from experiment_core.evidence.decide import ACTIONS, Settings, decide_vectorized
from experiment_core.evidence.vectorized import evidence_arrays
from experiment_core.store.spec import Experiment, Metric, Targets

Arr = np.ndarray[Any, Any]
PROMOTE, ROLLBACK = ACTIONS.index("promote"), ACTIONS.index("rollback")
FIELDS = ("improvement_pct", "improvement_lo_pct", "improvement_hi_pct", "p_value")


def cumulative_moments(x: Arr) -> tuple[Arr, Arr, Arr]:
    """n, mean and sample variance of every prefix along axis 1 (shifted sums for numerical stability)."""
    n = np.arange(1, x.shape[1] + 1, dtype=float)
    d = x - x[:, :1]
    s, q = np.cumsum(d, axis=1), np.cumsum(d * d, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (q - s * s / n) / (n - 1)
    var[:, 0] = np.nan
    return np.broadcast_to(n, x.shape), x[:, :1] + s / n, var


def pooled_evidence(settings: Settings, c: Arr, t: Arr) -> dict[str, Arr]:
    n, mc, vc = cumulative_moments(c)
    _, mt, vt = cumulative_moments(t)
    return evidence_arrays(settings, direction="lower", n_control=n, mean_control=mc, var_control=vc,
                           n_treatment=n, mean_treatment=mt, var_treatment=vt)  # fmt: skip


def blocked_evidence(settings: Settings, c: Arr, t: Arr, mc: Arr, mt: Arr, n_machines: int) -> dict[str, Arr]:
    """Machine fixed effects on the log scale at every look; pooled where fewer than 2 machines hold both arms."""
    alpha = settings.alpha
    n_planned = 2.0 * settings.sample_size
    ref = math.log(100.0)
    out_shape = c.shape
    cells = []
    for values, machines in ((c, mc), (t, mt)):
        y = np.log(values) - ref
        onehot = machines[..., None] == np.arange(n_machines)
        cnt = np.cumsum(onehot, axis=1, dtype=float)
        s = np.cumsum(onehot * y[..., None], axis=1)
        q = np.cumsum(onehot * (y * y)[..., None], axis=1)
        cells.append((cnt, s, q))
    (nc, sc, qc), (nt, stt, qt) = cells
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean_c, mean_t = sc / nc, stt / nt
        within = np.nansum(np.where(nc > 0, qc - sc * mean_c, 0.0), axis=2) + np.nansum(
            np.where(nt > 0, qt - stt * mean_t, 0.0), axis=2
        )
        both = (nc > 0) & (nt > 0)
        w = np.where(both, nc * nt / (nc + nt), 0.0)
        d = np.where(both, mean_t - mean_c, 0.0)
        sw = w.sum(axis=2)
        est = (w * d).sum(axis=2) / sw
        blocks_any = ((nc + nt) > 0).sum(axis=2)
        n_all = nc.sum(axis=2) + nt.sum(axis=2)
        df = n_all - blocks_any - 1
        rss = within + (w * (d - est[..., None]) ** 2).sum(axis=2)
        se = np.sqrt(rss / df / sw)
        n_used = np.where(both, nc + nt, 0.0).sum(axis=2)
        valid = (both.sum(axis=2) >= 2) & (df >= 1) & (se > 0) & np.isfinite(se)
        la = -2 * math.log(alpha)
        rho2 = (la + math.log(la + 1)) / n_planned
        nr2 = n_used * rho2
        z = st.norm.isf(st.t.sf(np.abs(est / se), df))
        p = np.exp(np.minimum(0.5 * np.log(nr2 + 1) - z**2 * nr2 / (2 * (nr2 + 1)), 0.0))
        factor = np.sqrt(2 * (nr2 + 1) / nr2 * np.log(np.sqrt(nr2 + 1) / alpha))
        qb = st.t.isf(st.norm.sf(factor), df)
        imp = -100 * np.expm1(est)
        lo = -100 * np.expm1(est + qb * se)
        hi = -100 * np.expm1(est - qb * se)
    pooled = pooled_evidence(settings, c, t)
    out = dict(pooled)
    for key, value in zip(FIELDS, (imp, lo, hi, p), strict=True):
        out[key] = np.where(valid, value, pooled[key]).reshape(out_shape)
    out["blocked"] = valid
    return out


def decide_first(settings: Settings, ev: dict[str, Arr], **extra: Any) -> tuple[Arr, Arr, Arr]:
    """(codes at every look, final action per experiment, units per arm at the first decision or NaN)."""
    codes = decide_vectorized(settings, n_control=ev["n_control"], n_treatment=ev["n_treatment"],
                              improvement_pct=ev["improvement_pct"], improvement_lo_pct=ev["improvement_lo_pct"],
                              improvement_hi_pct=ev["improvement_hi_pct"], p_value=ev["p_value"],
                              **extra)  # fmt: skip
    decided = codes != 0
    anyd = decided.any(axis=1)
    first = np.where(anyd, decided.argmax(axis=1), 0)
    final = np.where(anyd, codes[np.arange(len(first)), first], 0)
    n = np.asarray(ev["n_control"])[0] if np.ndim(ev["n_control"]) == 2 else np.arange(1, codes.shape[1] + 1)
    return codes, final, np.where(anyd, n[first], np.nan)


def team(rng: np.random.Generator, e: int, n: int, *, effect: float, machines: int, between: float, cv: float,
         p_control: Arr, p_treatment: Arr) -> tuple[Arr, Arr, Arr, Arr]:  # fmt: skip
    """Each experiment is a new team: machine speeds log-normal (sd ``between``), each unit on a machine drawn
    from the arm's machine shares, log-normal noise with CV ``cv`` within a machine."""
    speed = rng.normal(0.0, between, (e, machines))
    sigma = math.sqrt(math.log(1 + cv * cv))
    mc = rng.choice(machines, size=(e, n), p=p_control)
    mt = rng.choice(machines, size=(e, n), p=p_treatment)
    rows = np.arange(e)[:, None]
    c = np.exp(math.log(100.0) + speed[rows, mc] + rng.normal(-sigma * sigma / 2, sigma, (e, n)))
    t = np.exp(math.log(100.0 * (1 - effect)) + speed[rows, mt] + rng.normal(-sigma * sigma / 2, sigma, (e, n)))
    return c, t, mc, mt


def scalar_team_check(settings: Settings, c: Arr, t: Arr, mc: Arr, mt: Arr, codes: Arr, rng: np.random.Generator,
                      k: int) -> int:  # fmt: skip
    bad = 0
    for _ in range(k):
        i, j = int(rng.integers(0, c.shape[0])), int(rng.integers(1, c.shape[1]))
        r = analyze_samples(c[i, : j + 1], t[i, : j + 1], alpha=settings.alpha, sample_size=settings.sample_size,
                            improvement_threshold=settings.improvement_threshold,
                            max_regression=settings.max_regression,
                            machines=([str(x) for x in mc[i, : j + 1]], [str(x) for x in mt[i, : j + 1]]))  # fmt: skip
        bad += ACTIONS[int(codes[i, j])] != r.decision.action
    return bad


def summary(final: Arr, first_n: Arr) -> tuple[float, float, float]:
    promoted = final == PROMOTE
    med = float(np.median(first_n[promoted])) if promoted.any() else math.nan
    return float(promoted.mean()), med, float((final == ROLLBACK).mean())


def guardrail_run(settings: Settings, prim: tuple[Arr, Arr], guards: list[tuple[Arr, Arr]],
                  limit: float) -> tuple[Arr, Arr, Arr, Arr]:  # fmt: skip
    """(codes, final, first_n, naive final without the Bonferroni split) for a primary and guardrails."""
    m = 1 + len(guards)
    strict = dataclasses.replace(settings, alpha=settings.alpha / m)
    ev = pooled_evidence(settings, *prim)
    out = []
    for s_level in (strict, settings):
        reg = pooled_evidence(s_level, *prim)["improvement_hi_pct"]
        gev = [pooled_evidence(s_level, gc, gt) for gc, gt in guards]
        extra = {
            "regression_hi_pct": reg,
            "guardrail_n_min": np.stack([g["n_control"] for g in gev], axis=-1),
            "guardrail_improvement_pct": np.stack([g["improvement_pct"] for g in gev], axis=-1),
            "guardrail_hi_pct": np.stack([g["improvement_hi_pct"] for g in gev], axis=-1),
            "guardrail_max_regression": [limit] * len(guards),
        }
        out.append(decide_first(settings, ev, **extra))
    (codes, final, first_n), (_, naive_final, _) = out
    return codes, final, first_n, naive_final


def scalar_guardrail_check(settings: Settings, prim: tuple[Arr, Arr], guards: list[tuple[Arr, Arr]], codes: Arr,
                           rng: np.random.Generator, k: int) -> int:  # fmt: skip
    names = [f"g{i}" for i in range(len(guards))]
    exp = Experiment(id="sim", name="sim", files={"a": ".experiments/sim/a"}, sample_size=settings.sample_size,
                     targets=Targets(settings.improvement_threshold, settings.max_regression, settings.alpha),
                     secondary=tuple(Metric(name=g, guardrail=True) for g in names), block_by="none")  # fmt: skip
    bad = 0
    for _ in range(k):
        i, j = int(rng.integers(0, prim[0].shape[0])), int(rng.integers(1, prim[0].shape[1]))
        events = []
        for u in range(j + 1):
            for arm, idx in (("control", 0), ("treatment", 1)):
                unit = f"{arm}-{u}"
                series = [("time_to_complete", prim[idx])]
                series += [(g, gv[idx]) for g, gv in zip(names, guards, strict=True)]
                for metric, values in series:
                    events.append({"type": "trial", "exp": "sim", "id": f"{unit}-{metric}", "arm": arm,
                                   "unit": unit, "metric": metric, "value": float(values[i, u]),
                                   "ts": f"2026-01-01T{u:06d}"})  # fmt: skip
        r = analyze_experiment(exp, events)
        bad += ACTIONS[int(codes[i, j])] != r.decision.action
    return bad


def lognormal(rng: np.random.Generator, e: int, n: int, mean: float, cv: float) -> Arr:
    sigma = math.sqrt(math.log(1 + cv * cv))
    return rng.lognormal(math.log(mean) - sigma * sigma / 2, sigma, (e, n))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 experiments per scenario")
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--max-n", type=int, default=200, help="units per arm")
    ap.add_argument("--machines", type=int, default=8)
    ap.add_argument("--between", type=float, default=0.35, help="log-sd of machine speeds")
    ap.add_argument("--cv", type=float, default=0.05, help="coefficient of variation within a machine")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--check", type=int, default=60, help="looks re-decided through the scalar path per scenario")
    args = ap.parse_args(argv)
    if args.quick:
        args.experiments, args.check = 200, 20
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    e, n, k = args.experiments, args.max_n, args.machines
    alpha = Settings().alpha
    uniform = np.full(k, 1 / k)
    mism = checked = 0
    print(f"experiment-hook team simulation: {e} experiments per scenario, a look every 2 units (1 per arm) up to "
          f"{n} per arm; registry defaults unless said (sequential, alpha {alpha:g}, sample_size 10)")  # fmt: skip
    print()
    print(f"Heterogeneous team: {k} machines, log-sd {args.between:g} between machines, CV {args.cv:g} within")
    print(f"  {'scenario':<34} {'analysis':<14} {'power':>7} {'median units/arm':>17} {'wrong rollback':>15}")
    ratio_20 = math.nan
    power_20 = math.nan
    for effect, threshold in ((0.20, 15.0), (0.10, 5.0)):
        settings = Settings(improvement_threshold=threshold)
        c, t, mc, mt = team(rng, e, n, effect=effect, machines=k, between=args.between, cv=args.cv,
                            p_control=uniform, p_treatment=uniform)  # fmt: skip
        _, pf, pn = decide_first(settings, pooled_evidence(settings, c, t))
        bev = blocked_evidence(settings, c, t, mc, mt, k)
        bcodes, bf, bn = decide_first(settings, bev)
        mism += scalar_team_check(settings, c, t, mc, mt, bcodes, rng, args.check)
        checked += args.check
        label = f"true {100 * effect:g} % faster (target {threshold:g} %)"
        for name, (pw, med, rb) in (("pooled", summary(pf, pn)), ("machine-aware", summary(bf, bn))):
            print(f"  {label:<34} {name:<14} {pw:7.1%} {med:17g} {rb:15.2%}")
            label = ""
        if effect == 0.20:
            ratio_20 = summary(bf, bn)[1] / summary(pf, pn)[1]
            power_20 = summary(bf, bn)[0]
    print(f"  at 20 %: machine-aware needs {ratio_20:.2f}x the pooled units (goal ≤ 0.5x), power {power_20:.1%} "
          f"(goal ≥ 90 %)")  # fmt: skip
    print()

    print("A/A (no difference), a look every 2 units")
    print(f"  {'machine shares':<44} {'analysis':<14} {'false promote':>13} {'false rollback':>15}")
    skewed = np.arange(1, k + 1, dtype=float) ** 2
    skewed /= skewed.sum()
    confounded = skewed[::-1].copy()
    settings = Settings()
    worst = 0.0
    for label, pc, pt in (("equal", uniform, uniform),
                          ("unequal (shares ∝ 1², 2², … 8²), same in both arms", skewed, skewed),
                          ("imbalanced: treatment on other machines than control", skewed, confounded)):  # fmt: skip
        c, t, mc, mt = team(rng, e, n, effect=0.0, machines=k, between=args.between, cv=args.cv,
                            p_control=pc, p_treatment=pt)  # fmt: skip
        _, pf, _ = decide_first(settings, pooled_evidence(settings, c, t))
        bcodes, bf, _ = decide_first(settings, blocked_evidence(settings, c, t, mc, mt, k))
        mism += scalar_team_check(settings, c, t, mc, mt, bcodes, rng, args.check)
        checked += args.check
        for name, f in (("pooled", pf), ("machine-aware", bf)):
            print(f"  {label:<44} {name:<14} {np.mean(f == PROMOTE):13.2%} {np.mean(f == ROLLBACK):15.2%}")
            label = ""
        worst = max(worst, float(np.mean(bf == PROMOTE)), float(np.mean(bf == ROLLBACK)))
    print(f"  machine-aware worst rate {worst:.2%} (goal ≤ {alpha:.0%})")
    print()

    print("Guardrails: primary + 3 guardrail metrics (CV 0.2 each, limit 10 %), one machine, a look every 2 units")
    limit = settings.max_regression
    gn = min(n, 150)

    def metrics(effect_primary: float, regressions: tuple[float, float, float]) -> tuple[Any, list[Any]]:
        prim = (lognormal(rng, e, gn, 100, 0.2), lognormal(rng, e, gn, 100 * (1 - effect_primary), 0.2))
        guards = [(lognormal(rng, e, gn, 10, 0.2), lognormal(rng, e, gn, 10 * (1 + r), 0.2)) for r in regressions]
        return prim, guards

    prim, guards = metrics(0.0, (0.0, 0.0, 0.0))
    gcodes, gf, _, naive = guardrail_run(settings, prim, guards, limit)
    mism += scalar_guardrail_check(settings, prim, guards, gcodes, rng, args.check // 2)
    checked += args.check // 2
    print(f"  A/A on all 4 metrics: false rollback {np.mean(gf == ROLLBACK):.2%} with Bonferroni (alpha/4 each; "
          f"goal ≤ {alpha:.0%}), {np.mean(naive == ROLLBACK):.2%} without; false promote "
          f"{np.mean(gf == PROMOTE):.2%}")  # fmt: skip
    prim, guards = metrics(0.0, (0.10, 0.10, 0.10))
    gcodes, gf, _, naive = guardrail_run(settings, prim, guards, limit)
    print(f"  worst case, all 3 guardrails exactly at their limit (10 % worse): rollback {np.mean(gf == ROLLBACK):.2%} "
          f"with Bonferroni (goal ≤ {alpha:.0%}), {np.mean(naive == ROLLBACK):.2%} without")  # fmt: skip
    prim, guards = metrics(0.20, (0.50, 0.0, 0.0))
    gcodes, gf, gn_first, _ = guardrail_run(settings, prim, guards, limit)
    mism += scalar_guardrail_check(settings, prim, guards, gcodes, rng, args.check // 2)
    checked += args.check // 2
    rb = gf == ROLLBACK
    med = float(np.median(gn_first[rb])) if rb.any() else math.nan
    _, plain_final, _ = decide_first(settings, pooled_evidence(settings, *prim))
    print(f"  primary 20 % faster, guardrail 50 % worse: rolled back {rb.mean():.1%} (median {med:g} units/arm), "
          f"promoted {np.mean(gf == PROMOTE):.1%}; without the guardrail it would be promoted "
          f"{np.mean(plain_final == PROMOTE):.1%}")  # fmt: skip
    print()
    print(f"scalar check: {checked} random looks re-decided through analyze_samples / analyze_experiment: "
          f"{mism} differ")  # fmt: skip
    print(f"elapsed {time.perf_counter() - t0:.1f} s")
    return 1 if mism else 0


if __name__ == "__main__":
    raise SystemExit(main())
