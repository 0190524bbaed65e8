"""How figures are written, in one place: milliseconds, rates, percentiles, memory.

A foundation module (no imports of the package): every layer formats with it, so a
figure reads the same in a failure line, the terminal table and every report.
"""

from __future__ import annotations

import math

__all__ = ["PLAIN_LIMIT", "fmt_change", "fmt_mb", "fmt_ms", "fmt_pct", "fmt_rate", "is_plain"]

# Beyond this a figure is not a measurement but a corrupt or hostile input: it is shown
# in scientific notation instead of hundreds of digits.
PLAIN_LIMIT = 1e12
_PLAIN_LIMIT = PLAIN_LIMIT


def is_plain(value: float) -> bool:
    """Whether `value` is written in plain digits: finite and under `PLAIN_LIMIT` in size
    (beyond it, a figure is written in scientific notation)."""
    return math.isfinite(value) and abs(value) < PLAIN_LIMIT


def fmt_pct(p: float) -> str:
    return f"{p:g}"


def fmt_ms(ms: float) -> str:
    if not math.isfinite(ms) or abs(ms) >= _PLAIN_LIMIT:
        return f"{ms:.3g} ms"
    # Thresholds sit where rounding would carry over ("99.996" must not print "100.00").
    if ms >= 99.995:
        return f"{ms:.0f} ms"
    if ms >= 0.99995:
        return f"{ms:.2f} ms"
    return f"{ms * 1000:.1f} us"


def fmt_rate(r: float) -> str:
    if not math.isfinite(r) or abs(r) >= _PLAIN_LIMIT:
        return f"{r:.3g}"
    if r >= 100:
        return f"{r:,.0f}"
    return f"{r:.3g}"


def fmt_mb(mb: float) -> str:
    """312.4 MB, 1.2 GB (binary units, as the budgets are)."""
    if not math.isfinite(mb) or abs(mb) >= _PLAIN_LIMIT:
        return f"{mb:.3g} MB"
    if mb >= 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb:.1f} MB"


def fmt_change(pct: float) -> str:
    """A signed change in percent, "+12.5%"; scientific beyond `PLAIN_LIMIT` ("+1e+300%")."""
    if math.isnan(pct):
        return "nan%"
    if not is_plain(pct):
        return f"{pct:+.3g}%"
    text = f"{pct:+.1f}%"
    return "+0.0%" if text == "-0.0%" else text  # never "-0.0%"
