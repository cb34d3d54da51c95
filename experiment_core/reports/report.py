"""Renderers: the seed's Status Report and Statistical Analysis Report, from the analysis dicts (``to_dict()``).

Pure functions from plain data to text, so every format is testable without a repository.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from experiment_core.evidence.decide import fmt_p

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
    """A p-value as the decision reasons write it (one format everywhere)."""
    return "n/a" if p is None else fmt_p(p)


def progress_bar(done: int, total: int, width: int = 10, *, open_ended: bool = False) -> str:
    """``███████░░░ 70% (7/10)``. ``open_ended``: more trials are needed but how many is unknown (never 100 %)."""
    total = max(total, 1)
    frac = min(done / total, 1.0)
    if open_ended:
        frac = min(frac, (width - 1) / width)
    filled = min(round(frac * width), width - 1) if open_ended else round(frac * width)
    pct = min(round(frac * 100), 99) if open_ended or done < total else 100
    count = f"{done}/{total}+" if open_ended else f"{min(done, total)}/{total}"
    return f"{'█' * filled}{'░' * (width - filled)} {pct}% ({count})"


def progress(analysis: Mapping[str, Any], sample_size: int) -> tuple[int, int, bool]:
    """(units per arm so far, units per arm the decision needs, open-ended) for bars and percentages.

    The decision needs ``sample_size`` units per arm, or the estimated trials to a decision when that is larger;
    while the decision is ``continue`` the bar is never full: with no estimate of the trials still needed it is
    open-ended (``10/10+``)."""
    n = min(_arm_n(analysis, "control"), _arm_n(analysis, "treatment"))
    needed = max(sample_size, 1)
    if (analysis.get("decision") or {}).get("action", "continue") != "continue":
        return n, needed, False
    more = analysis.get("more_trials_needed")
    if more:
        needed = max(needed, n + int(more))
    if n >= needed:
        return n, max(needed, n), True
    return n, needed, False


def progress_line(analysis: Mapping[str, Any], sample_size: int, width: int = 10) -> str:
    done, needed, open_ended = progress(analysis, sample_size)
    return progress_bar(done, needed, width, open_ended=open_ended)


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
    word = verdict_word(analysis)
    n = f"n = {_arm_n(analysis, 'control')}/{_arm_n(analysis, 'treatment')}"
    if analysis.get("improvement_pct") is None:
        return f"{word} {exp_id}: {n}"
    rel = analysis.get("relative_ci95") or [None, None]
    ci = f" (95 % CI {rel[0]:.1f} … {rel[1]:.1f} %)" if rel[0] is not None and rel[1] is not None else ""
    return f"{word} {exp_id}: {improvement_words(analysis)}{ci}, p = {pvalue(analysis.get('p_value'))}, {n}"


def verdict_word(analysis: Mapping[str, Any]) -> str:
    """The first word(s) of the verdict line: ``PROMOTE``, ``COLLECTING (≈ 4 more trials)``, ``INCONCLUSIVE …``."""
    decision = analysis.get("decision") or {}
    action = decision.get("action", "continue")
    word = VERDICT.get(action, str(action).upper())
    if action == "hold" and (analysis.get("srm") or {}).get("mismatch"):
        return "UNHEALTHY (SRM)"
    if action == "continue":
        more = analysis.get("more_trials_needed")
        if more:
            return f"COLLECTING (≈ {more} more trials)"
        if _arm_n(analysis, "control") >= 2 and _arm_n(analysis, "treatment") >= 2:
            return "INCONCLUSIVE (within noise)"
    return word


def change_with_ci(improvement: Any, ci: Any, direction: str | None = "lower") -> str:
    """``−12.3 % (−18.0 … −6.5 %)`` as improvement (positive = better); ``n/a`` without an estimate."""
    if improvement is None:
        return "n/a"
    text = f"{improvement:+.1f} %"
    if ci and ci[0] is not None and ci[1] is not None:
        text += f" ({ci[0]:+.1f} … {ci[1]:+.1f} %)"
    return text.replace("-", "−")


def metric_rows(analysis: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: the primary first (it decides), then each secondary (Holm-adjusted p).

    Keys: ``metric``, ``role`` (primary | secondary), ``control``, ``treatment`` (means), ``n`` (``"c/t"``),
    ``change`` (improvement %, positive = better), ``ci`` ([lo, hi] in %), ``p``, ``decision`` (words).
    """
    rows = [{
        "metric": analysis.get("metric"),
        "role": "primary",
        "control": (analysis.get("control") or {}).get("mean"),
        "treatment": (analysis.get("treatment") or {}).get("mean"),
        "n": f"{_arm_n(analysis, 'control')}/{_arm_n(analysis, 'treatment')}",
        "change": analysis.get("improvement_pct"),
        "ci": analysis.get("relative_ci95"),
        "p": analysis.get("p_value"),
        "decision": verdict_word(analysis),
    }]  # fmt: skip
    for sec in analysis.get("secondary") or []:
        imp = sec.get("improvement_pct")
        if sec.get("significant"):
            words = "better (significant)" if (imp or 0) >= 0 else "WORSE (significant)"
        else:
            words = "no clear difference" if imp is not None else "no data"
        guard = sec.get("guardrail")
        if guard:
            words = guardrail_words(sec, guard)
        rows.append({
            "metric": sec.get("metric"),
            "role": "guardrail" if guard else "secondary",
            "control": (sec.get("control") or {}).get("mean"),
            "treatment": (sec.get("treatment") or {}).get("mean"),
            "n": f"{(sec.get('control') or {}).get('n', 0)}/{(sec.get('treatment') or {}).get('n', 0)}",
            "change": imp,
            "ci": sec.get("relative_ci95"),
            "p": sec.get("p_holm") if sec.get("p_holm") is not None else sec.get("p_value"),
            "decision": words,
        })  # fmt: skip
    return rows


def guardrail_words(sec: Mapping[str, Any], guard: Mapping[str, Any]) -> str:
    """What a guardrail does to the decision: fails (rolls back), blocks promotion, or holds."""
    imp, limit = sec.get("improvement_pct"), float(guard.get("max_regression") or 0)
    band = guard.get("relative_ci") or [None, None]
    n = min(int((sec.get(arm) or {}).get("n") or 0) for arm in ("control", "treatment"))
    if band[1] is not None and band[1] < -limit:
        return f"GUARDRAIL FAILS (worse than −{limit:g} %)"
    if n < 2 or imp is None or band[1] is None:
        return "guardrail: too little data (blocks promotion)"
    if imp < -limit:
        return f"guardrail: beyond −{limit:g} %, not yet certain (blocks promotion)"
    return f"guardrail holds (limit −{limit:g} %)"


METRIC_HEADERS = ("metric", "control", "treatment", "n", "change (95 % CI)", "p", "decision")


def metric_cells(row: Mapping[str, Any], unit: str = "") -> list[str]:
    """A metric row as display strings, in :data:`METRIC_HEADERS` order (shared by Markdown, HTML, terminal)."""
    u = f" {unit}" if unit and row.get("role") == "primary" else ""

    def mean(v: Any) -> str:
        return "n/a" if v is None else f"{num(v)}{u}"

    name = str(row.get("metric"))
    return [
        name if row.get("role") == "primary" else f"{name} ({row.get('role')})",
        mean(row.get("control")),
        mean(row.get("treatment")),
        str(row.get("n")),
        change_with_ci(row.get("change"), row.get("ci")),
        pvalue(row.get("p")),
        str(row.get("decision")),
    ]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def metrics_table_markdown(analysis: Mapping[str, Any], unit: str = "") -> str:
    """A GitHub-flavoured table, one row per metric."""
    lines = ["| " + " | ".join(METRIC_HEADERS) + " |", "| " + " | ".join(["---", *["---:"] * 5, "---"]) + " |"]
    for row in metric_rows(analysis):
        lines.append("| " + " | ".join(_md_cell(c) for c in metric_cells(row, unit)) + " |")
    return "\n".join(lines) + "\n"


def warnings(analysis: Mapping[str, Any], alerts: Sequence[str] = ()) -> list[str]:
    """Everything a reader should not miss, deduplicated, in a stable order: decision alerts, SRM, ledger alerts,
    skipped ledger lines."""
    out: list[str] = []
    for text in [*((analysis.get("decision") or {}).get("alerts") or []), *alerts]:
        if text not in out:
            out.append(str(text))
    srm = analysis.get("srm") or {}
    if srm.get("mismatch") and not any("ratio" in w for w in out):
        out.append(f"sample ratio mismatch (p = {pvalue(srm.get('p_value'))}): the assignment looks broken")
    if analysis.get("skipped_events"):
        out.append(f"{analysis['skipped_events']} unreadable ledger line(s) skipped")
    return out


def _arm_block(title: str, arm: Mapping[str, Any], unit: str) -> list[str]:
    return [
        f"**{title}** (n={arm.get('n', 0)}):",
        f"- Mean: {num(arm.get('mean'))} {unit}",
        f"- Std Dev: {num(arm.get('std'))} {unit}",
        f"- Range: {num(arm.get('min'))}-{num(arm.get('max'))} {unit}",
        "",
    ]


def blocking_words(analysis: Mapping[str, Any]) -> str:
    """How the arms were compared (``blocking``), with the pooled numbers it replaced."""
    by, blocks = analysis.get("blocking", "none"), analysis.get("blocks", 0)
    if by == "none":
        return "pooled (no two machines or pairs hold both arms)"
    pooled = analysis.get("pooled") or {}
    what = {"machine": "machines", "pair": "interleaved pairs"}.get(str(by), str(by))
    text = f"within {blocks} {what} (log scale, {by} as fixed effects)"
    if pooled.get("improvement_pct") is not None:
        text += f"; pooled it would be {pooled['improvement_pct']:+.1f} %, p = {pvalue(pooled.get('p_value'))}"
    return text.replace("-", "−") if "pooled it" in text else text


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


def analysis_markdown(exp_id: str, analysis: Mapping[str, Any], unit: str = "s", alerts: Sequence[str] = ()) -> str:
    """The seed's STATISTICAL ANALYSIS report: verdict first, one row per metric, the details, warnings last."""
    control = analysis.get("control") or {}
    treatment = analysis.get("treatment") or {}
    decision = analysis.get("decision") or {}
    lines = [verdict_line(exp_id, analysis), "", metrics_table_markdown(analysis, unit),
             f"## STATISTICAL ANALYSIS - {exp_id}", "", "### Data Summary", ""]  # fmt: skip
    lines += _arm_block("Control Group", control, unit)
    lines += _arm_block("Treatment Group", treatment, unit)
    timing = analysis.get("timing")
    if isinstance(timing, Mapping) and timing.get("text"):
        lines += [f"**Timing**: {timing['text']}", ""]
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
    pooled = " of the pooled means; the test above compares within blocks" if analysis.get("pooled") else ""
    lines.append(f"**95% Confidence Interval** (treatment − control{pooled}): [{num(ci[0])}, {num(ci[1])}] {unit}")
    seq = analysis.get("sequential") or {}
    if seq:
        lines.append(f"**Always-valid p-value** (checked at every push): {pvalue(seq.get('p_value'))}")
    lines.append(f"**Comparison**: {blocking_words(analysis)}")
    lines += ["", "### Decision Criteria", ""]
    reasons: Sequence[str] = decision.get("reasons") or []
    mark = "✅" if decision.get("action") == "promote" else "•"
    lines += [f"{mark} {reason}" for reason in reasons] or ["• no data yet"]
    lines += ["", f"### RECOMMENDATION: {RECOMMENDATION.get(decision.get('action', 'continue'), 'CONTINUE')}", ""]
    found = warnings(analysis, alerts)
    if found:
        lines += ["### Warnings", "", *[f"⚠️  {w}" for w in found], ""]
    return "\n".join(lines)


def experiment_status_markdown(
    index: int, exp: Mapping[str, Any], analysis: Mapping[str, Any], sample_size: int
) -> str:
    """One experiment in the seed's Status Report Format."""
    n, needed, open_ended = progress(analysis, sample_size)
    status = exp["status"]
    badge = STATUS_BADGE.get(status, status)
    if status == "running":
        badge = f"{badge} ({n}/{needed}{'+' if open_ended else ''} trials per arm)"
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
        f"Trials: {progress_line(analysis, sample_size)}",
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
    if exp.get("this_worktree"):
        files = ", ".join(exp.get("files", [])) or "its files"
        lines.append(f"**This worktree**: {exp['this_worktree']} unit in {files} (deployed through git; "
                     f"`experiment-hook restore {exp['id']}` takes it out)")  # fmt: skip
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
