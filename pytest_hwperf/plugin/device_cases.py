"""Device advice, gathered from the reports: which device each case of the `device`
fixture stood for, and why one took no measurement (skipped, failed, or absent from the
machine), so that `report.advice.device_advice` can recommend the cheapest device that
met the budget."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_hwperf.hardware.context import HardwareContext
    from pytest_hwperf.records.types import JSONValue, MeasurementRecord

__all__ = ["DEVICE_ATTR", "DeviceCases", "device_case"]

# On every report of a test case of the `device` fixture: its device and device group,
# so that the controller learns of skipped devices too (xdist carries the attribute).
DEVICE_ATTR = "hwperf_device"


def device_case(item: pytest.Item) -> dict[str, str] | None:
    """The device a test case of the `device` fixture stands for and its device group
    (the node id without the device parameter); None for other tests."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "device" not in callspec.params:
        return None
    from pytest_hwperf.hardware.devices import device_id
    from pytest_hwperf.measure.device import DeviceError, normalize_device
    from pytest_hwperf.report.advice import device_group

    raw = callspec.params["device"]
    try:
        name = normalize_device(raw)
    except DeviceError:
        name = str(raw)
    ids = [device_id(name), str(raw), name]
    return {"device": name, "group": device_group(item.nodeid, ids)}


def _unmeasured_reason(report: pytest.TestReport, device: str) -> str:
    """Why a device case took no measurement, from its skip or failure report."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    elif crash is not None and getattr(crash, "message", None):
        text = str(crash.message)
    else:  # pytest.fail(..., pytrace=False) leaves the message as a plain string
        text = str(longrepr or "no reason given")
    text = (text.strip().splitlines() or ["no reason given"])[0]
    text = text.removeprefix("Skipped: ").removeprefix("Failed: ")
    text = text.removeprefix(f"device {device}: ")
    return f"{'skipped' if report.skipped else 'failed'}: {text}"


class DeviceCases:
    """The device cases seen on the controller, and the advice worked out from them once
    the session's records are complete."""

    def __init__(self) -> None:
        # device group -> device -> why it took no measurement (None: it ran)
        self.cases: dict[str, dict[str, str | None]] = {}
        # device group -> device -> why the test failed there on its own (not a breach)
        self.failures: dict[str, dict[str, str]] = {}
        self._advice: list[dict[str, JSONValue]] | None = None

    def note(self, report: pytest.TestReport, *, breach: bool) -> None:
        case = getattr(report, DEVICE_ATTR, None)
        if not isinstance(case, dict) or report.when == "teardown":
            return
        cases = self.cases.setdefault(case["group"], {})
        device = case["device"]
        if report.skipped or report.failed:
            # A failed call that measured is still measured: its records win later.
            cases[device] = _unmeasured_reason(report, device)
        else:
            cases.setdefault(device, None)
        if report.when == "call" and report.failed and not breach:
            failures = self.failures.setdefault(case["group"], {})
            failures[device] = _unmeasured_reason(report, device)

    def _absent_kinds(self, context: HardwareContext, chosen: bool) -> dict[str, str]:
        """The kinds of accelerator this machine lacks, when the `device` fixture runs on
        every device present: a recommendation made without them must say so."""
        if chosen:
            return {}  # the user chose the devices; the skipped ones are listed anyway
        present = context.present_devices()
        absent: dict[str, str] = {}
        if not any(d.startswith("cuda:") for d in present):
            why = context.gpus.reason or "none found"
            absent["cuda"] = f"no CUDA device on this machine: {why}"
        if platform.system() == "Darwin" and "mps" not in present:
            absent["mps"] = "torch reports the MPS backend unavailable"
        return absent

    def advice(
        self,
        records: Sequence[MeasurementRecord],
        context: HardwareContext,
        *,
        devices_chosen: bool,
    ) -> list[dict[str, JSONValue]]:
        """The device advice, worked out once (every report shows the same)."""
        if self._advice is None:
            self._advice = self._work_out(records, context, devices_chosen)
        return self._advice

    def _work_out(
        self, records: Sequence[MeasurementRecord], context: HardwareContext, chosen: bool
    ) -> list[dict[str, JSONValue]]:
        from pytest_hwperf.report.advice import device_advice

        if not self.cases:
            return []
        measured = {(r.device_group, r.device_param) for r in records if r.mode == "measured"}
        absent = self._absent_kinds(context, chosen)
        unmeasured: dict[str, dict[str, str]] = {}
        for group, cases in self.cases.items():
            missing = unmeasured.setdefault(group, {})
            for device, reason in cases.items():
                if (group, device) not in measured:
                    missing[device] = reason or "the test took no measurement on it"
            for kind, reason in absent.items():
                if not any(d.split(":")[0] == kind for d in cases):
                    missing[kind] = reason
        return device_advice(records, unmeasured, self.failures)
