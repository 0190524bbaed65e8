"""The Markdown summary: one table for pull requests and CI step summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_hwperf.report.sweep import sweep_lines
from pytest_hwperf.report.terminal import budget_text, mb_text, ms_text

__all__ = ["markdown_summary"]

_ICONS = {"pass": "pass", "fail": "**FAIL**", "inconclusive": "inconclusive"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _change(comparison: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(the gate's figures, this run's and the baseline's; change with its interval;
    regression verdict) cells. The figure is the fastest call."""
    if not comparison or comparison.get("outcome") == "no baseline":
        current = ms_text((comparison or {}).get("current_ms"))
        return ("-" if current == "-" else f"{current} vs -"), "-", "no baseline"
    base = f"{ms_text(comparison.get('current_ms'))} vs {ms_text(comparison.get('baseline_ms'))}"
    change = comparison.get("change_pct")
    low, high = comparison.get("ci_low_pct"), comparison.get("ci_high_pct")
    text = "-"
    if isinstance(change, (int, float)):
        text = f"{change:+.1f}%"
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            text += f" ({low:+.1f}% to {high:+.1f}%)"
    outcome = str(comparison.get("outcome"))
    return base, text, "**REGRESSION**" if outcome == "regression" else outcome


def markdown_summary(
    records: Sequence[Mapping[str, Any]],
    *,
    sweeps: Sequence[Mapping[str, Any]] = (),
    fingerprint: str | None = None,
    advice: Sequence[Mapping[str, Any]] = (),
) -> str:
    """A Markdown document: the measurements table, then sweeps and device advice when
    there are any."""
    lines = ["## pytest-hwperf", ""]
    if fingerprint:
        lines += [f"Fingerprint: `{fingerprint}`", ""]
    if not records:
        lines.append("No measurements.")
        return "\n".join(lines) + "\n"
    failed = sum(1 for r in records if r.get("breach"))
    regressions = sum(
        1 for r in records if (r.get("comparison") or {}).get("outcome") == "regression"
    )
    lines += [
        f"{len(records)} measurements, {failed} failing their test, {regressions} regressions.",
        "",
        "| test | measurement | device | n | p50 | p95 | peak RSS | budget | verdict"
        " | min vs baseline | change | vs baseline |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | --- |",
    ]
    for r in records:
        stats = r.get("stats", {})
        verdict = r.get("outcome") or "no budget"
        base, change, versus = _change(r.get("comparison"))
        cells = [
            f"`{r.get('test_id', '?')}`",
            r.get("name", "?"),
            r.get("device", "?"),
            stats.get("n", "-"),
            ms_text(
                stats.get("p50_ms") if stats.get("p50_ms") is not None else stats.get("mean_ms")
            ),
            ms_text(stats.get("p95_ms")),
            mb_text((r.get("memory") or {}).get("rss_peak_mb")),
            budget_text(r),
            _ICONS.get(str(verdict), str(verdict)),
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
