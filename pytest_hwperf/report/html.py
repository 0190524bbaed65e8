"""The HTML report: one self-contained file with the hardware, a summary table and, per
measurement, its latency distribution against the budgets, the comparison with the
baseline and the trend over past runs; plus worker x thread sweeps.

One file that opens anywhere, CI artifact viewers and air-gapped machines included: CSS
and SVG inline, no script, no font, no image, no request. A Content-Security-Policy
meta tag refuses any external reference that might slip in (a browser then reports it,
which the Chromium check in scripts/render_html.py looks for). Every string that came
from the user (test ids, measurement names, reasons) is escaped.

`render_html` is pure: it takes the typed `Document` that `--hwperf-json` writes
(`plugin/writing.py`) and `load_document` reads back, so the plugin and `hwperf report
--html` draw the same page. Only the free-form facts (the environment, the settings) are
read defensively. The run history is read separately (`read_history`), and a history
that cannot be read leaves its charts out with a note instead of failing the report.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from pytest_hwperf.files import atomic_write
from pytest_hwperf.judge.verdict import count_verdicts
from pytest_hwperf.records.types import ComparisonRecord, Facts, JSONValue, MeasurementRecord
from pytest_hwperf.report.cells import plural, rate_text, throughput_figure
from pytest_hwperf.report.charts import (
    comparison_chart,
    distribution_chart,
    duration,
    history_chart,
    percentile_label,
    sweep_charts,
)
from pytest_hwperf.report.document import Document
from pytest_hwperf.report.json_report import ReportError
from pytest_hwperf.report.sweep import Sweep
from pytest_hwperf.report.terminal import memory_budget_parts
from pytest_hwperf.store import History, StoreError, TrendRow, measurement_key
from pytest_hwperf.units import PLAIN_LIMIT

__all__ = ["HISTORY_RUNS", "read_history", "render_html", "write_html"]

# Past runs per measurement drawn in the trend chart: enough to see drift and noise,
# few enough that each run keeps a visible point.
HISTORY_RUNS = 30

# A node id's parameters, "[2x1]": the sweep's test is the id without them (sweep.py).
_PARAMS = re.compile(r"\[[^\]]*\]$")

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
:root{--ink:#1f2328;--muted:#57606a;--line:#d0d7de;--soft:#eaeef2;--bg:#f6f8fa;
--pass:#1a7f37;--fail:#cf222e;--warn:#9a6700;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",
"Liberation Sans",sans-serif}
main{max-width:1240px;margin:0 auto;padding:24px 28px 40px}
h1{font-size:24px;margin:0 0 2px}
h2{font-size:17px;margin:0 0 12px}
h3{font-size:15px;margin:0}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono",
monospace;font-size:12.5px}
.sub{color:var(--muted);margin:0}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px 20px;
margin:16px 0}
.top{display:flex;flex-wrap:wrap;gap:16px;align-items:center;justify-content:space-between}
.banner{padding:8px 14px;border-radius:8px;font-weight:600}
.banner.pass{background:#dafbe1;color:var(--pass)}
.banner.fail{background:#ffebe9;color:var(--fail)}
.counts{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 14px}
.count{border:1px solid var(--line);border-radius:8px;padding:6px 14px;min-width:92px}
.count b{display:block;font-size:20px;line-height:1.2}
.count span{color:var(--muted);font-size:12px}
.count.pass b{color:var(--pass)}.count.fail b{color:var(--fail)}.count.warn b{color:var(--warn)}
dl.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:10px 24px;
margin:0}
dl.facts div{min-width:0}
dt{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
dd{margin:0;overflow-wrap:anywhere}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 8px;border-bottom:1px solid var(--soft);text-align:left;white-space:nowrap}
th{font-size:12px;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line)}
td.num,th.num{text-align:right}
td.test{white-space:normal;overflow-wrap:anywhere;min-width:240px}
tr:hover td{background:#f6f8fa}
.pill{display:inline-block;padding:0 9px;border-radius:999px;font-size:12px;font-weight:600;
line-height:20px;white-space:nowrap}
.pill.pass{background:#dafbe1;color:var(--pass)}
.pill.fail{background:#ffebe9;color:var(--fail)}
.pill.inconclusive,.pill.regression{background:#fff8c5;color:var(--warn)}
.pill.regression{background:#ffebe9;color:var(--fail)}
.pill.improvement{background:#dafbe1;color:var(--pass)}
.pill.none,.pill.unchanged{background:var(--soft);color:var(--muted)}
.m-head{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
.m-head .device{color:var(--muted);font-weight:400}
td span.device{display:block;color:var(--muted);font-size:11.5px}
td.budget{white-space:nowrap}
td.test span.file{display:block;color:var(--muted);font-size:11.5px}
td.test b{font-weight:600}
.test-id{color:var(--muted);margin:2px 0 8px;overflow-wrap:anywhere}
.figures{display:flex;flex-wrap:wrap;gap:4px 18px;color:var(--muted);margin:0 0 8px}
.figures b{color:var(--ink);font-weight:600}
ul.lines{list-style:none;padding:0;margin:0 0 10px}
ul.lines li{margin:3px 0;display:flex;gap:8px;align-items:baseline}
.charts{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:14px 20px;
align-items:start}
.side{display:grid;gap:14px}
@media (max-width:900px){.charts{grid-template-columns:minmax(0,1fr)}}
figure{margin:0}
figcaption{font-weight:600;font-size:13px;margin:0 0 4px}
figure p{color:var(--muted);font-size:12.5px;margin:4px 0 0}
svg.chart{width:100%;height:auto;display:block}
.empty{color:var(--muted);font-style:italic;margin:4px 0}
.note{color:var(--warn)}
.sweep{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:14px 20px}
footer{color:var(--muted);font-size:12px;margin-top:24px}
"""


# -- small helpers ------------------------------------------------------------------------


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pill(outcome: object) -> str:
    """A verdict as a coloured label; None (or "no budget") is a measurement without a
    budget. A measurement's pill shows its test-level verdict (`record.verdict`)."""
    kind = str(outcome) if outcome in ("pass", "fail", "inconclusive") else "none"
    label = "no budget" if outcome is None else str(outcome)
    return f'<span class="pill {kind}">{_e(label)}</span>'


def _budget_parts(record: MeasurementRecord) -> list[str]:
    """The budgets: latency, throughput in items per second, memory as the terminal
    writes it (`rss<=1500MB`)."""
    parts = []
    for budget in record.budgets:
        if budget.kind == "latency":
            parts.append(f"{percentile_label(budget)} ≤ {duration(budget.budget_ms)}")
        elif budget.kind == "throughput":
            parts.append(f"≥ {rate_text(budget.min_per_s, ' items/s')}")
    return parts + memory_budget_parts(record) or ["-"]


def _budget_html(record: MeasurementRecord) -> str:
    """The budgets, one per line (a cell that stays narrow)."""
    return "<br>".join(_e(part) for part in _budget_parts(record))


def _key(record: MeasurementRecord) -> str:
    return measurement_key(record.test_id, record.name, record.device)


def _compared(record: MeasurementRecord) -> ComparisonRecord | None:
    """The comparison when there was a baseline to compare with, else None."""
    comparison = record.comparison
    if comparison is None or comparison.outcome == "no baseline":
        return None
    if comparison.baseline_ms is None:
        return None
    return comparison


def _pct_text(number: float | None) -> str:
    """A change in percent; an interval from a few noisy runs can reach +1e13%."""
    if number is None:
        return "-"
    if abs(number) < 1000:
        return f"{number:+.1f}%"
    return f"{number:+,.0f}%" if abs(number) < 1e6 else f"{number:+.2g}%"


# -- the history --------------------------------------------------------------------------


def read_history(
    document: Document,
    baseline_dir: Path | None = None,
    *,
    limit: int = HISTORY_RUNS,
    warnings: list[str] | None = None,
) -> tuple[dict[str, list[TrendRow]], str | None]:
    """The last `limit` runs of each measurement of `document` on its fingerprint, from
    `baseline_dir`/history.sqlite (default: the baseline folder the document records).

    Returns the rows by measurement key and None, or what it has and a one-line reason
    when the history cannot be read: the report is drawn either way. A missing file is
    an empty history, not an error. Rows that did not validate are skipped; `warnings`,
    when given, receives one line per reading that skipped some.
    """
    if baseline_dir is None:
        recorded = document.settings.get("baseline_dir")
        if not isinstance(recorded, str) or not recorded:
            return {}, None
        baseline_dir = Path(recorded)
    path = baseline_dir / "history.sqlite"
    found: dict[str, list[TrendRow]] = {}
    if not path.is_file():
        return found, None
    default_digest = _facts(document.environment.get("fingerprint")).get("digest")
    try:
        history = History(path)
        for record in document.measurements:
            own = record.fingerprint.digest if record.fingerprint is not None else None
            digest = own or default_digest
            key = _key(record)
            if key in found:
                continue
            rows = history.trend(
                key, fingerprint=digest if isinstance(digest, str) else None, limit=limit
            )
            found[key] = [row for row in rows if row.key == key]
    except (StoreError, OSError, sqlite3.Error, ValueError) as exc:
        return found, f"run history not shown: {exc}"
    if warnings is not None:
        warnings.extend(history.warnings)
    return found, None


# -- page sections ------------------------------------------------------------------------


def _facts(value: JSONValue) -> Facts:
    """A JSON object among the free-form facts, or {} when it is anything else."""
    return value if isinstance(value, dict) else {}


def _gib(value: JSONValue) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "unknown"
    number = float(value)
    return f"{number / (1 << 30):.1f} GiB" if math.isfinite(number) else "unknown"


def _gpus_text(gpus: Facts) -> str:
    listed = gpus.get("gpus")
    found = [_facts(g) for g in listed] if isinstance(listed, list) else []
    if not found:
        return f"none ({gpus.get('reason') or 'none found'})"
    parts = []
    for gpu in found:
        index = gpu.get("cuda_index")
        where = f"cuda:{index} " if index is not None else ""
        facts = [_gib(gpu.get("memory_total_bytes"))]
        if gpu.get("compute_capability"):
            facts.append(f"compute {gpu['compute_capability']}")
        if gpu.get("mig_mode"):
            facts.append("MIG on")
        parts.append(f"{where}{gpu.get('name', '?')} ({', '.join(facts)})")
    driver = gpus.get("driver_version")
    cuda = gpus.get("cuda_driver_version")
    if driver or cuda:
        parts.append(f"driver {driver or 'unknown'}, CUDA {cuda or 'unknown'}")
    return "; ".join(parts)


def _hardware(environment: Facts) -> str:
    machine = _facts(environment.get("machine"))
    cpu, memory = _facts(machine.get("cpu")), _facts(machine.get("memory"))
    fingerprint = _facts(environment.get("fingerprint"))
    smt_flag = cpu.get("smt")
    smt = "SMT unknown" if not isinstance(smt_flag, bool) else "SMT on" if smt_flag else "SMT off"
    facts = [
        (
            "CPU",
            f"{cpu.get('model', 'unknown')} ({cpu.get('isa_level') or 'ISA level unknown'}, {smt})",
        ),
        (
            "Usable cores",
            f"{cpu.get('usable_cores', '?')} ({cpu.get('usable_source', 'source unknown')});"
            f" {cpu.get('logical', '?')} logical, {cpu.get('physical') or '?'} physical",
        ),
        (
            "Memory",
            f"{_gib(memory.get('effective_bytes'))} usable of {_gib(memory.get('total_bytes'))}",
        ),
        ("GPUs", _gpus_text(_facts(machine.get("gpus")))),
        (
            "Software",
            ", ".join(
                f"{name} {environment.get(key) or 'not installed'}"
                for name, key in (
                    ("Python", "python"),
                    ("torch", "torch"),
                    ("numpy", "numpy"),
                    ("pytest", "pytest"),
                )
            ),
        ),
    ]
    items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    digest = fingerprint.get("digest") or "unknown"
    items += (
        f"<div><dt>Fingerprint</dt><dd><code>{_e(digest)}</code>"
        f" {_e(fingerprint.get('label') or '')}</dd></div>"
    )
    return f'<section class="card"><h2>Hardware</h2><dl class="facts">{items}</dl></section>'


def _header(document: Document, records: Sequence[MeasurementRecord]) -> str:
    version = document.generator.version if document.generator is not None else None
    created = document.created_at if document.created_at is not None else "unknown time"
    # The test-level verdicts, counted as the summary, the Markdown and the terminal
    # count them: a regression fails its test too, and is named.
    counts = count_verdicts(records)
    if not records:
        banner = '<div class="banner pass">No measurements</div>'
    elif counts.failing:
        what = f"{counts.failing} of {len(records)} failing their test"
        if counts.regressions:
            what += f" ({counts.regressions} by regression)"
        banner = f'<div class="banner fail">{_e(what)}</div>'
    else:
        tally = ", ".join(
            f"{n} {label}"
            for n, label in (
                (counts.passing, "pass"),
                (counts.inconclusive, "inconclusive"),
                (counts.no_budget, "without a budget"),
            )
            if n
        )
        banner = f'<div class="banner pass">No failures: {_e(tally)}</div>'
    sub = (
        f"{plural(len(records), 'measurement')}"
        f" · {created}"
        f" · pytest-hwperf {version or 'unknown version'}"
    )
    return (
        f'<header class="top"><div><h1>pytest-hwperf report</h1><p class="sub">{_e(sub)}</p>'
        f"</div>{banner}</header>"
    )


def _test_html(test_id: str) -> str:
    """A node id as its file (small, muted) over its test (the part people scan for)."""
    path, sep, test = test_id.partition("::")
    if not sep:
        return f"<b>{_e(path)}</b>"
    return f'<span class="file">{_e(path)}</span><b>{_e(test)}</b>'


def _summary(document: Document, records: Sequence[MeasurementRecord]) -> str:
    # Counted from the measurements by their test-level verdict, as the header counts
    # them (the JSON summary's `pass`/`fail` count the budgets' outcome).
    tally = count_verdicts(records)
    regressions = tally.regressions
    counts = [
        ("pass", tally.passing, "pass"),
        ("fail", tally.failing, "fail"),
        ("inconclusive", tally.inconclusive, "warn"),
        ("no budget", tally.no_budget, ""),
        ("by regression", regressions, "fail" if regressions else ""),
    ]
    boxes = "".join(
        f'<div class="count {cls}"><b>{_e(n)}</b><span>{_e(label)}</span></div>'
        for label, n, cls in counts
    )
    if not records:
        return (
            f'<section class="card"><h2>Summary</h2><div class="counts">{boxes}</div>'
            '<p class="empty">No measurements in this report.</p></section>'
        )
    head = (
        "<tr><th>test</th><th>measurement</th><th class=num>n</th>"
        "<th class=num>p50</th><th class=num>p95</th><th class=num>p99</th><th>budget</th>"
        "<th>verdict</th><th class=num title='the fastest call, which the regression gate"
        " compares'>baseline min</th><th class=num>change</th></tr>"
    )
    rows = []
    for i, r in enumerate(records, 1):
        stats = r.stats
        comparison = _compared(r)
        versus = r.comparison.outcome if r.comparison is not None else None
        if comparison is None:
            change = _e(versus or "-")
        elif versus in ("regression", "improvement"):
            change = (
                f"{_e(_pct_text(comparison.change_pct))}"
                f'<br><span class="pill {_e(versus)}">{_e(versus)}</span>'
            )
        else:
            change = (
                f'{_e(_pct_text(comparison.change_pct))}<span class="device">{_e(versus)}</span>'
            )
        baseline = duration(comparison.baseline_ms if comparison is not None else None, 4)
        cells = [
            f'<td class="test"><a href="#m-{i}">{_test_html(r.test_id)}</a></td>',
            f'<td>{_e(r.name)}<span class="device">{_e(r.device)}</span></td>',
            f'<td class="num">{_e(stats.n)}</td>',
            *(
                f'<td class="num">{_e(duration(v, 4))}</td>'
                for v in (stats.p50_ms, stats.p95_ms, stats.p99_ms)
            ),
            f'<td class="budget">{_budget_html(r)}</td>',
            f"<td>{_pill(r.verdict)}</td>",
            f'<td class="num">{_e(baseline)}</td>',
            f'<td class="num">{change}</td>',
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<section class="card"><h2>Summary</h2><div class="counts">{boxes}</div>'
        f'<div class="table-wrap"><table>{head}{"".join(rows)}</table></div></section>'
    )


def _p95_budget_ms(sweep: Sweep, records: Sequence[MeasurementRecord]) -> float | None:
    """The p95 budget the sweep's configs were judged on (the same test, parametrized),
    when there is exactly one."""
    found = {
        limit
        for r in records
        if _PARAMS.sub("", r.test_id) == sweep.test
        and r.name == sweep.name
        and r.device == sweep.device
        for b in r.budgets
        if b.kind == "latency" and b.percentile == 95.0 and (limit := b.budget_ms) is not None
    }
    return found.pop() if len(found) == 1 else None


def _sweeps(sweeps: Sequence[Sweep], records: Sequence[MeasurementRecord]) -> str:
    blocks = []
    for sweep in sweeps:
        best = sweep.recommended
        advice = (
            f"recommended: {best.workers} workers x {best.threads} threads"
            " (highest throughput within the latency budget, not oversubscribed)"
            if best is not None
            else "recommended: none (no config met the latency budget)"
        )
        charts = "".join(
            f"<figure>{svg}</figure>"
            for svg in sweep_charts(sweep, p95_budget_ms=_p95_budget_ms(sweep, records))
        )
        blocks.append(
            f'<div><h3 class="mono">{_e(sweep.test)}</h3><p class="sub">'
            f"{_e(sweep.name)} on {_e(sweep.device)}; {_e(advice)}</p>"
            f'<div class="sweep">{charts}</div></div>'
        )
    if not blocks:
        return ""
    return (
        '<section class="card"><h2>Workers x threads sweeps</h2>' + "".join(blocks) + "</section>"
    )


def _measurement(
    index: int,
    record: MeasurementRecord,
    history: Mapping[str, Sequence[TrendRow]] | None,
    history_error: str | None,
) -> str:
    stats, timing, memory = record.stats, record.timing, record.memory
    figures: list[tuple[str, object]] = [
        ("n", stats.n),
        ("p50", duration(stats.p50_ms, 4)),
        ("p95", duration(stats.p95_ms, 4)),
        ("p99", duration(stats.p99_ms, 4)),
        ("mean", duration(stats.mean_ms, 4)),
        ("throughput", throughput_figure(record)),
        ("sync", timing.sync),
        ("stopped", timing.stop_reason),
    ]
    if memory is not None:
        for peak, label in (
            (memory.rss_peak_mb, "peak RSS"),
            (memory.gpu_peak_mb, "peak GPU memory"),
        ):
            if peak is not None:
                plain = 10 <= peak < PLAIN_LIMIT
                figures.append((label, f"{peak:,.0f} MB" if plain else f"{peak:.3g} MB"))
    figure_html = "".join(f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in figures)
    lines = [f"<li>{_pill(b.outcome)}<span>{_e(b.reason)}</span></li>" for b in record.budgets]
    comparison = _compared(record)
    if record.comparison is not None:
        outcome = record.comparison.outcome
        lines.append(
            f'<li><span class="pill {_e(outcome if comparison else "none")}">{_e(outcome)}</span>'
            f"<span>{_e(record.comparison.reason)}</span></li>"
        )
    if memory is not None and memory.outcome in ("pass", "fail") and memory.reason:
        lines.append(f"<li>{_pill(memory.outcome)}<span>memory: {_e(memory.reason)}</span></li>")
    if record.oversubscription:
        lines.append(
            f'<li><span class="pill fail">oversubscribed</span>'
            f"<span>{_e(record.oversubscription)}</span></li>"
        )
    lines += [
        f'<li><span class="pill none">note</span><span>{_e(note)}</span></li>'
        for note in record.notes
    ]
    distribution = distribution_chart(record)
    main = (
        f"<figure><figcaption>Latency distribution</figcaption>{distribution}</figure>"
        if distribution
        else '<p class="empty">No samples.</p>'
    )
    side = []
    if comparison is not None:
        confidence = comparison.ci_confidence_pct or 0.0
        side.append(
            "<figure><figcaption>Against the baseline</figcaption>"
            f"{comparison_chart(record, comparison)}"
            f"<p>change {_e(_pct_text(comparison.change_pct))}, interval"
            f" {_e(_pct_text(comparison.ci_low_pct))} to"
            f" {_e(_pct_text(comparison.ci_high_pct))}"
            f" ({confidence:.4g}% confidence),"
            f" {_e(plural(comparison.baseline_runs, 'baseline run'))}</p></figure>"
        )
    elif record.comparison is not None:
        side.append(
            '<figure><figcaption>Against the baseline</figcaption><p class="empty">No'
            " baseline for this fingerprint yet: record one with --hwperf-save.</p></figure>"
        )
    rows = (history or {}).get(_key(record), [])
    trend = history_chart(record, rows) if rows else None
    if trend is not None:
        side.append(f"<figure><figcaption>History</figcaption>{trend}</figure>")
    elif history_error:
        side.append(
            f'<figure><figcaption>History</figcaption><p class="note">{_e(history_error)}</p>'
            "</figure>"
        )
    return (
        f'<section class="card measurement" id="m-{index}"><div class="m-head">'
        f"{_pill(record.verdict)}<h3>{_e(record.name)}"
        f' <span class="device">on {_e(record.device)}</span></h3></div>'
        f'<div class="test-id mono">{_e(record.test_id)}</div>'
        f'<div class="figures">{figure_html}</div><ul class="lines">{"".join(lines)}</ul>'
        f'<div class="charts"><div>{main}</div><div class="side">{"".join(side)}</div></div>'
        "</section>"
    )


def render_html(
    document: Document,
    *,
    history: Mapping[str, Sequence[TrendRow]] | None = None,
    history_error: str | None = None,
) -> str:
    """The report page for a JSON report's document (as `--hwperf-json` writes it).

    `history` maps measurement keys (`test_id::name@device`) to their past runs, oldest
    first (`read_history`); without it no trend is drawn. `history_error` is shown where
    the trends would be when the history could not be read.
    """
    records = document.measurements
    settings = document.settings
    sections = [
        _header(document, records),
        _hardware(document.environment),
        _summary(document, records),
        _sweeps(document.sweeps, records),
        *(_measurement(i, r, history, history_error) for i, r in enumerate(records, 1)),
    ]
    footer = (
        f"Settings: alpha {settings.get('alpha', '?')}, up to {settings.get('max_time_s', '?')} s"
        f" per measurement, regression threshold {settings.get('regression_pct', '?')}%,"
        f" baselines in {settings.get('baseline_dir', '?')}. One self-contained file: no"
        " script, no external resource."
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>pytest-hwperf report</title>"
        f"<style>{_CSS}</style></head>\n<body><main>"
        + "\n".join(sections)
        + f"\n<footer>{_e(footer)}</footer></main></body></html>\n"
    )


def write_html(path: Path, text: str) -> None:
    """Write the page to `path` atomically (temp file, then rename), creating missing
    parent folders; ReportError names the file and why it could not be written."""
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise ReportError(f"cannot write the HTML report {path}: {exc}") from exc
