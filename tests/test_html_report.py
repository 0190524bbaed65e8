"""The HTML report (`--hwperf-html`, `hwperf report --html`): one self-contained page.

Unit tests render a synthetic document built from real records (`Measurement`,
`judge`, `compare`, `sweeps`), so the page is checked against the structures the plugin
writes; pytester runs check the plugin and the CLI write it; a headless Chromium, when
installed, loads a generated page and must see no request and nothing refused.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import random
import re
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from _output import FAST_RUN
from _typed_records import typed

from pytest_hwperf.cli import main
from pytest_hwperf.judge.budgets import LatencyBudget, ThroughputBudget
from pytest_hwperf.judge.compliance import judge
from pytest_hwperf.judge.gate import SavedRun, compare_with_runs
from pytest_hwperf.measure.result import Measurement
from pytest_hwperf.records.codec import RecordError, measurement_from_json, to_json
from pytest_hwperf.report import Document, ReportError, build_document, load_document
from pytest_hwperf.report.charts import duration
from pytest_hwperf.report.document import document_from_json
from pytest_hwperf.report.html import CSP, read_history, render_html, write_html
from pytest_hwperf.report.svg import Chart, Scale, histogram, linear_ticks, log_ticks, thin_steps
from pytest_hwperf.report.sweep import sweeps
from pytest_hwperf.store import History, HistoryRow, TrendRow, measurement_key

ROOT = Path(__file__).resolve().parent.parent
EVIL_TEST = "tests/test_x.py::test_a[<script>alert(1)</script>]"
DIGEST = "a1b8adefb739"
FINGERPRINT = {"digest": DIGEST, "label": "AMD EPYC x86-64-v4, 2 cores, no GPU", "hashed": {}}


def _samples(seed: int, median_ms: float, n: int, tail: float = 0.0) -> np.ndarray:
    """Log-normal per-call times around `median_ms`, with a share `tail` of 20x stalls."""
    rng = random.Random(seed)
    values = []
    for _ in range(n):
        ms = median_ms * rng.lognormvariate(0.0, 0.15)
        if rng.random() < tail:
            ms *= 20
        values.append(int(ms * 1e6))
    return np.array(values, dtype=np.int64)


def _record(
    test_id: str,
    name: str,
    samples: np.ndarray,
    budgets: list[LatencyBudget | ThroughputBudget],
    *,
    baseline_fastest_ms: list[float] | None = None,
    worker_config: dict[str, int] | None = None,
    block_size: int = 1,
) -> dict[str, Any]:
    measurement = Measurement(
        name=name,
        device="cpu",
        mode="measured",
        timing_method="perf_counter_ns",
        sync_method="none",
        block_size=block_size,
        samples_ns=samples,
        warmup_calls=10,
        warmup_ns=1_000_000,
        per_call_estimate_ns=float(np.median(samples)),
        gc_policy="collect-then-enabled",
        stop_reason="decided",
        alpha=0.01,
        looks=4,
        verdicts=[judge(b, samples, 0.01) for b in budgets],
    )
    record = measurement.to_record()
    record["test_id"] = test_id
    record["worker_config"] = None if worker_config is None else {**worker_config, "total": 0}
    record["fingerprint"] = FINGERPRINT
    if baseline_fastest_ms is not None:
        # As the plugin's gate compares (judge.gate, the function it calls).
        current = float(np.median(samples)) / 1e6
        found = compare_with_runs(
            current,
            [SavedRun(fastest_ms=ms) for ms in baseline_fastest_ms],
            key=measurement_key(test_id, name, "cpu"),
            threshold_pct=10.0,
            alpha=0.001,
            fingerprint=DIGEST,
        )
        record["comparison"] = to_json(found)
    # As the session does: a failed budget or a regression fails the test.
    regressed = (record.get("comparison") or {}).get("outcome") == "regression"
    record["breach"] = record["outcome"] == "fail" or regressed
    return record


def make_document() -> Document:
    """Five measurements: a regression, a failing budget, an improvement without budget,
    a block-timed throughput, and a 2x2 workers x threads sweep."""
    records = [
        _record(
            EVIL_TEST,
            "predict",
            _samples(1, 2.0, 600, tail=0.02),
            [LatencyBudget(ms=10.0, percentile=95), LatencyBudget(ms=80.0, percentile=99)],
            baseline_fastest_ms=[1.6, 1.62, 1.58, 1.61],
        ),
        _record(
            "tests/test_b.py::test_slow",
            "slow<&>",
            _samples(2, 30.0, 300),
            [LatencyBudget(ms=20.0, percentile=95)],
        ),
        _record(
            "tests/test_c.py::test_faster",
            "embed",
            _samples(3, 0.5, 400),
            [],
            baseline_fastest_ms=[0.70, 0.71, 0.70, 0.71, 0.70],
        ),
        _record(
            "tests/test_d.py::test_bulk",
            "tiny",
            _samples(4, 0.004, 200),
            [ThroughputBudget(min_per_s=1000.0)],
            block_size=8,
        ),
    ]
    # The memory marker's verdict, as the session puts it on the record.
    records[1]["memory"] = {
        "rss_peak_mb": 512.4,
        "gpu_peak_mb": None,
        "rss_budget_mb": 100.0,
        "outcome": "fail",
        "reason": "peak RSS 512 MB over the 100 MB budget (test process)",
    }
    for i, (workers, threads) in enumerate([(1, 1), (2, 1), (1, 2), (2, 2)]):
        records.append(
            _record(
                f"tests/test_e.py::test_serve[{workers}x{threads}]",
                "serve",
                _samples(10 + i, 4.0 / (workers * threads) ** 0.5, 200),
                [LatencyBudget(ms=3.5, percentile=95)],
                worker_config={"workers": workers, "threads": threads},
            )
        )
    environment = {
        "python": "3.11.7",
        "torch": "2.13.0+cpu",
        "numpy": "2.4.6",
        "pytest": "9.2.0",
        "machine": {
            "cpu": {
                "model": "AMD EPYC",
                "isa_level": "x86-64-v4",
                "smt": False,
                "usable_cores": 2,
                "usable_source": "affinity 0-1 (2 CPUs), no CPU quota",
                "logical": 2,
                "physical": 2,
            },
            "memory": {"effective_bytes": 25 << 30, "total_bytes": 25 << 30},
            "gpus": {
                "gpus": [
                    {
                        "cuda_index": 0,
                        "name": "NVIDIA H200 <sxm>",
                        "memory_total_bytes": 141 << 30,
                        "compute_capability": "9.0",
                        "mig_mode": False,
                    }
                ],
                "driver_version": "570.1",
                "cuda_driver_version": "12.8",
            },
        },
        "fingerprint": {**FINGERPRINT, "volatile": {}},
    }
    measurements = [measurement_from_json(r) for r in records]
    return build_document(
        measurements,
        sweeps=sweeps(measurements),
        environment=environment,
        settings={"alpha": 0.01, "max_time_s": 5.0, "regression_pct": 10.0, "baseline_dir": ""},
        plugin_version="0.1.0",
    )


def _history_rows(key: str, medians: list[float]) -> list[TrendRow]:
    return [
        TrendRow(
            run_id=f"run{i}",
            created=f"2026-11-{10 + i:02d}T12:00:00+00:00",
            fingerprint=DIGEST,
            label=None,
            commit=f"abc{i}",
            key=key,
            test_id=key.split("::predict")[0],
            name="predict",
            device="cpu",
            n=600,
            median_ms=median,
            mean_ms=median,
            p95_ms=median * 1.2,
            outcome="pass",
            samples_ns=(),
        )
        for i, median in enumerate(medians)
    ]


def _section(page: str, index: int) -> str:
    match = re.search(rf'<section class="card measurement" id="m-{index}">(.*?)</section>', page)
    assert match, f"no section m-{index}"
    return match.group(1)


@pytest.fixture(scope="module")
def document() -> Document:
    return make_document()


@pytest.fixture(scope="module")
def page(document: Document) -> str:
    key = measurement_key(EVIL_TEST, "predict", "cpu")
    rows = _history_rows(key, [1.6, 1.62, 1.58, 1.61, 1.9, 2.0])
    return render_html(document, history={key: rows})


# --- the page ------------------------------------------------------------------------


def test_page_structure(page: str, document: Document):
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert page.rstrip().endswith("</html>")
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert "<h2>Hardware</h2>" in page
    assert "<h2>Summary</h2>" in page
    # One summary row per measurement, each linking to its section.
    measurements = document.measurements
    assert len(re.findall(r'<a href="#m-\d+">', page)) == len(measurements) == 8
    # The header: hardware and fingerprint, user strings escaped.
    assert "AMD EPYC (x86-64-v4, SMT off)" in page
    assert "2 (affinity 0-1 (2 CPUs), no CPU quota)" in page
    assert "cuda:0 NVIDIA H200 &lt;sxm&gt; (141.0 GiB, compute 9.0)" in page
    assert f"<code>{DIGEST}</code>" in page
    # The banner counts the failing measurements and the regression.
    assert 'class="banner fail">3 of 8 failing their test (1 by regression)</div>' in page


def test_every_measurement_has_its_distribution_chart(page: str, document: Document):
    for index in range(1, len(document.measurements) + 1):
        section = _section(page, index)
        assert "<figcaption>Latency distribution</figcaption><svg" in section
        assert re.search(r"<svg class=\"chart\" viewBox=\"0 0 [\d.]+ [\d.]+\"", section)


def test_budget_rules_and_measured_percentiles_are_drawn(page: str):
    section = _section(page, 1)  # p95 <= 10 ms (met), p99 <= 80 ms (met)
    assert "p95 budget 10 ms</text>" in section
    assert "p99 budget 80 ms</text>" in section
    # A rule per budget in the pass colour, and a dot with its interval per budget.
    assert section.count('stroke="#1a7f37" stroke-width="1.5" stroke-dasharray="5 4"') == 2
    assert section.count("<circle") >= 2
    failing = _section(page, 2)  # p95 <= 20 ms on a ~30 ms target: failed
    assert "p95 budget 20 ms</text>" in failing
    assert 'stroke="#cf222e" stroke-width="1.5" stroke-dasharray="5 4"' in failing
    assert '<span class="pill fail">fail</span>' in failing
    assert "peak RSS <b>512 MB</b>" in failing
    assert "peak GPU memory" not in failing
    assert "memory: peak RSS 512 MB over the 100 MB budget (test process)" in failing


def test_user_strings_are_escaped(page: str):
    assert "<script" not in page.lower()
    assert "tests/test_x.py</span><b>test_a[&lt;script&gt;alert(1)&lt;/script&gt;]</b>" in page
    assert "slow&lt;&amp;&gt;" in page
    assert "slow<&>" not in page


def test_no_external_reference(page: str):
    lowered = page.lower()
    for needle in ("http://", "https://", "src=", "url(", "@import", "<link", "<img", "//"):
        assert needle not in lowered.replace("<!doctype", ""), needle


def test_comparison_chart_only_with_a_baseline(page: str):
    regressed = _section(page, 1)
    assert "<figcaption>Against the baseline</figcaption><svg" in regressed
    assert "+10%</text>" in regressed  # the regression threshold's rule
    assert ">baseline</text>" in regressed
    assert ">this run</text>" in regressed
    assert '<span class="pill regression">regression</span>' in regressed
    improved = _section(page, 3)
    assert '<span class="pill improvement">improvement</span>' in improved
    no_baseline = _section(page, 2)
    assert "Against the baseline" not in no_baseline


def test_history_chart_from_the_given_rows(page: str, document: Document):
    section = _section(page, 1)
    assert "<figcaption>History</figcaption><svg" in section
    assert "last 6 runs on this fingerprint" in section
    assert "11-10 12:00" in section
    assert "11-15 12:00" in section
    assert section.count("<circle") >= 6 + 2
    assert "History" not in _section(page, 2)  # no rows for it
    failed = render_html(document, history={}, history_error="run history not shown: boom")
    assert '<p class="note">run history not shown: boom</p>' in _section(failed, 1)
    assert "<figcaption>History</figcaption><svg" not in failed


def test_sweep_charts(page: str, document: Document):
    (sweep,) = document.sweeps
    assert "<h2>Workers x threads sweeps</h2>" in page
    best = sweep.recommended
    if best is not None:
        assert f"recommended: {best.workers} workers x {best.threads} threads" in page
    block = page.split("<h2>Workers x threads sweeps</h2>", 1)[1].split("</section>", 1)[0]
    assert block.count("<svg") == 2  # throughput and p95 against the worker count
    assert "p95 budget 3.5 ms</text>" in block  # the configs' budget, on the p95 panel
    assert ">1 thread</text>" in block
    assert ">2 threads</text>" in block


def test_block_timed_measurement_says_so(page: str):
    section = _section(page, 4)
    assert "block means, blocks of 8" in section
    assert "throughput" in section


def test_empty_and_foreign_documents_render():
    empty = render_html(document_from_json({"schema_version": 1, "measurements": []}))
    assert "No measurements in this report." in empty
    assert "<svg" not in empty
    # A foreign document is refused where it is read, naming where it is wrong ...
    with pytest.raises(RecordError, match=r"\$\.measurements\[0\]: missing 'test_id'"):
        document_from_json(
            {"schema_version": 1, "measurements": [{"name": 3, "samples_ns": "x", "budgets": [1]}]}
        )
    # ... and a measurement without samples is drawn without its chart.
    odd = render_html(Document(schema_version=1, measurements=(typed({"name": "odd"}),)))
    assert "No samples." in odd
    # 0 ns samples (a clock too coarse for the target) on a log axis: drawn, no error.
    zeros = {
        "name": "tiny",
        "samples_ns": [0, 0, 1_000, 2_000, 50_000],
        "budgets": [{"kind": "latency", "percentile": 95.0, "budget_ms": 0.1, "outcome": "pass"}],
    }
    page = render_html(Document(schema_version=1, measurements=(typed(zeros),)))
    assert "time per call — log scale" in page
    assert "p95 budget 100 µs</text>" in page


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value[:3])
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def test_a_hand_edited_document_never_raises(document: Document, tmp_path: Path):
    """`hwperf report --html` reads files users edit: any field of any type (or NaN, or
    inf) is either refused in one line naming the file, or leaves a chart or a figure
    out; never a traceback."""
    junk = [None, "x", -1, 1e308, [], {}, [1, "a"], {"a": 1}, True, math.nan, math.inf, "<b>"]
    rng = random.Random(0)
    data = to_json(document)
    paths = _paths(data)
    source = tmp_path / "edited.json"
    drawn = 0
    for _ in range(400):
        edited = copy.deepcopy(data)
        for path in rng.sample(paths, rng.choice((1, 2))):
            target: Any = edited
            try:
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = rng.choice(junk)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier edit replaced a parent
        source.write_text(json.dumps(edited), encoding="utf-8")
        try:
            loaded = load_document(source)
        except ReportError as exc:
            refused = str(exc)
        else:
            page = render_html(loaded)
            assert page.rstrip().endswith("</html>")
            drawn += 1
            continue
        assert refused.startswith(str(source))
        assert "\n" not in refused
    assert drawn > 40  # edits the reader accepts (free-form facts, odd values) are drawn


def test_write_html_is_atomic_and_names_the_file(tmp_path: Path):
    target = tmp_path / "deep" / "report.html"
    write_html(target, "<p>one</p>")
    assert target.read_text(encoding="utf-8") == "<p>one</p>"
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(ReportError, match=r"cannot write the HTML report .*file.*report\.html"):
        write_html(blocked / "report.html", "x")
    assert list((tmp_path / "deep").iterdir()) == [target]


# --- the history read --------------------------------------------------------------------


def test_read_history_on_the_documents_fingerprint(tmp_path: Path, document: Document):
    key = measurement_key(EVIL_TEST, "predict", "cpu")
    history = History(tmp_path / "history.sqlite")
    row = HistoryRow(
        key=key,
        test_id=EVIL_TEST,
        name="predict",
        device="cpu",
        n=10,
        median_ms=1.5,
        mean_ms=1.5,
        p95_ms=2.0,
        outcome="pass",
        samples_ns=None,
    )
    for i in range(35):
        history.record_run(f"r{i}", f"2026-11-01T00:00:{i:02d}+00:00", DIGEST, None, None, [row])
    history.record_run("other", "2026-11-02T00:00:00+00:00", "otherdigest", None, None, [row])
    found, error = read_history(document, tmp_path)
    assert error is None
    assert len(found[key]) == 30  # the last 30 runs on this fingerprint, oldest first
    assert [r.run_id for r in found[key]][-1] == "r34"
    assert all(r.fingerprint == DIGEST for r in found[key])
    assert found[measurement_key("tests/test_b.py::test_slow", "slow<&>", "cpu")] == []


def test_read_history_never_fails_the_report(tmp_path: Path, document: Document):
    assert read_history(document, tmp_path) == ({}, None)  # no file: no trends, no error
    (tmp_path / "history.sqlite").write_bytes(b"this is not a database at all")
    found, error = read_history(document, tmp_path)
    assert found == {}
    assert error is not None
    assert "not an SQLite database" in error
    page = render_html(document, history=found, history_error=error)
    assert "not an SQLite database" in page
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "history.sqlite") as conn:
        conn.execute("CREATE TABLE other (x)")
    assert "not a pytest-hwperf history" in str(read_history(document, foreign)[1])


# --- the charts' building blocks ---------------------------------------------------------


def test_ticks_and_scales():
    assert linear_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    assert linear_ticks(0.3, 1.7, 4) == [0.5, 1.0, 1.5]
    assert log_ticks(0.01, 1000) == [0.01, 0.1, 1, 10, 100, 1000]
    assert log_ticks(1, 50) == [1, 2, 5, 10, 20, 50]
    scale = Scale.fit([0.013, 250.0], 0, 100, log=True)
    assert (scale.lo, scale.hi) == (0.01, 500.0)
    assert scale(0.01) == 0
    assert scale(500.0) == 100
    assert scale(1.0) == pytest.approx(100 * 2 / (2 + 2.69897), rel=1e-4)
    linear = Scale.fit([3.0, 97.0], 200, 0)  # pixels grow downwards on a y axis
    assert (linear.lo, linear.hi) == (0.0, 100.0)
    assert linear(25.0) == 150.0


def test_histogram_and_cdf_points():
    values = [1.0, 1.5, 2.0, 9.0, 10.0]
    bins = histogram(values, 1.0, 10.0, 3, log=False)
    assert [count for _, _, count in bins] == [3, 0, 2]
    log_bins = histogram(values, 1.0, 10.0, 2, log=True)
    assert [count for _, _, count in log_bins] == [3, 2]  # edge at 10**0.5
    assert log_bins[0][1] == pytest.approx(10**0.5)
    steps = thin_steps(sorted(range(10_000)), limit=100)
    assert len(steps) == 100
    assert steps[0] == (0.0, 0.01)
    assert steps[-1] == (9999.0, 100.0)
    assert thin_steps([5.0]) == [(5.0, 100.0)]


def test_chart_escapes_and_scales_to_its_container():
    chart = Chart.create("a <b> & c", [1.0, 2.0], [0.0, 1.0])
    chart.axes(x_label="x <1>", y_label="y")
    chart.vline(1.5, "#000000", "label & <more>")
    svg = chart.render()
    assert svg.startswith('<svg class="chart" viewBox="0 0 640 240" role="img"')
    assert "<title>a &lt;b&gt; &amp; c</title>" in svg
    assert "x &lt;1&gt;" in svg
    assert "label &amp; &lt;more&gt;" in svg
    assert "<b>" not in svg


def test_duration_picks_the_unit():
    assert [duration(v) for v in (1500.0, 12.81, 1.0, 0.1275, 0.00085)] == [
        "1.5 s",
        "12.8 ms",
        "1 ms",
        "128 µs",
        "850 ns",
    ]
    assert duration(None) == "-"


# --- the plugin and the CLI write it -------------------------------------------------------

BUDGET_TEST = """
import pytest

@pytest.mark.latency(ms=1000, percentile=95)
def test_fast(hwperf):
    hwperf(lambda: sum(range(100)), name="sum")
"""
QUICK = (*FAST_RUN, "-p", "no:randomly")


def test_plugin_writes_the_html_report(pytester: pytest.Pytester):
    pytester.makepyfile(test_fast=BUDGET_TEST)
    result = pytester.runpytest("--hwperf", *QUICK, "--hwperf-html=out/report.html")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["hwperf: HTML report written to out/report.html"])
    page = (pytester.path / "out" / "report.html").read_text(encoding="utf-8")
    assert "test_fast.py</span><b>test_fast</b>" in page
    # A budget 1000x above the ~1 us calls is named at the axis' edge, not drawn as a
    # rule there: the axis stays on the samples.
    assert "p95 budget 1 s →</text>" in page
    assert 'stroke="#1a7f37" stroke-width="1.5" stroke-dasharray="5 4"' not in page
    # The run just recorded is in the history: the trend has its first point.
    assert "last 1 run on this fingerprint" in page
    assert "http://" not in page
    assert "https://" not in page


def test_html_ini_key_and_no_report_without_hwperf(pytester: pytest.Pytester):
    pytester.makepyfile(test_fast=BUDGET_TEST)
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nhwperf_html = "from-ini.html"\n')
    result = pytester.runpytest(*QUICK)
    assert result.ret == pytest.ExitCode.OK
    assert not (pytester.path / "from-ini.html").exists()
    result.stdout.fnmatch_lines(
        [
            f"*HwperfWarning: --hwperf-html={pytester.path / 'from-ini.html'} is ignored without"
            " --hwperf*"
        ]
    )
    result = pytester.runpytest("--hwperf", *QUICK)
    assert result.ret == pytest.ExitCode.OK
    assert "<h2>Summary</h2>" in (pytester.path / "from-ini.html").read_text(encoding="utf-8")


def test_unwritable_html_report_fails_the_run(pytester: pytest.Pytester):
    pytester.makepyfile(test_fast=BUDGET_TEST)
    (pytester.path / "taken").write_text("a file, not a folder")
    result = pytester.runpytest("--hwperf", *QUICK, "--hwperf-html=taken/report.html")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["hwperf: error: cannot write the HTML report taken/report.html*"])
    assert "Traceback" not in result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str()


def test_cli_renders_the_html_from_a_json_report(
    tmp_path: Path, document: Document, capsys: pytest.CaptureFixture[str]
):
    source = tmp_path / "results.json"
    source.write_text(json.dumps(to_json(document)), encoding="utf-8")
    key = measurement_key(EVIL_TEST, "predict", "cpu")
    history = History(tmp_path / "hist" / "history.sqlite")
    for i, median in enumerate([1.5, 1.6, 1.7]):
        row = HistoryRow(key=key, test_id=EVIL_TEST, name="predict", device="cpu", median_ms=median)
        history.record_run(f"r{i}", f"2026-11-0{i + 1}T00:00:00+00:00", DIGEST, None, None, [row])
    out = tmp_path / "out.html"
    code = main(["report", str(source), "--html", str(out), "--dir", str(tmp_path / "hist")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"hwperf report: HTML report written to {out}" in captured.out
    assert "predict" in captured.out  # the table is still printed
    page = out.read_text(encoding="utf-8")
    # The same page the plugin would draw from the same document and history.
    assert page == render_html(document, history=read_history(document, tmp_path / "hist")[0])
    assert "last 3 runs on this fingerprint" in page


def test_cli_html_errors_are_one_line(tmp_path: Path, document: Document, capsys):
    source = tmp_path / "results.json"
    source.write_text(json.dumps(to_json(document)), encoding="utf-8")
    (tmp_path / "taken").write_text("x")
    code = main(["report", str(source), "--html", str(tmp_path / "taken" / "r.html")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("hwperf report: error: cannot write the HTML report ")
    assert len(err.strip().splitlines()) == 1
    # A corrupt history is a warning: the page is still written, without trends.
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "history.sqlite").write_bytes(b"garbage, not sqlite")
    code = main(
        ["report", str(source), "--html", str(tmp_path / "r.html"), "--dir", str(tmp_path / "bad")]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert err.startswith("hwperf report: warning: run history not shown:")
    assert "not an SQLite database" in (tmp_path / "r.html").read_text(encoding="utf-8")


# --- in a real browser ------------------------------------------------------------------


def _render_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_html", ROOT / "scripts" / "render_html.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium is not on PATH (apt-get install chromium) to render the page headless",
)


@needs_chromium
def test_chromium_renders_the_page_without_any_request(tmp_path: Path, page: str):
    script = _render_script()
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    png = tmp_path / "report.png"
    problems = script.check_in_chromium(html, png, window=(1280, 1600))
    assert problems == []
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


@needs_chromium
def test_chromium_check_catches_external_references(tmp_path: Path):
    """The check above could fail: a page with an external image and script, under the
    report's CSP, is reported (refused), and without a CSP the request itself is."""
    script = _render_script()
    body = '<img src="https://example.invalid/x.png"><script src="x.js"></script><p>hi</p>'
    guarded = tmp_path / "guarded.html"
    guarded.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy"'
        f' content="{CSP}"></head><body>{body}</body></html>',
        encoding="utf-8",
    )
    problems = script.check_in_chromium(guarded, tmp_path / "g.png", window=(400, 300))
    assert any("example.invalid/x.png" in p for p in problems), problems
    assert any("x.js" in p for p in problems), problems
    open_page = tmp_path / "open.html"
    open_page.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>", encoding="utf-8")
    problems = script.check_in_chromium(open_page, tmp_path / "o.png", window=(400, 300))
    assert any("example.invalid/x.png" in p for p in problems), problems
    assert any("x.js" in p for p in problems), problems
