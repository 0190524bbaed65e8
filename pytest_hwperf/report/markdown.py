"""The Markdown summary: one table for pull requests and CI step summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pytest_hwperf.report.sweep import Sweep, sweep_lines
from pytest_hwperf.report.terminal import budget_text, mb_text, ms_text

if TYPE_CHECKING:
    from pytest_hwperf.records.types import ComparisonRecord, JSONValue, MeasurementRecord

__all__ = ["markdown_summary"]

_ICONS = {"pass": "pass", "fail": "**FAIL**", "inconclusive": "inconclusive"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


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
        text = f"{change:+.1f}%"
        if low is not None and high is not None:
            text += f" ({low:+.1f}% to {high:+.1f}%)"
    outcome = comparison.outcome
    return base, text, "**REGRESSION**" if outcome == "regression" else outcome


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
        lines += [f"Fingerprint: `{fingerprint}`", ""]
    if not records:
        lines.append("No measurements.")
        return "\n".join(lines) + "\n"
    failed = sum(1 for r in records if r.breach)
    regressions = sum(
        1 for r in records if r.comparison is not None and r.comparison.outcome == "regression"
    )
    lines += [
        f"{len(records)} measurements, {failed} failing their test, {regressions} regressions.",
        "",
        "| test | measurement | device | n | p50 | p95 | peak RSS | budget | verdict"
        " | min vs baseline | change | vs baseline |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | --- |",
    ]
    for r in records:
        stats = r.stats
        verdict = r.outcome or "no budget"
        base, change, versus = _change(r.comparison)
        cells: list[object] = [
            f"`{r.test_id}`",
            r.name,
            r.device,
            stats.n,
            ms_text(stats.p50_ms if stats.p50_ms is not None else stats.mean_ms),
            ms_text(stats.p95_ms),
            mb_text(None if r.memory is None else r.memory.rss_peak_mb),
            budget_text(r),
            _ICONS.get(verdict, verdict),
            base,
            change,
            versus,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if sweeps:
        lines += ["", "### Workers x threads", "", "```text", *sweep_lines(sweeps), "```"]
    if advice:
        from pytest_hwperf.report.advice import advice_lines

        lines += ["", "### Device advice", ""]
        lines += [f"- {_cell(line)}" for line in advice_lines(advice)]
    return "\n".join(lines) + "\n"
