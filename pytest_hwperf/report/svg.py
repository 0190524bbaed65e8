"""Hand-written SVG charts for the HTML report: scales, axes, bars, lines, dots with
error bars.

No plotting library: the report must be one self-contained file that opens anywhere
(CI artifacts, air-gapped machines), and the few chart kinds it needs are a few dozen
SVG elements each. matplotlib would be a heavy dependency for that and would embed
fonts or images. A chart here is a `Chart` that collects elements in data coordinates
and renders one `<svg>` string with a `viewBox`, so the page can scale it to any width.

Every text is escaped; colours and fonts are presentation attributes so a chart copied
out of the page keeps its look (the font family is inherited from the page: the system
font stack).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = [
    "Chart",
    "Dot",
    "Scale",
    "histogram",
    "linear_ticks",
    "log_ticks",
    "thin_steps",
]

INK = "#1f2328"
MUTED = "#57606a"
GRID = "#e6e8eb"
AXIS = "#8c959f"


# A coordinate is kept within this many pixels of the origin: a mark far off the chart
# is invisible either way, and 1e308 would be written with 309 digits.
_FAR = 1e6


def _num(value: float) -> str:
    """A coordinate with two decimals at most: short output, sub-pixel precision; a
    non-finite one is 0 and a far one is cut at `_FAR` pixels."""
    if not math.isfinite(value):
        value = 0.0
    value = min(max(value, -_FAR), _FAR)
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _step(span: float, count: int) -> float:
    """A 1-2-5 step that cuts `span` into about `count` intervals."""
    raw = max(span / max(1, count), 1e-300)  # no log10(0) for a span of denormals
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= factor * power * 1.0000001:
            return factor * power
    return 10.0 * power


def linear_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) within [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    step = _step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks of a log axis: powers of ten, with 2 and 5 in between when the axis spans
    few decades; at least two ticks whenever [lo, hi] allows."""
    if lo <= 0 or hi <= lo:
        return linear_ticks(lo, hi)
    decades = math.log10(hi / lo)
    factors = (1.0,) if decades > 4 else (1.0, 2.0, 5.0) if decades > 1.2 else (1.0, 2.0, 3.0, 5.0)
    ticks = []
    for power in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for factor in factors:
            value = factor * 10.0**power
            if lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9):
                ticks.append(value)
    return ticks if len(ticks) >= 2 else linear_ticks(lo, hi, 4)


def _nice_bound(value: float, *, up: bool) -> float:
    """The next 1-2-5 value at or beyond `value` (a positive number), for log domains."""
    power = 10.0 ** math.floor(math.log10(value))
    steps = (1.0, 2.0, 5.0, 10.0)
    if up:
        return next(s * power for s in steps if s * power >= value * (1 - 1e-9))
    return next(s * power for s in reversed(steps) if s * power <= value * (1 + 1e-9))


@dataclass(frozen=True)
class Scale:
    """Maps data values in [lo, hi] to pixels in [start, end], linearly or on log10."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    @classmethod
    def fit(
        cls,
        values: Sequence[float],
        start: float,
        end: float,
        *,
        log: bool = False,
        zero: bool = False,
    ) -> Scale:
        """A scale over `values`, widened to round bounds (and to 0 with `zero`).
        Values beyond 1e300 in size (or below 1e-300 on a log scale) are left out: their
        span would overflow, and no chart here has a use for them."""
        finite = [
            v for v in values if abs(v) < 1e300 and (v >= 1e-300 if log else math.isfinite(v))
        ]
        if not finite:
            return cls(0.0, 1.0, start, end)
        lo, hi = min(finite), max(finite)
        if log:
            lo, hi = _nice_bound(lo, up=False), _nice_bound(hi, up=True)
            if hi <= lo:
                hi = lo * 10
            return cls(lo, hi, start, end, log=True)
        if zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        if hi <= lo:
            pad = abs(lo) * 0.1 or 1.0
            lo, hi = lo - pad, hi + pad
        step = _step(hi - lo, 5)
        return cls(math.floor(lo / step) * step, math.ceil(hi / step) * step, start, end)

    def _t(self, value: float) -> float:
        return math.log10(value) if self.log else value

    def __call__(self, value: float) -> float:
        """The pixel of `value`. One far beyond the domain (1e308 on an axis of
        milliseconds) lands at most 100 plot widths away, NaN at the domain's low end."""
        if math.isnan(value) or (self.log and value <= 0):
            value = self.lo
        lo, hi = self._t(self.lo), self._t(self.hi)
        share = 0.0 if hi == lo else (self._t(value) - lo) / (hi - lo)
        if math.isnan(share):
            share = 0.0
        share = min(max(share, -100.0), 100.0)
        return self.start + share * (self.end - self.start)

    def ticks(self, count: int = 5) -> list[float]:
        return log_ticks(self.lo, self.hi) if self.log else linear_ticks(self.lo, self.hi, count)


def histogram(
    values: Sequence[float], lo: float, hi: float, bins: int, *, log: bool
) -> list[tuple[float, float, int]]:
    """(left edge, right edge, count) of `bins` equal bins over [lo, hi], equal in log
    space with `log` (latency is right-skewed: linear bins would put the body of the
    distribution in one bar and the tail in a row of empty ones)."""
    if not values or hi <= lo or bins < 1 or (log and lo <= 0):
        return []
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    t_lo, t_hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
    width = (t_hi - t_lo) / bins
    if not (math.isfinite(width) and width > 0):  # a span that overflows or underflows
        return []
    counts = [0] * bins
    for value in values:
        if (log and value <= 0) or not math.isfinite(value):
            continue
        t = math.log10(value) if log else value
        index = min(bins - 1, max(0, int((t - t_lo) / width)))
        counts[index] += 1
    edges = [t_lo + i * width for i in range(bins + 1)]
    if log:
        edges = [10.0**e for e in edges]
    return [(edges[i], edges[i + 1], counts[i]) for i in range(bins)]


def thin_steps(sorted_values: Sequence[float], limit: int = 400) -> list[tuple[float, float]]:
    """The points of an empirical CDF, (value, share of values <= it in percent), at most
    `limit` of them at evenly spaced ranks, so a 100 000-sample measurement stays a small
    path with the same shape (first and last rank always kept)."""
    n = len(sorted_values)
    if n == 0:
        return []
    if n <= limit:
        ranks = list(range(n))
    else:
        ranks = sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})
    return [(float(sorted_values[r]), 100.0 * (r + 1) / n) for r in ranks]


@dataclass(frozen=True)
class Dot:
    """A point with an optional error bar along x or y (to `low` and to `high`, either
    may be None), and a tooltip."""

    x: float
    y: float
    color: str
    low: float | None = None
    high: float | None = None
    along: str = "x"  # the axis the error bar runs along
    tip: str = ""
    radius: float = 4.5
    hollow: bool = False


@dataclass
class Chart:
    """One SVG chart: a plot area inside margins, an x and a y scale, and elements."""

    title: str
    x: Scale
    y: Scale
    width: float = 640
    height: float = 240
    left: float = 64
    right: float = 16
    top: float = 28
    bottom: float = 40
    elements: list[str] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        title: str,
        x_values: Sequence[float],
        y_values: Sequence[float],
        *,
        width: float = 640,
        height: float = 240,
        x_log: bool = False,
        y_log: bool = False,
        y_zero: bool = False,
        left: float = 64,
        right: float = 16,
        top: float = 28,
        bottom: float = 40,
    ) -> Chart:
        x = Scale.fit(x_values, left, width - right, log=x_log)
        y = Scale.fit(y_values, height - bottom, top, log=y_log, zero=y_zero)
        return cls(title, x, y, width, height, left, right, top, bottom)

    @property
    def plot_left(self) -> float:
        return self.left

    @property
    def plot_right(self) -> float:
        return self.width - self.right

    @property
    def plot_top(self) -> float:
        return self.top

    @property
    def plot_bottom(self) -> float:
        return self.height - self.bottom

    def _clamp_x(self, px: float) -> float:
        return min(max(px, self.plot_left), self.plot_right)

    def _text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        anchor: str = "middle",
        size: float = 11,
        color: str = MUTED,
        weight: str | None = None,
        rotate: bool = False,
        halo: bool = False,
    ) -> None:
        extra = f' font-weight="{weight}"' if weight else ""
        if halo:  # a white outline keeps a label readable over lines and points
            extra += (
                ' stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"'
            )
        if rotate:
            extra += f' transform="rotate(-90 {_num(x)} {_num(y)})"'
        self.elements.append(
            f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size}"'
            f' fill="{color}"{extra}>{escape(text)}</text>'
        )

    def axes(
        self,
        *,
        x_label: str,
        y_label: str,
        x_format: Callable[[float], str] = lambda v: f"{v:g}",
        y_format: Callable[[float], str] = lambda v: f"{v:g}",
        x_ticks: Sequence[tuple[float, str]] | None = None,
        y_ticks: Sequence[tuple[float, str]] | None = None,
    ) -> None:
        """Grid lines, tick labels and axis titles; ticks default to the scales' own."""
        xs = list(x_ticks) if x_ticks is not None else [(v, x_format(v)) for v in self.x.ticks()]
        ys = list(y_ticks) if y_ticks is not None else [(v, y_format(v)) for v in self.y.ticks()]
        for value, label in ys:
            py = self.y(value)
            self.elements.append(
                f'<line x1="{_num(self.plot_left)}" x2="{_num(self.plot_right)}" y1="{_num(py)}"'
                f' y2="{_num(py)}" stroke="{GRID}" stroke-width="1"/>'
            )
            self._text(self.plot_left - 6, py + 3.5, label, anchor="end")
        for value, label in xs:
            px = self.x(value)
            self.elements.append(
                f'<line x1="{_num(px)}" x2="{_num(px)}" y1="{_num(self.plot_top)}"'
                f' y2="{_num(self.plot_bottom)}" stroke="{GRID}" stroke-width="1"/>'
            )
            # A label at either end stays inside the chart (about 6 px per character).
            half = 3.2 * len(label)
            shift = max(half - px, 0.0) - max(px + half - self.width, 0.0)
            self._text(px + shift, self.plot_bottom + 15, label)
        self.elements.append(
            f'<path d="M{_num(self.plot_left)} {_num(self.plot_top)}V{_num(self.plot_bottom)}'
            f'H{_num(self.plot_right)}" fill="none" stroke="{AXIS}" stroke-width="1"/>'
        )
        self._text((self.plot_left + self.plot_right) / 2, self.height - 6, x_label, color=INK)
        self._text(14, (self.plot_top + self.plot_bottom) / 2, y_label, color=INK, rotate=True)

    def bars(
        self, bins: Sequence[tuple[float, float, float]], color: str, opacity: float = 1.0
    ) -> None:
        """Rectangles from y=0 (or the axis bottom) up to each bin's height."""
        base = self.y(max(self.y.lo, 0.0)) if not self.y.log else self.plot_bottom
        for left, right, height in bins:
            if height <= 0:
                continue
            x0, x1 = self._clamp_x(self.x(left)), self._clamp_x(self.x(right))
            top = self.y(height)
            self.elements.append(
                f'<rect x="{_num(x0 + 0.5)}" y="{_num(top)}" width="{_num(max(0.5, x1 - x0 - 1))}"'
                f' height="{_num(max(0.0, base - top))}" fill="{color}"'
                f' fill-opacity="{opacity:g}"/>'
            )

    def line(
        self,
        points: Sequence[tuple[float, float]],
        color: str,
        *,
        width: float = 2,
        dash: str | None = None,
        step: bool = False,
    ) -> None:
        """A polyline through `points`; with `step`, a staircase (an empirical CDF)."""
        if not points:
            return
        coords: list[tuple[float, float]] = []
        for x, y in points:
            px, py = self.x(x), self.y(y)
            if step and coords:
                coords.append((px, coords[-1][1]))
            coords.append((px, py))
        d = "M" + "L".join(f"{_num(px)} {_num(py)}" for px, py in coords)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        self.elements.append(
            f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{width:g}"'
            f' stroke-linejoin="round" stroke-linecap="round"{dash_attr}/>'
        )

    def vline(
        self, x: float, color: str, label: str = "", *, dash: str | None = "5 4", row: int = 0
    ) -> None:
        """A vertical rule across the plot at data value `x`, labelled above the plot
        (`row` moves the label up a line, so rules close together stay readable)."""
        px = self.x(x)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        self.elements.append(
            f'<line x1="{_num(px)}" x2="{_num(px)}" y1="{_num(self.plot_top)}"'
            f' y2="{_num(self.plot_bottom)}" stroke="{color}" stroke-width="1.5"{dash_attr}/>'
        )
        if label:
            near_right = px > (self.plot_left + self.plot_right) / 2
            self._text(
                px + (-4 if near_right else 4),
                self.plot_top - 6 - 13 * row,
                label,
                anchor="end" if near_right else "start",
                color=color,
                weight="600",
                halo=True,
            )

    def edge_label(self, right: bool, label: str, color: str, *, row: int = 0) -> None:
        """A rule's label at the plot's right (or left) edge with an arrow, for a value far
        off the axis: it is named without stretching the axis to reach it."""
        self._text(
            self.plot_right if right else self.plot_left,
            self.plot_top - 6 - 13 * row,
            f"{label} →" if right else f"← {label}",
            anchor="end" if right else "start",
            color=color,
            weight="600",
            halo=True,
        )

    def hline(self, y: float, color: str, label: str = "", *, dash: str | None = "5 4") -> None:
        py = self.y(y)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        self.elements.append(
            f'<line x1="{_num(self.plot_left)}" x2="{_num(self.plot_right)}" y1="{_num(py)}"'
            f' y2="{_num(py)}" stroke="{color}" stroke-width="1.5"{dash_attr}/>'
        )
        if label:
            self._text(
                self.plot_right - 4,
                py - 5,
                label,
                anchor="end",
                color=color,
                weight="600",
                halo=True,
            )

    def band(self, x0: float, x1: float, color: str, opacity: float = 0.12) -> None:
        """A shaded vertical band between data values `x0` and `x1`."""
        left, right = sorted((self._clamp_x(self.x(x0)), self._clamp_x(self.x(x1))))
        self.elements.append(
            f'<rect x="{_num(left)}" y="{_num(self.plot_top)}" width="{_num(right - left)}"'
            f' height="{_num(self.plot_bottom - self.plot_top)}" fill="{color}"'
            f' fill-opacity="{opacity:g}"/>'
        )

    def _whisker(self, dot: Dot, px: float, py: float) -> str:
        """The error bar of `dot`: a line to each given bound with an end cap, or an
        arrowhead at the plot's edge when the bound lies beyond it (an interval far wider
        than the plot, such as one from a few noisy runs, is cut, not allowed to squash
        every other mark into a corner)."""
        along_x = dot.along == "x"
        scale = self.x if along_x else self.y
        edges = (self.plot_left, self.plot_right) if along_x else (self.plot_top, self.plot_bottom)
        centre, across = (px, py) if along_x else (py, px)

        def at(along: float, off: float) -> str:
            x, y = (along, across + off) if along_x else (across + off, along)
            return f"{_num(x)} {_num(y)}"

        d = []
        for bound in (dot.low, dot.high):
            if bound is None:
                continue
            raw = scale(bound)
            end = min(max(raw, edges[0]), edges[1])
            d.append(f"M{at(centre, 0)}L{at(end, 0)}")
            if end != raw:
                back = -6.0 if end > centre else 6.0
                d.append(f"M{at(end + back, -4)}L{at(end, 0)}L{at(end + back, 4)}")
            else:
                d.append(f"M{at(end, -5)}L{at(end, 5)}")
        if not d:
            return ""
        return (
            f'<path d="{"".join(d)}" stroke="{dot.color}" stroke-width="2" fill="none"'
            ' stroke-linejoin="round"/>'
        )

    def dots(self, dots: Sequence[Dot]) -> None:
        """Points with their error bars (whiskers with end caps, arrowheads where cut at
        the plot's edge) and hover tooltips."""
        for dot in dots:
            px, py = self.x(dot.x), self.y(dot.y)
            fill = "#ffffff" if dot.hollow else dot.color
            tip = f"<title>{escape(dot.tip)}</title>" if dot.tip else ""
            self.elements.append(
                f"<g>{tip}{self._whisker(dot, px, py)}"
                f'<circle cx="{_num(px)}" cy="{_num(py)}" r="{dot.radius:g}" fill="{fill}"'
                f' stroke="{dot.color}" stroke-width="2"/></g>'
            )

    def legend(self, items: Sequence[tuple[str, str, str | None]]) -> None:
        """(label, colour, dash) entries in a row at the top of the chart, from the left
        (keep `top` large enough for it and any rule labels)."""
        x = self.plot_left
        for label, color, dash in items:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            self.elements.append(
                f'<line x1="{_num(x)}" x2="{_num(x + 18)}" y1="12" y2="12" stroke="{color}"'
                f' stroke-width="2.5"{dash_attr}/>'
            )
            self._text(x + 22, 15.5, label, anchor="start", color=INK)
            x += 30 + 6.2 * len(label)

    def render(self) -> str:
        """The chart as one `<svg>` element that scales to its container's width."""
        return (
            f'<svg class="chart" viewBox="0 0 {_num(self.width)} {_num(self.height)}"'
            f' role="img" aria-label="{escape(self.title)}">'
            f"<title>{escape(self.title)}</title>{''.join(self.elements)}</svg>"
        )
