"""``report -o FILE.png``: the report's four plots drawn with matplotlib (the optional ``png`` extra).

matplotlib is imported here only, and only when a PNG is asked for; without it the user gets one line naming the
extra to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiment_core.errors import UserError
from experiment_core.reports import svg
from experiment_core.reports.report import verdict_line
from experiment_core.reports.report_html import ExperimentReport, changes, margins


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UserError("report -o FILE.png", "matplotlib is not installed",
                        "pip install 'experiment-hook[png]', or write .html") from None  # fmt: skip
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _change(ax: Any, report: ExperimentReport) -> None:
    promote, rollback = margins(report.exp)
    rows = changes(report.analysis)
    ax.axvline(0, color=svg.INK, lw=1)
    ax.axvline(promote, color=svg.PROMOTE_COLOUR, ls="--", lw=1, label=f"promote ≥ {promote:g} %")
    ax.axvline(-rollback, color=svg.ROLLBACK_COLOUR, ls="--", lw=1, label=f"roll back ≤ −{rollback:g} %")
    for i, c in enumerate(rows):
        colour = svg.ACTION_COLOURS.get(c.action, svg.ACTION_COLOURS["none"])
        if c.estimate is None:
            continue
        if c.lo is not None and c.hi is not None:
            ax.plot([c.lo, c.hi], [i, i], color=colour, lw=5, alpha=0.55, solid_capstyle="butt")
        ax.plot([c.estimate], [i], "o", color=colour, ms=8)
    ax.set_yticks(range(len(rows)), [c.name for c in rows])
    ax.invert_yaxis()
    ax.set_xlabel("improvement (%), positive = better")
    ax.set_title("(a) Change of each metric, 95 % CI", loc="left", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")


def _sequential(ax: Any, report: ExperimentReport) -> None:
    promote, rollback = margins(report.exp)
    path = report.path
    ax.set_title("(b) Estimate and always-valid band", loc="left", fontsize=10)
    if not path:
        ax.text(0.5, 0.5, "not enough data yet", ha="center", transform=ax.transAxes)
        return
    n = [p.n for p in path]
    ax.fill_between(n, [p.lo for p in path], [p.hi for p in path], color=svg.ARM_COLOURS["control"], alpha=0.2)
    ax.plot(n, [p.estimate for p in path], color=svg.ARM_COLOURS["control"], lw=2)
    ax.axhline(0, color=svg.INK, lw=1)
    ax.axhline(promote, color=svg.PROMOTE_COLOUR, ls="--", lw=1)
    ax.axhline(-rollback, color=svg.ROLLBACK_COLOUR, ls="--", lw=1)
    cross = svg.first_crossing(path, promote, rollback)
    if cross is not None:
        ax.axvline(path[cross].n, color=svg.INK, ls=":", lw=1)
        ax.annotate(f"band excludes 0 at n = {path[cross].n}", (path[cross].n, path[cross].estimate), fontsize=7)
    tail = path[len(path) // 3:] or path
    lo = min([p.lo for p in tail] + [0.0, -rollback])
    hi = max([p.hi for p in tail] + [0.0, promote])
    pad = (hi - lo) * 0.1 or 1.0
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("units so far (both arms)")
    ax.set_ylabel("improvement (%)")


def _distribution(ax: Any, report: ExperimentReport, unit: str) -> None:
    arms = [(arm, list(v)) for arm, v in report.units.items() if v]
    ax.set_title("(c) Distribution of each arm", loc="left", fontsize=10)
    if not arms:
        ax.text(0.5, 0.5, "no values yet", ha="center", transform=ax.transAxes)
        return
    ax.boxplot([v for _, v in arms], vert=False, showmeans=True, widths=0.5)
    for i, (arm, values) in enumerate(arms, start=1):
        ys = [i + 0.33 + svg.jitter(j, 0.06) for j in range(len(values))]
        ax.scatter(values, ys, s=10, color=svg.ARM_COLOURS.get(arm, svg.INK), alpha=0.7)
    ax.set_yticks(range(1, len(arms) + 1), [f"{arm} (n={len(v)})" for arm, v in arms])
    ax.set_xlabel(f"value ({unit})")


def _order(ax: Any, report: ExperimentReport, unit: str, window: int = 5) -> None:
    ax.set_title("(d) Value against trial order", loc="left", fontsize=10)
    for arm, pts in report.series.items():
        if not pts:
            continue
        ordered = sorted(pts)
        colour = svg.ARM_COLOURS.get(arm, svg.INK)
        xs, ys = [o for o, _ in ordered], [v for _, v in ordered]
        ax.scatter(xs, ys, s=10, color=colour, alpha=0.55)
        ax.plot(xs, svg.moving_average(ys, window), color=colour, lw=2, label=f"{arm} (moving avg of {window})")
    ax.set_xlabel("trial order (time)")
    ax.set_ylabel(f"value ({unit})")
    if any(report.series.values()):
        ax.legend(fontsize=7)


def write_png(reports: Sequence[ExperimentReport], output: Path) -> None:
    """One experiment: its four plots in a 2 × 2 grid. Several: plot (a) of each, stacked."""
    plt = _pyplot()
    output.parent.mkdir(parents=True, exist_ok=True)
    if len(reports) == 1:
        r = reports[0]
        unit = str((r.exp.get("metric") or {}).get("unit", ""))
        fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
        _change(axes[0][0], r)
        _sequential(axes[0][1], r)
        _distribution(axes[1][0], r, unit)
        _order(axes[1][1], r, unit)
        fig.suptitle(verdict_line(str(r.exp.get("id")), r.analysis), fontsize=11, x=0.01, ha="left")
    else:
        fig, axes = plt.subplots(len(reports), 1, figsize=(10, 2.6 * len(reports)), squeeze=False)
        for ax, r in zip(axes[:, 0], reports, strict=True):
            _change(ax, r)
            ax.set_title(verdict_line(str(r.exp.get("id")), r.analysis), loc="left", fontsize=9)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
