"""How busy the GPU was while a CUDA measurement ran, read from NVML.

A model that keeps a GPU busy only a tenth of the time is paying for a GPU it does not
use: it is too small (or its batches are) for the device, and often serves as well from
a CPU (issue 6). The driver keeps its own utilisation samples: the percentage of each
sampling period (1/6 s to 1 s, by GPU) during which a kernel ran. `nvmlDeviceGetSamples`
returns those taken after a timestamp (the host's wall clock in microseconds), so the
window of a measurement is read after it with one call and no polling thread beside
the timed code. When no driver sample falls
in the window (a measurement shorter than the driver's period), one reading of
`nvmlDeviceGetUtilizationRates` (the driver's last period) stands in, and says so.

Utilisation is the device's, not the process's: another process's kernels count too.
NVML absent or failing costs the figure and leaves a note, never the measurement.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_hwperf.measure.window import WindowContext
from pytest_hwperf.records.types import GpuUtilizationRecord

if TYPE_CHECKING:
    from pytest_hwperf.hardware.gpu import GpuReport
    from pytest_hwperf.measure.result import Measurement

__all__ = [
    "IDLE_BELOW_PCT",
    "GpuUtilization",
    "GpuUtilizationSampler",
    "idle_gpu_line",
    "nvml_identity",
    "utilization_sampler",
]

# A GPU busy less than this share of the measuring window is "mostly idle": the work
# per call is too small to fill it. 30% leaves room for the launch gaps of a model that
# does fill it between Python calls (a synchronised call per sample idles the GPU while
# Python prepares the next launch).
IDLE_BELOW_PCT = 30.0

# nvmlValueType_t -> the field of the c_nvmlValue_t union that holds the value.
_VALUE_FIELDS = {
    0: "dVal",
    1: "uiVal",
    2: "ulVal",
    3: "ullVal",
    4: "sllVal",
    5: "siVal",
    6: "usVal",
}
_NVML_ERROR_NOT_FOUND = 6  # nvmlDeviceGetSamples: no sample newer than the timestamp
_GPU_UTILIZATION_SAMPLES = 1  # NVML_GPU_UTILIZATION_SAMPLES


@dataclass(frozen=True)
class GpuUtilization:
    """The GPU's busy share during a measurement, in percent of time.

    `method`: "nvml-samples" (the driver's samples taken during the measurement) or
    "nvml-utilization-rates" (one reading of the driver's last sampling period, when
    no sample fell in the window). `idle_below_pct` is the threshold under which the
    GPU is called mostly idle.
    """

    mean_pct: float
    max_pct: float
    samples: int
    method: str
    idle_below_pct: float = IDLE_BELOW_PCT

    @property
    def mostly_idle(self) -> bool:
        return self.mean_pct < self.idle_below_pct

    def record(self) -> GpuUtilizationRecord:
        return GpuUtilizationRecord(
            mean_pct=self.mean_pct,
            max_pct=self.max_pct,
            samples=self.samples,
            method=self.method,
            idle_below_pct=self.idle_below_pct,
        )


def idle_gpu_line(device: str, mean_pct: float, name: str | None = None) -> str:
    """The call-out for a GPU that was mostly idle while measuring."""
    what = f" {name!r}" if name else ""
    return (
        f"{device} was busy {mean_pct:.0f}% of the time while measuring{what}: the model is"
        " likely too small for this GPU (batch more, or serve it on CPU)"
    )


def _import_pynvml() -> Any:
    return importlib.import_module("pynvml")


def _wall_us() -> int:
    # NVML's sample timestamps are the host's wall clock in microseconds.
    return time.time_ns() // 1000


def _reason(exc: BaseException) -> str:
    from pytest_hwperf.hardware.gpu import nvml_reason

    return nvml_reason(exc)


def _is_not_found(nvml: Any, exc: BaseException) -> bool:
    code = getattr(nvml, "NVML_ERROR_NOT_FOUND", _NVML_ERROR_NOT_FOUND)
    return getattr(exc, "value", None) == code or type(exc).__name__ == "NVMLError_NotFound"


def _sample_value(value_type: int, sample: Any) -> float | None:
    field = _VALUE_FIELDS.get(int(value_type))
    value = getattr(getattr(sample, "sampleValue", None), field or "", None)
    return float(value) if isinstance(value, (int, float)) else None


class GpuUtilizationSampler(WindowContext):
    """A window around a measurement on one CUDA device (measure/window.py).

    `start()` (entering) notes the time; `stop()` (leaving) asks NVML for the driver's
    samples taken since, so nothing runs beside or inside the measurement (`abort()`,
    leaving on an exception, asks nothing). After the
    block, `result` holds the utilisation (None when NVML could not give it) and `note`
    says why a figure is missing or how it was approximated; `apply(measurement)`
    records both. Never raises: whatever NVML does becomes the note.

    `identify` gives the device's UUIDs to try in order (NVML's exact match, whatever
    the device order) and NVML's index, tried last; it is asked after the measurement,
    when torch has initialised CUDA and can name the UUID. `nvml` replaces the pynvml
    module (tests pass a fake); `now_us` replaces the wall clock in microseconds.
    """

    def __init__(
        self,
        device: str,
        identify: Callable[[], tuple[Sequence[str], int | None]],
        *,
        nvml: Any = None,
        import_nvml: Callable[[], Any] = _import_pynvml,
        now_us: Callable[[], int] = _wall_us,
    ) -> None:
        self.device = device
        self._identify = identify
        self._nvml = nvml
        self._import_nvml = import_nvml
        self._now_us = now_us
        self._since_us: int | None = None
        self.result: GpuUtilization | None = None
        self.note: str | None = None

    def start(self) -> None:
        self._since_us = self._now_us()
        self.result = None
        self.note = None

    def stop(self) -> None:
        if self._since_us is None:
            return
        window_s = max(0, self._now_us() - self._since_us) / 1e6
        try:
            self._read(window_s)
        except Exception as error:  # an odd driver costs the figure, not the measurement
            self.result = None
            self._missing(_reason(error))

    def abort(self) -> None:
        """The measurement failed: there is no figure to give, and NVML is not asked."""
        self._since_us = None

    def apply(self, measurement: Measurement) -> None:
        """The GPU's busy share onto the measurement, and a call-out when it idled."""
        figure = self.result
        if figure is not None:
            measurement.gpu_utilization = figure.record()
            if figure.mostly_idle:
                measurement.notes.append(idle_gpu_line(self.device, figure.mean_pct))
        if self.note is not None:
            measurement.notes.append(self.note)

    def _missing(self, why: str) -> None:
        self.note = f"GPU utilization of {self.device} not sampled: {why}"

    def _read(self, window_s: float) -> None:
        from pytest_hwperf.hardware.probing import quiet_probe

        with quiet_probe():  # the user's warning filters are not for our probing
            self._read_quietly(window_s)

    def _read_quietly(self, window_s: float) -> None:
        if self._nvml is None:
            try:
                self._nvml = self._import_nvml()
            except ImportError:
                self._missing("nvidia-ml-py is not installed (no module pynvml)")
                return
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:
            self._missing(_reason(exc))
            return
        try:
            handle = self._find_handle(nvml)
            if handle is None:
                self._missing("NVML has no device matching it")
            else:
                self._summarise(nvml, handle, window_s)
        finally:
            with contextlib.suppress(Exception):  # NVML counts inits; this one is ours
                nvml.nvmlShutdown()

    def _find_handle(self, nvml: Any) -> Any:
        uuids, nvml_index = self._identify()
        error = getattr(nvml, "NVMLError", ())
        for uuid in uuids:
            try:
                return nvml.nvmlDeviceGetHandleByUUID(uuid)
            except error:
                continue
        if nvml_index is not None:
            return nvml.nvmlDeviceGetHandleByIndex(nvml_index)
        return None

    def _window_samples(self, nvml: Any, handle: Any) -> list[float]:
        """The driver's utilisation samples taken since the measurement began."""
        since = int(self._since_us or 0)
        kind = getattr(nvml, "NVML_GPU_UTILIZATION_SAMPLES", _GPU_UTILIZATION_SAMPLES)
        try:
            value_type, samples = nvml.nvmlDeviceGetSamples(handle, kind, since)
        except getattr(nvml, "NVMLError", ()) as exc:
            if _is_not_found(nvml, exc):  # none newer than the timestamp
                return []
            raise
        values = [_sample_value(value_type, s) for s in samples if int(s.timeStamp) > since]
        return [v for v in values if v is not None]

    def _summarise(self, nvml: Any, handle: Any, window_s: float) -> None:
        values = self._window_samples(nvml, handle)
        if values:
            self.result = GpuUtilization(
                mean_pct=sum(values) / len(values),
                max_pct=max(values),
                samples=len(values),
                method="nvml-samples",
            )
            return
        busy = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        self.result = GpuUtilization(busy, busy, 1, "nvml-utilization-rates")
        self.note = (
            f"GPU utilization of {self.device}: no driver sample fell within the"
            f" {window_s:.2g} s measurement; the figure is one reading of the driver's"
            " last sampling period (1/6 s to 1 s)"
        )


def nvml_identity(device: str, gpus: GpuReport | None) -> tuple[list[str], int | None]:
    """The UUIDs and NVML index by which to find `device` ("cuda:N") in NVML.

    torch, when it has initialised CUDA (it has, once a CUDA measurement synchronises),
    names the device's UUID exactly, whatever the device order; the session's GPU report
    (NVML's view with `CUDA_VISIBLE_DEVICES` applied) is the fallback.
    """
    index = int(device.split(":", 1)[1])
    uuids: list[str] = []
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    with contextlib.suppress(Exception):  # a UUID is a nicety; the report still answers
        if cuda is not None and cuda.is_initialized():
            raw = getattr(cuda.get_device_properties(index), "uuid", None)
            if raw is not None:
                text = str(raw)
                known = text.upper().startswith(("GPU-", "MIG-"))
                uuids.extend([text] if known else [f"GPU-{text}", f"MIG-{text}"])
    nvml_index: int | None = None
    if gpus is not None:
        match = next((g for g in gpus.visible if g.cuda_index == index), None)
        if match is not None:
            if match.uuid and match.uuid not in uuids:
                uuids.append(match.uuid)
            # A MIG instance carries its parent's index: by index NVML would answer for
            # the whole GPU, so an instance is found by its UUID or not at all.
            if not (match.uuid or "").upper().startswith("MIG-"):
                nvml_index = match.index
    return uuids, nvml_index


def utilization_sampler(
    device: str, gpus: Callable[[], GpuReport | None]
) -> GpuUtilizationSampler | None:
    """The sampler for a measurement on `device`; None off CUDA (nothing to sample).
    `gpus` gives the session's GPU report, asked only for a CUDA device."""
    if not device.startswith("cuda:"):
        return None
    return GpuUtilizationSampler(device, lambda: nvml_identity(device, gpus()))
