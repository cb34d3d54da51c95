"""Pure decision rules: (experiment settings, analysis, now) -> Decision with reasons.

No I/O and no heavy imports. The rules, in order:

1. **expire** when ``now − created > max_duration_days``. With ``on_expiry: promote_if_not_worse`` the action
   is ``promote`` instead when the treatment is *not worse*: at least 2 units per arm, no SRM, no guardrail
   fails,
   the improvement estimate is ≥ 0 and its lower confidence bound is above −max_regression (non-inferiority).
2. **hold** on sample ratio mismatch (χ² p < 0.001): the comparison cannot be trusted.
3. **rollback** when a guardrail fails: the treatment is worse by more than ``max_regression`` % (the upper
   bound of the improvement interval — the always-valid confidence sequence in sequential mode — is below
   −max_regression; the two-sided interval used one-sidedly), or a guardrail metric is worse than its own
   limit with always-valid confidence, or the treatment's error rate is above 2x control's and significantly
   higher (one-sided). With m − 1 guardrail metrics, the primary's regression test and each guardrail's use
   level α/m (Bonferroni), so the false-rollback rate stays ≤ α across all of them.
4. **promote** when each arm has ≥ ``sample_size`` units, the difference is significant (always-valid p < α in
   sequential mode, the fixed-horizon test at the pre-registered n in fixed mode), the improvement estimate
   reaches ``improvement_threshold``, and no guardrail metric lacks data (< 2 units per arm) or has an estimate
   beyond its limit (not yet certain enough to roll back: promotion waits).
5. **continue** otherwise, saying what is missing.

The Decision states what the rules conclude; whether it may be *applied automatically* is ``automatic``
(see :func:`allowed_automatically`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from experiment_core.clock import parse_ts

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ACTIONS",
    "SRM_ALPHA",
    "Decision",
    "Evidence",
    "ExperimentLike",
    "GuardrailEvidence",
    "LevelCheck",
    "Settings",
    "allowed_automatically",
    "decide",
    "decide_evidence",
    "decide_vectorized",
    "fmt_p",
    "level_alerts",
    "parse_ts",
]

ACTIONS = ("continue", "promote", "rollback", "expire", "hold")  # index = code of decide_vectorized
SRM_ALPHA = 0.001
ERROR_RATE_FACTOR = 2.0


class _MetricLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def direction(self) -> str: ...


class _TargetsLike(Protocol):
    @property
    def improvement_threshold(self) -> float: ...
    @property
    def max_regression(self) -> float: ...
    @property
    def alpha(self) -> float: ...


class ExperimentLike(Protocol):
    """The attributes of ``experiment_core.store.spec.Experiment`` that the statistics use."""

    @property
    def id(self) -> str: ...
    @property
    def created(self) -> str: ...
    @property
    def metric(self) -> _MetricLike: ...
    @property
    def secondary(self) -> Sequence[_MetricLike]: ...
    @property
    def targets(self) -> _TargetsLike: ...
    @property
    def sample_size(self) -> int: ...
    @property
    def max_duration_days(self) -> float: ...
    @property
    def auto_promote(self) -> bool: ...
    @property
    def auto_rollback(self) -> bool: ...
    @property
    def split(self) -> float: ...
    @property
    def analysis(self) -> str: ...
    @property
    def test(self) -> str: ...
    @property
    def on_expiry(self) -> str: ...


@dataclass(frozen=True)
class Settings:
    """Decision settings; the defaults are the registry defaults users rely on."""

    alpha: float = 0.05
    improvement_threshold: float = 15.0
    max_regression: float = 10.0
    sample_size: int = 10
    max_duration_days: float = 14.0
    auto_promote: bool = True
    auto_rollback: bool = True
    mode: str = "sequential"  # "sequential" | "fixed"
    on_expiry: str = "rollback"  # "rollback" | "promote_if_not_worse"
    created: str | None = None  # ISO-8601; None: never expires
    split: float = 0.5

    @classmethod
    def of(cls, exp: ExperimentLike | Settings) -> Settings:
        if isinstance(exp, Settings):
            return exp
        t = exp.targets
        return cls(
            alpha=float(t.alpha),
            improvement_threshold=float(t.improvement_threshold),
            max_regression=float(t.max_regression),
            sample_size=int(exp.sample_size),
            max_duration_days=float(exp.max_duration_days),
            auto_promote=bool(exp.auto_promote),
            auto_rollback=bool(exp.auto_rollback),
            mode=str(getattr(exp, "analysis", "sequential") or "sequential"),
            on_expiry=str(getattr(exp, "on_expiry", "rollback") or "rollback"),
            created=exp.created or None,
            split=float(getattr(exp, "split", 0.5)),
        )


@dataclass(frozen=True)
class GuardrailEvidence:
    """One guardrail metric (improvements in %, positive = better): its always-valid band at the Bonferroni
    level alpha/m (m = the primary's regression test plus every guardrail), used one-sidedly."""

    metric: str
    max_regression: float
    n_control: int = 0
    n_treatment: int = 0
    improvement_pct: float | None = None
    hi_pct: float | None = None  # upper end of the band at level alpha/m
    level: float = 0.05  # alpha/m


@dataclass(frozen=True)
class LevelCheck:
    """A metric's absolute alert rules (``alert_below`` / ``alert_above``) and the means they look at."""

    metric: str
    n_treatment: int
    treatment_mean: float | None
    control_mean: float | None
    alert_below: float | str | None = None
    alert_above: float | str | None = None


@dataclass(frozen=True)
class Evidence:
    """The numbers the rules look at (all improvements in %, positive = better whatever the direction)."""

    mode: str = "sequential"
    n_control: int = 0
    n_treatment: int = 0
    improvement_pct: float | None = None
    improvement_lo_pct: float | None = None  # decision interval (CS in sequential mode) of the improvement
    improvement_hi_pct: float | None = None
    p_value: float | None = None  # always-valid p (sequential) or fixed-horizon test p (fixed)
    error_rate_control: float | None = None
    error_rate_treatment: float | None = None
    error_p_value: float | None = None  # one-sided: treatment error rate higher
    srm_p_value: float | None = None
    more_trials: int | None = None  # per arm, estimated
    outliers: int = 0
    regression_hi_pct: float | None = None  # the primary's band at alpha/m for the rollback rule (None: hi above)
    guardrails: tuple[GuardrailEvidence, ...] = ()
    levels: tuple[LevelCheck, ...] = ()


@dataclass(frozen=True)
class Decision:
    action: str  # promote | rollback | expire | hold | continue
    reasons: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    automatic: bool = False  # may be applied without asking (auto_promote / auto_rollback)
    expired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reasons": list(self.reasons),
            "alerts": list(self.alerts),
            "automatic": self.automatic,
            "expired": self.expired,
        }


def allowed_automatically(action: str, settings: Settings, *, expired: bool = False) -> bool:
    """Whether the tool may apply ``action`` without asking.

    promote needs ``auto_promote``; rollback needs ``auto_rollback``; an expiry (rolling back) is always
    allowed, so a failed experiment can never quietly stay deployed; hold and continue change nothing.
    """
    if action == "promote":
        return settings.auto_promote
    if action == "rollback":
        return settings.auto_rollback or expired
    return action == "expire"


def fmt_p(p: float) -> str:
    """A p-value for a sentence: 2 significant digits (0.0012, 0.034, 0.21, 3.1e-06)."""
    if p == 0:
        return "0"
    if p < 0.0001:
        return f"{p:.1e}"
    return f"{p:.2g}"


def _pct(x: float) -> str:
    r = round(x)
    if abs(x) < 10 and abs(x - r) > 0.05:
        return f"{x:.1f}"
    return f"{r:.0f}"


def _age_days(settings: Settings, now: datetime | None) -> float | None:
    if settings.created is None or now is None:
        return None
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    created = parse_ts(settings.created)
    if created is None:
        return None  # an unreadable date never expires an experiment by accident
    return (now - created).total_seconds() / 86400.0


def _confidence(level: float) -> str:
    c = 100 * (1 - level)
    return f"{c:.0f}" if abs(c - round(c)) < 0.05 else f"{c:.2f}".rstrip("0").rstrip(".")


def _worse(improvement_pct: float | None) -> str:
    """``"12 % worse, and "`` before the bound of a regression; nothing when there is no point estimate."""
    return "" if improvement_pct is None else f"{_pct(-improvement_pct)} % worse, and "


def _guardrail_failures(s: Settings, e: Evidence) -> list[str]:
    out: list[str] = []
    m = 1 + len(e.guardrails)
    hi = e.regression_hi_pct if e.regression_hi_pct is not None or e.guardrails else e.improvement_hi_pct
    if hi is not None and hi < -s.max_regression:
        out.append(
            f"treatment is {_worse(e.improvement_pct)}at least {_pct(-hi)} % worse with "
            f"{_confidence(s.alpha / m)} % confidence, beyond the allowed regression of "
            f"{_pct(s.max_regression)} %"
        )
    for g in e.guardrails:
        if g.hi_pct is not None and g.hi_pct < -g.max_regression:
            out.append(
                f"guardrail {g.metric} is {_worse(g.improvement_pct)}at least {_pct(-g.hi_pct)} % worse with "
                f"{_confidence(g.level)} % always-valid confidence (alpha {s.alpha:g} / {m} tests), beyond its "
                f"limit of {_pct(g.max_regression)} % (n = {g.n_control}/{g.n_treatment})"
            )
    rc, rt = e.error_rate_control, e.error_rate_treatment
    if (
        rc is not None
        and rt is not None
        and rt > ERROR_RATE_FACTOR * rc
        and e.error_p_value is not None
        and e.error_p_value < s.alpha
    ):
        out.append(
            f"error rate {100 * rt:.0f} % in treatment vs {100 * rc:.0f} % in control, above 2x control "
            f"(p = {fmt_p(e.error_p_value)} < {s.alpha:g})"
        )
    return out


def _guardrail_blockers(e: Evidence) -> tuple[list[str], list[str]]:
    """(what keeps promotion back, what holds) per guardrail: too little data, or an estimate beyond the limit
    that is not yet confident enough to roll back."""
    blocked: list[str] = []
    held: list[str] = []
    for g in e.guardrails:
        if min(g.n_control, g.n_treatment) < 2 or g.improvement_pct is None or g.hi_pct is None:
            blocked.append(f"guardrail {g.metric}: too little data yet (n = {g.n_control}/{g.n_treatment})")
        elif g.improvement_pct < -g.max_regression:
            blocked.append(f"guardrail {g.metric} is {_pct(-g.improvement_pct)} % worse, beyond its limit of "
                           f"{_pct(g.max_regression)} % (not yet certain)")  # fmt: skip
        else:
            change = f"{_pct(abs(g.improvement_pct))} % {'better' if g.improvement_pct >= 0 else 'worse'}"
            held.append(f"{g.metric} {change} (limit {_pct(g.max_regression)} %)")
    return blocked, held


def _factor(level: float | str, control: float | None) -> float | None:
    if isinstance(level, str):
        return None if control is None else float(level.rstrip("x")) * abs(control)
    return float(level)


def level_alerts(levels: Sequence[LevelCheck]) -> list[str]:
    """``alert_below`` / ``alert_above``: the treatment's mean (≥ 2 units) beyond an absolute level, or beyond a
    multiple (``"2x"``) of the control's mean."""
    out: list[str] = []
    for lv in levels:
        if lv.n_treatment < 2 or lv.treatment_mean is None:
            continue
        for key, level in (("alert_below", lv.alert_below), ("alert_above", lv.alert_above)):
            if level is None:
                continue
            bound = _factor(level, lv.control_mean)
            if bound is None:
                continue
            beyond = lv.treatment_mean < bound if key == "alert_below" else lv.treatment_mean > bound
            if beyond:
                what = f"{level} control's {lv.control_mean:.4g}" if isinstance(level, str) else f"{bound:.4g}"
                side = "below" if key == "alert_below" else "above"
                out.append(f"{lv.metric} {lv.treatment_mean:.4g} in treatment, {side} {what} ({key})")
    return out


class _Guardrails(NamedTuple):
    """What the guardrails say: failures (roll back), what keeps promotion back, and what holds."""

    failures: list[str]
    blocked: list[str]
    held: list[str]


def decide_evidence(settings: Settings, e: Evidence, *, age_days: float | None = None) -> Decision:
    """The rules on plain numbers, in order (see the module docstring)."""
    s = settings
    g = _Guardrails(_guardrail_failures(s, e), *_guardrail_blockers(e))
    srm = e.srm_p_value is not None and e.srm_p_value < SRM_ALPHA
    alerts = _alerts(s, e)
    expired = age_days is not None and age_days > s.max_duration_days
    if expired:  # 1. expiry
        assert age_days is not None
        action, reasons = _on_expiry(s, e, age_days, g, srm)
    elif srm:  # 2. sample ratio mismatch
        action, reasons = "hold", [alerts[0], "decisions are held until the assignment is fixed"]
    elif g.failures:  # 3. guardrails
        action, reasons = "rollback", g.failures
    else:  # 4. promotion, else 5. continue
        ok, reasons = _promotion(s, e, g)
        action = "promote" if ok else "continue"
        if not ok:
            reasons += _what_is_missing(s, e)
    return Decision(action, reasons, alerts, allowed_automatically(action, s, expired=expired), expired=expired)


def _alerts(s: Settings, e: Evidence) -> list[str]:
    """Anomalies worth a person's look, whatever the action: SRM, error rate, outliers, alert levels."""
    alerts: list[str] = []
    if e.srm_p_value is not None and e.srm_p_value < SRM_ALPHA:
        alerts.append(
            f"sample ratio mismatch: {e.n_control} control vs {e.n_treatment} treatment units for a "
            f"{100 * s.split:.0f} % treatment share (p = {fmt_p(e.srm_p_value)} < {SRM_ALPHA:g})"
        )
    rc, rt = e.error_rate_control, e.error_rate_treatment
    if rc is not None and rt is not None and rt > ERROR_RATE_FACTOR * rc:
        alerts.append(f"error rate {100 * rt:.0f} % in treatment vs {100 * rc:.0f} % in control (above 2x)")
    if e.outliers:
        alerts.append(f"{e.outliers} outlier trial(s) (modified z-score > 3.5)")
    return alerts + level_alerts(e.levels)


def _on_expiry(s: Settings, e: Evidence, age_days: float, g: _Guardrails, srm: bool) -> tuple[str, list[str]]:
    """Rule 1: expire (restore control), or with ``promote_if_not_worse`` promote a treatment not worse."""
    head = f"running for {age_days:.1f} days, past the maximum of {s.max_duration_days:g} days"
    if s.on_expiry != "promote_if_not_worse":
        return "expire", [head, "no decision was reached in time; restoring control"]
    imp, lo = e.improvement_pct, e.improvement_lo_pct
    if (min(e.n_control, e.n_treatment) >= 2 and not srm and not g.failures and not g.blocked and imp is not None
            and imp >= 0 and lo is not None and lo > -s.max_regression):  # fmt: skip
        return "promote", [
            head,
            f"not worse: improvement {_pct(imp)} % ≥ 0 and its lower bound "
            f"{_pct(lo)} % > −{_pct(s.max_regression)} % (on_expiry: promote_if_not_worse)",
        ]
    why = g.failures[0] if g.failures else g.blocked[0] if g.blocked else "not shown to be not worse than control"
    return "expire", [head, f"{why}; restoring control"]


def _promotion(s: Settings, e: Evidence, g: _Guardrails) -> tuple[bool, list[str]]:
    """Rule 4: whether to promote, and the reasons for and against."""
    n_min = min(e.n_control, e.n_treatment)
    reasons: list[str] = []
    ok = True
    if n_min < s.sample_size:
        ok = False
        reasons.append(f"only {n_min} of {s.sample_size} trials per arm")
    if e.improvement_pct is None or e.p_value is None:
        ok = False
        if n_min >= 2:
            reasons.append("the difference cannot be tested yet (no variation in the values)")
    else:
        label = "always-valid p" if e.mode == "sequential" else "p"
        significant = e.p_value < s.alpha
        ok = ok and significant
        reasons.append(f"{label} = {fmt_p(e.p_value)} < {s.alpha:g}" if significant
                       else f"{label} = {fmt_p(e.p_value)} ≥ {s.alpha:g}, not significant")  # fmt: skip
        reached = e.improvement_pct >= s.improvement_threshold
        ok = ok and reached
        reasons.append(f"improvement {_pct(e.improvement_pct)} % {'≥' if reached else '<'} target "
                       f"{_pct(s.improvement_threshold)} %")  # fmt: skip
    if g.blocked:
        return False, reasons + g.blocked
    if ok:
        reasons.append("guardrails hold: " + ", ".join(g.held) if g.held
                       else "no regression beyond the limits; no guardrail metrics set")  # fmt: skip
    return ok, reasons


def _what_is_missing(s: Settings, e: Evidence) -> list[str]:
    """Rule 5 (continue): when the fixed-horizon test is final, or how many more trials may be needed."""
    if e.mode == "fixed" and min(e.n_control, e.n_treatment) >= s.sample_size:
        return [
            f"the fixed-horizon test at {s.sample_size} units per arm is final; the experiment stays "
            f"running until it expires after {s.max_duration_days:g} days"
        ]
    if e.more_trials is not None and e.more_trials > 0:
        return [f"≈ {e.more_trials} more trials per arm"]
    return []


def decide(
    experiment: ExperimentLike | Settings, analysis: Any, now: datetime | None = None
) -> Decision:
    """Apply the rules to an analysis (an ``AnalysisResult`` or an :class:`Evidence`) at time ``now``."""
    settings = Settings.of(experiment)
    evidence = analysis if isinstance(analysis, Evidence) else analysis.evidence()
    return decide_evidence(settings, evidence, age_days=_age_days(settings, now))


# ---------------------------------------------------------------------------------------------------------
# Vectorized twin (for simulations): same rules, action codes only. Tested equal to decide_evidence.
# ---------------------------------------------------------------------------------------------------------


def decide_vectorized(
    settings: Settings,
    *,
    n_control: npt.ArrayLike,
    n_treatment: npt.ArrayLike,
    improvement_pct: npt.ArrayLike,
    improvement_lo_pct: npt.ArrayLike,
    improvement_hi_pct: npt.ArrayLike,
    p_value: npt.ArrayLike,
    error_rate_control: npt.ArrayLike = math.nan,
    error_rate_treatment: npt.ArrayLike = math.nan,
    error_p_value: npt.ArrayLike = math.nan,
    srm_p_value: npt.ArrayLike = math.nan,
    age_days: npt.ArrayLike = math.nan,
    regression_hi_pct: npt.ArrayLike | None = None,
    guardrail_n_min: npt.ArrayLike | None = None,
    guardrail_improvement_pct: npt.ArrayLike | None = None,
    guardrail_hi_pct: npt.ArrayLike | None = None,
    guardrail_max_regression: Sequence[float] = (),
) -> np.ndarray[Any, np.dtype[np.int8]]:
    """Action codes (indices into :data:`ACTIONS`) for arrays of evidence; NaN stands for None.

    Guardrails: arrays whose last axis runs over the guardrails (``guardrail_max_regression`` their limits);
    ``regression_hi_pct`` replaces ``improvement_hi_pct`` in the rollback rule when given."""
    import numpy as np

    s = settings
    nc, nt = np.asarray(n_control), np.asarray(n_treatment)
    imp, lo, hi = np.asarray(improvement_pct, float), np.asarray(improvement_lo_pct, float), np.asarray(
        improvement_hi_pct, float
    )
    p = np.asarray(p_value, float)
    rc, rt = np.asarray(error_rate_control, float), np.asarray(error_rate_treatment, float)
    ep, srm_p = np.asarray(error_p_value, float), np.asarray(srm_p_value, float)
    age = np.asarray(age_days, float)
    shape = np.broadcast_shapes(nc.shape, nt.shape, imp.shape, lo.shape, hi.shape, p.shape, rc.shape,
                                rt.shape, ep.shape, srm_p.shape, age.shape)
    n_min = np.minimum(nc, nt)
    reg_hi = hi if regression_hi_pct is None else np.asarray(regression_hi_pct, float)
    g_fail, g_block = _guardrails_vectorized(guardrail_n_min, guardrail_improvement_pct, guardrail_hi_pct,
                                             guardrail_max_regression)  # fmt: skip
    with np.errstate(invalid="ignore"):
        srm = srm_p < SRM_ALPHA
        fail = (reg_hi < -s.max_regression) | ((rt > ERROR_RATE_FACTOR * rc) & (ep < s.alpha)) | g_fail
        promote = (n_min >= s.sample_size) & (p < s.alpha) & (imp >= s.improvement_threshold) & ~np.isnan(imp)
        promote = promote & ~g_block
        expired = age > s.max_duration_days
        not_worse = (n_min >= 2) & ~srm & ~fail & ~g_block & (imp >= 0) & (lo > -s.max_regression)
    out = np.zeros(shape, dtype=np.int8)
    out[...] = np.where(promote, 1, 0)
    out[...] = np.where(fail, 2, out)
    out[...] = np.where(srm, 4, out)
    exp_code = np.where(not_worse, 1, 3) if s.on_expiry == "promote_if_not_worse" else 3
    out[...] = np.where(expired, exp_code, out)
    return out


def _guardrails_vectorized(n_min: npt.ArrayLike | None, improvement_pct: npt.ArrayLike | None,
                           hi_pct: npt.ArrayLike | None, max_regression: Sequence[float]) -> tuple[Any, Any]:
    """(a guardrail fails, a guardrail keeps promotion back) over the guardrails on the last axis."""
    import numpy as np

    if not max_regression:
        return False, False
    lim = np.asarray(max_regression, float)
    g_n = np.asarray(n_min, float)
    g_imp = np.asarray(improvement_pct, float)
    g_hi = np.asarray(hi_pct, float)
    with np.errstate(invalid="ignore"):
        g_fail = (g_hi < -lim).any(axis=-1)
        g_block = ((g_n < 2) | np.isnan(g_imp) | np.isnan(g_hi) | (g_imp < -lim)).any(axis=-1)
    return g_fail, g_block
