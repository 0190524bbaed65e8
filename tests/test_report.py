"""The JSON report (build, atomic write, load) and the terminal summary table."""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime, timezone

import pytest

from pytest_hwperf.judge.compliance import LatencyBudget
from pytest_hwperf.measure.sampler import SamplingPolicy, measure
from pytest_hwperf.report import (
    SCHEMA_VERSION,
    ReportError,
    build_document,
    load_document,
    summary_lines,
    write_document,
)

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
    return build_document(records, environment=ENV, settings=SETTINGS, plugin_version="9.9")


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
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert doc["generator"] == {"name": "pytest-hwperf", "version": "9.9"}
    assert doc["environment"] == ENV
    assert doc["settings"] == SETTINGS
    assert doc["summary"] == {
        "measurements": 5,
        "pass": 2,
        "fail": 1,
        "inconclusive": 1,
        "no_budget": 1,
    }
    assert doc["measurements"] == records
    created = datetime.fromisoformat(doc["created_at"])
    assert created.utcoffset() == timezone.utc.utcoffset(None)


def test_build_document_copies_its_inputs():
    records = [{"outcome": "pass"}]
    env = dict(ENV)
    doc = build_document(records, environment=env, settings=SETTINGS, plugin_version=None)
    doc["measurements"][0]["outcome"] = "fail"
    doc["environment"]["python"] = "changed"
    assert records[0]["outcome"] == "pass"
    assert env["python"] == "3.11"
    assert doc["generator"]["version"] is None


# --- write / load ---------------------------------------------------------------------


def test_round_trip_of_a_real_measurement(tmp_path):
    record = measured_record(
        itertools.chain([50 * MS], itertools.repeat(1 * MS)), [LatencyBudget(50.0)]
    )
    doc = document([record])
    path = tmp_path / "report.json"
    write_document(path, doc)
    loaded = load_document(path)
    assert loaded == json.loads(json.dumps(doc))
    assert loaded["measurements"][0]["outcome"] == "pass"
    assert loaded["measurements"][0]["samples_ns"] == record["samples_ns"]


def test_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "report.json"
    write_document(path, document([{"outcome": "pass"}]))
    write_document(path, document([{"outcome": "fail"}]))  # replaces it
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    assert load_document(path)["summary"]["fail"] == 1


def test_write_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "report.json"
    write_document(path, document([]))
    assert path.is_file()
    assert load_document(path)["summary"]["measurements"] == 0


def test_failed_write_keeps_earlier_report_and_cleans_up(tmp_path):
    path = tmp_path / "report.json"
    write_document(path, document([{"outcome": "pass"}]))
    before = path.read_text()
    bad = document([{"outcome": "pass", "value": float("nan")}])  # not valid JSON
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


# --- summary_lines ----------------------------------------------------------------------

HEADERS = ["test", "name", "device", "n", "p50", "p95", "p99", "budget", "verdict"]


def cells(line):
    return re.split(r"\s{2,}", line.strip())


def test_summary_table_rows():
    lines = summary_lines([latency_record()])
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
    row = cells(summary_lines([record])[1])
    assert row[3] == "200x25"
    assert row[4] == "mean 2.0us"
    assert row[5:7] == ["-", "-"]


def test_summary_table_block_mode_from_a_real_measurement():
    record = measured_record(itertools.repeat(2_000), warmup_s=0.001, min_time_s=0.0)
    assert record["timing"]["block_size"] == 25
    row = cells(summary_lines([record])[1])
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
    rows = [cells(line) for line in summary_lines([fail, none, thr])[1:]]
    assert rows[0][-1] == "FAIL"  # failures stand out
    assert rows[1][-2:] == ["-", "no budget"]
    assert rows[2][-2:] == ["p95<=500.0us,>=250/s", "inconclusive"]


def test_summary_table_missing_figures():
    rows = summary_lines([{"name": "bare"}])
    row = cells(rows[1])
    assert row[0] == "?"
    assert row[1] == "bare"
    assert row[3:7] == ["-", "-", "-", "-"]
    assert row[-1] == "no budget"


def test_summary_table_columns_line_up():
    short = latency_record()
    long = latency_record(outcome="fail", n=123456, p99_ms=0.0421)
    long["test_id"] = "tests/a/much/longer/path/test_mod.py::test_something[param]"
    long["name"] = "a-longer-name"
    lines = summary_lines([short, long])
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
