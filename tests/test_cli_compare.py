"""`hwperf compare`, `hwperf baseline list|show|accept` and `hwperf history` on files
written by real runs of the plugin.

The project measures `time.sleep(0.002 * SLOW)` in two tests, SLOW read from
HWPERF_TEST_SLOW at call time; the second tolerates a 200% slowdown (its marker's
`regression=`), so a +50% run regresses the first test only. The baseline is saved from
SAVES unchanged runs; then a run at SLOW=1.5 ("slow.json") and an unchanged one
("same.json") write JSON reports. That costs five short pytest runs, so it is built
once and copied into each test's folder.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from _output import load_json

from pytest_hwperf import cli
from pytest_hwperf.plugin.writing import _median_ms
from pytest_hwperf.records.codec import measurement_from_json
from pytest_hwperf.report.terminal import ms_text
from pytest_hwperf.store import BaselineStore, measurement_key
from pytest_hwperf.units import fmt_change

TARGET = """
import os
import time

import pytest


def target():
    time.sleep(0.002 * float(os.environ.get("HWPERF_TEST_SLOW", "1")))


def test_target(hwperf):
    hwperf(target, name="sleep")


@pytest.mark.latency(ms=1000, regression="200%")
def test_tolerant(hwperf):
    hwperf(target, name="sleep")
"""

TEST_ID = "test_target.py::test_target"
KEY = measurement_key(TEST_ID, "sleep", "cpu")
TOLERANT_KEY = measurement_key("test_target.py::test_tolerant", "sleep", "cpu")
# Sleeping targets do not follow the CPU's speed: no reference rescaling for them.
QUICK = (
    "--hwperf",
    # Not FAST_RUN's limit: the 2 ms targets have no budget, so a measurement lasts its
    # whole time limit; 0.3 s keeps the five runs of the shared project short.
    "--hwperf-max-time=0.3",
    # One confirmation round rather than 5: these tests are not about how many.
    "--hwperf-confirm=1",
    "--hwperf-warmup=0.01",
    "--hwperf-reference=off",
)
SAVES = 3

_BUILT: dict[str, Path] = {}


def run_plugin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*QUICK, *args)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> Path:
    """The project folder (the current directory) with `.hwperf/` holding a baseline of
    SAVES runs and their history, `slow.json` (SLOW=1.5) and `same.json` (SLOW=1)."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("HWPERF_TEST_SLOW", "1")
    cached = _BUILT.get("project")
    if cached is not None:
        shutil.copytree(cached, pytester.path, dirs_exist_ok=True)
        return pytester.path
    pytester.makepyfile(test_target=TARGET)
    for _ in range(SAVES):
        run_plugin(pytester, "--hwperf-save").assert_outcomes(passed=2)
    monkeypatch.setenv("HWPERF_TEST_SLOW", "1.5")
    run_plugin(pytester, "--hwperf-json=slow.json").assert_outcomes(passed=1, failed=1)
    monkeypatch.setenv("HWPERF_TEST_SLOW", "1")
    run_plugin(pytester, "--hwperf-json=same.json")
    cache = tmp_path_factory.mktemp("cli-compare-project")
    for name in ("test_target.py", "slow.json", "same.json"):
        shutil.copy2(pytester.path / name, cache / name)
    shutil.copytree(pytester.path / ".hwperf", cache / ".hwperf")
    _BUILT["project"] = cache
    return pytester.path


def baseline_file(project: Path) -> Path:
    (path,) = (project / ".hwperf" / "baselines").glob("*.json")
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------- compare


def comparisons_of(path: Path) -> dict[str, dict[str, Any]]:
    """What the plugin recorded: each measurement's comparison, by key."""
    return {
        measurement_key(m["test_id"], m["name"], m["device"]): m["comparison"]
        for m in load_json(path)["measurements"]
    }


@pytest.mark.parametrize(("report", "expected"), [("slow.json", 1), ("same.json", 0)])
def test_compare_reaches_the_plugins_verdict(project, capsys, report, expected):
    base = baseline_file(project)
    recorded = comparisons_of(project / report)
    assert recorded[KEY]["outcome"] == ("regression" if expected else "unchanged")
    assert recorded[TOLERANT_KEY]["outcome"] == "unchanged"
    assert recorded[TOLERANT_KEY]["threshold_pct"] == 200.0
    assert recorded[KEY]["alpha"] == 0.01 / 2  # Bonferroni over the two perf tests

    code, out, err = run_cli(capsys, "compare", str(base), report, "--json")
    assert (code, err) == (expected, "")
    result = json.loads(out)
    assert result["base"]["kind"] == "baseline file"
    found = {entry["key"]: entry for entry in result["comparisons"]}
    assert found.keys() == recorded.keys()
    for key, comparison in recorded.items():
        # The very figures the plugin recorded: same baseline medians, same median
        # function, same threshold and Bonferroni level.
        assert found[key]["comparison"] == comparison
        assert found[key]["outcome"] == comparison["outcome"]
        assert found[key]["plugin_outcome"] == comparison["outcome"]

    code, out, err = run_cli(capsys, "compare", str(base), report)
    assert (code, err) == (expected, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"base: {base} (baseline file, fingerprint {base.stem}: ")
    assert lines[1] == f"new:  {report}"
    assert lines[2].split() == [
        "test",
        "name",
        "device",
        "baseline",
        "current",
        "change",
        "verdict",
    ]
    rows = {tuple(line.split()[:3]): line.split() for line in lines[3:5]}
    for key, test_id in ((KEY, TEST_ID), (TOLERANT_KEY, "test_target.py::test_tolerant")):
        row = rows[(test_id, "sleep", "cpu")]
        outcome = recorded[key]["outcome"]
        assert row[-1] == ("REGRESSION" if outcome == "regression" else outcome)
        assert row[-2] == fmt_change(recorded[key]["change_pct"])
        assert row[3:5] == [
            ms_text(recorded[key]["baseline_ms"]),
            ms_text(recorded[key]["current_ms"]),
        ]
    reasons = [line for line in lines if line.startswith("regression: ")]
    if expected:
        assert reasons == [f"regression: {TEST_ID} 'sleep' on cpu: {recorded[KEY]['reason']}"]
    else:
        assert reasons == []
    assert not any(line.startswith("note: ") for line in lines)


def test_compare_accepts_a_baseline_file_copied_elsewhere(project, capsys):
    copy = project / "BASE.json"
    shutil.copy2(baseline_file(project), copy)
    code, out, err = run_cli(capsys, "compare", str(copy), "slow.json", "--json")
    assert (code, err) == (1, "")
    found = {entry["key"]: entry["comparison"] for entry in json.loads(out)["comparisons"]}
    assert found == comparisons_of(project / "slow.json")


def test_compare_two_reports(project, capsys):
    code, out, err = run_cli(capsys, "compare", "same.json", "slow.json")
    assert (code, err) == (1, "")
    assert out.startswith("base: same.json (report, fingerprint ")
    assert "REGRESSION" in out
    same = load_json(project / "same.json")["measurements"][0]
    slow = load_json(project / "slow.json")["measurements"][0]
    assert (slow["test_id"], same["test_id"]) == (TEST_ID, TEST_ID)
    code, out, _ = run_cli(capsys, "compare", "same.json", "slow.json", "--json")
    entry = json.loads(out)["comparisons"][0]
    assert entry["key"] == KEY
    # The baseline is the other report's one run: its fastest call (over its rounds).
    assert entry["comparison"]["baseline_ms"] == pytest.approx(measurement_from_json(same).gate_ms)
    assert entry["comparison"]["current_ms"] == pytest.approx(measurement_from_json(slow).gate_ms)
    assert entry["comparison"]["statistic"] == "min"
    assert entry["comparison"]["baseline_runs"] == 1
    assert entry["comparison"]["alpha"] == slow["comparison"]["alpha"]
    # The other way round it is an improvement, which does not fail.
    code, out, _ = run_cli(capsys, "compare", "slow.json", "same.json")
    assert code == 0
    assert out.splitlines()[3].split()[:3] == [TEST_ID, "sleep", "cpu"]
    assert out.splitlines()[3].split()[-1] == "improvement"


def test_compare_never_across_fingerprints(project, capsys):
    document = load_json(project / "slow.json")
    document["environment"]["fingerprint"]["digest"] = "0ther"
    for record in document["measurements"]:
        record["fingerprint"]["digest"] = "0ther"
    (project / "other.json").write_text(json.dumps(document), encoding="utf-8")
    code, out, err = run_cli(capsys, "compare", str(baseline_file(project)), "other.json")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[3].endswith(" no baseline (other fingerprint)")
    assert lines[4].endswith(" no baseline (other fingerprint)")
    assert lines[-1] == "2 measured: 0 regressed, 0 improved, 0 unchanged, 2 without a baseline"
    code, out, _ = run_cli(capsys, "compare", "same.json", "other.json", "--json")
    assert code == 0
    for entry in json.loads(out)["comparisons"]:
        assert (entry["outcome"], entry["fingerprint"]) == ("no baseline", "0ther")
        assert entry["comparison"]["baseline_ms"] is None


def test_compare_options_override_the_recorded_settings(project, capsys):
    argv = ("compare", str(baseline_file(project)), "slow.json", "--json")

    def run(*options: str) -> tuple[int, dict[str, dict[str, Any]]]:
        code, out, _ = run_cli(capsys, *argv, *options)
        return code, {entry["key"]: entry for entry in json.loads(out)["comparisons"]}

    code, found = run()
    assert (code, found[KEY]["outcome"]) == (1, "regression")
    assert found[KEY]["comparison"]["change_pct"] < 150
    # The session threshold becomes 150% and the session alpha 0.02, split over the same
    # two perf tests; the +50% slowdown is now shown within the threshold.
    code, found = run("--regression", "150%", "--alpha", "0.02")
    assert (code, found[KEY]["outcome"]) == (0, "unchanged")
    assert found[KEY]["comparison"]["threshold_pct"] == 150.0
    assert found[KEY]["comparison"]["alpha"] == pytest.approx(0.02 / 2)
    # The marker's own threshold still wins over --regression, as in the plugin.
    code, found = run("--regression", "1")
    assert found[TOLERANT_KEY]["comparison"]["threshold_pct"] == 200.0
    assert found[KEY]["comparison"]["threshold_pct"] == 1.0


def test_truncated_baseline_is_a_one_line_error_and_left_unchanged(project, capsys):
    path = baseline_file(project)
    relative = path.relative_to(project)
    truncated = path.read_bytes()[: len(path.read_bytes()) // 2]
    path.write_bytes(truncated)
    code, out, err = run_cli(capsys, "compare", str(relative), "slow.json")
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"hwperf compare: error: baseline file {relative} ")
    assert "truncated?" in lines[0]
    assert path.read_bytes() == truncated


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["compare", "missing.json", "slow.json"], "cannot read missing.json"),
        (["compare", "same.json", "missing.json"], "cannot read missing.json"),
        (["compare", "same.json", "test_target.py"], "test_target.py is not valid JSON"),
        (["history", TEST_ID, "--dir", "bad"], "is not an SQLite database"),
        (["baseline", "accept", "missing.json"], "cannot read missing.json"),
    ],
)
def test_unusable_inputs_exit_2_with_one_line(project, capsys, argv, why):
    (project / "bad").mkdir()
    (project / "bad" / "history.sqlite").write_text("not a database", encoding="utf-8")
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert why in err


# ---------------------------------------------------------------------- baseline


def test_baseline_list(project, capsys):
    path = baseline_file(project)
    label = load_json(path)["fingerprint"]["label"]
    code, out, err = run_cli(capsys, "baseline", "list")
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert header.split() == ["fingerprint", "measurements", "updated", "label"]
    assert row.split()[:2] == [path.stem, "2"]
    assert row.endswith(label)
    # An unreadable file is listed with its error, and the listing exits 2.
    (path.parent / "bad.json").write_text("{", encoding="utf-8")
    code, out, _ = run_cli(capsys, "baseline", "list", "--dir", ".hwperf")
    assert code == 2
    assert out.splitlines()[1] == row
    assert out.splitlines()[2].startswith("bad: error: baseline file ")


def test_baseline_show(project, capsys):
    path = baseline_file(project)
    runs = BaselineStore(project / ".hwperf").load(path.stem).runs_for(KEY)
    assert len(runs) == SAVES
    code, out, err = run_cli(capsys, "baseline", "show", path.stem)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"fingerprint {path.stem} (")
    assert lines[1] == f"file: {Path('.hwperf') / 'baselines' / path.name}"
    assert lines[2].split()[:3] == ["measurement", "runs", "latest"]
    row = lines[3].split()
    assert row[:4] == [KEY, str(SAVES), ms_text(runs[-1].median_ms), ms_text(runs[-1].min_ms)]
    assert row[4] == runs[-1].created
    mins = [run.min_ms for run in runs]
    assert " ".join(row[6:9]) == f"{ms_text(min(mins))} to {ms_text(max(mins))}"
    assert row[9].endswith("%")
    code, _, err = run_cli(capsys, "baseline", "show", "nosuchdigest")
    assert code == 2
    folder = Path(".hwperf") / "baselines"
    assert err == (
        f"hwperf baseline show: error: no baseline for fingerprint nosuchdigest in {folder}\n"
    )


def test_baseline_accept_makes_the_slow_run_the_baseline(project, pytester, monkeypatch, capsys):
    path = baseline_file(project)
    code, out, err = run_cli(capsys, "baseline", "accept", "slow.json")
    assert (code, err) == (0, "")
    assert out.startswith(f"baseline accepted: {Path('.hwperf') / 'baselines' / path.name} (")
    (run,) = BaselineStore(project / ".hwperf").load(path.stem).runs_for(KEY)
    slow = load_json(project / "slow.json")["measurements"][0]
    assert run.median_ms == pytest.approx(_median_ms(slow["samples_ns"]))
    assert run.n == len(slow["samples_ns"])

    monkeypatch.setenv("HWPERF_TEST_SLOW", "1.5")
    result = run_plugin(pytester, "--hwperf-json=after.json")
    result.assert_outcomes(passed=2)
    for comparison in comparisons_of(project / "after.json").values():
        # One saved run: no regression, whether the interval was narrow enough to
        # show the change within the threshold or not.
        assert comparison["outcome"] in ("unchanged", "not significant")
        assert comparison["baseline_runs"] == 1


# ---------------------------------------------------------------------- history


def test_history_prints_the_runs_oldest_first(project, capsys):
    code, out, err = run_cli(capsys, "history", TEST_ID)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == KEY
    assert lines[1].split() == ["created", "commit", "fingerprint", "n", "median", "p95", "outcome"]
    rows = [line.split() for line in lines[2:-1]]
    assert len(rows) == SAVES + 2  # the saves, then slow.json's run, then same.json's
    created = [row[0] for row in rows]
    assert created == sorted(created)
    digest = baseline_file(project).stem
    assert {row[2] for row in rows} == {digest}
    medians = [
        _median_ms(load_json(project / name)["measurements"][0]["samples_ns"])
        for name in ("slow.json", "same.json")
    ]
    assert [row[4] for row in rows[-2:]] == [ms_text(m) for m in medians]
    assert re.fullmatch(
        rf"  trend: median {rows[0][4]} -> {rows[-1][4]} \([+-]\d+\.\d%\) over {SAVES + 2} runs",
        lines[-1],
    )

    code, out, _ = run_cli(capsys, "history", TEST_ID, "--limit", "2", "--fingerprint", digest)
    assert code == 0
    assert [line.split()[4] for line in out.splitlines()[2:-1]] == [ms_text(m) for m in medians]
    code, out, _ = run_cli(capsys, "history", "test_target.py::test_other")
    database = Path(".hwperf") / "history.sqlite"
    assert (code, out) == (
        0,
        f"no recorded runs of test_target.py::test_other in {database}"
        " (`hwperf history` lists the recorded tests)\n",
    )
