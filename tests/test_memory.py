"""Peak memory: the tracker's bookkeeping on synthetic processes, the real kernel
high-water marks where Linux allows them, the memory marker's validation, the verdict
line and the report columns."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil
import pytest
from _typed_records import typed, typed_all

from pytest_hwperf.judge import verdict
from pytest_hwperf.measure.memory import (
    MB,
    GpuReaders,
    MemoryReaders,
    MemoryTracker,
    ProcessMemory,
    gpu_readers,
    linux_readers,
)
from pytest_hwperf.plugin.markers import MarkerError, MemoryMarker, read_spec
from pytest_hwperf.records.codec import from_json, to_json
from pytest_hwperf.records.types import MemoryRecord
from pytest_hwperf.report.markdown import markdown_summary
from pytest_hwperf.report.terminal import summary_lines
from pytest_hwperf.units import fmt_mb

ME = 100


@dataclass
class FakeProcess:
    rss: int
    hwm: int
    resettable: bool = True


@dataclass
class FakeTree:
    """A process table the tracker reads instead of /proc: sizes in MiB."""

    processes: dict[int, FakeProcess] = field(default_factory=dict)
    children: list[int] = field(default_factory=list)
    lifetime_max: int | None = None
    resets: list[int] = field(default_factory=list)

    def add(self, pid: int, rss_mb: float, *, resettable: bool = True, hwm_mb: float = 0) -> None:
        rss = int(rss_mb * MB)
        self.processes[pid] = FakeProcess(rss, max(rss, int(hwm_mb * MB)), resettable)
        if pid != ME:
            self.children.append(pid)

    def set(self, pid: int, rss_mb: float) -> None:
        """The process's RSS moves; the kernel's high-water mark follows it up."""
        process = self.processes[pid]
        process.rss = int(rss_mb * MB)
        process.hwm = max(process.hwm, process.rss)

    def exit(self, pid: int) -> None:
        del self.processes[pid]
        self.children.remove(pid)

    def readers(self, *, peaks: bool = True) -> MemoryReaders:
        def reset_peak(pid: int) -> bool:
            process = self.processes.get(pid)
            if process is None or not process.resettable or not peaks:
                return False
            self.resets.append(pid)
            process.hwm = process.rss
            return True

        def read(pid: int) -> ProcessMemory | None:
            process = self.processes.get(pid)
            if process is None:
                return None
            return ProcessMemory(process.rss, process.hwm if peaks else None)

        def max_rss() -> int | None:
            return self.lifetime_max

        return MemoryReaders(reset_peak, read, lambda pid: list(self.children), max_rss)


def tracker(tree: FakeTree, **kwargs: object) -> MemoryTracker:
    options: dict[str, object] = {"pid": ME, "readers": tree.readers(), "thread": False}
    options.update(kwargs)
    return MemoryTracker(**options)  # type: ignore[arg-type]


# --- the test process alone ---------------------------------------------------------------


def test_a_short_peak_of_the_process_is_caught_exactly_without_any_sampling():
    tree = FakeTree()
    tree.add(ME, 100, hwm_mb=900)  # an earlier test's peak: reset, not counted
    with tracker(tree, thread=True) as t:
        tree.set(ME, 412.5)  # a peak nobody sampled ...
        tree.set(ME, 120)  # ... gone again before the end
        assert not [th for th in threading.enumerate() if th.name == "hwperf-memory"]
    usage = t.usage
    assert tree.resets == [ME]
    assert usage.process_peak_mb == pytest.approx(412.5)
    assert usage.rss_peak_mb == pytest.approx(412.5)
    assert usage.rss_start_mb == pytest.approx(100)
    assert usage.children_peak_mb is None
    assert usage.children == 0
    assert usage.method == "kernel-hwm"
    assert usage.resolution_ms == 0.0
    assert usage.samples == 0
    assert usage.tree_sampled_peak_mb is None
    assert usage.scope == "test process, kernel high-water mark"


def test_without_high_water_marks_the_tracker_samples_and_says_so():
    tree = FakeTree()
    tree.add(ME, 100)
    t = tracker(tree, readers=tree.readers(peaks=False), interval_s=0.01)
    t.start()
    tree.set(ME, 250)
    t.sample()
    tree.set(ME, 600)  # between two samples: missed
    tree.set(ME, 110)
    t.sample()
    usage = t.stop()
    assert usage.method == "sampled"
    assert usage.resolution_ms == pytest.approx(10)
    assert usage.process_peak_mb == pytest.approx(250)
    assert usage.samples == 2
    assert usage.scope == "test process, sampled every 10 ms"


def test_sampling_still_catches_a_new_lifetime_peak_from_getrusage():
    tree = FakeTree()
    tree.add(ME, 100)
    tree.lifetime_max = 300 * MB
    t = tracker(tree, readers=tree.readers(peaks=False))
    t.start()
    tree.set(ME, 700)  # missed by the sampler, but the process never had that much before
    tree.set(ME, 100)
    tree.lifetime_max = 700 * MB
    t.sample()
    assert t.stop().process_peak_mb == pytest.approx(700)


def test_an_old_lifetime_peak_is_not_this_windows():
    tree = FakeTree()
    tree.add(ME, 100)
    tree.lifetime_max = 900 * MB
    t = tracker(tree, readers=tree.readers(peaks=False))
    t.start()
    tree.set(ME, 150)
    t.sample()
    assert t.stop().process_peak_mb == pytest.approx(150)


def test_an_unreadable_process_gives_no_figure_and_a_note():
    tree = FakeTree()
    t = tracker(tree)
    t.start()
    usage = t.stop()
    assert usage.rss_peak_mb is None
    assert usage.process_peak_mb is None
    assert usage.method == "unavailable"
    assert usage.notes == ("the test process's memory could not be read",)
    assert usage.scope == "test process, not readable"
    assert usage.record().rss_peak_mb is None


def test_stop_before_start_and_usage_before_stop_raise():
    t = tracker(FakeTree())
    with pytest.raises(RuntimeError, match="before start"):
        t.stop()
    with pytest.raises(RuntimeError, match="has not closed"):
        _ = t.usage
    with pytest.raises(ValueError, match="interval_s"):
        MemoryTracker(interval_s=0)


# --- children ----------------------------------------------------------------------------


def test_children_peaks_are_summed_with_the_process_peak():
    tree = FakeTree()
    tree.add(ME, 100)
    tree.add(201, 50, hwm_mb=500)  # a worker that loaded its model before the window
    t = tracker(tree)
    t.start()
    tree.set(201, 300)
    tree.set(201, 60)
    tree.add(202, 40)  # born during the window: exact from birth
    tree.set(202, 80)
    tree.set(ME, 150)
    usage = t.stop()
    assert sorted(tree.resets) == [ME, 201]
    assert usage.process_peak_mb == pytest.approx(150)
    assert usage.children_peak_mb == pytest.approx(300 + 80)
    assert usage.rss_peak_mb == pytest.approx(150 + 380)
    assert usage.rss_start_mb == pytest.approx(150)
    assert usage.children == 2
    assert usage.method == "kernel-hwm"
    assert usage.scope == "test process and children, kernel high-water mark"


def test_a_child_that_exits_keeps_its_last_sampled_peak():
    tree = FakeTree()
    tree.add(ME, 100)
    tree.add(201, 50)
    t = tracker(tree)
    t.start()
    tree.set(201, 250)
    t.sample()  # the tree's total at this moment: 100 + 250
    tree.set(201, 400)  # after the last sample: unseen
    tree.exit(201)
    t.sample()
    usage = t.stop()
    assert usage.children_peak_mb == pytest.approx(250)
    assert usage.tree_sampled_peak_mb == pytest.approx(350)
    assert usage.method == "kernel-hwm+sampled"
    assert usage.resolution_ms == pytest.approx(10)
    assert usage.children == 1


def test_a_child_whose_peak_cannot_be_reset_is_sampled():
    tree = FakeTree()
    tree.add(ME, 100)
    tree.add(201, 50, hwm_mb=2000, resettable=False)  # its old peak must not count
    t = tracker(tree)
    t.start()
    tree.set(201, 120)
    t.sample()
    tree.set(201, 70)
    usage = t.stop()
    assert usage.children_peak_mb == pytest.approx(120)
    assert usage.method == "kernel-hwm+sampled"
    assert "sampled every 10 ms" in usage.scope


def test_children_born_between_listings_are_found_at_the_relisting(monkeypatch):
    monkeypatch.setattr("pytest_hwperf.measure.memory.RELIST_EVERY", 2)
    tree = FakeTree()
    tree.add(ME, 100)
    tree.add(201, 10)
    t = tracker(tree)
    t.start()
    tree.add(202, 30)
    t.sample()
    t.sample()  # relisted here: 202 is known from now on
    tree.set(202, 90)
    tree.exit(202)
    usage = t.stop()
    assert usage.children == 2
    assert usage.children_peak_mb == pytest.approx(10 + 30)  # 90 fell after its last reading


def test_the_sampling_thread_runs_while_there_are_children():
    tree = FakeTree()
    tree.add(ME, 100)
    tree.add(201, 10)
    t = tracker(tree, thread=True, interval_s=0.001)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while t._window is not None and t._window.samples < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert [th for th in threading.enumerate() if th.name == "hwperf-memory"]
    finally:
        usage = t.stop()
    assert usage.samples >= 3
    assert not [th for th in threading.enumerate() if th.name == "hwperf-memory"]


# --- the device --------------------------------------------------------------------------


def test_device_peak_from_the_allocator():
    calls: list[str] = []
    gpu = GpuReaders(calls.append, lambda device: 1234 * MB)
    tree = FakeTree()
    tree.add(ME, 100)
    with tracker(tree, gpu_device="cuda:1", gpu=gpu) as t:
        assert calls == ["cuda:1"]  # reset when the window opens
    assert t.usage.gpu_peak_mb == pytest.approx(1234)
    assert t.usage.gpu_device == "cuda:1"


def test_device_start_is_the_base_of_the_added_budget():
    gpu = GpuReaders(lambda device: None, lambda device: 1500 * MB, lambda device: 1000 * MB)
    tree = FakeTree()
    tree.add(ME, 100)
    with tracker(tree, gpu_device="cuda:0", gpu=gpu) as t:
        pass
    assert t.usage.gpu_start_mb == pytest.approx(1000)
    record = t.usage.record()
    assert record.gpu_added_mb == pytest.approx(500)
    budget = verdict.MemoryBudget(gpu_added_mb=400)
    judged, notes = verdict.judge_memory(record, budget, device="cuda:0")
    assert notes == []
    assert judged is not None
    assert judged.outcome == "fail"
    assert judged.reason == (
        "allocated 500.0 MB more on cuda:0 over the 400 MB budget for what the"
        " measurement adds (torch allocator)"
    )
    judged, _ = verdict.judge_memory(
        record, verdict.MemoryBudget(gpu_added_mb=600), device="cuda:0"
    )
    assert judged is not None
    assert judged.outcome == "pass"


def test_an_added_budget_on_the_cpu_says_why_gpu_is_not_judged():
    record = from_json(MemoryRecord, usage_record())
    judged, notes = verdict.judge_memory(
        record, verdict.MemoryBudget(gpu_added_mb=100), device="cpu"
    )
    assert judged is not None
    assert judged.outcome is None
    assert notes == ["memory: gpu_added_mb budget not judged: this measurement ran on cpu"]


def test_a_device_error_is_a_note_not_a_failure():
    def broken(device: str) -> int:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    tree = FakeTree()
    tree.add(ME, 100)
    with tracker(tree, gpu_device="cuda:0", gpu=GpuReaders(lambda d: None, broken)) as t:
        pass
    assert t.usage.gpu_peak_mb is None
    assert t.usage.notes == (
        "device memory not read: RuntimeError: CUDA error: an illegal memory access was"
        " encountered",
    )


def test_device_memory_is_read_for_cuda_only():
    assert gpu_readers(None) is None
    assert gpu_readers("cpu") is None
    assert gpu_readers("mps") is None
    if "torch" in sys.modules:  # the readers are built; nothing is called here
        assert isinstance(gpu_readers("cuda:0"), GpuReaders)


@pytest.mark.gpu
def test_real_cuda_peak_allocated(cuda_device):
    import torch

    with MemoryTracker(gpu_device=cuda_device) as t:
        block = torch.empty(256 * MB, dtype=torch.uint8, device=cuda_device)
        del block
    assert t.usage.gpu_peak_mb is not None
    assert t.usage.gpu_peak_mb >= 256
    assert t.usage.gpu_device == cuda_device


# --- the real kernel ---------------------------------------------------------------------


def _clear_refs_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the kernel high-water mark reset (/proc/<pid>/clear_refs) is Linux's"
    if not linux_readers().reset_peak(os.getpid()):
        return "/proc/self/clear_refs is not writable here (kernel before 4.0, or hardened)"
    return None


needs_clear_refs = pytest.mark.skipif(
    _clear_refs_reason() is not None, reason=str(_clear_refs_reason())
)


@needs_clear_refs
def test_real_process_peak_is_exact():
    np = pytest.importorskip("numpy")
    before_mb = psutil.Process().memory_info().rss / MB
    with MemoryTracker() as t:
        block = np.ones(200 * MB // 8)  # 200 MiB touched ...
        del block  # ... and freed at once: a peak no 10 ms sampler would be sure to see
    usage = t.usage
    assert usage.method in ("kernel-hwm", "kernel-hwm+sampled")
    assert usage.process_peak_mb is not None
    assert usage.rss_peak_mb is not None
    assert usage.process_peak_mb >= before_mb + 180  # wide margin for the allocator's ways
    assert usage.rss_peak_mb >= usage.process_peak_mb
    after_mb = psutil.Process().memory_info().rss / MB
    assert after_mb < before_mb + 100  # it really was freed: only the peak saw it


CHILD = """
import sys
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
block = bytearray(150 * 1024 * 1024)  # zero pages: touch them so they are resident
for i in range(0, len(block), 4096):
    block[i] = 1
del block
sys.stdout.write("done\\n"); sys.stdout.flush()
sys.stdin.readline()
"""


@needs_clear_refs
def test_real_child_peak_is_exact():
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline() == "ready\n"
        with MemoryTracker() as t:
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "done\n"
        child.stdin.write("end\n")
        child.stdin.flush()
    finally:
        child.communicate(timeout=30)
    usage = t.usage
    assert usage.children >= 1
    assert usage.children_peak_mb is not None
    assert usage.children_peak_mb >= 145
    assert usage.rss_peak_mb is not None
    assert usage.process_peak_mb is not None
    assert usage.rss_peak_mb >= usage.process_peak_mb + 145
    assert usage.scope.startswith("test process and children")


# --- the verdict -------------------------------------------------------------------------


def usage_record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "rss_peak_mb": 312.4,
        "rss_start_mb": 80.0,
        "process_peak_mb": 212.4,
        "children_peak_mb": 100.0,
        "children": 2,
        "tree_sampled_peak_mb": 290.0,
        "gpu_peak_mb": None,
        "gpu_device": None,
        "method": "kernel-hwm",
        "resolution_ms": 0.0,
        "samples": 12,
        "scope": "test process and children, kernel high-water mark",
    }
    record.update(changes)
    return record


def judge_memory(memory, *, rss_mb, gpu_mb, device):
    """The judging layer's verdict on a memory record, read back as its JSON object."""
    typed_memory = None if memory is None else from_json(MemoryRecord, memory)
    budget = verdict.MemoryBudget(rss_mb=rss_mb, gpu_mb=gpu_mb)
    judged, notes = verdict.judge_memory(typed_memory, budget, device=device)
    return (None if judged is None else to_json(judged)), notes


def test_a_breach_is_one_line():
    judged, notes = judge_memory(usage_record(), rss_mb=100, gpu_mb=None, device="cpu")
    assert notes == []
    assert judged is not None
    assert judged["outcome"] == "fail"
    assert judged["rss_budget_mb"] == 100
    assert judged["gpu_budget_mb"] is None
    assert judged["reason"] == (
        "peak RSS 312.4 MB over the 100 MB budget"
        " (test process and children, kernel high-water mark)"
    )


def test_within_budget_passes():
    judged, _ = judge_memory(usage_record(), rss_mb=2000, gpu_mb=None, device="cpu")
    assert judged is not None
    assert judged["outcome"] == "pass"
    assert judged["reason"].startswith("peak RSS 312.4 MB within the 2000 MB budget")


def test_gpu_budget_on_cuda():
    record = usage_record(gpu_peak_mb=1228.8, gpu_device="cuda:0")
    judged, _ = judge_memory(record, rss_mb=2000, gpu_mb=1024, device="cuda:0")
    assert judged is not None
    assert judged["outcome"] == "fail"
    assert judged["reason"] == (
        "peak allocated 1.2 GB on cuda:0 over the 1024 MB budget (torch allocator)"
    )


def test_gpu_budget_on_the_cpu_is_not_judged_with_a_note():
    judged, notes = judge_memory(usage_record(), rss_mb=None, gpu_mb=500, device="cpu")
    assert judged is not None
    assert judged["outcome"] is None
    assert judged["reason"] is None
    assert notes == [
        "memory: gpu_mb budget not judged: this measurement ran on cpu"
        " (device memory is tracked for CUDA measurements)"
    ]


def test_no_figures_no_verdict():
    judged, notes = judge_memory(None, rss_mb=100, gpu_mb=None, device="cpu")
    assert judged is None
    assert notes == ["memory budget not judged: no memory figures for this measurement"]
    judged, notes = judge_memory(
        usage_record(rss_peak_mb=None), rss_mb=100, gpu_mb=None, device="cpu"
    )
    assert judged is not None
    assert judged["outcome"] is None
    assert notes == ["memory: rss_mb budget not judged: the RSS could not be read"]


def test_fmt_mb():
    assert fmt_mb(312.44) == "312.4 MB"
    assert fmt_mb(1228.8) == "1.2 GB"


# --- the marker --------------------------------------------------------------------------


def test_marker_binds_budgets():
    assert MemoryMarker.from_args((), {"rss_mb": 100}) == MemoryMarker(100.0, None)
    assert MemoryMarker.from_args((), {"gpu_mb": 2.5}) == MemoryMarker(None, 2.5)
    assert MemoryMarker.from_args((), {"rss_mb": 1, "gpu_mb": 2}).describe() == (
        "peak RSS <= 1 MB, peak GPU memory <= 2 MB"
    )
    assert (
        str(MemoryMarker.SIGNATURE)
        == "(*, rss_mb=None, gpu_mb=None, rss_added_mb=None, gpu_added_mb=None)"
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (
            (),
            {},
            "@pytest.mark.memory: give a budget, 'rss_mb', 'gpu_mb', 'rss_added_mb' or"
            " 'gpu_added_mb' (signature: memory(*, rss_mb=None, gpu_mb=None,"
            " rss_added_mb=None, gpu_added_mb=None))",
        ),
        (
            (),
            {"rss_mb": -1},
            "@pytest.mark.memory: argument 'rss_mb' must be a positive number of MB (MiB), got -1",
        ),
        (
            (),
            {"rss_mb": True},
            "@pytest.mark.memory: argument 'rss_mb' must be a positive number of MB (MiB),"
            " got True",
        ),
        (
            (),
            {"gpu_mb": "1GB"},
            "@pytest.mark.memory: argument 'gpu_mb' must be a positive number of MB (MiB),"
            " got '1GB'",
        ),
        (
            (),
            {"gpu_mb": float("inf")},
            "@pytest.mark.memory: argument 'gpu_mb' must be a positive number of MB (MiB), got inf",
        ),
        (
            (),
            {"rss": 100},
            "@pytest.mark.memory: unknown argument 'rss'"
            " (allowed: rss_mb, gpu_mb, rss_added_mb, gpu_added_mb)",
        ),
        (
            (100,),
            {},
            "@pytest.mark.memory: too many positional arguments"
            " (signature: memory(*, rss_mb=None, gpu_mb=None, rss_added_mb=None,"
            " gpu_added_mb=None))",
        ),
    ],
)
def test_marker_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(MarkerError) as info:
        MemoryMarker.from_args(args, kwargs)
    assert str(info.value) == message


def test_the_closest_memory_mark_wins():
    spec = read_spec([pytest.mark.memory(rss_mb=10).mark, pytest.mark.memory(rss_mb=99).mark])
    assert spec.memory == MemoryMarker(10.0, None)
    assert spec.budgets == ()  # not a sampling budget


# --- the reports -------------------------------------------------------------------------


def report_record(**memory: object) -> dict[str, object]:
    return {
        "test_id": "test_m.py::test_big",
        "name": "hold",
        "device": "cpu",
        "outcome": "fail",
        "stats": {"n": 4, "p50_ms": 50.0, "p95_ms": 60.0, "p99_ms": 61.0},
        "timing": {"block_size": 1},
        "budgets": [],
        "memory": usage_record(**memory),
    }


def test_summary_table_shows_the_peak_rss_and_the_memory_budget():
    lines = summary_lines([typed(report_record(rss_budget_mb=100))])
    header, row = lines
    assert header.split() == [
        "test", "name", "device", "n", "p50", "p95", "p99", "rss", "budget", "verdict",
    ]  # fmt: skip
    assert row.split() == [
        "test_m.py::test_big", "hold", "cpu", "4", "50.00ms", "60.00ms", "61.00ms", "312MB",
        "rss<=100MB", "FAIL",
    ]  # fmt: skip
    assert row.index("312MB") + len("312MB") == header.index("rss") + len("rss")  # right-aligned


def test_summary_table_without_memory_has_no_rss_column():
    record = report_record()
    del record["memory"]
    assert "rss" not in summary_lines([typed(record)])[0].split()
    mixed = summary_lines(typed_all([record, report_record(rss_peak_mb=45.25)]))
    assert mixed[0].split()[7] == "rss"
    assert mixed[1].split()[7] == "-"
    assert mixed[2].split()[7] == "45.2MB"


def test_markdown_table_has_the_peak_rss():
    text = markdown_summary([typed(report_record(rss_budget_mb=100, gpu_budget_mb=2048))])
    assert "| p95 | peak RSS | budget |" in text
    assert "| 60.00ms | 312MB | rss<=100MB,gpu<=2048MB | **FAIL** |" in text
