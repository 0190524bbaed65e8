"""The fixtures (`hwperf`, the measuring handle; `device`, `hwperf_model`, `hwinfo`,
`worker_config`) and the stash keys of the state they read and fill."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest

from pytest_hwperf.hardware.context import HardwareContext, HardwareInfo
from pytest_hwperf.hardware.probing import quiet_probe
from pytest_hwperf.measure.window import opened
from pytest_hwperf.plugin.markers import SPEC_KEY, TestSpec
from pytest_hwperf.plugin.options import SETTINGS_KEY, Settings
from pytest_hwperf.plugin.suspects import Suspect, suspect_for
from pytest_hwperf.warnings import HwperfOversubscriptionWarning
from pytest_hwperf.workers.config import WorkerConfig, applied_threads

if TYPE_CHECKING:
    from pytest_hwperf.ab.pairing import Pairing
    from pytest_hwperf.hardware.gpu import GpuReport
    from pytest_hwperf.measure import DeviceSync, Measurement, SamplingPolicy
    from pytest_hwperf.measure.models import PreparedModel
    from pytest_hwperf.measure.observe import ThreadObservation, ThreadSampler
    from pytest_hwperf.measure.sampler import HangOption
    from pytest_hwperf.measure.window import Window
    from pytest_hwperf.records.types import ModelRecord
    from pytest_hwperf.workers.placement import Placement

# The measuring modules (numpy, threadpoolctl) are imported on the first measurement,
# so that a test run that never measures pays nothing for them at start-up.

__all__ = [
    "AFFINITY_KEY",
    "CONTEXT_KEY",
    "DEVICE_KEY",
    "MEASUREMENTS_KEY",
    "MODELS_KEY",
    "PLACEMENT_KEY",
    "PROFILE_TARGETS_KEY",
    "WORKER_CONFIG_KEY",
    "HardwareInfo",
    "Hwperf",
    "ObservedThreads",
    "declared_config",
    "device",
    "hardware_context",
    "hwinfo",
    "hwperf",
    "hwperf_model",
    "worker_config",
]

T = TypeVar("T")


# -- stash keys: on the config, set at configure --------------------------------------
# The CPUs this process may use (read before the conftests load; an xdist worker's
# share once placed), an xdist worker's placement, and the detected hardware.
AFFINITY_KEY: pytest.StashKey[tuple[int, ...]] = pytest.StashKey()
PLACEMENT_KEY: pytest.StashKey[Placement] = pytest.StashKey()
CONTEXT_KEY: pytest.StashKey[HardwareContext] = pytest.StashKey()
AB_KEY: pytest.StashKey[Pairing] = pytest.StashKey()  # on an item: --hwperf-against's pairing

# -- stash keys: on each item, filled by the fixtures ---------------------------------
MEASUREMENTS_KEY: pytest.StashKey[list[Measurement]] = pytest.StashKey()
DEVICE_KEY: pytest.StashKey[str] = pytest.StashKey()  # the test's `device` fixture value
MODELS_KEY: pytest.StashKey[list[ModelRecord]] = pytest.StashKey()  # hwperf_model
WORKER_CONFIG_KEY: pytest.StashKey[WorkerConfig] = pytest.StashKey()  # declared or gridded
# Under --hwperf: each measurement's target and device sync by name, so that a failing one
# can be profiled in the call's makereport (before fixture teardown); popped there.
PROFILE_TARGETS_KEY: pytest.StashKey[dict[str, tuple[Callable[[], object], DeviceSync]]] = (
    pytest.StashKey()
)

# The observed gate counts a thread busy when it used a fifth of a core over the
# sampling window, and judges only windows long enough for the kernel's 10 ms CPU-time
# ticks to tell busy from idle: a helper thread's stray tick must not fail a test.
OBSERVED_BUSY_FRACTION = 0.2
OBSERVED_MIN_WINDOW_S = 0.5


class Hwperf:
    """The measuring handle given by the `hwperf` fixture.

    `hwperf(fn, *args, name=None, device=None, **kwargs)` calls `fn(*args, **kwargs)`
    and returns its result. Under `--hwperf` it first warms `fn` up, then samples one
    call at a time and judges the test's budgets; without `--hwperf` it calls `fn`
    exactly once. `name` and `device` are the handle's own keywords: to pass arguments
    with those names to `fn`, wrap it (`functools.partial` or a lambda).

    Results are readable afterwards: `hwperf.results[name]` (or `hwperf.last`) is a
    `Measurement` with `p50_ms`, `p95_ms`, `p99_ms`, `mean_ms`, `n`,
    `throughput_per_s`, `samples_ns` and the budget `verdicts`.
    """

    def __init__(
        self,
        settings: Settings,
        spec: TestSpec,
        sink: list[Measurement],
        *,
        default_device: Callable[[], str | None] = lambda: None,
        clock: Callable[[], int] = time.perf_counter_ns,
        usable: Callable[[], tuple[int, str]] | None = None,
        gpus: Callable[[], GpuReport | None] = lambda: None,
        targets: dict[str, tuple[Callable[[], object], DeviceSync]] | None = None,
        suspect: Suspect | None = None,
        on_hang: Callable[[str], object] | None = None,
        ab: Pairing | None = None,
    ) -> None:
        self._ab = ab  # same-run A/B (--hwperf-against): measures in _measure's place
        # The server whose request is measured (`hwperf(server.infer, x)`, mlserver fixture):
        # observed as its load is, the busy threads of its workers only.
        self._served_by: int | None = None
        # What a call past --hwperf-call-timeout that cannot be interrupted (off the main
        # thread, no SIGALRM) does; None: measure/deadline.py's default (end the process).
        self._on_hang = on_hang
        # Would the gate fail it (then measured again), which gauge (plugin/suspects.py)?
        self._suspect = suspect
        # Where each measured target is kept for --hwperf-profile (None: not kept).
        self._targets = targets
        self._usable = usable  # usable cores and their source, for the observed gate
        self._gpus = gpus  # the session's GPU report: which NVML device is cuda:N
        self._settings = settings
        self._spec = spec
        self._sink = sink
        self._default_device = default_device
        self.clock = clock  # nanoseconds; public so that a test can inject a virtual one
        self.results: dict[str, Measurement] = {}

    @property
    def enabled(self) -> bool:
        """True under --hwperf: calls are measured and budgets judged."""
        return self._settings.enabled

    @property
    def last(self) -> Measurement:
        """The most recent measurement of this test."""
        if not self._sink:
            pytest.fail("hwperf.last: no measurement has been taken in this test", pytrace=False)
        return self._sink[-1]

    def __getitem__(self, name: str) -> Measurement:
        return self.results[name]

    def __iter__(self) -> Iterator[Measurement]:
        return iter(list(self._sink))

    def _policy(self) -> SamplingPolicy:
        from pytest_hwperf.measure import SamplingPolicy

        s = self._settings
        return SamplingPolicy(
            max_time_s=s.max_time_s,
            warmup_s=s.warmup_s,
            alpha=s.alpha,
            gc=s.gc,
            call_timeout_s=s.call_limit_s,
            # A request to a server this test started waits for the CPUs the server's own
            # processes take: its wait says nothing of other tenants (measure/contention.py).
            busy_wait=0.0 if self._served_by is not None else s.busy_wait,
        )

    def thread_observer(
        self, *, workers_only: bool = False, pid: int | None = None
    ) -> ObservedThreads | None:
        """The window that counts the busy threads of this process (or `pid`) and its
        children while measuring and applies the observed gate; None when that gate is off.

        `workers_only`: count only the child processes (a worker pool's); the test process
        drives the load there, standing for clients that run elsewhere in production."""
        if self._usable is None or self._settings.oversubscription == "off":
            return None
        from pytest_hwperf.measure.observe import ThreadSampler

        sampler = ThreadSampler(
            busy_fraction=OBSERVED_BUSY_FRACTION, pid=pid, children_only=workers_only
        )
        return ObservedThreads(
            sampler, self._usable, warn=self._settings.oversubscription == "warn"
        )

    def _windows(self, device: str, label: str = "") -> list[Window]:
        """What watches a measurement on `device` (measure/window.py), outermost first."""
        with quiet_probe():  # the user's warning filters are not for our imports
            from pytest_hwperf.measure.gpu_util import utilization_sampler
            from pytest_hwperf.measure.memory import MemoryTracker
            from pytest_hwperf.measure.reference import ReferenceGauge

        windows: list[Window] = []
        # The CPU's speed around a CPU measurement (not a GPU's, nor under A/B: both sides
        # share the minutes), gauged as the target used the cores: one thread or several.
        if self._settings.reference and device == "cpu" and self._settings.against is None:
            suspect = self._suspect  # the kind its saved runs were gauged with, if any
            windows.append(ReferenceGauge(suspect.saved_kind(label, device) if suspect else None))
        served_by = self._served_by
        observer = self.thread_observer(pid=served_by, workers_only=served_by is not None)
        if observer is not None:
            windows.append(observer)
        # How busy a CUDA device is kept (NVML's own samples, read after the fact).
        gpu_busy = utilization_sampler(device, self._gpus)
        if gpu_busy is not None:
            windows.append(gpu_busy)
        # Peak RSS (process tree) and CUDA memory, from the kernel's high-water marks.
        windows.append(MemoryTracker(gpu_device=device))
        return windows

    def _device_for(self, fn: Callable[..., object], device: object | None) -> object | None:
        """The device to synchronise: the explicit `device=`, else the prepared model's,
        else the test's `device` fixture value, else none (the CPU)."""
        if device is not None:
            return device
        prepared = _prepared(fn)
        if prepared is not None:
            return prepared.device
        return self._default_device()

    def _name_for(self, fn: Callable[..., object], name: str | None) -> str:
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                pytest.fail(
                    f"hwperf(name={name!r}): a name must be a non-empty string", pytrace=False
                )
            if name in self.results:
                pytest.fail(
                    f"hwperf(name={name!r}): this test already has a measurement of that name",
                    pytrace=False,
                )
            return name
        base = getattr(fn, "__name__", None) or type(fn).__name__
        base = "lambda" if base == "<lambda>" else base
        candidate, counter = base, 1
        while candidate in self.results:
            counter += 1
            candidate = f"{base}#{counter}"
        return candidate

    def __call__(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        name: str | None = None,
        device: object | None = None,
        **kwargs: Any,
    ) -> T:
        if not callable(fn):
            pytest.fail(f"hwperf(): the first argument must be callable, got {fn!r}", pytrace=False)
        with quiet_probe():  # numpy's optional imports meet a legacy finder's ImportWarning
            from pytest_hwperf.measure import DeviceError, device_sync, measure  # noqa: F401

        label = self._name_for(fn, name)
        pid = getattr(getattr(fn, "__self__", None), "hwperf_server_pid", None)
        self._served_by = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
        problem: str | None = None
        try:
            sync = device_sync(self._device_for(fn, device))
        except DeviceError as exc:
            problem = str(exc)
        if problem is not None:
            # Outside the except block, so the failure is one line, not a chained pair.
            pytest.fail(f"hwperf(name={label!r}): {problem}", pytrace=False)

        def target() -> T:
            return fn(*args, **kwargs)

        if self.enabled:
            from pytest_hwperf.measure.deadline import CallTimeout

            try:
                result, measurement = self._measure(target, label, sync)
            except CallTimeout as exc:
                problem = f"hwperf: {label!r} on {sync.device}: {exc} (--hwperf-call-timeout)"
            if problem is not None:  # one line: the hung call, its device and the limit
                pytest.fail(problem, pytrace=False)
        else:
            result, measurement = self._call_once(target, label, sync)
        prepared = _prepared(fn)
        if prepared is not None:
            measurement.model = prepared.info()
        self.results[label] = measurement
        self._sink.append(measurement)
        return result

    def _measure(
        self, target: Callable[[], T], label: str, sync: DeviceSync
    ) -> tuple[T, Measurement]:
        """Under --hwperf: warm up, sample and judge, with the windows open around it."""
        if self._ab is not None and self._ab.takes(label):  # plugin/ab_measure.py
            return self._ab.measure(self, target, label, sync)
        from pytest_hwperf.hardware import thread_settings
        from pytest_hwperf.measure import measure

        windows = self._windows(sync.device, label)
        with opened(windows):
            result, measurement = measure(
                target,
                name=label,
                budgets=self._spec.budgets,
                policy=self._policy(),
                sync=sync,
                clock=self.clock,
                **self._hang(),
            )
        for window in windows:  # here, so that a warning points at the test
            window.apply(measurement)
        measurement.threads = thread_settings()
        from pytest_hwperf.measure.reference import ReferenceGauge

        gauge = next((w for w in windows if isinstance(w, ReferenceGauge) and not w.idle), None)
        self._confirm(target, measurement, sync, None if gauge is None else gauge.again)
        if self._targets is not None:
            self._targets[label] = (_in_same_torch_mode(target), sync)
        return result, measurement

    def _hang(self) -> HangOption:
        return {} if self._on_hang is None else {"on_hang": self._on_hang}

    def _confirm(
        self,
        target: Callable[[], object],
        first: Measurement,
        sync: DeviceSync,
        gauge: Callable[[], float] | None = None,
    ) -> None:
        """--hwperf-confirm's rounds, where needed (measure/rounds.py): a saved run or a
        suspected regression in every round; a breached budget until it is shown met.
        `gauge`: the reference workload, timed again after each round."""
        from pytest_hwperf.measure.quiet import until_quiet
        from pytest_hwperf.measure.rounds import confirm, measuring

        if self._settings.confirm < 1:
            return
        suspect = self._suspect
        every_round = self._settings.save or (
            suspect is not None
            and suspect(
                first.name,
                first.device,
                first.stats.min_ms,
                first.stats.p95_ms,
                None if first.reference_ns is None else first.reference_ns / 1e6,
                first.reference_kind,
            )
        )
        again = measuring(target, first.name, self._policy(), sync, self.clock, self._hang(), gauge)
        confirm(
            first,
            again,
            rounds=self._settings.confirm,
            every_round=every_round,
            pause=time.sleep,
            wait=until_quiet,
            longest_pause_s=self._settings.confirm_pause_s,
            spread=not self._settings.save,  # a save: back to back, but for busy rounds
        )

    def _call_once(
        self,
        target: Callable[[], T],
        label: str,
        sync: DeviceSync,
    ) -> tuple[T, Measurement]:
        """Without --hwperf: one plain call, timed for information only."""
        import numpy as np

        from pytest_hwperf.measure import Measurement

        synchronize = sync.synchronize
        t0 = self.clock()
        result = target()
        if synchronize is not None:
            synchronize()
        elapsed = self.clock() - t0
        measurement = Measurement.from_samples(
            name=label,
            device=sync.device,
            samples_ns=np.asarray([elapsed], dtype=np.int64),
            mode="functional",
            timing_method="perf_counter_ns",
            sync_method=sync.method,
            per_call_estimate_ns=float(elapsed),
            gc_policy="untouched",
            stop_reason="functional",
            alpha=self._settings.alpha,
            looks=0,
        )
        return result, measurement


class ObservedThreads:
    """The thread observer with the observed oversubscription gate (DESIGN section 5)
    applied to what it saw: a window of measure/window.py around one measurement.

    The gate judges only windows long enough for the kernel's 10 ms CPU-time ticks to
    tell busy from idle. A breach is recorded on the measurement and, with `warn`,
    warned at the caller of the code that applies the windows (the test)."""

    def __init__(
        self, sampler: ThreadSampler, usable: Callable[[], tuple[int, str]], *, warn: bool
    ) -> None:
        self.sampler = sampler
        self._usable = usable  # usable cores and their source
        self._warn = warn

    def start(self) -> None:
        self.sampler.start()

    def stop(self) -> ThreadObservation:
        return self.sampler.stop()

    def abort(self) -> None:
        self.sampler.abort()

    def apply(self, measurement: Measurement) -> None:
        from pytest_hwperf.workers.gate import observed_gate

        self.sampler.apply(measurement)
        observation = self.sampler.observation
        if observation.window_s < OBSERVED_MIN_WINDOW_S:
            return  # too short for per-thread CPU time (10 ms ticks) to tell busy from idle
        cores, source = self._usable()
        found = observed_gate(observation, cores, source)
        if found is None:
            return
        measurement.oversubscription = found.message
        if self._warn:
            warnings.warn(HwperfOversubscriptionWarning(found.message), stacklevel=3)


def _in_same_torch_mode(target: Callable[[], T]) -> Callable[[], T]:
    """`target` to be called later (profiled) in the autograd mode it was measured in."""
    from pytest_hwperf.measure.models import in_same_torch_mode

    return in_same_torch_mode(target)


@pytest.fixture
def hwperf(request: pytest.FixtureRequest) -> Hwperf:
    """Measure a target: `hwperf(fn, *args, name=None, device=None, **kwargs)` returns
    fn's result; under --hwperf the calls are sampled and the test's budgets judged."""
    settings = request.config.stash.get(SETTINGS_KEY, Settings())
    node = request.node
    spec = node.stash.get(SPEC_KEY, TestSpec())
    sink = node.stash.setdefault(MEASUREMENTS_KEY, [])
    context = hardware_context(request.config)

    def usable() -> tuple[int, str]:
        cpu = context.machine.cpu
        return cpu.usable_cores, cpu.usable_source

    # Read at each call: the `device` fixture may be set up after this one.
    return Hwperf(
        settings,
        spec,
        sink,
        default_device=lambda: node.stash.get(DEVICE_KEY, None),
        usable=usable,
        gpus=lambda: context.gpus,
        # A failing measurement is profiled at makereport, which pops these again.
        targets=(
            node.stash.setdefault(PROFILE_TARGETS_KEY, {})
            if settings.enabled and settings.profile != "off"
            else None
        ),
        suspect=suspect_for(request) if settings.enabled else None,
        on_hang=_end_on_hang(request.config),
        ab=node.stash.get(AB_KEY, None),
    )


def _end_on_hang(config: pytest.Config) -> Callable[[str], object]:
    """A call past --hwperf-call-timeout that cannot be interrupted: its line and every
    thread's stack on the terminal (output capture suspended), then the process ends, as
    pytest-timeout's thread method does."""

    def on_hang(message: str) -> None:
        from pytest_hwperf.measure.deadline import end_process

        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            with contextlib.suppress(Exception):
                capture.suspend_global_capture(in_=True)
        end_process(f"hwperf: {message} (--hwperf-call-timeout)")

    return on_hang


def hardware_context(config: pytest.Config) -> HardwareContext:
    """The session's hardware context, made on first use (the plugin's configure makes
    it; pytest-benchmark can ask from its own configure, before ours ran)."""
    context = config.stash.get(CONTEXT_KEY, None)
    if context is None:
        context = config.stash[CONTEXT_KEY] = HardwareContext(config.stash.get(AFFINITY_KEY, None))
    return context


def skip_or_fail(config: pytest.Config, reason: str) -> NoReturn:
    """Skip for a missing device or hardware; fail under --hwperf-strict-hardware."""
    settings = config.stash.get(SETTINGS_KEY, Settings())
    if settings.strict_hardware:
        pytest.fail(f"{reason} (--hwperf-strict-hardware)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    """A device string ("cpu", "cuda:0", "mps"), parametrized over --hwperf-devices
    (default: every device present). hwperf measurements in the test synchronise it."""
    from pytest_hwperf.measure.device import DeviceError, normalize_device

    raw = getattr(request, "param", "cpu")
    problem: str | None = None
    try:
        name = normalize_device(raw)
    except DeviceError as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(f"device fixture: {problem}", pytrace=False)
    reason = hardware_context(request.config).device_unavailable(name)
    if reason is not None:
        skip_or_fail(request.config, f"device {name}: {reason}")
    request.node.stash[DEVICE_KEY] = name
    return name


def _prepared(fn: object) -> PreparedModel | None:
    """`fn` when it is a model `hwperf_model` prepared (whose module is then imported:
    a test that never prepares one never imports it)."""
    models = sys.modules.get("pytest_hwperf.measure.models")
    if models is not None and isinstance(fn, models.PreparedModel):
        prepared: PreparedModel = fn
        return prepared
    return None


@pytest.fixture
def hwperf_model(request: pytest.FixtureRequest) -> Callable[..., PreparedModel]:
    """`hwperf_model(model, device, dtype=None)`: a torch module in eval mode, on `device`,
    called under inference mode (plain callables are accepted for the CPU); its size is
    recorded in the reports."""
    node = request.node

    def prepare(model: object, device: str = "cpu", dtype: object = None) -> PreparedModel:
        from pytest_hwperf.measure.device import DeviceError, normalize_device
        from pytest_hwperf.measure.models import ModelError, is_torch_module, prepare_model

        problem: str | None = None
        try:
            name = normalize_device(device)
            missing = hardware_context(request.config).device_unavailable(name)
            # A plain callable off the CPU is a usage error wherever the test runs; a
            # torch module on a device this machine lacks says which and why.
            if missing is not None and is_torch_module(model):
                raise ModelError(f"hwperf_model: device {name}: {missing}")
            prepared = prepare_model(model, name, dtype)
        except (ModelError, DeviceError) as exc:
            problem = str(exc)
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        node.stash.setdefault(MODELS_KEY, []).append(prepared.info())
        return prepared

    return prepare


@pytest.fixture(scope="session")
def hwinfo(pytestconfig: pytest.Config) -> HardwareInfo:
    """The detected hardware: `cpu`, `memory`, `gpus`, `usable_cores`, `fingerprint`."""
    return HardwareInfo(hardware_context(pytestconfig))


def declared_config(item: pytest.Item) -> WorkerConfig | None:
    """The serving config a test stands for: its `workers` marker, else its
    `worker_config` grid parameter, else None."""
    spec = item.stash.get(SPEC_KEY, None)
    if spec is not None and spec.workers is not None:
        return WorkerConfig(spec.workers.n, spec.workers.threads)
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("worker_config") if callspec is not None else None
    if isinstance(param, WorkerConfig):
        return param
    return None


@pytest.fixture
def worker_config(request: pytest.FixtureRequest) -> Iterator[WorkerConfig]:
    """A `(workers, threads)` config: the `workers` marker's, or one of the grid
    --hwperf-workers x --hwperf-threads. Its threads per worker are applied to torch, the
    native pools and the `*_NUM_THREADS` environment for the test, and restored after."""
    config = declared_config(request.node) or WorkerConfig(1, 1)
    request.node.stash[WORKER_CONFIG_KEY] = config
    with applied_threads(config.threads):
        yield config
