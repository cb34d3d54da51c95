"""Inline SVG charts with the standard library only: small pure functions, data in, markup out.

Every chart is one self-contained ``<svg>`` element (no external fonts, images, styles or scripts), so the HTML
report opens from ``file://`` with no network. Colours are fixed hex values that read on white and in print.

The four charts of the report:

* :func:`change_plot` — each metric's change with its interval, to scale, on a zero line with the promote and
  rollback margins, coloured by decision;
* :func:`sequential_plot` — the estimate and its always-valid band as units accrue, the crossing marked;
* :func:`distribution_plot` — each arm's distribution (box, whiskers, mean) with every individual value;
* :func:`order_plot` — value against trial order per arm with a trailing moving average.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
INK = "#1f2328"
MUTED = "#656d76"
GRID = "#d0d7de"
ACTION_COLOURS = {
    "promote": "#1a7f37",
    "rollback": "#cf222e",
    "expire": "#9a6700",
    "hold": "#8250df",
    "continue": "#0969da",
    "none": "#8c959f",
}
ARM_COLOURS = {"control": "#0969da", "treatment": "#bc4c00"}
PROMOTE_COLOUR = ACTION_COLOURS["promote"]
ROLLBACK_COLOUR = ACTION_COLOURS["rollback"]


# ---- numbers and scales ----------------------------------------------------------------------------------
def f(x: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def linear(d0: float, d1: float, r0: float, r1: float) -> Callable[[float], float]:
    """Map the domain [d0, d1] onto the range [r0, r1] (a zero-width domain maps to the range's middle)."""
    if d1 == d0:
        return lambda _v: (r0 + r1) / 2
    k = (r1 - r0) / (d1 - d0)
    return lambda v: r0 + (v - d0) * k


def padded(lo: float, hi: float, frac: float = 0.06) -> tuple[float, float]:
    """The interval widened by ``frac`` of its width each side (a point becomes a small interval)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (-1.0, 1.0)
    if hi < lo:
        lo, hi = hi, lo
    width = hi - lo
    if width == 0:
        width = abs(lo) or 1.0
        return (lo - width * 0.5, hi + width * 0.5)
    return (lo - width * frac, hi + width * frac)


def nice_step(span: float, count: int) -> float:
    """A 1-2-5 step giving about ``count`` ticks over ``span``."""
    raw = span / max(count, 1)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values inside [lo, hi]."""
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9) * step
    ticks: list[float] = []
    v = first
    while v <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def tick_label(v: float, suffix: str = "") -> str:
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.1e}{suffix}"
    text = f"{v:.4f}".rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text}{suffix}"


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = (len(sorted_values) - 1) * q
    i = math.floor(pos)
    j = min(i + 1, len(sorted_values) - 1)
    return sorted_values[i] + (sorted_values[j] - sorted_values[i]) * (pos - i)


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (shorter at the start)."""
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def jitter(i: int, spread: float) -> float:
    """A deterministic offset in [-spread, spread] for the i-th point (golden-ratio sequence: no randomness)."""
    frac = (i * 0.6180339887498949) % 1.0
    return (frac * 2 - 1) * spread


# ---- elements --------------------------------------------------------------------------------------------
def text(x: float, y: float, content: str, *, anchor: str = "start", size: float = 12, fill: str = INK,
         weight: str = "normal", cls: str = "") -> str:  # fmt: skip
    c = f' class="{cls}"' if cls else ""
    return (f'<text x="{f(x)}" y="{f(y)}" text-anchor="{anchor}" font-size="{f(size)}" fill="{fill}" '
            f'font-weight="{weight}"{c}>{escape(content)}</text>')  # fmt: skip


def line(x1: float, y1: float, x2: float, y2: float, *, stroke: str = INK, width: float = 1,
         dash: str | None = None, opacity: float = 1.0) -> str:  # fmt: skip
    d = f' stroke-dasharray="{dash}"' if dash else ""
    o = f' stroke-opacity="{f(opacity)}"' if opacity != 1.0 else ""
    return (f'<line x1="{f(x1)}" y1="{f(y1)}" x2="{f(x2)}" y2="{f(y2)}" stroke="{stroke}" '
            f'stroke-width="{f(width)}"{d}{o}/>')  # fmt: skip


def rect(x: float, y: float, w: float, h: float, *, fill: str = "none", stroke: str = "none",
         opacity: float = 1.0, width: float = 1) -> str:  # fmt: skip
    o = f' fill-opacity="{f(opacity)}"' if opacity != 1.0 else ""
    return (f'<rect x="{f(x)}" y="{f(y)}" width="{f(max(w, 0))}" height="{f(max(h, 0))}" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{f(width)}"{o}/>')  # fmt: skip


def circle(cx: float, cy: float, r: float, *, fill: str = INK, opacity: float = 1.0, stroke: str = "none",
           title: str | None = None) -> str:  # fmt: skip
    o = f' fill-opacity="{f(opacity)}"' if opacity != 1.0 else ""
    s = f' stroke="{stroke}"' if stroke != "none" else ""
    inner = f"<title>{escape(title)}</title>" if title else ""
    return f'<circle cx="{f(cx)}" cy="{f(cy)}" r="{f(r)}" fill="{fill}"{o}{s}>{inner}</circle>'


def polyline(points: Sequence[tuple[float, float]], *, stroke: str = INK, width: float = 1.5,
             opacity: float = 1.0) -> str:  # fmt: skip
    pts = " ".join(f"{f(x)},{f(y)}" for x, y in points)
    o = f' stroke-opacity="{f(opacity)}"' if opacity != 1.0 else ""
    return (f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{f(width)}" '
            f'stroke-linejoin="round"{o}/>')  # fmt: skip


def polygon(points: Sequence[tuple[float, float]], *, fill: str, opacity: float = 0.2) -> str:
    pts = " ".join(f"{f(x)},{f(y)}" for x, y in points)
    return f'<polygon points="{pts}" fill="{fill}" fill-opacity="{f(opacity)}" stroke="none"/>'


def diamond(cx: float, cy: float, r: float, *, fill: str) -> str:
    return polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill, opacity=1.0)


def document(width: float, height: float, body: Sequence[str], *, title: str, plot_id: str) -> str:
    """One standalone ``<svg>`` with an accessible title; ``plot_id`` names it for tests and links."""
    return (
        f'<svg id="{escape(plot_id)}" class="plot" '
        f'viewBox="0 0 {f(width)} {f(height)}" width="{f(width)}" height="{f(height)}" role="img" '
        f'font-family="{escape(FONT)}" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def empty_plot(title: str, message: str, *, plot_id: str, width: float = 640, height: float = 120) -> str:
    body = [text(12, 22, title, size=14, weight="bold"), text(width / 2, height / 2 + 10, message, anchor="middle",
                                                                   fill=MUTED, size=13)]  # fmt: skip
    return document(width, height, body, title=title, plot_id=plot_id)


@dataclass(frozen=True)
class Frame:
    """A plot area inside an SVG: outer size and margins."""

    width: float = 640
    height: float = 260
    left: float = 56
    right: float = 16
    top: float = 34
    bottom: float = 40

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.top

    @property
    def y1(self) -> float:
        return self.height - self.bottom


def x_axis(frame: Frame, sx: Callable[[float], float], ticks: Sequence[float], label: str,
           suffix: str = "") -> list[str]:  # fmt: skip
    out = [line(frame.x0, frame.y1, frame.x1, frame.y1, stroke=GRID)]
    for t in ticks:
        x = sx(t)
        out.append(line(x, frame.y0, x, frame.y1, stroke=GRID, width=0.5, opacity=0.6))
        out.append(text(x, frame.y1 + 14, tick_label(t, suffix), anchor="middle", size=10, fill=MUTED))
    out.append(text((frame.x0 + frame.x1) / 2, frame.height - 6, label, anchor="middle", size=11, fill=MUTED))
    return out


def y_axis(frame: Frame, sy: Callable[[float], float], ticks: Sequence[float], label: str,
           suffix: str = "") -> list[str]:  # fmt: skip
    out = [line(frame.x0, frame.y0, frame.x0, frame.y1, stroke=GRID)]
    for t in ticks:
        y = sy(t)
        out.append(line(frame.x0, y, frame.x1, y, stroke=GRID, width=0.5, opacity=0.6))
        out.append(text(frame.x0 - 5, y + 3.5, tick_label(t, suffix), anchor="end", size=10, fill=MUTED))
    cy = (frame.y0 + frame.y1) / 2
    out.append(f'<text x="12" y="{f(cy)}" text-anchor="middle" font-size="11" fill="{MUTED}" '
               f'transform="rotate(-90 12 {f(cy)})">{escape(label)}</text>')  # fmt: skip
    return out


def legend(x: float, y: float, items: Sequence[tuple[str, str, str]]) -> list[str]:
    """``items``: (label, colour, kind) with kind ``dot``, ``line``, ``dash`` or ``band``; laid out left to right."""
    out: list[str] = []
    for label, colour, kind in items:
        if kind == "dot":
            out.append(circle(x + 5, y - 4, 4, fill=colour))
        elif kind == "band":
            out.append(rect(x, y - 9, 12, 10, fill=colour, opacity=0.25))
        else:
            out.append(line(x, y - 4, x + 14, y - 4, stroke=colour, width=2, dash="5 3" if kind == "dash" else None))
        out.append(text(x + 18, y, label, size=10.5, fill=MUTED))
        x += 26 + 6.2 * len(label)
    return out


# ---- (a) change of each metric with its interval ---------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """One metric's improvement in % (positive = better) with its interval, and the colour key of its decision."""

    name: str
    estimate: float | None
    lo: float | None
    hi: float | None
    action: str  # a decision action, or "none" (e.g. a secondary metric that is not significant)
    note: str = ""


def pct(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    text_ = f"{v:+.{digits}f}"
    return text_.replace("-", "−") + " %"


def change_plot(changes: Sequence[Change], promote_margin: float, rollback_margin: float, *,
                plot_id: str = "plot-change", title: str = "(a) Change of each metric, 95 % CI") -> str:  # fmt: skip
    """Horizontal interval per metric on an improvement axis (%); margins at +promote and −rollback."""
    usable = [c for c in changes if c.estimate is not None]
    if not usable:
        return empty_plot(title, "no estimate yet: each arm needs values", plot_id=plot_id)
    row = 34
    frame = Frame(width=640, height=70 + row * len(changes) + 26, left=130, right=170, top=40, bottom=44)
    values = [0.0, promote_margin, -rollback_margin]
    for c in usable:
        values += [v for v in (c.estimate, c.lo, c.hi) if v is not None]
    lo, hi = padded(min(values), max(values))
    sx = linear(lo, hi, frame.x0, frame.x1)
    body = [text(12, 22, title, size=14, weight="bold")]
    body += x_axis(frame, sx, nice_ticks(lo, hi, 6), "improvement (%), positive = better", " %")
    # margins and zero
    body.append(rect(frame.x0, frame.y0, sx(-rollback_margin) - frame.x0, frame.y1 - frame.y0, fill=ROLLBACK_COLOUR,
                     opacity=0.06))  # fmt: skip
    body.append(rect(sx(promote_margin), frame.y0, frame.x1 - sx(promote_margin), frame.y1 - frame.y0,
                     fill=PROMOTE_COLOUR, opacity=0.06))  # fmt: skip
    body.append(line(sx(0), frame.y0, sx(0), frame.y1, stroke=INK, width=1.2))
    body.append(line(sx(promote_margin), frame.y0, sx(promote_margin), frame.y1, stroke=PROMOTE_COLOUR, width=1.2,
                     dash="5 3"))  # fmt: skip
    body.append(line(sx(-rollback_margin), frame.y0, sx(-rollback_margin), frame.y1, stroke=ROLLBACK_COLOUR,
                     width=1.2, dash="5 3"))  # fmt: skip
    body.append(text(sx(promote_margin), frame.y0 - 4, f"promote ≥ {tick_label(promote_margin)} %", anchor="middle",
                     size=10, fill=PROMOTE_COLOUR))  # fmt: skip
    body.append(text(sx(-rollback_margin), frame.y0 - 4, f"roll back ≤ −{tick_label(rollback_margin)} %",
                     anchor="middle", size=10, fill=ROLLBACK_COLOUR))  # fmt: skip
    for i, c in enumerate(changes):
        y = frame.y0 + 22 + i * row
        colour = ACTION_COLOURS.get(c.action, ACTION_COLOURS["none"])
        body.append(text(frame.x0 - 8, y + 4, c.name, anchor="end", size=12, weight="bold" if i == 0 else "normal"))
        if c.estimate is None:
            body.append(text(frame.x0 + 6, y + 4, "no estimate yet", size=11, fill=MUTED))
            continue
        if c.lo is not None and c.hi is not None:
            body.append(line(sx(c.lo), y, sx(c.hi), y, stroke=colour, width=5, opacity=0.55))
            body.append(line(sx(c.lo), y - 7, sx(c.lo), y + 7, stroke=colour, width=1.5))
            body.append(line(sx(c.hi), y - 7, sx(c.hi), y + 7, stroke=colour, width=1.5))
        body.append(circle(sx(c.estimate), y, 5.5, fill=colour, stroke="white",
                           title=f"{c.name}: {pct(c.estimate)} ({pct(c.lo)} … {pct(c.hi)})"))  # fmt: skip
        ci = f" ({pct(c.lo).removesuffix(' %')} … {pct(c.hi)})" if c.lo is not None and c.hi is not None else ""
        body.append(text(frame.x1 + 8, y + 4, f"{pct(c.estimate)}{ci}", size=11, fill=colour))
    return document(frame.width, frame.height, body, title=title, plot_id=plot_id)


# ---- (b) the estimate and its always-valid band over the experiment -------------------------------------
@dataclass(frozen=True)
class SeqPoint:
    """After ``n`` units (both arms): the improvement estimate in % and its always-valid band."""

    n: int
    estimate: float
    lo: float
    hi: float


def first_crossing(path: Sequence[SeqPoint], promote_margin: float, rollback_margin: float) -> int | None:
    """Index of the first point whose band excludes 0 (the always-valid test rejects "no change")."""
    for i, p in enumerate(path):
        if p.lo > 0 or p.hi < 0:
            return i
    return None


def sequential_plot(path: Sequence[SeqPoint], promote_margin: float, rollback_margin: float, *,
                    plot_id: str = "plot-sequential",
                    title: str = "(b) Estimate and always-valid 95 % band as units accrue") -> str:  # fmt: skip
    if len(path) < 1:
        return empty_plot(title, "the band needs at least 2 units with spread in each arm", plot_id=plot_id)
    frame = Frame(width=640, height=310, left=60, right=20, top=52, bottom=44)
    ys = [0.0, promote_margin, -rollback_margin] + [p.estimate for p in path]
    # the first bands are very wide: clip the view to a readable range around the later ones
    tail = path[len(path) // 3:] or path
    span_lo = min([p.lo for p in tail] + ys)
    span_hi = max([p.hi for p in tail] + ys)
    lo, hi = padded(span_lo, span_hi, 0.1)
    n_lo, n_hi = path[0].n, path[-1].n
    if n_lo == n_hi:
        n_lo, n_hi = n_lo - 1, n_hi + 1
    sx = linear(n_lo, n_hi, frame.x0, frame.x1)
    sy = linear(lo, hi, frame.y1, frame.y0)

    def clip(v: float) -> float:
        return min(max(sy(v), frame.y0), frame.y1)

    body = [text(12, 22, title, size=14, weight="bold")]
    body += x_axis(frame, sx, [t for t in nice_ticks(n_lo, n_hi, 8) if t == int(t)], "units so far (both arms)")
    body += y_axis(frame, sy, nice_ticks(lo, hi, 6), "improvement (%)", " %")
    body.append(line(frame.x0, sy(0), frame.x1, sy(0), stroke=INK, width=1.2))
    for margin, colour, label in ((promote_margin, PROMOTE_COLOUR, f"promote ≥ {tick_label(promote_margin)} %"),
                                  (-rollback_margin, ROLLBACK_COLOUR, f"roll back ≤ −{tick_label(rollback_margin)} %")):
        if lo <= margin <= hi:
            body.append(line(frame.x0, sy(margin), frame.x1, sy(margin), stroke=colour, width=1.2, dash="5 3"))
            body.append(text(frame.x0 + 4, sy(margin) - 4, label, anchor="start", size=10, fill=colour))
    band = [(sx(p.n), clip(p.hi)) for p in path] + [(sx(p.n), clip(p.lo)) for p in reversed(path)]
    body.append(polygon(band, fill=ARM_COLOURS["control"], opacity=0.18))
    body.append(polyline([(sx(p.n), clip(p.estimate)) for p in path], stroke=ARM_COLOURS["control"], width=2))
    last = path[-1]
    body.append(circle(sx(last.n), clip(last.estimate), 3.5, fill=ARM_COLOURS["control"],
                       title=f"n = {last.n}: {pct(last.estimate)} ({pct(last.lo)} … {pct(last.hi)})"))  # fmt: skip
    cross = first_crossing(path, promote_margin, rollback_margin)
    if cross is not None:
        p = path[cross]
        colour = PROMOTE_COLOUR if p.lo > 0 else ROLLBACK_COLOUR
        body.append(line(sx(p.n), frame.y0, sx(p.n), frame.y1, stroke=colour, width=1, dash="2 2"))
        body.append(circle(sx(p.n), clip(p.estimate), 5, fill=colour, stroke="white"))
        body.append(text(sx(p.n) + 5, frame.y0 + 12, f"band excludes 0 at n = {p.n}", size=10.5, fill=colour,
                         anchor="start" if sx(p.n) < frame.x1 - 140 else "end"))  # fmt: skip
    body += legend(frame.x1 - 250, frame.y0 - 10, [("estimate", ARM_COLOURS["control"], "line"),
                                               ("always-valid band", ARM_COLOURS["control"], "band")])  # fmt: skip
    return document(frame.width, frame.height, body, title=title, plot_id=plot_id)


# ---- (c) each arm's distribution with its individual values ----------------------------------------------
def distribution_plot(arms: Mapping[str, Sequence[float]], unit: str, *, plot_id: str = "plot-distribution",
                      title: str = "(c) Distribution of each arm, every unit shown") -> str:  # fmt: skip
    """Box (quartiles), whiskers (min–max), median, mean (diamond) and every value (jittered dots) per arm."""
    present = {arm: sorted(v) for arm, v in arms.items() if v}
    if not present:
        return empty_plot(title, "no values yet", plot_id=plot_id)
    row = 70
    frame = Frame(width=640, height=50 + row * len(arms) + 40, left=120, right=20, top=40, bottom=44)
    all_values = [v for vs in present.values() for v in vs]
    lo, hi = padded(min(all_values), max(all_values))
    sx = linear(lo, hi, frame.x0, frame.x1)
    body = [text(12, 22, title, size=14, weight="bold")]
    body += x_axis(frame, sx, nice_ticks(lo, hi, 6), f"value ({unit})" if unit else "value")
    for i, (arm, raw) in enumerate(arms.items()):
        y = frame.y0 + 30 + i * row
        colour = ARM_COLOURS.get(arm, INK)
        vs = sorted(raw)
        body.append(text(frame.x0 - 8, y + 4, f"{arm} (n={len(vs)})", anchor="end", size=12, fill=colour))
        if not vs:
            continue
        q1, med, q3 = quantile(vs, 0.25), quantile(vs, 0.5), quantile(vs, 0.75)
        mean = math.fsum(vs) / len(vs)
        body.append(line(sx(vs[0]), y, sx(q1), y, stroke=colour, width=1.2))
        body.append(line(sx(q3), y, sx(vs[-1]), y, stroke=colour, width=1.2))
        body.append(line(sx(vs[0]), y - 8, sx(vs[0]), y + 8, stroke=colour, width=1.2))
        body.append(line(sx(vs[-1]), y - 8, sx(vs[-1]), y + 8, stroke=colour, width=1.2))
        body.append(rect(sx(q1), y - 14, sx(q3) - sx(q1), 28, fill=colour, opacity=0.12, stroke=colour, width=1.2))
        body.append(line(sx(med), y - 14, sx(med), y + 14, stroke=colour, width=2.5))
        body.append(diamond(sx(mean), y, 5, fill=INK))
        for j, v in enumerate(raw):
            body.append(circle(sx(v), y + 24 + jitter(j, 5), 2.6, fill=colour, opacity=0.7,
                               title=f"{arm}: {tick_label(v)} {unit}".rstrip()))  # fmt: skip
    body += legend(frame.x1 - 170, frame.y0 - 8, [("median", INK, "line"), ("mean", INK, "dot")])
    return document(frame.width, frame.height, body, title=title, plot_id=plot_id)


# ---- (d) value against trial order per arm, with a moving average ----------------------------------------
def order_plot(series: Mapping[str, Sequence[tuple[int, float]]], unit: str, *, window: int = 5,
               plot_id: str = "plot-order",
               title: str = "(d) Value against trial order, moving average per arm") -> str:  # fmt: skip
    """``series``: per arm, (trial order, value) pairs; drift and warm-up show as a sloping average."""
    points = [(o, v) for pts in series.values() for o, v in pts]
    if not points:
        return empty_plot(title, "no trials yet", plot_id=plot_id)
    frame = Frame(width=640, height=290, left=60, right=20, top=52, bottom=44)
    orders = [o for o, _ in points]
    values = [v for _, v in points]
    o_lo, o_hi = min(orders), max(orders)
    if o_lo == o_hi:
        o_lo, o_hi = o_lo - 1, o_hi + 1
    lo, hi = padded(min(values), max(values), 0.1)
    sx = linear(o_lo, o_hi, frame.x0 + 6, frame.x1 - 6)
    sy = linear(lo, hi, frame.y1, frame.y0)
    body = [text(12, 22, title, size=14, weight="bold")]
    body += x_axis(frame, sx, [t for t in nice_ticks(o_lo, o_hi, 8) if t == int(t)], "trial order (time)")
    body += y_axis(frame, sy, nice_ticks(lo, hi, 6), f"value ({unit})" if unit else "value")
    items: list[tuple[str, str, str]] = []
    for arm, pts in series.items():
        colour = ARM_COLOURS.get(arm, INK)
        ordered = sorted(pts)
        for o, v in ordered:
            body.append(circle(sx(o), sy(v), 2.8, fill=colour, opacity=0.55, title=f"#{o} {arm}: {tick_label(v)}"))
        if len(ordered) >= 2:
            avg = moving_average([v for _, v in ordered], window)
            body.append(polyline([(sx(o), sy(a)) for (o, _), a in zip(ordered, avg, strict=True)], stroke=colour,
                                 width=2.2))  # fmt: skip
        items.append((f"{arm} (moving avg of {window})", colour, "line"))
    body += legend(frame.x1 - 200 * len(items), frame.y0 - 10, items)
    return document(frame.width, frame.height, body, title=title, plot_id=plot_id)
