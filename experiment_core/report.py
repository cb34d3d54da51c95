"""Renderers: the seed's Status Report and Statistical Analysis Report, from the analysis dicts (``to_dict()``).

Pure functions from plain data to text, so every format is testable without a repository.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

STATUS_BADGE = {
    "running": "🟡 Running",
    "promoted": "✅ Promoted to production",
    "rolled_back": "🔴 Failed - Rolled back",
    "expired": "⏱️ Expired",
    "draft": "📝 Draft",
}
VERDICT = {
    "promote": "PROMOTE",
    "rollback": "ROLL BACK",
    "expire": "EXPIRE",
    "hold": "UNHEALTHY",
    "continue": "COLLECTING",
}


def num(value: Any, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits, no exponent for everyday magnitudes."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e6 or abs(value) < 1e-4:
            return f"{value:.{digits}g}"
        return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:.0f}"
    return str(value)


def pvalue(p: Any) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p < 0.0001 else f"{p:.4f}"


def progress_bar(done: int, total: int, width: int = 10) -> str:
    total = max(total, 1)
    frac = min(done / total, 1.0)
    filled = round(frac * width)
    return f"{'█' * filled}{'░' * (width - filled)} {round(frac * 100)}% ({min(done, total)}/{total})"


def _arm_n(analysis: Mapping[str, Any], arm: str) -> int:
    return int((analysis.get(arm) or {}).get("n") or 0)


def improvement_words(analysis: Mapping[str, Any]) -> str:
    imp = analysis.get("improvement_pct")
    if imp is None:
        return "no estimate yet"
    higher = analysis.get("direction") == "higher"
    if imp >= 0:
        return f"{abs(imp):.1f} % {'higher' if higher else 'faster'}"
    return f"{abs(imp):.1f} % {'lower' if higher else 'slower'}"


def verdict_line(exp_id: str, analysis: Mapping[str, Any]) -> str:
    """The decision in words with its numbers: ``PROMOTE exp-…: 12.3 % faster (95 % CI …), p = 0.003, n = 30/30``."""
    decision = analysis.get("decision") or {}
    action = decision.get("action", "continue")
    word = VERDICT.get(action, action.upper())
    n = f"n = {_arm_n(analysis, 'control')}/{_arm_n(analysis, 'treatment')}"
    if action == "continue":
        more = analysis.get("more_trials_needed")
        if more:
            word = f"COLLECTING (≈ {more} more trials)"
        elif _arm_n(analysis, "control") >= 2 and _arm_n(analysis, "treatment") >= 2:
            word = "INCONCLUSIVE (within noise)"
    if analysis.get("improvement_pct") is None:
        return f"{word} {exp_id}: {n}"
    rel = analysis.get("relative_ci95") or [None, None]
    ci = f" (95 % CI {num(rel[0], 1)} … {num(rel[1], 1)} %)" if rel[0] is not None else ""
    return f"{word} {exp_id}: {improvement_words(analysis)}{ci}, p = {pvalue(analysis.get('p_value'))}, {n}"


def _arm_block(title: str, arm: Mapping[str, Any], unit: str) -> list[str]:
    return [
        f"**{title}** (n={arm.get('n', 0)}):",
        f"- Mean: {num(arm.get('mean'))} {unit}",
        f"- Std Dev: {num(arm.get('std'))} {unit}",
        f"- Range: {num(arm.get('min'))}-{num(arm.get('max'))} {unit}",
        "",
    ]


def effect_words(d: float | None) -> str:
    if d is None:
        return "n/a"
    size = abs(d)
    label = "negligible" if size < 0.2 else "small" if size < 0.5 else "medium" if size < 0.8 else "large"
    if size >= 1.2:
        label = "very large"
    return f"{d:.2f} ({label} effect)"


RECOMMENDATION = {
    "promote": "PROMOTE TO PRODUCTION",
    "rollback": "ROLL BACK",
    "expire": "EXPIRE (max duration reached)",
    "hold": "HOLD (data quality problem)",
    "continue": "CONTINUE COLLECTING DATA",
}


def analysis_markdown(exp_id: str, analysis: Mapping[str, Any], unit: str = "s") -> str:
    """The seed's STATISTICAL ANALYSIS report, verdict first."""
    control = analysis.get("control") or {}
    treatment = analysis.get("treatment") or {}
    decision = analysis.get("decision") or {}
    lines = [verdict_line(exp_id, analysis), "", f"## STATISTICAL ANALYSIS - {exp_id}", "", "### Data Summary", ""]
    lines += _arm_block("Control Group", control, unit)
    lines += _arm_block("Treatment Group", treatment, unit)
    lines += ["### Statistical Tests", ""]
    diff = analysis.get("difference")
    saved = ""
    if diff is not None:
        better = -diff if analysis.get("direction", "lower") == "lower" else diff
        saved = f" ({num(abs(better))} {unit} {'saved' if better >= 0 else 'lost'})"
    lines.append(f"**Improvement**: {improvement_words(analysis)}{saved}")
    lines.append("")
    test = {"welch": "Welch's t-test", "student": "Student's t-test", "mann-whitney": "Mann-Whitney U"}.get(
        str(analysis.get("test")), str(analysis.get("test"))
    )
    lines += [
        f"**{test}**:",
        f"- statistic: {num(analysis.get('statistic'))}",
        f"- p-value: {pvalue(analysis.get('p_value'))}",
        f"- Degrees of freedom: {num(analysis.get('df'), 1)}",
        "",
        f"**Effect Size** (Cohen's d): {effect_words(analysis.get('effect_size'))}",
        "",
    ]
    ci = analysis.get("ci95") or [None, None]
    lines.append(f"**95% Confidence Interval** (treatment − control): [{num(ci[0])}, {num(ci[1])}] {unit}")
    seq = analysis.get("sequential") or {}
    if seq:
        lines.append(f"**Always-valid p-value** (checked at every push): {pvalue(seq.get('p_value'))}")
    lines += ["", "### Decision Criteria", ""]
    reasons: Sequence[str] = decision.get("reasons") or []
    mark = "✅" if decision.get("action") == "promote" else "•"
    lines += [f"{mark} {reason}" for reason in reasons] or ["• no data yet"]
    lines += ["", f"### RECOMMENDATION: {RECOMMENDATION.get(decision.get('action', 'continue'), 'CONTINUE')}", ""]
    return "\n".join(lines)


def experiment_status_markdown(
    index: int, exp: Mapping[str, Any], analysis: Mapping[str, Any], sample_size: int
) -> str:
    """One experiment in the seed's Status Report Format."""
    n = min(_arm_n(analysis, "control"), _arm_n(analysis, "treatment"))
    status = exp["status"]
    badge = STATUS_BADGE.get(status, status)
    if status == "running":
        badge = f"{badge} ({n}/{sample_size} trials per arm)"
    control = analysis.get("control") or {}
    treatment = analysis.get("treatment") or {}
    decision = analysis.get("decision") or {}
    unit = exp.get("unit", "s")
    lines = [
        f"### Experiment #{index}: {exp['id']}",
        "",
        f"**Name**: {exp['name']}",
        f"**Status**: {badge}",
        f"**Hypothesis**: {exp.get('hypothesis') or '(none)'}",
        "",
        "**Progress**:",
        "```",
        f"Trials: {progress_bar(n, sample_size)}",
        "```",
        "",
        "**Current Results**:" if status == "running" else "**Final Results**:",
        f"- Control avg: {num(control.get('mean'))} {unit}",
        f"- Treatment avg: {num(treatment.get('mean'))} {unit}",
        f"- Change: {improvement_words(analysis)}",
        f"- p-value: {pvalue(analysis.get('p_value'))}",
        "",
    ]
    if status == "running":
        reasons = decision.get("reasons") or []
        lines.append(f"**Action**: {decision.get('action', 'continue').capitalize()}"
                     + (f" ({reasons[0]})" if reasons else ""))  # fmt: skip
    else:
        lines.append("**Action**: None (experiment ended)")
    for alert in exp.get("alerts", []):
        lines.append(f"⚠️  {alert}")
    lines += ["", "---", ""]
    return "\n".join(lines)


def summary_markdown(summary: Mapping[str, Any]) -> str:
    done = summary["successful"] + summary["failed"]
    rate = f" ({round(100 * summary['successful'] / done)}% success rate)" if done else ""
    lines = [
        "## SUMMARY",
        "",
        f"- **Active**: {summary['active']} experiment{'s' if summary['active'] != 1 else ''}",
        f"- **Successful**: {summary['successful']} experiments{rate}",
        f"- **Failed**: {summary['failed']} experiments (rolled back or expired)",
    ]
    if summary.get("time_saved_per_month_s") is not None:
        lines.append(f"- **Total ROI**: {summary['time_saved_per_month_s'] / 3600:.1f} hours/month saved")
    if summary.get("skipped_events"):
        lines.append(f"- **Ledger**: {summary['skipped_events']} unreadable line(s) skipped")
    return "\n".join(lines) + "\n"
