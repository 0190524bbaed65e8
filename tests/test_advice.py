"""Device advice: which devices met a test's budget, and the cheapest of them.

Unit tests run on synthetic records; the pytester tests run the plugin on this machine,
which has no GPU, so they check that the advice says cuda could not be measured.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _output import FAST_RUN
from _typed_records import typed_all

from pytest_hwperf.records.codec import to_json_object
from pytest_hwperf.report.advice import (
    advice_lines,
    device_advice,
    device_cost_rank,
    device_group,
    idle_gpu_line,
)
from pytest_hwperf.report.json_report import SCHEMA_VERSION, build_document
from pytest_hwperf.report.markdown import markdown_summary

GROUP = "test_m.py::test_model"


def record(
    device: str,
    outcome: str | None,
    *,
    p50_ms: float = 1.0,
    breach: bool = False,
    group: str = GROUP,
    name: str = "predict",
    gpu_utilization: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A measurement record as the session makes it (only the fields advice reads)."""
    budgets = (
        []
        if outcome is None
        else [
            {
                "kind": "latency",
                "percentile": 95.0,
                "budget_ms": 10.0,
                "outcome": outcome,
                "reason": f"p95 {outcome} reason",
            }
        ]
    )
    return {
        "test_id": f"{group}[{device}]",
        "name": name,
        "device": device,
        "device_param": device,
        "device_group": group,
        "mode": "measured",
        "outcome": outcome,
        "breach": breach,
        "budgets": budgets,
        "stats": {"p50_ms": p50_ms, "mean_ms": p50_ms},
        "gpu_utilization": gpu_utilization,
    }


def advise(
    records: list[dict[str, Any]],
    unmeasured: dict[str, dict[str, str]],
    failed: dict[str, dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """`device_advice` of the typed records of `records`."""
    return device_advice(typed_all(records), unmeasured, failed)


def only(advice: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(advice) == 1, advice
    return advice[0]


def test_cpu_and_cuda_both_pass_recommends_cpu():
    found = only(advise([record("cuda:0", "pass", p50_ms=0.2), record("cpu", "pass")], {}))
    assert found["met"] == ["cpu", "cuda:0"]
    assert found["recommended"] == "cpu"
    assert found["fastest"] == "cuda:0"
    assert [d["device"] for d in found["devices"]] == ["cpu", "cuda:0"]
    assert found["text"].startswith(f"{GROUP}: recommend cpu, the cheapest device that met")


def test_cpu_fails_and_cuda_passes_recommends_cuda():
    found = only(
        advise([record("cpu", "fail", p50_ms=80.0, breach=True), record("cuda:0", "pass")], {})
    )
    assert found["met"] == ["cuda:0"]
    assert found["recommended"] == "cuda:0"
    cpu = found["devices"][0]
    assert cpu["device"] == "cpu"
    assert cpu["status"] == "missed"
    assert cpu["reason"] == "fail: p95 fail reason"
    assert "missed: cpu (fail)" in found["text"]


def test_a_breach_without_a_failed_budget_is_not_met():
    """A regression (or an inconclusive budget under --hwperf-inconclusive=fail) breaches
    the test though every budget passed: that device did not meet its budget."""
    breached = record("cpu", "pass", breach=True)
    breached["comparison"] = {"outcome": "regression", "reason": "+40% slower"}
    found = only(advise([breached, record("cuda:0", "pass")], {}))
    assert found["recommended"] == "cuda:0"
    assert found["devices"][0]["reason"] == "regression: +40% slower"


def test_an_inconclusive_budget_is_not_met():
    found = only(advise([record("cpu", "inconclusive"), record("mps", "pass")], {}))
    assert found["recommended"] == "mps"


def test_none_pass_says_none_met():
    found = only(advise([record("cpu", "fail", breach=True), record("cuda:0", "inconclusive")], {}))
    assert found["recommended"] is None
    assert found["met"] == []
    assert found["text"] == (
        f"{GROUP}: no device met its budget (missed: cpu (fail), cuda:0 (inconclusive);"
        " median: cpu 1.00ms, cuda:0 1.00ms)"
    )


def test_unmeasured_devices_are_listed_with_why():
    unmeasured = {GROUP: {"cuda": "no CUDA device on this machine: NVML reports 0 GPUs"}}
    found = only(advise([record("cpu", "pass")], unmeasured))
    assert found["unmeasured"] == [
        {"device": "cuda", "reason": "no CUDA device on this machine: NVML reports 0 GPUs"}
    ]
    # Without a GPU to compare, the recommendation says it holds among those measured.
    assert "the cheapest measured device that met its budget" in found["text"]
    assert advice_lines([found]) == [
        found["text"],
        f"{GROUP}: cuda: not measured (no CUDA device on this machine: NVML reports 0 GPUs)",
    ]


def test_a_measured_device_is_not_listed_as_unmeasured():
    records = [record("cpu", "pass"), record("mps", "pass")]
    found = only(advise(records, {GROUP: {"cpu": "skipped: odd"}}))
    assert found["unmeasured"] == []


def test_no_budget_names_the_fastest():
    found = only(advise([record("cpu", None, p50_ms=4.0), record("cuda:0", None, p50_ms=0.5)], {}))
    assert found["recommended"] is None
    assert found["fastest"] == "cuda:0"
    assert {d["status"] for d in found["devices"]} == {"no budget"}
    assert found["text"] == (
        f"{GROUP}: no budget; fastest: cuda:0 (median: cpu 4.00ms, cuda:0 500.0us)"
    )


def test_a_device_where_the_test_failed_on_its_own_is_never_recommended():
    """Its budget passed, but the test's own assertion failed there (wrong output)."""
    records = [record("cpu", "fail", breach=True), record("cuda:0", "pass", p50_ms=0.1)]
    failed = {GROUP: {"cuda:0": "failed: assert 0.5 == 1.0"}}
    found = only(advise(records, {}, failed))
    assert found["recommended"] is None
    assert found["devices"][1] == {
        "device": "cuda:0",
        "status": "failed",
        "measurements": 1,
        "median_ms": None,
        "reason": "failed: assert 0.5 == 1.0",
    }
    assert found["fastest"] == "cpu"
    assert found["text"] == (
        f"{GROUP}: no device met its budget (missed: cpu (fail); test failed on: cuda:0;"
        " median: cpu 1.00ms)"
    )


def test_no_budget_leaves_a_failed_device_out_of_the_fastest():
    records = [record("cpu", None, p50_ms=4.0), record("cuda:0", None, p50_ms=0.5)]
    found = only(advise(records, {}, {GROUP: {"cuda:0": "failed: boom"}}))
    assert found["fastest"] == "cpu"
    assert found["text"] == (
        f"{GROUP}: no budget; fastest: cpu (median: cpu 4.00ms; test failed on: cuda:0)"
    )


def test_a_memory_verdict_counts_as_a_budget():
    """The memory marker judges onto the record's outcome without a `budgets` entry."""
    over = record("cpu", None)
    over.update(outcome="fail", breach=True, memory={"outcome": "fail", "reason": "rss 900 MB"})
    found = only(advise([over, record("cuda:0", "pass")], {}))
    assert found["recommended"] == "cuda:0"
    assert found["devices"][0]["reason"] == "memory: rss 900 MB"


def test_a_single_device_without_anything_unmeasured_gets_no_advice():
    assert advise([record("cpu", "pass")], {}) == []
    assert advise([record("cpu", "pass")], {GROUP: {}}) == []


def test_records_without_a_device_group_are_not_compared():
    plain = record("cpu", "pass")
    del plain["device_group"], plain["device_param"]
    other = record("cuda:0", "pass")
    del other["device_group"], other["device_param"]
    assert advise([plain, other], {}) == []


def test_groups_keep_their_order_and_several_measurements_add_up():
    records = [
        record("cpu", "pass", group="t.py::b", name="pre", p50_ms=1.0),
        record("cpu", "pass", group="t.py::b", name="model", p50_ms=2.0),
        record("cuda:0", "pass", group="t.py::b", name="pre", p50_ms=1.0),
        record("cuda:0", "fail", group="t.py::b", name="model", p50_ms=9.0, breach=True),
        record("cpu", "pass", group="t.py::a"),
        record("mps", "pass", group="t.py::a"),
    ]
    first, second = advise(records, {})
    assert (first["test"], second["test"]) == ("t.py::b", "t.py::a")
    assert first["devices"][0]["median_ms"] == pytest.approx(3.0)
    assert first["devices"][0]["measurements"] == 2
    # One failing measurement is enough for a device to miss.
    assert first["met"] == ["cpu"]
    # The figure of a test with several measurements is named for what it is.
    assert "sum of medians: cpu 3.00ms" in first["text"]
    assert "; median: cpu" in second["text"]


def test_idle_gpu_is_called_out():
    idle = {"mean_pct": 12.0, "max_pct": 40.0, "samples": 9, "method": "nvml-samples",
            "idle_below_pct": 30.0}  # fmt: skip
    busy = dict(idle, mean_pct=85.0)
    found = only(
        advise([record("cpu", "pass"), record("cuda:0", "pass", gpu_utilization=idle)], {})
    )
    assert found["idle_gpus"] == [
        {"device": "cuda:0", "name": "predict", "mean_pct": 12.0, "idle_below_pct": 30.0}
    ]
    assert advice_lines([found])[-1] == (
        f"{GROUP}: cuda:0 was busy 12% of the time while measuring 'predict': the model is"
        " likely too small for this GPU (batch more, or serve it on CPU)"
    )
    busy_advice = only(
        advise([record("cpu", "pass"), record("cuda:0", "pass", gpu_utilization=busy)], {})
    )
    assert busy_advice["idle_gpus"] == []


def test_idle_gpu_of_a_test_without_the_device_fixture_is_still_called_out():
    idle = {"mean_pct": 3.0, "max_pct": 5.0, "samples": 2, "method": "nvml-samples",
            "idle_below_pct": 30.0}  # fmt: skip
    plain = record("cuda:0", "pass", gpu_utilization=idle)
    del plain["device_group"], plain["device_param"]
    found = only(advise([plain], {}))
    assert found["text"] is None
    assert advice_lines([found]) == [
        f"{plain['test_id']}: {idle_gpu_line('cuda:0', 3.0, 'predict')}"
    ]


def test_idle_gpu_line_matches_the_documented_wording():
    assert idle_gpu_line("cuda:0", 12.4) == (
        "cuda:0 was busy 12% of the time while measuring: the model is likely too small"
        " for this GPU (batch more, or serve it on CPU)"
    )


def test_cost_order_is_cpu_then_mps_then_cuda_by_index():
    devices = ["cuda:10", "xpu:0", "cuda:2", "mps", "cpu", "cuda:0"]
    assert sorted(devices, key=device_cost_rank) == [
        "cpu", "mps", "cuda:0", "cuda:2", "cuda:10", "xpu:0",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("nodeid", "ids", "expected"),
    [
        ("t.py::test_x[cpu]", ["cpu"], "t.py::test_x"),
        ("t.py::test_x[cuda]", ["cuda", "cuda:0"], "t.py::test_x"),
        ("t.py::test_x[cpu-2w]", ["cpu"], "t.py::test_x[2w]"),
        ("t.py::test_x[2w-cuda:1-4t]", ["cuda:1"], "t.py::test_x[2w-4t]"),
        ("t.py::test_x[batch-8-cpu]", ["cpu"], "t.py::test_x[batch-8]"),
        ("t.py::test_x[cpu-cpu]", ["cpu"], "t.py::test_x[cpu]"),
        ("t.py::test_x[gpu0]", ["cuda", "cuda:0"], "t.py::test_x[gpu0]"),
        ("t.py::test_x", ["cpu"], "t.py::test_x"),
        ("t.py::TestA::test_x[mps]", ["mps"], "t.py::TestA::test_x"),
    ],
)
def test_device_group_removes_only_the_device_id(nodeid, ids, expected):
    assert device_group(nodeid, ids) == expected


def test_json_document_carries_the_advice_and_keeps_its_schema_version():
    advice = advise([record("cpu", "pass"), record("cuda:0", "pass")], {})
    document = build_document([], environment={}, settings={}, plugin_version=None, advice=advice)
    assert document.schema_version == SCHEMA_VERSION == 1
    assert list(document.advice) == advice
    data = to_json_object(document)
    assert data["advice"] == advice
    json.dumps(data, allow_nan=False)  # JSON-clean
    assert build_document([], environment={}, settings={}, plugin_version=None).advice == ()


def test_markdown_lists_the_advice():
    records = [record("cpu", "pass"), record("cuda:0", "pass")]
    text = markdown_summary(typed_all(records), advice=advise(records, {}))
    assert "### Device advice" in text
    assert f"- {GROUP}: recommend cpu, the cheapest device that met its budget" in text
    assert "### Device advice" not in markdown_summary(typed_all(records))


# -- through the plugin, on this CPU-only machine --------------------------------------

QUICK = (*FAST_RUN, "-p", "no:randomly")

DEVICE_TESTS = """
import time

import pytest


@pytest.mark.latency(ms=500)
def test_small(hwperf, device):
    hwperf(time.sleep, 0.001, name="nap")


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.latency(ms=500)
def test_batched(hwperf, device, batch):
    hwperf(time.sleep, 0.001, name="nap")


@pytest.mark.latency(ms=500)
def test_plain(hwperf):
    hwperf(time.sleep, 0.001, name="nap")
"""


def _no_cuda_here() -> None:
    from pytest_hwperf.hardware.gpu import detect_gpus

    if detect_gpus().visible:
        pytest.skip("this machine has a CUDA device: the advice would measure it")


def test_device_advice_in_terminal_and_json(pytester: pytest.Pytester):
    _no_cuda_here()
    pytester.makepyfile(test_devices=DEVICE_TESTS)
    result = pytester.runpytest("--hwperf", "--hwperf-json=out.json", *QUICK)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "=*= hwperf =*=",
            "*test_devices.py::test_small[[]cpu[]]*",
            "-*- hwperf: device advice -*-",
            "test_devices.py::test_small: recommend cpu, the cheapest measured device that"
            " met its budget (met: cpu; median: cpu *)",
            "test_devices.py::test_small: cuda: not measured (no CUDA device on this machine:*)",
            "test_devices.py::test_batched[[]1[]]: recommend cpu, *",
            "test_devices.py::test_batched[[]1[]]: cuda: not measured (no CUDA device*",
            "test_devices.py::test_batched[[]8[]]: recommend cpu, *",
        ]
    )
    # A test without the device fixture gets no advice.
    assert "test_devices.py::test_plain:" not in result.stdout.str()
    document = json.loads((pytester.path / "out.json").read_text())
    records = {r["test_id"]: r for r in document["measurements"]}
    small = records["test_devices.py::test_small[cpu]"]
    assert (small["device_param"], small["device_group"]) == ("cpu", "test_devices.py::test_small")
    assert records["test_devices.py::test_batched[cpu-8]"]["device_group"] == (
        "test_devices.py::test_batched[8]"
    )
    assert "device_group" not in records["test_devices.py::test_plain"]
    # CPU measurements carry no GPU figure.
    assert small["gpu_utilization"] is None
    advice = {a["test"]: a for a in document["advice"]}
    assert list(advice) == [
        "test_devices.py::test_small",
        "test_devices.py::test_batched[1]",
        "test_devices.py::test_batched[8]",
    ]
    entry = advice["test_devices.py::test_small"]
    assert entry["recommended"] == "cpu"
    assert entry["met"] == ["cpu"]
    assert entry["devices"][0]["status"] == "met"
    assert [u["device"] for u in entry["unmeasured"]] == ["cuda"]
    assert entry["unmeasured"][0]["reason"].startswith("no CUDA device on this machine: ")


def test_listed_devices_that_are_absent_are_named_with_the_skip_reason(
    pytester: pytest.Pytester,
):
    _no_cuda_here()
    pytester.makepyfile(test_devices=DEVICE_TESTS)
    result = pytester.runpytest(
        "--hwperf", "--hwperf-devices=cpu,cuda:1", "--hwperf-json=out.json", *QUICK,
        "test_devices.py::test_small",
    )  # fmt: skip
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["test_devices.py::test_small: cuda:1: not measured (skipped: no CUDA device: *)"]
    )
    # The devices were chosen: no line for the kinds left out ("cuda" alone).
    assert "test_small: cuda: not measured" not in result.stdout.str()
    entry = json.loads((pytester.path / "out.json").read_text())["advice"][0]
    assert [u["device"] for u in entry["unmeasured"]] == ["cuda:1"]


def test_strict_hardware_failure_is_named_as_not_measured(pytester: pytest.Pytester):
    _no_cuda_here()
    pytester.makepyfile(test_devices=DEVICE_TESTS)
    result = pytester.runpytest(
        "--hwperf", "--hwperf-devices=cpu,cuda", "--hwperf-strict-hardware", *QUICK,
        "test_devices.py::test_small",
    )  # fmt: skip
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_devices.py::test_small: cuda:0: not measured (failed: no CUDA device: *"
            "(--hwperf-strict-hardware))"
        ]
    )


def test_a_device_that_missed_its_budget_is_not_recommended(pytester: pytest.Pytester):
    """A project that parametrizes `device` itself (here over cpu and cuda) is grouped
    the same way; a 20 ms target under a 5 ms budget misses it on the CPU."""
    _no_cuda_here()
    pytester.makepyfile(
        test_miss="""
        import time
        import pytest

        @pytest.mark.parametrize("device", ["cpu", "cuda"], indirect=True)
        @pytest.mark.latency(ms=5)
        def test_served(hwperf, device):
            hwperf(time.sleep, 0.02, name="nap")
        """
    )
    result = pytester.runpytest("--hwperf", *QUICK)
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "test_miss.py::test_served: no device met its budget (missed: cpu (fail); median:"
            " cpu *)",
            "test_miss.py::test_served: cuda:0: not measured (skipped: no CUDA device: *)",
        ]
    )


def test_a_test_failing_on_its_own_is_not_recommended_there(pytester: pytest.Pytester):
    """The budget is met on the CPU but the test's assertion fails: no recommendation."""
    _no_cuda_here()
    pytester.makepyfile(
        test_wrong="""
        import time
        import pytest

        @pytest.mark.latency(ms=500)
        def test_served(hwperf, device):
            hwperf(time.sleep, 0.001, name="nap")
            assert device == "not a device", "wrong output"
        """
    )
    result = pytester.runpytest("--hwperf", "--hwperf-json=out.json", *QUICK)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "test_wrong.py::test_served: no device met its budget (none measured; test failed"
            " on: cpu; median: none)",
            "test_wrong.py::test_served: cuda: not measured (no CUDA device on this machine:*",
        ]
    )
    (entry,) = json.loads((pytester.path / "out.json").read_text())["advice"]
    assert entry["devices"][0]["status"] == "failed"
    assert entry["devices"][0]["reason"].startswith("failed: AssertionError: wrong output")


def test_under_xdist_the_controller_learns_of_skipped_devices(pytester: pytest.Pytester):
    """The skip happens on a worker; the device case travels to the controller on the
    report, which alone prints the advice and writes the JSON."""
    pytest.importorskip("xdist")
    _no_cuda_here()
    pytester.makepyfile(test_devices=DEVICE_TESTS)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--hwperf", "--hwperf-devices=cpu,cuda", "--hwperf-json=out.json",
        *QUICK, "test_devices.py::test_small", "test_devices.py::test_batched",
    )  # fmt: skip
    result.assert_outcomes(passed=3, skipped=3)
    result.stdout.fnmatch_lines(
        ["test_devices.py::test_small: cuda:0: not measured (skipped: no CUDA device: *)"]
    )
    advice = {a["test"]: a for a in json.loads((pytester.path / "out.json").read_text())["advice"]}
    assert set(advice) == {
        "test_devices.py::test_small",
        "test_devices.py::test_batched[1]",
        "test_devices.py::test_batched[8]",
    }
    for entry in advice.values():
        assert entry["recommended"] == "cpu"
        assert [u["device"] for u in entry["unmeasured"]] == ["cuda:0"]
