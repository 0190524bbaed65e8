"""Baselines keyed by hardware, compared across software (issue 12, item 3; issue 14,
item 2): the fingerprint holds the hardware class only, each saved run keeps its
versions, a comparison across a version change is made and its line names the change,
a baseline saved under fingerprint version 1 is still found (migrated), and where none
matches this machine the line says which other hardware has one and how it differs.
A session that never imports torch does not import it for the fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _output import FAST_RUN, assert_clean, load_json

from pytest_hwperf.hardware import detect_machine, fingerprint
from pytest_hwperf.judge.gate import SavedRun, compare_with_runs
from pytest_hwperf.records.types import FingerprintRecord
from pytest_hwperf.store import BaselineStore, RunSummary
from pytest_hwperf.store.matching import find_baseline

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_V1 = ROOT / "example_project" / ".hwperf" / "baselines" / "a1b8adefb739.json"


def _run(run_id: str, min_ms: float, created: str, **versions: str) -> RunSummary:
    return RunSummary.from_samples(
        run_id, created, None, [int(min_ms * 1e6)] * 5, 1, min_ms=min_ms, versions=versions
    )


def _here() -> FingerprintRecord:
    found = fingerprint(detect_machine(torch_fallback=False))
    return FingerprintRecord(
        digest=found.digest, label=found.label, hashed=dict(found.hashed), versions=found.versions
    )


def _v1_hashed_for(hashed: dict[str, Any], **software: str) -> dict[str, Any]:
    """This machine's hashed facts as fingerprint version 1 wrote them (the committed
    example baseline's layout, with this machine's hardware)."""
    v1: dict[str, Any] = json.loads(EXAMPLE_V1.read_text())["fingerprint"]["hashed"]
    v1 = {**v1, "cpu": hashed["cpu"], "ram_class_gb": hashed["ram_class_gb"]}
    v1["gpu"] = {**hashed["gpu"], "driver_major": None, "cuda": None}
    v1["software"] = {**v1["software"], "platform": hashed["system"]["platform"], **software}
    return v1


def _write_v1(folder: Path, digest: str, hashed: dict[str, Any], runs: dict[str, list]) -> Path:
    path = folder / "baselines" / f"{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "schema_version": 1,
        "fingerprint": {"digest": digest, "label": "old label", "hashed": hashed},
        "measurements": {key: [run.to_record() for run in kept] for key, kept in runs.items()},
    }
    for kept in document["measurements"].values():
        for run in kept:
            del run["versions"]  # version 1 runs did not keep them
    path.write_text(json.dumps(document))
    return path


# -- the gate's line --------------------------------------------------------------------


def test_a_comparison_across_a_version_change_is_made_and_names_it():
    runs = [SavedRun(1.0, versions={"torch": "2.13.0+cpu", "numpy": "2.4.1", "python": "3.11.9"})]
    found = compare_with_runs(
        1.45,
        runs,
        key="k",
        threshold_pct=10,
        alpha=0.01,
        versions={"torch": "2.14.0+cpu", "numpy": "2.4.3", "python": "3.11.9"},
    )
    assert found.outcome == "regression"
    assert found.reason.endswith("; across numpy 2.4.1 -> 2.4.3, torch 2.13 -> 2.14")
    assert found.versions_changed == ("numpy 2.4.1 -> 2.4.3", "torch 2.13 -> 2.14")


def test_no_change_no_words_and_a_build_change_shows_full_versions():
    same = {"torch": "2.13.0+cpu"}
    unchanged = compare_with_runs(
        1.0, [SavedRun(1.0, versions=same)], key="k", threshold_pct=10, alpha=0.01, versions=same
    )
    assert "across" not in unchanged.reason
    assert unchanged.versions_changed == ()
    cuda = compare_with_runs(
        1.0,
        [SavedRun(1.0, versions=same)],
        key="k",
        threshold_pct=10,
        alpha=0.01,
        versions={"torch": "2.14.0+cu124"},
    )
    assert cuda.versions_changed == ("torch 2.13.0+cpu -> 2.14.0+cu124",)


def test_a_version_1_major_minor_matches_any_patch_of_it():
    found = compare_with_runs(
        1.0,
        [SavedRun(1.0, versions={"numpy": "2.4", "torch": "2.13+cpu"})],
        key="k",
        threshold_pct=10,
        alpha=0.01,
        versions={"numpy": "2.4.6", "torch": "2.13.0+cpu"},
    )
    assert found.versions_changed == ()


# -- migration and other hardware -------------------------------------------------------


def test_a_version_1_baseline_of_this_hardware_is_found_with_its_versions(tmp_path):
    here = _here()
    hashed = dict(here.hashed)
    older = _v1_hashed_for(hashed, numpy="2.3")
    newer = _v1_hashed_for(hashed, numpy="2.4")
    _write_v1(tmp_path, "0123456789ab", older, {"t::m@cpu": [_run("a", 1.0, "2026-01-01")]})
    _write_v1(tmp_path, "ba9876543210", newer, {"t::m@cpu": [_run("b", 1.1, "2026-02-01")]})
    found = find_baseline(BaselineStore(tmp_path), here)
    assert found.baseline is not None
    assert {p.name for p in found.migrated_from} == {"0123456789ab.json", "ba9876543210.json"}
    runs = found.baseline.runs_for("t::m@cpu")
    assert [r.run_id for r in runs] == ["a", "b"]  # in the order they were saved
    assert runs[0].versions["numpy"] == "2.3"
    assert runs[1].versions["torch"] == "2.13+cpu"
    assert found.no_baseline_note() is None


def test_other_hardware_is_named_with_how_it_differs(tmp_path):
    here = _here()
    other = dict(here.hashed)
    other["cpu"] = {**here.hashed["cpu"], "usable_cores": 64}
    _write_v1(tmp_path, "0123456789ab", _v1_hashed_for(other), {"t::m@cpu": [_run("a", 1, "x")]})
    found = find_baseline(BaselineStore(tmp_path), here)
    assert found.baseline is None
    note = found.no_baseline_note()
    cores = here.hashed["cpu"]["usable_cores"]
    assert note == (
        f"baselines exist for other hardware: 0123456789ab (usable_cores 64, here {cores})"
    )
    line = compare_with_runs(
        1.0, [], key="k", threshold_pct=10, alpha=0.01, no_baseline_note=note
    ).reason
    assert line.endswith(f"no baseline; {note}")


def test_a_broken_file_of_other_hardware_does_not_stop_the_search(tmp_path):
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "0123456789ab.json").write_text("{not json")
    found = find_baseline(BaselineStore(tmp_path), _here())
    assert found.baseline is None
    assert found.elsewhere == ()


def test_the_first_save_carries_the_migrated_runs_over(tmp_path):
    store = BaselineStore(tmp_path)
    here = _here()
    carried = {"t::m@cpu": (_run("a", 1.0, "2026-01-01", numpy="2.3"),)}
    store.save(here, {"t::m@cpu": _run("b", 1.0, "2026-02-01", numpy="2.4")}, carry=carried)
    saved = store.load(here.digest)
    assert saved is not None
    assert [r.run_id for r in saved.runs_for("t::m@cpu")] == ["a", "b"]
    assert saved.runs_for("t::m@cpu")[-1].versions == {"numpy": "2.4"}
    # Once the file exists, a carry is ignored: the file's own runs are the history.
    store.save(here, {"t::m@cpu": _run("c", 1.0, "2026-03-01")}, carry={"t::m@cpu": ()})
    again = store.load(here.digest)
    assert again is not None
    assert [r.run_id for r in again.runs_for("t::m@cpu")] == ["a", "b", "c"]


# -- seen from pytest -------------------------------------------------------------------

FAST = """
def test_fast(hwperf):
    hwperf(sorted, list(range(2000)))
"""

MODULES_CHECK = """
import json, sys

def pytest_unconfigure(config):
    with open("modules.json", "w") as f:
        json.dump(sorted(m for m in ("torch", "numpy") if m in sys.modules), f)
"""


def test_a_session_that_never_imports_torch_does_not_import_it(pytester):
    pytest.importorskip("torch", reason="the point is torch installed but not used")
    pytester.makepyfile(test_fast=FAST)
    pytester.makeconftest(MODULES_CHECK)
    result = pytester.runpytest_subprocess(
        "--hwperf", *FAST_RUN, "--hwperf-save", "--hwperf-json=out.json", "-p", "no:randomly"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "torch" not in load_json(pytester.path / "modules.json")
    record = load_json(pytester.path / "out.json")["measurements"][0]
    assert "torch" in record["fingerprint"]["versions"]  # read from package metadata


def test_a_previous_release_baseline_is_compared_and_the_version_change_named(pytester, capsys):
    """A baseline file written by fingerprint version 1 on this hardware, whose run was
    saved with numpy 2.3 and was three times as fast: the test fails (a regression),
    and its line names the numpy change."""
    here = _here()
    pytester.makepyfile(test_fast=FAST)
    key = "test_fast.py::test_fast::sorted@cpu"
    v1 = _v1_hashed_for(dict(here.hashed), numpy="2.3")
    runs = [_run(f"r{i}", 0.001, f"2026-01-0{i}") for i in range(1, 4)]
    old_file = _write_v1(pytester.path / ".hwperf", "0123456789ab", v1, {key: runs})
    result = pytester.runpytest(
        "--hwperf", *FAST_RUN, "--hwperf-json=out.json", "-p", "no:randomly"
    )
    assert_clean(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    numpy_now = here.versions["numpy"].split(".")
    change = f"numpy 2.3 -> {numpy_now[0]}.{numpy_now[1]}"
    result.stdout.fnmatch_lines([f"*regression*across {change}*"])
    comparison = load_json(pytester.path / "out.json")["measurements"][0]["comparison"]
    assert comparison["outcome"] == "regression"
    assert comparison["versions_changed"] == [change]
    assert comparison["baseline_runs"] == 3
    # `hwperf compare` reads the old file the same way, and reaches the same verdict.
    from pytest_hwperf import cli

    capsys.readouterr()
    code = cli.main(["compare", str(old_file), str(pytester.path / "out.json"), "--json"])
    offline = json.loads(capsys.readouterr().out)["comparisons"][0]
    assert code == 1
    assert offline["outcome"] == "regression"
    assert offline["comparison"]["versions_changed"] == [change]


VIRTUAL = """
import os

import pytest

NOW = [0]


@pytest.fixture
def hwperf(hwperf):
    hwperf.clock = lambda: NOW[0]
    return hwperf


def test_model(hwperf):
    def call():  # 2 ms a call on a virtual clock; SLOWER=1.3: 30% slower
        NOW[0] += int(2_000_000 * float(os.environ.get("SLOWER", "1")))

    hwperf(call, name="model")
"""


def test_a_dependency_upgrade_with_a_30_percent_slowdown_fails_and_names_it(pytester, monkeypatch):
    """The baseline was saved under an older numpy (this fingerprint, its runs'
    `versions` say numpy 2.3); after the upgrade the model is 30% slower: the gate
    compares across the change, fails the test, and its line names it."""
    # A virtual clock does not follow the machine's speed: no reference workload.
    run = ("--hwperf", *FAST_RUN, "--hwperf-reference=off", "--hwperf-json=out.json")
    run = (*run, "-p", "no:randomly")
    pytester.makepyfile(test_model=VIRTUAL)
    monkeypatch.setenv("SLOWER", "1")
    assert pytester.runpytest(*run, "--hwperf-save").ret == pytest.ExitCode.OK
    (path,) = (pytester.path / ".hwperf" / "baselines").glob("*.json")
    document = json.loads(path.read_text())
    for runs in document["measurements"].values():
        for saved in runs:
            saved["versions"]["numpy"] = "2.3.0"
    path.write_text(json.dumps(document))

    monkeypatch.setenv("SLOWER", "1.3")
    result = pytester.runpytest(*run)
    assert_clean(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    numpy_now = ".".join(_here().versions["numpy"].split(".")[:2])
    change = f"numpy 2.3 -> {numpy_now}"
    result.stdout.fnmatch_lines(
        [f"*regression: min 2.60 ms vs baseline 2.00 ms: +30.0%*across {change}"]
    )
    comparison = load_json(pytester.path / "out.json")["measurements"][0]["comparison"]
    assert comparison["outcome"] == "regression"
    assert comparison["change_pct"] == pytest.approx(30.0, abs=0.5)
    assert comparison["versions_changed"] == [change]
