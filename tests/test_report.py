"""The JSON report (build, atomic write, load) and the terminal summary table."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from datetime import datetime, timezone

import pytest
from _typed_records import typed, typed_all

from pytest_hwperf.judge.compliance import LatencyBudget
from pytest_hwperf.measure.sampler import SamplingPolicy, measure
from pytest_hwperf.records.codec import to_json, to_json_object
from pytest_hwperf.report import (
    SCHEMA_VERSION,
    Document,
    ReportError,
    build_document,
    load_document,
    summary_lines,
    write_document,
)
from pytest_hwperf.report.document import Generator

MS = 1_000_000


def measured_record(durations, budgets=(), test_id="tests/test_x.py::test_a", **policy):
    """A record from a real measurement, timed on a fake clock."""
    now = [0]
    steps = iter(durations)

    def clock():
        return now[0]

    def target():
        now[0] += next(steps)

    _, m = measure(
        target, name="infer", budgets=budgets, policy=SamplingPolicy(**policy), clock=clock
    )
    record = m.to_record()
    record["test_id"] = test_id
    return record


def latency_record(outcome="pass", block_size=1, **stats):
    base = {
        "n": 500,
        "mean_ms": 1.2,
        "p50_ms": 1.0,
        "p95_ms": 2.5,
        "p99_ms": 150.0,
    }
    base.update(stats)
    return {
        "test_id": "tests/test_m.py::test_latency",
        "name": "forward",
        "device": "cpu",
        "outcome": outcome,
        "stats": base,
        "timing": {"block_size": block_size},
        "budgets": [{"kind": "latency", "percentile": 99.0, "budget_ms": 10.0}],
    }


ENV = {"python": "3.11", "cpu": {"model": "x", "usable_cores": 2}}
SETTINGS = {"max_time_s": 5.0, "alpha": 0.01}


def document(records):
    """The document of `records`, JSON records as in a report (typed first)."""
    return build_document(
        typed_all(records), environment=ENV, settings=SETTINGS, plugin_version="9.9"
    )


# --- build_document -------------------------------------------------------------------


def test_build_document_fields_and_summary():
    records = [
        {"outcome": "pass"},
        {"outcome": "pass"},
        {"outcome": "fail"},
        {"outcome": "inconclusive"},
        {"outcome": None},
    ]
    doc = document(records)
    assert isinstance(doc, Document)
    assert doc.schema_version == SCHEMA_VERSION == 1
    assert doc.generator == Generator(name="pytest-hwperf", version="9.9")
    assert doc.environment == ENV
    assert doc.settings == SETTINGS
    assert doc.summary == {
        "measurements": 5,
        "pass": 2,
        "fail": 1,
        "inconclusive": 1,
        "no_budget": 1,
        # By the test-level verdict: none of these breaches besides the failed budget.
        "failing": 1,
        "verdict_pass": 2,
        "verdict_fail": 1,
        "verdict_inconclusive": 1,
        "verdict_no_budget": 1,
        "regressions": 0,
    }
    assert doc.measurements == tuple(typed_all(records))
    assert doc.created_at is not None
    created = datetime.fromisoformat(doc.created_at)
    assert created.utcoffset() == timezone.utc.utcoffset(None)
    # As written: the documented keys, the measurements as the codec writes them.
    data = to_json_object(doc)
    assert set(data) == {
        "schema_version",
        "generator",
        "created_at",
        "environment",
        "settings",
        "summary",
        "measurements",
        "sweeps",
        "advice",
    }
    assert data["generator"] == {"name": "pytest-hwperf", "version": "9.9"}
    assert data["summary"] == doc.summary
    assert data["measurements"] == [to_json(r) for r in typed_all(records)]
    assert data["sweeps"] == data["advice"] == []


def test_build_document_copies_its_inputs():
    records = typed_all([{"outcome": "pass"}])
    env = {**ENV, "cpu": dict(ENV["cpu"])}
    doc = build_document(records, environment=env, settings=SETTINGS, plugin_version=None)
    env["python"] = "changed"
    env["cpu"]["model"] = "changed"
    assert doc.environment == ENV
    assert doc.measurements[0].outcome == "pass"
    assert doc.generator is not None
    assert doc.generator.version is None


def test_build_document_refuses_what_is_not_json():
    with pytest.raises(ValueError, match=r"environment\.when"):
        build_document([], environment={"when": object()}, settings={}, plugin_version=None)


# --- write / load ---------------------------------------------------------------------


def test_round_trip_of_a_real_measurement(tmp_path):
    record = measured_record(
        itertools.chain([50 * MS], itertools.repeat(1 * MS)), [LatencyBudget(50.0)]
    )
    doc = document([record])
    path = tmp_path / "report.json"
    write_document(path, doc)
    loaded = load_document(path)
    assert loaded == doc
    assert loaded.measurements[0].outcome == "pass"
    assert list(loaded.measurements[0].samples_ns) == record["samples_ns"]
    # The file is the codec's JSON of the document: keys sorted, indented by one space.
    expected = json.dumps(to_json(doc), indent=1, sort_keys=True, allow_nan=False) + "\n"
    assert path.read_text(encoding="utf-8") == expected


def test_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "report.json"
    write_document(path, document([{"outcome": "pass"}]))
    write_document(path, document([{"outcome": "fail"}]))  # replaces it
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    assert load_document(path).summary["fail"] == 1


def test_write_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "report.json"
    write_document(path, document([]))
    assert path.is_file()
    assert load_document(path).summary["measurements"] == 0


def test_failed_write_keeps_earlier_report_and_cleans_up(tmp_path):
    path = tmp_path / "report.json"
    write_document(path, document([{"outcome": "pass"}]))
    before = path.read_text()
    # Not a JSON value: refused when written, before the earlier report is touched.
    bad = dataclasses.replace(document([{"outcome": "pass"}]), environment={"value": {1, 2}})
    with pytest.raises(ReportError, match="cannot write the JSON report") as info:
        write_document(path, bad)
    assert str(path) in str(info.value)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_write_into_a_file_path_fails_clearly(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    path = blocker / "report.json"
    with pytest.raises(ReportError, match="cannot write the JSON report") as info:
        write_document(path, document([]))
    assert str(path) in str(info.value)


def test_load_refuses_corrupt_json(tmp_path):
    path = tmp_path / "report.json"
    path.write_text('{"schema_version": 1, "measurements": [')
    with pytest.raises(ReportError, match="is not valid JSON") as info:
        load_document(path)
    assert str(path) in str(info.value)
    assert "line 1" in str(info.value)


@pytest.mark.parametrize("content", ['{"measurements": []}', "[1, 2]", '"text"', "null"])
def test_load_refuses_a_document_without_schema_version(tmp_path, content):
    path = tmp_path / "report.json"
    path.write_text(content)
    with pytest.raises(ReportError, match="no schema_version") as info:
        load_document(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 99, "1", 1.5, None])
def test_load_refuses_newer_or_odd_schema_versions(tmp_path, version):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"schema_version": version, "measurements": []}))
    with pytest.raises(ReportError, match="upgrade pytest-hwperf") as info:
        load_document(path)
    message = str(info.value)
    assert str(path) in message
    assert repr(version) in message
    assert f"reads up to {SCHEMA_VERSION}" in message


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(ReportError, match="cannot read") as info:
        load_document(path)
    assert str(path) in str(info.value)


def test_load_an_older_report_fills_in_what_it_lacks(tmp_path):
    """A report of an older release: no `advice`, `sweeps`, per-measurement `memory`,
    `rounds`, `gpu_utilization`, ... (docs/json-schema.md): they take their defaults."""
    record = to_json_object(typed({"outcome": "pass"}))
    for key in ("memory", "rounds", "gpu_utilization", "reference_kind", "placement"):
        record.pop(key, None)
    del record["timing"]["sampling_ms"]
    old = to_json_object(document([]))
    del old["advice"]
    del old["sweeps"]
    old["measurements"] = [record]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    loaded = load_document(path)
    assert loaded.advice == ()
    assert loaded.sweeps == ()
    (measurement,) = loaded.measurements
    assert measurement.memory is None
    assert measurement.rounds == ()
    assert measurement.timing.sampling_ms == 0.0
    assert measurement.outcome == "pass"
    # The barest report a reader accepts: a schema version.
    path.write_text('{"schema_version": 1}', encoding="utf-8")
    assert load_document(path) == Document(schema_version=1)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["measurements"][0].pop("name"), "$.measurements[0]: missing 'name'"),
        (lambda d: d.update(measurements={}), "$.measurements: expected an array"),
        (
            lambda d: d["measurements"][0]["stats"].update(n="many"),
            "$.measurements[0].stats.n: expected an integer",
        ),
        (lambda d: d["summary"].update(fail=1.5), "$.summary.fail: expected an integer"),
        (lambda d: d.update(generator="me"), "$.generator: expected an object"),
        (
            lambda d: d["environment"].update(deep=json.loads("[" * 80 + "]" * 80)),
            "nested more than 64 levels deep",
        ),
    ],
)
def test_load_refuses_a_malformed_report_in_one_line(tmp_path, change, where):
    data = to_json_object(document([{"outcome": "pass"}]))
    change(data)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ReportError) as info:
        load_document(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a valid pytest-hwperf report: ")
    assert where in message
    assert "\n" not in message


# --- summary_lines ----------------------------------------------------------------------

HEADERS = ["test", "name", "device", "n", "p50", "p95", "p99", "budget", "verdict"]


def cells(line):
    return re.split(r"\s{2,}", line.strip())


def test_summary_table_rows():
    lines = summary_lines([typed(latency_record())])
    assert len(lines) == 2
    assert cells(lines[0]) == HEADERS
    assert cells(lines[1]) == [
        "tests/test_m.py::test_latency",
        "forward",
        "cpu",
        "500",
        "1.00ms",
        "2.50ms",
        "150ms",
        "p99<=10.00ms",
        "pass",
    ]


def test_summary_table_block_mode_row_shows_mean():
    record = latency_record(
        block_size=25, n=200, mean_ms=0.002, p50_ms=None, p95_ms=None, p99_ms=None
    )
    row = cells(summary_lines([typed(record)])[1])
    assert row[3] == "200x25"
    assert row[4] == "mean 2.0us"
    assert row[5:7] == ["-", "-"]


def test_summary_table_block_mode_from_a_real_measurement():
    record = measured_record(itertools.repeat(2_000), warmup_s=0.001, min_time_s=0.0)
    assert record["timing"]["block_size"] == 25
    row = cells(summary_lines([typed(record)])[1])
    assert row[3] == f"{record['stats']['n']}x25"
    assert row[4] == "mean 2.0us"
    assert row[-1] == "no budget"


def test_summary_table_verdicts_and_budgets():
    fail = latency_record(outcome="fail")
    none = latency_record(outcome=None)
    none["budgets"] = []
    thr = latency_record(outcome="inconclusive")
    thr["budgets"] = [
        {"kind": "latency", "percentile": 95.0, "budget_ms": 0.5},
        {"kind": "throughput", "min_per_s": 250.0},
    ]
    rows = [cells(line) for line in summary_lines(typed_all([fail, none, thr]))[1:]]
    assert rows[0][-1] == "FAIL"  # failures stand out
    assert rows[1][-2:] == ["-", "no budget"]
    assert rows[2][-2:] == ["p95<=500.0us,>=250/s", "inconclusive"]


def test_summary_table_missing_figures():
    # A typed record always has its test, sample count and mean; percentiles may be absent.
    rows = summary_lines([typed({"name": "bare", "stats": {"n": 0}})])
    row = cells(rows[1])
    assert row[0] == "t.py::test"
    assert row[1] == "bare"
    assert row[3:7] == ["0", "-", "-", "-"]
    assert row[-1] == "no budget"


def test_summary_table_columns_line_up():
    short = latency_record()
    long = latency_record(outcome="fail", n=123456, p99_ms=0.0421)
    long["test_id"] = "tests/a/much/longer/path/test_mod.py::test_something[param]"
    long["name"] = "a-longer-name"
    lines = summary_lines(typed_all([short, long]))
    header = lines[0]
    for line in lines[1:]:
        # Left-aligned text columns start under their header ...
        assert line.index("pass" if "pass" in line else "FAIL") == header.index("verdict")
        # ... and numbers end under theirs.
        n_end = header.index(" n ") + 2
        assert line[n_end - 1] != " "
        assert line[n_end] == " "
    assert lines[2].rstrip() == lines[2]
    assert "42.1us" in lines[2]


def test_summary_table_empty():
    assert cells(summary_lines([])[0]) == HEADERS
