"""analyze_samples / analyze_experiment: the JSON document, oracles, units, pairs, errors, SRM, secondary."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

from experiment_core import analyze_samples
from experiment_core.evidence import stats
from experiment_core.evidence.analysis import analyze_experiment
from experiment_core.evidence.decide import Settings
from experiment_core.evidence.units import collect_units
from experiment_core.evidence.vectorized import evidence_arrays
from experiment_core.store.spec import Experiment, Metric

SEED_C = [45.0, 52.0, 38.0, 58.0, 32.0, 44.0, 47.0]
SEED_T = [27.0, 30.0, 21.0, 35.0, 25.0, 28.0, 26.0]
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
FIXTURES = Path(__file__).parent / "fixtures"

REQUIRED_KEYS = {
    "schema",
    "experiment",
    "metric",
    "direction",
    "control",
    "treatment",
    "improvement_pct",
    "difference",
    "test",
    "statistic",
    "df",
    "p_value",
    "effect_size",
    "hedges_g",
    "ci95",
    "relative_ci95",
    "sequential",
    "paired",
    "srm",
    "error_rate",
    "secondary",
    "more_trials_needed",
    "decision",
}
ARM_KEYS = {"n", "mean", "std", "min", "median", "max", "outliers"}


def close(a: Any, b: float, tol: float = 1e-9) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def same(a: float | None, b: float) -> bool:
    """Scalar (None = undefined) and vectorized (NaN = undefined) twins agree."""
    return math.isnan(b) if a is None else close(a, b)


def test_package_import_is_cheap() -> None:
    code = (
        "import sys, experiment_core, experiment_core.evidence.stats, experiment_core.evidence.decide;"
        "assert 'scipy' not in sys.modules and 'numpy' not in sys.modules, 'heavy import';"
        "from experiment_core import analyze_samples; assert callable(analyze_samples)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_to_dict_keys_and_json() -> None:
    d = analyze_samples(SEED_C, SEED_T).to_dict()
    assert set(d) >= REQUIRED_KEYS
    assert set(d["control"]) == ARM_KEYS and set(d["treatment"]) == ARM_KEYS
    assert d["schema"] == 1 and d["experiment"] is None and d["metric"] == "time_to_complete"
    assert d["direction"] == "lower" and d["test"] == "welch"
    assert {"p_value", "ci95"} <= set(d["sequential"])
    assert {"p_value", "expected_split"} <= set(d["srm"])
    assert {"control", "treatment"} <= set(d["error_rate"])
    assert {"action", "reasons"} <= set(d["decision"])
    json.dumps(d, allow_nan=False)


def test_seed_example_against_scipy_and_hand() -> None:
    r = analyze_samples(SEED_C, SEED_T)
    d = r.to_dict()
    ref = st.ttest_ind(SEED_T, SEED_C, equal_var=False)
    assert close(d["p_value"], float(ref.pvalue)) and close(d["statistic"], float(ref.statistic))
    assert close(d["df"], float(ref.df))
    lo, hi = ref.confidence_interval(0.95)
    assert close(d["ci95"][0], float(lo)) and close(d["ci95"][1], float(hi))
    mc, mt = np.mean(SEED_C), np.mean(SEED_T)
    assert close(d["improvement_pct"], float((mc - mt) / mc * 100))
    assert close(d["difference"], float(mt - mc))
    n = len(SEED_C)
    pooled = math.sqrt(((n - 1) * np.var(SEED_C, ddof=1) + (n - 1) * np.var(SEED_T, ddof=1)) / (2 * n - 2))
    assert close(d["effect_size"], float((mt - mc) / pooled))
    # relative CI = Fieller's (issue 11; it was gbstats' delta method): its ends θ are where scipy's Welch t of
    # treatment vs θ·control reaches the critical value of the difference's df, expressed as % improvement
    from scipy.optimize import brentq

    q = float(st.t.ppf(0.975, ref.df))
    c_arr, t_arr = np.asarray(SEED_C), np.asarray(SEED_T)

    def gap(theta: float) -> float:
        return abs(float(st.ttest_ind(t_arr, theta * c_arr, equal_var=False).statistic)) - q

    ratio = float(t_arr.mean() / c_arr.mean())
    th_lo, th_hi = brentq(gap, 0.01, ratio), brentq(gap, ratio, 10.0)
    assert close(d["relative_ci95"][0], 100 * (1 - th_hi)) and close(d["relative_ci95"][1], 100 * (1 - th_lo))
    assert d["decision"]["action"] == "continue"
    assert "only 7 of 10 trials per arm" in d["decision"]["reasons"]
    assert d["more_trials_needed"] >= 3


def test_sequential_is_gbstats_with_a_small_sample_correction() -> None:
    d = analyze_samples(SEED_C, SEED_T).to_dict()
    gb = json.loads((FIXTURES / "gbstats_frequentist.json").read_text())["cases"]
    case = next(
        c
        for c in gb
        if c["raw"]
        and c["raw"]["control"] == SEED_C
        and c["difference_type"] == "absolute"
        and c["alpha"] == 0.05
    )
    ref = next(
        s for s in case["sequential"] if s["sequential_tuning_parameter"] == 20.0
    )  # N* = 2·sample_size
    assert d["sequential"]["p_value"] >= ref["p_value"]  # t-corrected: never less conservative
    assert d["sequential"]["ci95"][0] <= ref["ci"][0] and d["sequential"]["ci95"][1] >= ref["ci"][1]
    # with many units the correction vanishes
    rng = np.random.default_rng(2)
    c, t = rng.normal(100, 20, 3000), rng.normal(97, 20, 3000)
    big = analyze_samples(c, t, sample_size=3000).to_dict()["sequential"]
    se = math.sqrt(np.var(c, ddof=1) / 3000 + np.var(t, ddof=1) / 3000)
    la = -2 * math.log(0.05)
    rho2 = (la + math.log(la + 1)) / 6000
    nr2 = 6000 * rho2
    hw = se * math.sqrt(2 * (nr2 + 1) / nr2 * math.log(math.sqrt(nr2 + 1) / 0.05))
    diff = float(t.mean() - c.mean())
    assert abs(big["ci95"][0] - (diff - hw)) < 1e-3 * hw


@pytest.mark.parametrize("test", ["student", "mann-whitney"])
def test_selectable_tests(test: str) -> None:
    d = analyze_samples(SEED_C, SEED_T, test=test).to_dict()
    assert d["test"] == test
    if test == "student":
        ref = st.ttest_ind(SEED_T, SEED_C, equal_var=True)
        assert close(d["p_value"], float(ref.pvalue)) and d["df"] == 12
    else:
        ref2 = st.mannwhitneyu(SEED_T, SEED_C, alternative="two-sided")
        assert close(d["p_value"], float(ref2.pvalue)) and close(d["statistic"], float(ref2.statistic))
    with pytest.raises(ValueError):
        analyze_samples(SEED_C, SEED_T, test="z")


def test_direction_higher_flips_improvement() -> None:
    lo = analyze_samples(SEED_C, SEED_T).to_dict()
    hi = analyze_samples(SEED_C, SEED_T, direction="higher").to_dict()
    assert close(hi["improvement_pct"], -lo["improvement_pct"])
    assert hi["difference"] == lo["difference"]
    assert close(hi["relative_ci95"][0], -lo["relative_ci95"][1])


def test_too_few_values_gives_null_not_nan() -> None:
    d = analyze_samples([1.0], [2.0]).to_dict()
    assert d["p_value"] is None and d["effect_size"] is None and d["ci95"] is None
    assert d["control"]["std"] is None and d["sequential"]["p_value"] is None
    assert d["decision"]["action"] == "continue"
    json.dumps(d, allow_nan=False)
    e = analyze_samples([], []).to_dict()
    assert e["control"]["n"] == 0 and e["improvement_pct"] is None
    json.dumps(e, allow_nan=False)


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError):
        analyze_samples([1.0, float("nan")], [1.0, 2.0])


def test_log_scale_is_ratio_of_geometric_means() -> None:
    d = analyze_samples(SEED_C, SEED_T, log_scale=True).to_dict()
    ratio = st.gmean(SEED_T) / st.gmean(SEED_C)
    assert close(d["improvement_pct"], float((1 - ratio) * 100))
    ref = st.ttest_ind(np.log(SEED_T), np.log(SEED_C), equal_var=False)
    assert close(d["p_value"], float(ref.pvalue))
    lo, hi = ref.confidence_interval(0.95)
    assert close(d["relative_ci95"][0], (1 - math.exp(hi)) * 100)
    assert close(d["relative_ci95"][1], (1 - math.exp(lo)) * 100)


def test_paired_samples() -> None:
    rng = np.random.default_rng(4)
    drift = rng.lognormal(0, 0.4, 12)
    c = 10 * drift * rng.lognormal(0, 0.03, 12)
    t = 8 * drift * rng.lognormal(0, 0.03, 12)
    d = analyze_samples(c, t, paired=True).to_dict()
    ref = st.ttest_rel(np.log(t), np.log(c))
    assert close(d["paired"]["p_value"], float(ref.pvalue))
    assert close(d["paired"]["ratio"], float(np.exp(np.mean(np.log(t / c)))))
    assert d["paired"]["p_value"] < d["p_value"]  # pairing cancels the drift


def test_fixed_mode_uses_the_preregistered_n() -> None:
    rng = np.random.default_rng(9)
    c, t = rng.normal(100, 10, 15), rng.normal(80, 10, 15)
    r = analyze_samples(c, t, mode="fixed")
    d = r.to_dict()
    ref = st.ttest_ind(t[:10], c[:10], equal_var=False)
    assert close(d["fixed"]["p_value"], float(ref.pvalue))
    assert close(r.evidence().p_value, float(ref.pvalue))
    assert d["decision"]["action"] == "promote"
    assert any(s.startswith("p = ") for s in d["decision"]["reasons"])
    early = analyze_samples(c[:8], t[:8], mode="fixed")
    assert early.decision.action == "continue" and early.evidence().p_value is None


def test_bootstrap_option() -> None:
    d = analyze_samples(SEED_C, SEED_T, bootstrap=True, seed=3).to_dict()
    assert d["bootstrap"]["seed"] == 3
    lo, hi = d["bootstrap"]["ci95"]
    assert lo < d["difference"] < hi


def test_clear_regression_is_rolled_back() -> None:
    rng = np.random.default_rng(8)
    d = analyze_samples(rng.normal(10, 1, 12), rng.normal(16, 1, 12)).to_dict()
    assert d["decision"]["action"] == "rollback"
    assert d["improvement_pct"] < -40


@pytest.mark.parametrize("mode", ["sequential", "fixed"])
@pytest.mark.parametrize("direction", ["lower", "higher"])
def test_evidence_arrays_twin_equals_scalar(mode: str, direction: str) -> None:
    rng = np.random.default_rng(21)
    s = Settings(mode=mode)
    for _ in range(40):
        n = int(rng.integers(2, 14))
        c, t = rng.lognormal(3, 0.3, n), rng.lognormal(2.9, 0.3, n)
        e = analyze_samples(c, t, direction=direction, mode=mode).evidence()
        ck, tk = c[: min(n, 10)], t[: min(n, 10)]
        fixed = (len(ck), ck.mean(), ck.var(ddof=1), len(tk), tk.mean(), tk.var(ddof=1))
        a = evidence_arrays(
            s,
            direction=direction,
            n_control=n,
            mean_control=c.mean(),
            var_control=c.var(ddof=1),
            n_treatment=n,
            mean_treatment=t.mean(),
            var_treatment=t.var(ddof=1),
            fixed=fixed if mode == "fixed" else None,
        )
        assert close(e.improvement_pct, float(a["improvement_pct"]))
        # Fieller's band is unbounded (None / NaN) at the first looks, where the boundary is wide (issue 11)
        assert same(e.improvement_lo_pct, float(a["improvement_lo_pct"]))
        assert same(e.improvement_hi_pct, float(a["improvement_hi_pct"]))
        if mode == "sequential" or n >= 10:
            assert close(e.p_value, float(a["p_value"]))
        else:
            assert e.p_value is None and math.isnan(float(a["p_value"]))


# --- ledger events -------------------------------------------------------------------------------


def Exp(**over: Any) -> Experiment:
    """The real registry record, with the fields these tests vary."""
    fields: dict[str, Any] = {"id": "exp-1", "name": "x", "files": {"a.md": ".experiments/exp-1/a.md"},
                              "created": "2026-11-20T10:00:00Z"}  # fmt: skip
    fields.update(over)
    return Experiment(**fields)


_clock = [0]


def trial(
    arm: str,
    value: float,
    unit: str,
    *,
    metric: str = "time_to_complete",
    exp: str = "exp-1",
    exit_code: int | None = 0,
    pair: str | None = None,
) -> dict[str, Any]:
    _clock[0] += 1
    e: dict[str, Any] = {
        "v": 1,
        "id": uuid.uuid4().hex,
        "type": "trial",
        "exp": exp,
        "ts": f"2026-11-21T10:{_clock[0] // 60 % 60:02d}:{_clock[0] % 60:02d}.000000Z",
        "arm": arm,
        "metric": metric,
        "value": value,
        "unit": unit,
        "exit_code": exit_code,
        "commit": None,
    }
    if pair is not None:
        e["pair"] = pair
    return e


def test_units_are_aggregated_before_testing() -> None:
    events = []
    c_units = {"c1": [40.0, 44.0], "c2": [50.0], "c3": [46.0, 47.0, 48.0]}
    t_units = {"t1": [30.0, 32.0], "t2": [28.0], "t3": [27.0, 29.0]}
    for arm, units in (("control", c_units), ("treatment", t_units)):
        for u, vals in units.items():
            events += [trial(arm, v, u) for v in vals]
    dup = dict(events[0])  # the same event seen twice (notes copied by a rebase)
    events.append(dup)
    events.append(trial("control", 1000.0, "z", exp="other"))
    r = analyze_experiment(Exp(), events, NOW)
    d = r.to_dict()
    cm = [float(np.mean(v)) for v in c_units.values()]
    tm = [float(np.mean(v)) for v in t_units.values()]
    assert d["control"]["n"] == 3 and d["treatment"]["n"] == 3
    assert close(d["control"]["mean"], float(np.mean(cm)))
    ref = st.ttest_ind(tm, cm, equal_var=False)
    assert close(d["p_value"], float(ref.pvalue))
    assert d["experiment"] == "exp-1"
    assert d["srm"]["units"] == {"control": 3, "treatment": 3}


def test_errors_guardrail_and_srm_from_events() -> None:
    events = []
    for i in range(12):
        events.append(trial("control", 10.0 + (i % 3), f"c{i}", exit_code=0))
        events.append(trial("treatment", 8.0 + (i % 3), f"t{i}", exit_code=1 if i < 8 else 0))
    u = collect_units(events, "exp-1", "time_to_complete")
    assert u.errors == (0, 12, 8, 12)
    assert len(u.treatment) == 4  # failing trials are not timings
    d = analyze_experiment(Exp(), events, NOW).to_dict()
    assert close(d["error_rate"]["treatment"], 8 / 12) and d["error_rate"]["control"] == 0
    assert d["decision"]["action"] == "rollback"
    assert any("error rate" in s for s in d["decision"]["reasons"])

    assigns = [
        {
            "v": 1,
            "id": uuid.uuid4().hex,
            "type": "assign",
            "exp": "exp-1",
            "ts": "2026-11-21T09:00:00Z",
            "arm": "control",
            "unit": f"a{i}",
        }
        for i in range(40)
    ]
    ok_events = [trial("control", 10.0 + i % 3, f"c{i}") for i in range(10)]
    ok_events += [trial("treatment", 10.0 + i % 3, f"t{i}") for i in range(10)]
    d = analyze_experiment(Exp(), ok_events + assigns, NOW).to_dict()
    ref = st.chisquare([50, 10])
    assert close(d["srm"]["p_value"], float(ref.pvalue))
    assert d["decision"]["action"] == "hold"


def test_pairs_and_secondary_metrics() -> None:
    rng = np.random.default_rng(6)
    events = []
    for i in range(14):
        drift = float(rng.lognormal(0, 0.3))
        events.append(trial("control", 10 * drift, f"u{i}c", pair=f"p{i}"))
        events.append(trial("treatment", 8 * drift * float(rng.lognormal(0, 0.03)), f"u{i}t", pair=f"p{i}"))
        for m, (a, b) in {"tokens": (100.0, 90.0), "issues": (3.0, 3.5)}.items():
            events.append(trial("control", a + float(rng.normal(0, 5)), f"u{i}c", metric=m))
            events.append(trial("treatment", b + float(rng.normal(0, 5)), f"u{i}t", metric=m))
    exp = Exp(secondary=(Metric("tokens"), Metric("issues", direction="higher")))
    d = analyze_experiment(exp, events, NOW).to_dict()
    assert d["paired"] is not None and d["paired"]["n"] == 14
    pc = [e["value"] for e in events if e["arm"] == "control" and e["metric"] == "time_to_complete"]
    pt = [e["value"] for e in events if e["arm"] == "treatment" and e["metric"] == "time_to_complete"]
    assert close(d["paired"]["p_value"], float(st.ttest_rel(np.log(pt), np.log(pc)).pvalue))
    raw = [s["p_value"] for s in d["secondary"]]
    for s, m in zip(d["secondary"], ("tokens", "issues"), strict=True):
        vc = [e["value"] for e in events if e["metric"] == m and e["arm"] == "control"]
        vt = [e["value"] for e in events if e["metric"] == m and e["arm"] == "treatment"]
        assert s["metric"] == m and close(s["p_value"], float(st.ttest_ind(vt, vc, equal_var=False).pvalue))
    adj = multipletests(raw, method="holm")[1]
    assert all(close(s["p_holm"], float(a)) for s, a in zip(d["secondary"], adj, strict=True))
    json.dumps(d, allow_nan=False)


def test_expiry_from_events() -> None:
    events = [trial("control", 10.0 + i % 3, f"c{i}") for i in range(3)]
    events += [trial("treatment", 10.0 + i % 3, f"t{i}") for i in range(3)]
    d = analyze_experiment(Exp(created="2026-11-01T00:00:00Z"), events, NOW).to_dict()
    assert d["decision"]["action"] == "expire"
    assert analyze_experiment(Exp(), events, NOW).to_dict()["decision"]["action"] == "continue"


def test_evidence_twin_with_negative_baseline() -> None:
    rng = np.random.default_rng(5)
    c, t = rng.normal(-10, 1, 12), rng.normal(-7, 1, 12)
    e = analyze_samples(c, t, direction="higher").evidence()
    assert e.improvement_pct is not None and e.improvement_pct > 0  # |control mean|: no sign flip
    a = evidence_arrays(
        Settings(),
        direction="higher",
        n_control=12,
        mean_control=c.mean(),
        var_control=c.var(ddof=1),
        n_treatment=12,
        mean_treatment=t.mean(),
        var_treatment=t.var(ddof=1),
    )
    assert close(e.improvement_pct, float(a["improvement_pct"]))
    assert close(e.improvement_lo_pct, float(a["improvement_lo_pct"]))


# --- machine-aware analysis (issue 11) -----------------------------------------------------------------


def _team(rng: np.random.Generator, n: int, machines: int, effect: float) -> tuple[list[float], list[float],
                                                                                   list[str], list[str]]:  # fmt: skip
    speed = rng.normal(0, 0.35, machines)
    mc, mt = rng.integers(0, machines, n), rng.integers(0, machines, n)
    c = np.exp(np.log(100) + speed[mc] + rng.normal(0, 0.05, n))
    t = np.exp(np.log(100 * (1 - effect)) + speed[mt] + rng.normal(0, 0.05, n))
    return list(c), list(t), [f"m{m}" for m in mc], [f"m{m}" for m in mt]


def test_machine_aware_analysis_is_ols_with_machine_dummies_fed_to_the_sequence() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    c, t, mc, mt = _team(rng, 12, 5, 0.1)
    d = analyze_samples(c, t, machines=(mc, mt)).to_dict()
    names = sorted(set(mc + mt))
    X = np.column_stack([[0.0] * len(c) + [1.0] * len(t)] +
                        [[float(m == name) for m in mc + mt] for name in names])  # fmt: skip
    fit = sm.OLS(np.log(c + t), X).fit()
    assert d["blocking"] == "machine" and d["blocks"] == len({*mc} & {*mt})
    assert close(d["improvement_pct"], -100 * math.expm1(float(fit.params[0])))
    assert close(d["p_value"], float(fit.pvalues[0])) and close(d["df"], float(fit.df_resid))
    lo, hi = fit.conf_int(0.05)[0]
    assert close(d["relative_ci95"][0], -100 * math.expm1(hi)) and close(d["relative_ci95"][1], -100 * math.expm1(lo))
    seq = stats.sequential_test(float(fit.params[0]), float(fit.bse[0]), d["sequential"]["n"], n_planned=20,
                                df=float(fit.df_resid))  # fmt: skip
    assert close(d["sequential"]["p_value"], seq.p_value)
    # the band agrees with the always-valid p, and the pooled numbers stay visible
    band = d["sequential"]["relative_ci95"]
    assert (band[0] > 0 or band[1] < 0) == (seq.p_value < 0.05)
    assert d["pooled"]["p_value"] == analyze_samples(c, t).to_dict()["p_value"]


def test_one_machine_or_none_falls_back_to_the_pooled_test() -> None:
    rng = np.random.default_rng(5)
    c, t, _, _ = _team(rng, 8, 1, 0.1)
    pooled = analyze_samples(c, t).to_dict()
    for machines in ((["a"] * 8, ["a"] * 8), (["a"] * 8, ["b"] * 8)):
        d = analyze_samples(c, t, machines=machines).to_dict()
        assert d["blocking"] == "none" and d["blocks"] == 0 and d["pooled"] is None
        assert d["p_value"] == pooled["p_value"]


def test_an_interval_too_wide_for_a_float_is_unbounded_not_an_error() -> None:
    # two machines, two trials an arm, spread over six orders of magnitude: the always-valid band of the ratio
    # of geometric means overflows a float above; it is shown unbounded (None), the analysis still decides
    c, t = [0.001, 900.0], [800.0, 0.002]
    d = analyze_samples(c, t, machines=(["a", "b"], ["a", "b"])).to_dict()
    assert d["blocking"] == "machine"
    lo, hi = d["sequential"]["relative_ci95"]
    assert lo is None and hi is not None and 99.0 < hi <= 100.0  # improvement %: at most 100, unbounded below
    assert d["sequential"]["p_value"] == 1.0 and d["decision"] != "promote"
    assert math.isinf(stats.exp_ratio(1000.0)) and stats.exp_ratio(1.0) == math.e


def _ols_with_dummies(y: Any, treated: Any, blocks: list[str]) -> Any:
    import statsmodels.api as sm

    names = sorted(set(blocks))
    dummies = np.array([[b == name for name in names] for b in blocks], dtype=float)
    return sm.OLS(y, np.column_stack([treated.astype(float), dummies])).fit()


def test_collect_units_gives_each_units_first_machine_and_pairs_block_runs() -> None:
    events = [trial("control", 10.0, "u1"), trial("control", 11.0, "u1"), trial("treatment", 9.0, "u2")]
    events[0]["machine"], events[1]["machine"] = "fast", "slow"  # a unit's machine: that of its first trial
    u = collect_units(events, "exp-1", "time_to_complete")
    assert u.control_machines == ["fast"] and u.treatment_machines == [""]
    # run's interleaved pairs: blocks of one control and one treatment run = the paired log-ratio t-test
    rng = np.random.default_rng(6)
    events = []
    for i in range(6):
        base = float(rng.uniform(5, 20))
        events += [trial("control", base * float(rng.lognormal(0, 0.02)), f"c{i}", pair=f"p{i}"),
                   trial("treatment", 0.8 * base * float(rng.lognormal(0, 0.02)), f"t{i}", pair=f"p{i}")]  # fmt: skip
    d = analyze_experiment(Exp(), events).to_dict()
    assert d["blocking"] == "pair" and d["blocks"] == 6
    assert close(d["p_value"], d["paired"]["p_value"]) and close(d["improvement_pct"], d["paired"]["improvement_pct"])
    y = np.log([e["value"] for e in events])  # the same as OLS of the log values on the arm and a dummy per pair
    fit = _ols_with_dummies(y, np.array([e["arm"] == "treatment" for e in events]), [e["pair"] for e in events])
    assert close(d["df"], float(fit.df_resid)) and close(d["p_value"], float(fit.pvalues[0]))
    assert close(d["improvement_pct"], -100 * math.expm1(float(fit.params[0])))
    assert analyze_experiment(Exp(block_by="none"), events).to_dict()["blocking"] == "none"
