"""Decision rules: scenarios, reasons as sentences, automatic application, and the vectorized twin."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from experiment_core.evidence.decide import (
    ACTIONS,
    Decision,
    Evidence,
    GuardrailEvidence,
    LevelCheck,
    Settings,
    allowed_automatically,
    decide,
    decide_evidence,
    decide_vectorized,
    parse_ts,
)
from experiment_core.store.spec import Experiment

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)


def Exp(**over: Any) -> Experiment:
    """The real registry record, with the fields these tests vary."""
    fields: dict[str, Any] = {"id": "exp-1", "name": "x", "files": {"a.md": ".experiments/exp-1/a.md"},
                              "created": "2026-11-20T10:00:00Z"}  # fmt: skip
    fields.update(over)
    return Experiment(**fields)


GOOD = Evidence(
    n_control=10,
    n_treatment=10,
    improvement_pct=39.4,
    improvement_lo_pct=20.0,
    improvement_hi_pct=55.0,
    p_value=0.0012,
    srm_p_value=0.8,
)


def ev(**kw: object) -> Evidence:
    base = dict(GOOD.__dict__)
    base.update(kw)
    return Evidence(**base)  # type: ignore[arg-type]


def test_defaults_are_the_registry_defaults() -> None:
    s = Settings()
    assert (s.alpha, s.improvement_threshold, s.max_regression, s.sample_size, s.mode) == (
        0.05,
        15.0,
        10.0,
        10,
        "sequential",
    )
    assert Settings.of(Exp()) == Settings(created="2026-11-20T10:00:00Z")


def test_promote_with_reasons() -> None:
    d = decide_evidence(Settings(), GOOD)
    assert d.action == "promote" and d.automatic
    assert "always-valid p = 0.0012 < 0.05" in d.reasons
    assert "improvement 39 % ≥ target 15 %" in d.reasons
    assert d.to_dict()["action"] == "promote" and isinstance(d.to_dict()["reasons"], list)


def test_promote_not_automatic_without_auto_promote() -> None:
    d = decide_evidence(Settings(auto_promote=False), GOOD)
    assert d.action == "promote" and not d.automatic


def test_continue_until_sample_size() -> None:
    d = decide_evidence(Settings(), ev(n_control=7, n_treatment=9, more_trials=6))
    assert d.action == "continue" and not d.automatic
    assert "only 7 of 10 trials per arm" in d.reasons
    assert "≈ 6 more trials per arm" in d.reasons


def test_continue_when_not_significant_or_below_target() -> None:
    d = decide_evidence(Settings(), ev(p_value=0.21))
    assert d.action == "continue"
    assert "always-valid p = 0.21 ≥ 0.05, not significant" in d.reasons
    d = decide_evidence(Settings(), ev(improvement_pct=8.2))
    assert d.action == "continue"
    assert "improvement 8.2 % < target 15 %" in d.reasons


def test_rollback_on_regression_beyond_the_limit() -> None:
    d = decide_evidence(
        Settings(), ev(improvement_pct=-30.0, improvement_lo_pct=-45.0, improvement_hi_pct=-12.0)
    )
    assert d.action == "rollback" and d.automatic
    assert "at least 12 % worse" in d.reasons[0] and "allowed regression of 10 %" in d.reasons[0]
    d = decide_evidence(
        Settings(), ev(improvement_pct=-30.0, improvement_lo_pct=-45.0, improvement_hi_pct=-9.0)
    )
    assert d.action == "continue"
    d = decide_evidence(
        Settings(auto_rollback=False),
        ev(improvement_pct=-30.0, improvement_lo_pct=-45.0, improvement_hi_pct=-12.0),
    )
    assert d.action == "rollback" and not d.automatic


def test_rollback_on_error_rate_guardrail_even_if_faster() -> None:
    d = decide_evidence(Settings(), ev(error_rate_control=0.1, error_rate_treatment=0.4, error_p_value=0.01))
    assert d.action == "rollback"
    assert "error rate 40 % in treatment vs 10 % in control" in d.reasons[0]
    d = decide_evidence(Settings(), ev(error_rate_control=0.1, error_rate_treatment=0.4, error_p_value=0.2))
    assert d.action == "promote"
    assert any("above 2x" in a for a in d.alerts)
    d = decide_evidence(Settings(), ev(error_rate_control=0.2, error_rate_treatment=0.3, error_p_value=0.001))
    assert d.action == "promote"  # not above 2x control


def test_hold_on_sample_ratio_mismatch() -> None:
    d = decide_evidence(Settings(), ev(srm_p_value=0.0004, n_control=30, n_treatment=10))
    assert d.action == "hold" and not d.automatic
    assert "sample ratio mismatch" in d.reasons[0]
    assert decide_evidence(Settings(), ev(srm_p_value=0.002)).action == "promote"


def test_expire_and_promote_if_not_worse() -> None:
    s = Settings(created="2026-11-01T09:00:00Z")
    d = decide(s, ev(p_value=0.3, improvement_pct=5.0, improvement_lo_pct=-4.0), NOW)
    assert d.action == "expire" and d.expired and d.automatic
    assert d.reasons[0].startswith("running for 23.0 days, past the maximum of 14 days")
    s2 = Settings(created="2026-11-01T09:00:00Z", on_expiry="promote_if_not_worse", auto_rollback=False)
    d = decide(s2, ev(p_value=0.3, improvement_pct=5.0, improvement_lo_pct=-4.0), NOW)
    assert d.action == "promote" and d.expired and d.automatic
    d = decide(s2, ev(p_value=0.3, improvement_pct=5.0, improvement_lo_pct=-14.0), NOW)
    assert d.action == "expire" and d.automatic  # expiry restores control even without auto_rollback
    d = decide(s2, ev(p_value=0.3, improvement_pct=-2.0, improvement_lo_pct=-4.0), NOW)
    assert d.action == "expire"
    assert decide(s, GOOD, NOW - timedelta(days=10)).action == "promote"  # 13 days: not expired


def test_expiry_wins_over_srm_and_srm_over_rollback() -> None:
    s = Settings(created="2026-11-01T09:00:00Z")
    bad = ev(srm_p_value=1e-6, improvement_hi_pct=-20.0, improvement_pct=-30.0)
    assert decide(s, bad, NOW).action == "expire"
    assert decide(Settings(), bad, NOW).action == "hold"


def test_fixed_mode_wording() -> None:
    d = decide_evidence(Settings(mode="fixed"), ev(mode="fixed", p_value=0.03))
    assert d.action == "promote" and "p = 0.03 < 0.05" in d.reasons
    d = decide_evidence(Settings(mode="fixed"), ev(mode="fixed", p_value=0.3))
    assert d.action == "continue" and any("final" in r for r in d.reasons)


def test_decide_with_experiment_record() -> None:
    d = decide(Exp(created="2026-11-20T10:00:00Z"), GOOD, NOW)
    assert isinstance(d, Decision) and d.action == "promote"
    d = decide(Exp(created="2026-11-01T10:00:00Z"), GOOD, NOW)
    assert d.action == "expire"


def test_missing_or_bad_created_never_expires() -> None:
    assert decide(Exp(created=""), GOOD, NOW).action == "promote"
    assert decide(Settings(created="yesterday"), GOOD, NOW).action == "promote"


def test_allowed_automatically() -> None:
    s = Settings(auto_promote=False, auto_rollback=False)
    assert not allowed_automatically("promote", s)
    assert not allowed_automatically("rollback", s)
    assert allowed_automatically("expire", s)
    assert not allowed_automatically("hold", Settings()) and not allowed_automatically("continue", Settings())


def test_parse_ts() -> None:
    assert parse_ts("2026-11-24T10:17:10.123456Z") == datetime(
        2026, 11, 24, 10, 17, 10, 123456, tzinfo=timezone.utc
    )
    assert parse_ts("2026-11-24T10:17:10").tzinfo is not None


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


@pytest.mark.parametrize("on_expiry", ["rollback", "promote_if_not_worse"])
@pytest.mark.parametrize("mode", ["sequential", "fixed"])
def test_vectorized_twin_equals_scalar_rules(mode: str, on_expiry: str) -> None:
    rng = np.random.default_rng(11)
    k = 3000
    s = Settings(mode=mode, on_expiry=on_expiry)

    def maybe_nan(x: np.ndarray, frac: float = 0.1) -> np.ndarray:
        return np.where(rng.random(k) < frac, np.nan, x)

    nc = rng.integers(0, 20, k)
    nt = rng.integers(0, 20, k)
    imp = maybe_nan(rng.normal(10, 20, k))
    width = rng.uniform(0, 30, k)
    lo, hi = maybe_nan(imp - width), maybe_nan(imp + width)
    p = maybe_nan(rng.uniform(0, 0.12, k))
    rc = maybe_nan(rng.uniform(0, 0.3, k), 0.3)
    rt = maybe_nan(rng.uniform(0, 0.6, k), 0.3)
    ep = maybe_nan(rng.uniform(0, 0.1, k), 0.3)
    srm = maybe_nan(rng.choice([1e-5, 0.0009, 0.01, 0.5], k), 0.2)
    age = maybe_nan(rng.uniform(0, 20, k), 0.2)
    codes = decide_vectorized(
        s,
        n_control=nc,
        n_treatment=nt,
        improvement_pct=imp,
        improvement_lo_pct=lo,
        improvement_hi_pct=hi,
        p_value=p,
        error_rate_control=rc,
        error_rate_treatment=rt,
        error_p_value=ep,
        srm_p_value=srm,
        age_days=age,
    )
    seen = set()
    for i in range(k):
        e = Evidence(
            mode=mode,
            n_control=int(nc[i]),
            n_treatment=int(nt[i]),
            improvement_pct=_opt(imp[i]),
            improvement_lo_pct=_opt(lo[i]),
            improvement_hi_pct=_opt(hi[i]),
            p_value=_opt(p[i]),
            error_rate_control=_opt(rc[i]),
            error_rate_treatment=_opt(rt[i]),
            error_p_value=_opt(ep[i]),
            srm_p_value=_opt(srm[i]),
        )
        d = decide_evidence(s, e, age_days=_opt(age[i]))
        assert ACTIONS[int(codes[i])] == d.action, (i, e, age[i])
        seen.add(d.action)
    assert seen == set(ACTIONS)  # every rule was exercised


# --- guardrail metrics (issue 11) -----------------------------------------------------------------------


def _guard(imp: float | None, hi: float | None, n: int = 20, limit: float = 10.0) -> GuardrailEvidence:
    return GuardrailEvidence("runtime", limit, n, n, imp, hi, 0.025)


PROMOTABLE = dict(n_control=20, n_treatment=20, improvement_pct=40.0, improvement_lo_pct=20.0,
                  improvement_hi_pct=60.0, p_value=0.001, regression_hi_pct=62.0)  # fmt: skip


def test_a_failing_guardrail_rolls_back_a_winner_and_names_its_numbers() -> None:
    d = decide_evidence(Settings(), Evidence(**PROMOTABLE, guardrails=(_guard(-50.0, -31.0),)))  # type: ignore[arg-type]
    assert d.action == "rollback" and d.automatic
    assert d.reasons[0].startswith("guardrail runtime is 50 % worse, and at least 31 % worse with 97.5 % ")
    assert "beyond its limit of 10 %" in d.reasons[0] and "alpha 0.05 / 2 tests" in d.reasons[0]
    assert not decide_evidence(Settings(auto_rollback=False),
                               Evidence(**PROMOTABLE, guardrails=(_guard(-50.0, -31.0),))).automatic  # type: ignore[arg-type]


def test_a_regression_bound_without_a_point_estimate_still_rolls_back_and_says_the_bound() -> None:
    # e.g. a control mean of exactly 0: no relative estimate, but the band's bound is past the limit
    d = decide_evidence(Settings(), Evidence(**PROMOTABLE, guardrails=(_guard(None, -31.0),)))  # type: ignore[arg-type]
    assert d.action == "rollback"
    assert d.reasons[0].startswith("guardrail runtime is at least 31 % worse with 97.5 % always-valid confidence")
    e = dict(PROMOTABLE, improvement_pct=None, regression_hi_pct=-25.0)
    d = decide_evidence(Settings(), Evidence(**e))  # type: ignore[arg-type]
    assert d.action == "rollback" and d.reasons[0].startswith("treatment is at least 25 % worse with 95 % confidence")


@pytest.mark.parametrize(("guard", "words"), [
    (_guard(None, None, n=1), "guardrail runtime: too little data yet (n = 1/1)"),
    (_guard(-30.0, 5.0), "guardrail runtime is 30 % worse, beyond its limit of 10 % (not yet certain)"),
])  # fmt: skip
def test_a_guardrail_without_enough_evidence_blocks_promotion_but_never_rolls_back(
    guard: GuardrailEvidence, words: str
) -> None:
    d = decide_evidence(Settings(), Evidence(**PROMOTABLE, guardrails=(guard,)))  # type: ignore[arg-type]
    assert d.action == "continue" and words in d.reasons


def test_promotion_says_truthfully_what_was_checked() -> None:
    d = decide_evidence(Settings(), Evidence(**PROMOTABLE, guardrails=(_guard(-3.0, 20.0),)))  # type: ignore[arg-type]
    assert d.action == "promote" and d.reasons[-1] == "guardrails hold: runtime 3 % worse (limit 10 %)"
    d = decide_evidence(Settings(), Evidence(**{**PROMOTABLE, "regression_hi_pct": None}))  # type: ignore[arg-type]
    assert d.action == "promote" and "no guardrail metrics set" in d.reasons[-1]
    assert "no guardrail fails" not in " ".join(d.reasons)


def test_primary_regression_uses_the_bonferroni_band_when_guardrails_exist() -> None:
    e: dict[str, Any] = dict(PROMOTABLE, improvement_pct=-40.0, improvement_lo_pct=-60.0, improvement_hi_pct=-20.0,
                             p_value=0.01)  # fmt: skip
    e["regression_hi_pct"] = -5.0  # the band at alpha/2 still reaches within the limit: no rollback yet
    assert decide_evidence(Settings(), Evidence(**e, guardrails=(_guard(0.0, 20.0),))).action == "continue"
    e["regression_hi_pct"] = -12.0
    d = decide_evidence(Settings(), Evidence(**e, guardrails=(_guard(0.0, 20.0),)))
    assert d.action == "rollback" and "with 97.5 % confidence" in d.reasons[0]


def test_alert_levels() -> None:
    levels = (
        LevelCheck("satisfaction", 5, 0.42, 0.8, alert_below=0.5),
        LevelCheck("errors", 5, 0.25, 0.1, alert_above="2x"),
        LevelCheck("fine", 5, 0.15, 0.1, alert_above="2x", alert_below=0.1),
        LevelCheck("early", 1, 0.0, 0.8, alert_below=0.5),
    )
    d = decide_evidence(Settings(), Evidence(levels=levels))
    assert d.alerts == ["satisfaction 0.42 in treatment, below 0.5 (alert_below)",
                        "errors 0.25 in treatment, above 2x control's 0.1 (alert_above)"]  # fmt: skip


def test_vectorized_twin_equals_scalar_rules_with_guardrails() -> None:
    rng = np.random.default_rng(5)
    k, g = 3000, 3
    s = Settings()
    limits = [10.0, 5.0, 20.0]
    nc, nt = rng.integers(0, 20, k), rng.integers(0, 20, k)
    imp = rng.normal(15, 15, k)
    hi = np.where(rng.random(k) < 0.1, np.nan, imp + rng.uniform(0, 30, k))
    reg = np.where(rng.random(k) < 0.1, np.nan, hi + rng.uniform(0, 10, k) - 5)
    p = rng.uniform(0, 0.1, k)
    g_n = rng.integers(0, 20, (k, g))
    g_imp = np.where(rng.random((k, g)) < 0.05, np.nan, rng.normal(0, 12, (k, g)))
    g_hi = np.where(rng.random((k, g)) < 0.05, np.nan, g_imp + rng.uniform(0, 25, (k, g)))
    codes = decide_vectorized(s, n_control=nc, n_treatment=nt, improvement_pct=imp, improvement_lo_pct=imp - 10,
                              improvement_hi_pct=hi, p_value=p, regression_hi_pct=reg, guardrail_n_min=g_n,
                              guardrail_improvement_pct=g_imp, guardrail_hi_pct=g_hi,
                              guardrail_max_regression=limits)  # fmt: skip
    seen = set()
    for i in range(k):
        guards = tuple(GuardrailEvidence(f"g{j}", limits[j], int(g_n[i, j]), int(g_n[i, j]), _opt(g_imp[i, j]),
                                         _opt(g_hi[i, j])) for j in range(g))  # fmt: skip
        e = Evidence(n_control=int(nc[i]), n_treatment=int(nt[i]), improvement_pct=_opt(imp[i]),
                     improvement_lo_pct=_opt(imp[i] - 10), improvement_hi_pct=_opt(hi[i]), p_value=_opt(p[i]),
                     regression_hi_pct=_opt(reg[i]), guardrails=guards)  # fmt: skip
        d = decide_evidence(s, e)
        assert ACTIONS[int(codes[i])] == d.action, (i, e)
        seen.add(d.action)
    assert seen == {"continue", "promote", "rollback"}
