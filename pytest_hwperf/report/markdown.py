"""The Markdown summary: one table for pull requests and CI step summaries.

It lands in `$GITHUB_STEP_SUMMARY`, which GitHub renders as HTML, so every string that
came from the user (test ids, parametrize ids, measurement names, devices, advice) is
escaped: identifiers go in code spans whose backtick fence is longer than any run of
backticks inside (so none can close it), other text has its HTML and Markdown syntax
escaped, a table cell's `|` is escaped and line breaks become spaces, and control
characters are shown as escapes (`terminal.visible`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pytest_hwperf.judge.verdict import count_verdicts
from pytest_hwperf.report.cells import plural, throughput_figure
from pytest_hwperf.report.sweep import Sweep, sweep_lines
from pytest_hwperf.report.terminal import budget_text, mb_text, ms_text, visible
from pytest_hwperf.units import fmt_change

if TYPE_CHECKING:
    from pytest_hwperf.records.types import ComparisonRecord, JSONValue, MeasurementRecord

__all__ = ["code_span", "fence", "markdown_summary", "md_text"]

_ICONS = {"pass": "pass", "fail": "**FAIL**", "inconclusive": "inconclusive"}


_BACKTICKS = re.compile("`+")
# What could start a link, an image, a code span or an escape in Markdown text ("&",
# "<" and ">" become character references, so no HTML or autolink can start either).
_MARKDOWN_SYNTAX = re.compile(r"([\\`\[\]])")


def fence(text: str, *, least: int = 1) -> str:
    """A run of backticks longer than any inside `text` (and at least `least`): as a code
    span's or a fenced block's delimiter, nothing inside can close it."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    return "`" * max(least, longest + 1)


def code_span(text: object) -> str:
    """`text` as an inline code span that shows it verbatim on one line: no HTML, link
    or emphasis inside is interpreted, and no backtick inside can end it (the fence is
    longer than any run of backticks inside; padded with a space each side, which
    CommonMark strips, when the text begins or ends with a backtick or a space). In a
    table cell its "|" is escaped too (`_cell`): GFM unescapes it inside the span."""
    content = visible(text)
    if not content:
        return ""
    tick = fence(content)
    if content[0] in "` " or content[-1] in "` ":
        content = f" {content} "
    return f"{tick}{content}{tick}"


def md_text(text: object) -> str:
    """`text` as Markdown text that renders as itself on one line: HTML is escaped
    (`&`, `<`, `>`), and what could start a link, an image or a code span is
    backslash-escaped."""
    escaped = html.escape(visible(text), quote=False)
    return _MARKDOWN_SYNTAX.sub(r"\\\1", escaped)


def _cell(text: object) -> str:
    """A table cell: one line, "|" escaped (GFM's table syntax, honoured in code spans
    too). `text` is Markdown already (`md_text`, `code_span` or figures)."""
    return " ".join(str(text).splitlines()).replace("|", "\\|")


def _change(comparison: ComparisonRecord | None) -> tuple[str, str, str]:
    """(the gate's figures, this run's and the baseline's; change with its interval;
    regression verdict) cells. The figure is the fastest call."""
    if comparison is None or comparison.outcome == "no baseline":
        current = ms_text(None if comparison is None else comparison.current_ms)
        return ("-" if current == "-" else f"{current} vs -"), "-", "no baseline"
    base = f"{ms_text(comparison.current_ms)} vs {ms_text(comparison.baseline_ms)}"
    change = comparison.change_pct
    low, high = comparison.ci_low_pct, comparison.ci_high_pct
    text = "-"
    if change is not None:
        text = fmt_change(change)
        if low is not None and high is not None:
            text += f" ({fmt_change(low)} to {fmt_change(high)})"
    outcome = comparison.outcome
    return base, text, "**REGRESSION**" if outcome == "regression" else md_text(outcome)


def markdown_summary(
    records: Sequence[MeasurementRecord],
    *,
    sweeps: Sequence[Sweep] = (),
    fingerprint: str | None = None,
    advice: Sequence[Mapping[str, JSONValue]] = (),
) -> str:
    """A Markdown document: the measurements table, then sweeps and device advice when
    there are any."""
    lines = ["## pytest-hwperf", ""]
    if fingerprint:
        lines += [f"Fingerprint: {code_span(fingerprint)}", ""]
    if not records:
        lines.append("No measurements.")
        return "\n".join(lines) + "\n"
    # The test-level verdict (a regression fails its test too), counted as every report
    # counts it.
    counts = count_verdicts(records)
    lines += [
        f"{plural(counts.measurements, 'measurement')}, {counts.failing} failing their test,"
        f" {plural(counts.regressions, 'regression')}.",
        "",
    ]
    # A throughput column when a budget is in items per second, to read them side by side.
    rates = any(b.kind == "throughput" for r in records for b in r.budgets)
    head = ["test", "measurement", "device", "n", "p50", "p95", "peak RSS"]
    align = ["---", "---", "---", "---:", "---:", "---:", "---:"]
    if rates:
        head.append("throughput")
        align.append("---:")
    # Same-run A/B (--hwperf-against) compares with the REF measured in the same run.
    ab = any(r.comparison is not None and r.comparison.mode == "ab" for r in records)
    versus = "base" if ab else "baseline"
    head += ["budget", "verdict", f"min vs {versus}", "change", f"vs {versus}"]
    align += ["---", "---", "---:", "---:", "---"]
    lines += ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for r in records:
        stats = r.stats
        verdict = r.verdict
        base, change, versus = _change(r.comparison)
        cells: list[object] = [
            code_span(r.test_id),
            md_text(r.name),
            md_text(r.device),
            stats.n,
            ms_text(stats.p50_ms if stats.p50_ms is not None else stats.mean_ms),
            ms_text(stats.p95_ms),
            mb_text(None if r.memory is None else r.memory.rss_peak_mb),
            *([throughput_figure(r)] if rates else []),  # figures and fixed words only
            budget_text(r),  # figures and fixed words only
            _ICONS.get(verdict) or md_text(verdict),
            base,
            change,
            versus,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if sweeps:
        # A fenced block shows its lines verbatim; its fence is longer than any backtick
        # run in them, so no line can close it.
        shown = [visible(line) for line in sweep_lines(sweeps)]
        tick = fence("\n".join(shown), least=3)
        lines += ["", "### Workers x threads", "", f"{tick}text", *shown, tick]
    if advice:
        from pytest_hwperf.report.advice import advice_lines

        lines += ["", "### Device advice", ""]
        lines += [f"- {md_text(line)}" for line in advice_lines(advice)]
    return "\n".join(lines) + "\n"
