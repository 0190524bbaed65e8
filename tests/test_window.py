"""The windows around a measurement (measure/window.py): one protocol, one loop.

The loop opens the windows in order, closes them in reverse (also when the measurement
or a window raises), and the caller applies them in order; each of the four real
windows puts its own findings on the measurement.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_hwperf.measure.gpu_util import GpuUtilizationSampler
from pytest_hwperf.measure.memory import MemoryReaders, MemoryTracker, ProcessMemory
from pytest_hwperf.measure.observe import ThreadObservation, ThreadSampler
from pytest_hwperf.measure.reference import ReferenceGauge
from pytest_hwperf.measure.result import Measurement
from pytest_hwperf.measure.window import Window, WindowContext, opened
from pytest_hwperf.plugin.fixtures import Hwperf, ObservedThreads
from pytest_hwperf.plugin.markers import TestSpec
from pytest_hwperf.plugin.options import Settings
from pytest_hwperf.warnings import HwperfOversubscriptionWarning


def measurement() -> Measurement:
    return Measurement(
        name="target",
        device="cpu",
        mode="measured",
        timing_method="perf_counter_ns",
        sync_method="none",
        block_size=1,
        samples_ns=np.asarray([1_000_000], dtype=np.int64),
        warmup_calls=1,
        warmup_ns=1_000_000,
        per_call_estimate_ns=1e6,
        gc_policy="collect-then-enabled",
        stop_reason="max-time",
        alpha=0.01,
        looks=1,
    )


class Recorder(WindowContext):
    """A window that writes what happens to it into a shared log."""

    def __init__(self, name: str, log: list[str], *, fail_stop: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_stop = fail_stop

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} failed to stop")

    def abort(self) -> None:
        self.log.append(f"abort {self.name}")

    def apply(self, measurement: Measurement) -> None:
        self.log.append(f"apply {self.name}")
        measurement.notes.append(self.name)


def test_windows_open_in_order_close_in_reverse_and_apply_in_order():
    log: list[str] = []
    windows: list[Window] = [Recorder(name, log) for name in ("outer", "middle", "inner")]
    m = measurement()
    with opened(windows):
        log.append("measure")
    for window in windows:
        window.apply(m)
    assert log == [
        "start outer",
        "start middle",
        "start inner",
        "measure",
        "stop inner",
        "stop middle",
        "stop outer",
        "apply outer",
        "apply middle",
        "apply inner",
    ]
    assert m.notes == ["outer", "middle", "inner"]


def test_every_opened_window_is_aborted_when_the_measurement_raises():
    log: list[str] = []
    with pytest.raises(KeyError), opened([Recorder("a", log), Recorder("b", log)]):
        raise KeyError("measurement failed")
    assert log == ["start a", "start b", "abort b", "abort a"]


def test_a_window_that_fails_to_stop_does_not_leave_the_others_open():
    log: list[str] = []
    windows = [Recorder("a", log), Recorder("b", log, fail_stop=True), Recorder("c", log)]
    with pytest.raises(RuntimeError, match="b failed to stop"), opened(windows):
        pass
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "abort a"]


def test_a_window_that_fails_to_start_closes_those_already_open():
    log: list[str] = []

    class Broken(Recorder):
        def start(self) -> None:
            raise OSError("cannot open")

    windows = [Recorder("a", log), Broken("b", log), Recorder("c", log)]
    with pytest.raises(OSError, match="cannot open"), opened(windows):
        log.append("measure")  # pragma: no cover - never reached
    assert log == ["start a", "abort a"]


def test_the_mixin_makes_a_window_a_context_manager():
    log: list[str] = []
    with Recorder("w", log) as window:
        assert isinstance(window, Recorder)
        log.append("inside")
    with pytest.raises(KeyError), Recorder("x", log):
        raise KeyError("measurement failed")
    assert log == ["start w", "inside", "stop w", "start x", "abort x"]
    with pytest.raises(NotImplementedError):
        WindowContext().start()


def test_abort_is_stop_unless_a_window_says_otherwise():
    log: list[str] = []

    class StopOnly(WindowContext):
        def start(self) -> None:
            log.append("start")

        def stop(self) -> None:
            log.append("stop")

    with pytest.raises(KeyError), StopOnly():
        raise KeyError("measurement failed")
    assert log == ["start", "stop"]


@pytest.mark.parametrize(
    "cls", [MemoryTracker, ThreadSampler, GpuUtilizationSampler, ReferenceGauge, ObservedThreads]
)
def test_the_measuring_helpers_are_windows(cls):
    for method in ("start", "stop", "abort", "apply"):
        assert callable(getattr(cls, method, None)), f"{cls.__name__}.{method}"


# -- the real windows put their findings on the measurement ----------------------------


def test_memory_and_threads_are_applied_through_the_loop():
    readers = MemoryReaders(
        reset_peak=lambda pid: True,
        read=lambda pid: ProcessMemory(100 << 20, 150 << 20),
        descendants=lambda pid: [],
    )
    snapshots = [{1: {10: 0.0, 11: 0.0}}, {1: {10: 1.0, 11: 0.0}}]
    times = [0.0, 2.0]
    threads = ThreadSampler(
        pid=1,
        read_threads=lambda: snapshots.pop(0),
        clock=lambda: times.pop(0),
        read_pools=dict,
        environ={},
    )
    memory = MemoryTracker(pid=1, readers=readers, gpu=False, thread=False)
    windows: list[Window] = [threads, memory]
    m = measurement()
    with opened(windows):
        pass
    for window in windows:
        window.apply(m)
    assert m.memory is not None
    assert m.memory is not None
    assert m.memory.rss_peak_mb == pytest.approx(150.0)
    assert m.memory.method == "kernel-hwm"
    assert m.observed_threads is not None
    assert m.observed_threads["busy_total"] == 1
    assert m.observed_threads["idle_total"] == 1


def test_a_worker_pools_observer_counts_only_the_children():
    observation = ThreadObservation(
        test_pid=1,
        busy_by_process={1: 3, 7: 2, 8: 1},
        idle_by_process={1: 4, 7: 0, 8: 1},
        busy_total=6,
        window_s=1.0,
        pools={},
        xdist_workers=1,
    )
    children = observation.children_only()
    assert children.busy_by_process == {1: 0, 7: 2, 8: 1}
    assert children.busy_total == 3
    assert children.idle_by_process == observation.idle_by_process
    snapshots = [{1: {10: 0.0}, 7: {70: 0.0}}, {1: {10: 1.0}, 7: {70: 1.0}}]
    times = [0.0, 1.0]
    sampler = ThreadSampler(
        pid=1,
        read_threads=lambda: snapshots.pop(0),
        clock=lambda: times.pop(0),
        read_pools=dict,
        environ={},
        children_only=True,
    )
    with sampler:
        pass
    assert sampler.observation.busy_by_process == {1: 0, 7: 1}
    assert sampler.observation.busy_total == 1


def test_the_reference_gauge_records_its_time_and_kind(monkeypatch):
    from pytest_hwperf.measure import reference

    # One thread of the test process was busy during the window (injected).
    monkeypatch.setattr(reference, "busy_threads", lambda before, after, window: 1)
    gauge = ReferenceGauge()
    m = measurement()
    with opened([gauge]):
        pass
    assert not gauge.idle
    gauge.apply(m)
    assert m.reference_ns is not None
    assert m.reference_ns > 0
    assert m.reference_kind == "numpy-dot/1"


def test_the_reference_gauge_leaves_a_target_that_kept_no_thread_busy(monkeypatch):
    from pytest_hwperf.measure import reference

    # It waited (a sleep, I/O, a server elsewhere): the CPU's speed is not its speed.
    monkeypatch.setattr(reference, "busy_threads", lambda before, after, window: 0)
    timed: list[bool] = []
    monkeypatch.setattr(reference, "reference", lambda **kwargs: timed.append(True))
    gauge = ReferenceGauge()
    m = measurement()
    with opened([gauge]):
        pass
    assert gauge.idle
    gauge.apply(m)
    assert m.reference_ns is None
    assert m.reference_kind is None
    assert not timed  # not even timed


def test_the_reference_gauge_times_the_saved_runs_kind(monkeypatch):
    from pytest_hwperf.measure import reference

    # Two threads were busy (a parallel target), but its saved runs were gauged on one
    # BLAS thread: this run is gauged as they were, so that the two compare.
    monkeypatch.setattr(reference, "busy_threads", lambda before, after, window: 2)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    gauge = ReferenceGauge(saved_kind="numpy-dot/1")
    m = measurement()
    with opened([gauge]):
        pass
    gauge.apply(m)
    assert m.reference_kind == "numpy-dot/1"
    assert gauge.again() > 0  # the rounds keep that kind
    # A target that waited this time is still gauged when its saved runs were.
    monkeypatch.setattr(reference, "busy_threads", lambda before, after, window: 0)
    waited = ReferenceGauge(saved_kind="numpy-dot/1")
    with opened([waited]):
        pass
    assert not waited.idle
    # A kind that cannot be timed here (a hostile or foreign file) is not used.
    foreign = ReferenceGauge(saved_kind="numpy-dot/0")
    with opened([foreign]):
        pass
    assert foreign.idle


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("numpy-dot/1", True),
        ("numpy-dot/0", False),
        ("numpy-dot/100000", False),
        ("numpy-dot/", False),
        ("numpy-dot/-1", False),
        ("numpy-dot/1.5", False),
        ("gauge/1", False),
        ("", False),
        ("torch-mm/1", False),  # torch not loaded
        ("numpy-dot/\u00b2", False),  # a digit to str.isdigit, not to int()
        ("numpy-dot/" + "9" * 5000, False),  # beyond int()'s digit limit
    ],
)
def test_a_saved_kind_is_timed_only_when_it_can_be_here(monkeypatch, kind, expected):
    from pytest_hwperf.measure.reference import timeable

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert timeable(kind) is expected


@given(st.text())
def test_any_saved_kind_is_answered_without_an_error(kind):
    from pytest_hwperf.measure.reference import timeable

    assert timeable(kind) in (True, False)


def test_a_torch_kind_is_timeable_with_the_same_thread_count():
    torch = pytest.importorskip("torch", reason="the torch gauge needs torch")
    from pytest_hwperf.measure.reference import timeable

    threads = torch.get_num_threads()
    assert timeable(f"torch-mm/{threads}")
    assert not timeable(f"torch-mm/{threads + 1}")


def test_the_observed_gate_records_and_warns_over_the_usable_cores():
    snapshots = [{1: {t: 0.0 for t in range(4)}}, {1: {t: 1.0 for t in range(4)}}]
    times = [0.0, 1.0]
    sampler = ThreadSampler(
        busy_fraction=0.2,
        pid=1,
        read_threads=lambda: snapshots.pop(0),
        clock=lambda: times.pop(0),
        read_pools=dict,
        environ={},
    )
    window = ObservedThreads(sampler, lambda: (2, "affinity"), warn=True)
    m = measurement()
    with opened([window]):
        pass
    with pytest.warns(HwperfOversubscriptionWarning, match="observed 4 busy threads"):
        window.apply(m)
    assert m.observed_threads is not None
    assert m.observed_threads["busy_total"] == 4
    assert m.oversubscription is not None
    assert m.oversubscription.startswith("observed 4 busy threads")


# -- the hwperf handle builds its list -------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "device", "expected"),
    [
        (Settings(enabled=True), "cpu", [ReferenceGauge, ObservedThreads, MemoryTracker]),
        (Settings(enabled=True, reference=False), "cpu", [ObservedThreads, MemoryTracker]),
        # A/B: both sides share the machine's minutes, no gauge.
        (Settings(enabled=True, against="HEAD~1"), "cpu", [ObservedThreads, MemoryTracker]),
        (
            Settings(enabled=True, reference=True),
            "cuda:0",
            [ObservedThreads, GpuUtilizationSampler, MemoryTracker],
        ),
        (
            Settings(enabled=True, oversubscription="off", reference=False),
            "cpu",
            [MemoryTracker],
        ),
    ],
)
def test_hwperf_builds_its_windows_outermost_first(settings, device, expected):
    handle = Hwperf(settings, TestSpec(), [], usable=lambda: (4, "affinity"))
    assert [type(w) for w in handle._windows(device)] == expected
