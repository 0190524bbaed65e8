"""The `hwperf` console script."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from _typed_records import typed, typed_all

import pytest_hwperf
from pytest_hwperf import cli
from pytest_hwperf.records.codec import to_json
from pytest_hwperf.report import build_document, summary_lines, write_document


def record(test_id, outcome, p99_ms):
    """A complete record as the JSON report carries it."""
    return to_json(
        typed(
            {
                "test_id": test_id,
                "name": "forward",
                "device": "cpu",
                "outcome": outcome,
                "stats": {"n": 459, "mean_ms": 1.0, "p50_ms": 0.9, "p95_ms": 1.5, "p99_ms": p99_ms},
                "timing": {"block_size": 1},
                "budgets": [{"kind": "latency", "percentile": 99.0, "budget_ms": 5.0}],
            }
        )
    )


@pytest.fixture
def report_path(tmp_path):
    records = [
        record("tests/t.py::test_ok", "pass", 2.0),
        record("tests/t.py::test_bad", "fail", 9),
    ]
    doc = build_document(typed_all(records), environment={}, settings={}, plugin_version="0")
    path = tmp_path / "out" / "hwperf.json"
    write_document(path, doc)
    return path, records


def test_report_prints_the_table(report_path, capsys):
    path, records = report_path
    assert cli.main(["report", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == summary_lines(typed_all(records))
    assert "tests/t.py::test_ok" in out
    assert "FAIL" in out
    assert "p99<=5.00ms" in out


def test_report_without_measurements(tmp_path, capsys):
    path = tmp_path / "empty.json"
    write_document(path, build_document([], environment={}, settings={}, plugin_version="0"))
    assert cli.main(["report", str(path)]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == f"{path}: no measurements"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "is not valid JSON"),
        ('{"measurements": []}', "no schema_version"),
        (json.dumps({"schema_version": 2}), "schema version 2"),
        (
            json.dumps({"schema_version": 1, "measurements": [{"test_id": "t"}]}),
            "measurements[0]: missing 'name'",
        ),
        (json.dumps({"schema_version": 1, "measurements": {}}), "measurements: expected an array"),
    ],
)
def test_report_bad_file_is_a_one_line_error(tmp_path, capsys, content, why):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert cli.main(["report", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("hwperf report: error: ")
    assert str(path) in lines[0]
    assert why in lines[0]


def test_report_missing_file(tmp_path, capsys):
    path = tmp_path / "missing.json"
    assert cli.main(["report", str(path)]) == 2
    _, err = capsys.readouterr()
    assert len(err.splitlines()) == 1
    assert "cannot read" in err
    assert str(path) in err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    out, _ = capsys.readouterr()
    assert out.strip() == f"pytest-hwperf {pytest_hwperf.__version__}"
    # The version printed is the installed distribution's.
    assert pytest_hwperf.__version__ == version("pytest-hwperf")


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    out, _ = capsys.readouterr()
    assert "usage: hwperf" in out
    assert "report" in out


def test_report_needs_a_path(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["report"])
    assert info.value.code == 2
    _, err = capsys.readouterr()
    assert "path" in err


def test_console_script_entry(report_path):
    # The module runs as a script too (what the `hwperf` entry point calls).
    path, _ = report_path
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_hwperf.cli", "report", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "tests/t.py::test_bad" in proc.stdout
