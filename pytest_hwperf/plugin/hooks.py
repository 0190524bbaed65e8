"""pytest-hwperf's hooks: options, markers, marker validation, devices, hardware needs
and the session plugin.

Thin wiring only; the work is done in the modules named below. Always active: the
options, the marker registrations, marker validation, the `device` parametrization, the
`hardware` requirements and the fixtures (`hwperf` calls its target once without
--hwperf; `worker_pool` and `mlserver` serve a model). Under --hwperf the
`HwperfSession` plugin is registered and judges, reports and writes.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from pytest_hwperf.plugin.fixtures import (
    AFFINITY_KEY,
    PLACEMENT_KEY,
    declared_config,
    device,
    hardware_context,
    hwinfo,
    hwperf,
    hwperf_model,
    skip_or_fail,
    worker_config,
)
from pytest_hwperf.plugin.markers import (
    DECLARED_OVERSUBSCRIPTION_KEY,
    DECLARED_WARNED_KEY,
    MARKER_ERROR_KEY,
    MARKERS,
    SPEC_KEY,
    MarkerError,
    marker_help,
    read_spec,
)
from pytest_hwperf.plugin.mlserver_fixture import mlserver
from pytest_hwperf.plugin.options import (
    AB_PEER_DEST,
    SETTINGS_KEY,
    add_options,
    resolve_settings,
)
from pytest_hwperf.plugin.pool_fixture import worker_pool
from pytest_hwperf.plugin.suspects import REGRESSION_CHECK_KEY, SAVED_KIND_KEY
from pytest_hwperf.warnings import HwperfOversubscriptionWarning, HwperfWarning

if TYPE_CHECKING:
    from pytest_hwperf.plugin.session import HwperfSession

__all__ = [
    "device",
    "hwinfo",
    "hwperf",
    "hwperf_model",
    "mlserver",
    "worker_config",
    "worker_pool",
]

# Under --hwperf: the session plugin, registered at configure, unregistered at unconfigure.
SESSION_KEY: pytest.StashKey[HwperfSession] = pytest.StashKey()
# On an item skipped for unmet hardware: its skip points at the test (makereport).
HARDWARE_SKIP_KEY: pytest.StashKey[bool] = pytest.StashKey()
_MARKER_NAMES = frozenset(m.NAME for m in MARKERS)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before the conftests load: a conftest importing torch can let OpenMP pin the main
    # thread, and the affinity read afterwards would be one CPU.
    from pytest_hwperf.hardware.affinity import read_affinity

    early_config.stash[AFFINITY_KEY] = read_affinity()


def _place_xdist_worker(config: pytest.Config) -> None:
    """An xdist worker of an --hwperf run takes its own share of the CPUs and one GPU.

    Done at configure, where `config.workerinput` tells a real worker from a pytester
    run inside one (both see PYTEST_XDIST_WORKER). The environment limits pools that
    start later; torch, if a conftest already loaded it, and the native pools loaded so
    far are limited directly.
    """
    from pytest_hwperf.workers.placement import xdist_worker

    worker = xdist_worker() if hasattr(config, "workerinput") else None
    if worker is None:
        return
    from pytest_hwperf.hardware.gpu import detect_gpus
    from pytest_hwperf.workers.placement import apply_placement, xdist_placement

    affinity = config.stash.get(AFFINITY_KEY, None)
    if affinity is None:
        from pytest_hwperf.hardware.cpu import read_affinity

        affinity = read_affinity()
    visible = detect_gpus(torch_fallback=False).visible
    placement = xdist_placement(
        worker[0], worker[1], affinity, [g.uuid or str(g.index) for g in visible]
    )
    apply_placement(placement)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(len(placement.cpus))
    from threadpoolctl import threadpool_limits

    from pytest_hwperf.hardware.probing import quiet_probe

    with quiet_probe():
        threadpool_limits(limits=len(placement.cpus))
    config.stash[PLACEMENT_KEY] = placement
    config.stash[AFFINITY_KEY] = placement.cpus


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker_help(marker))
    settings = resolve_settings(config)
    config.stash[SETTINGS_KEY] = settings
    if settings.enabled:
        _place_xdist_worker(config)
    hardware_context(config)
    reports = (("json", settings.json_path), ("html", settings.html_path))
    for flag, path in reports:
        if path is not None and not settings.enabled:
            config.issue_config_time_warning(
                HwperfWarning(
                    f"--hwperf-{flag}={path} is ignored without --hwperf:"
                    " nothing is measured, so no report is written"
                ),
                stacklevel=2,
            )
    if settings.enabled:
        from pytest_hwperf.plugin.session import HwperfSession

        session = HwperfSession(config, settings)
        config.pluginmanager.register(session, "hwperf-session")
        config.stash[SESSION_KEY] = session
        # What the hwperf fixture asks of the session, without importing it.
        config.stash[REGRESSION_CHECK_KEY] = session.suspects_regression
        config.stash[SAVED_KIND_KEY] = session.saved_reference_kind
    if settings.against is not None or config.getoption(AB_PEER_DEST, None):
        from pytest_hwperf.plugin import ab_session  # same-run A/B, head or base side

        ab_session.configure(config, settings)


def pytest_unconfigure(config: pytest.Config) -> None:
    if "pytest_hwperf.plugin.ab_session" in sys.modules:
        from pytest_hwperf.plugin import ab_session

        ab_session.unconfigure(config)  # ends the base session, removes the worktree
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        del config.stash[SESSION_KEY]
        del config.stash[REGRESSION_CHECK_KEY]
        del config.stash[SAVED_KIND_KEY]
        config.pluginmanager.unregister(session)


def pytest_itemcollected(item: pytest.Item) -> None:
    marks = [m for m in item.iter_markers() if m.name in _MARKER_NAMES]
    if not marks:
        return
    try:
        item.stash[SPEC_KEY] = read_spec(marks)
    except MarkerError as exc:
        item.stash[MARKER_ERROR_KEY] = f"{item.nodeid}: {exc}"


def _parametrizes_itself(metafunc: pytest.Metafunc, name: str) -> bool:
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if name in names:
            return True
    return False


def _ours(metafunc: pytest.Metafunc, name: str, fixture: object) -> bool:
    """True when `name` resolves to this plugin's fixture (a project's own overrides it)."""
    fixturedefs = metafunc.definition._fixtureinfo.name2fixturedefs.get(name, ())
    return bool(fixturedefs) and fixturedefs[-1].func is fixture.__wrapped__  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `device` over --hwperf-devices (default: every device present) and
    `worker_config` over --hwperf-workers x --hwperf-threads (unless a `workers` marker
    declares the config)."""
    if (
        "worker_config" in metafunc.fixturenames
        and not _parametrizes_itself(metafunc, "worker_config")
        and not any(True for _ in metafunc.definition.iter_markers("workers"))
        and _ours(metafunc, "worker_config", worker_config)
    ):
        from pytest_hwperf.workers.config import WorkerConfig

        settings = metafunc.config.stash[SETTINGS_KEY]
        grid = [WorkerConfig(w, t) for w in settings.workers for t in settings.threads]
        metafunc.parametrize("worker_config", grid, ids=[c.id for c in grid], indirect=True)
    if (
        "device" not in metafunc.fixturenames
        or _parametrizes_itself(metafunc, "device")
        or not _ours(metafunc, "device", device)
    ):
        return
    from pytest_hwperf.hardware.devices import device_id

    config = metafunc.config
    devices = config.stash[SETTINGS_KEY].devices
    if devices is None:
        devices = tuple(hardware_context(config).present_devices())
    metafunc.parametrize("device", devices, ids=[device_id(d) for d in devices], indirect=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `hardware` need this machine lacks skips the test (fails it under strict); a
    declared serving config above the usable cores fails it before it measures."""
    if MARKER_ERROR_KEY in item.stash:
        return
    _hardware_gate(item)
    _oversubscription_gate(item)


def _oversubscription_gate(item: pytest.Item) -> None:
    """Under --hwperf, a declared config above the usable cores fails its test as a
    performance failure (`P`, before it measures), or warns; without --hwperf no test
    fails for performance reasons, so the gate is not applied."""
    settings = item.config.stash[SETTINGS_KEY]
    config = declared_config(item)
    if config is None or settings.oversubscription == "off" or not settings.enabled:
        return
    from pytest_hwperf.workers.gate import declared_gate

    cpu = hardware_context(item.config).machine.cpu
    found = declared_gate(config.workers, config.threads, cpu.usable_cores, cpu.usable_source)
    if found is None:
        return
    if settings.oversubscription == "fail":
        item.stash[DECLARED_OVERSUBSCRIPTION_KEY] = found.message
        return
    item.stash[DECLARED_WARNED_KEY] = found.message
    warnings.warn(HwperfOversubscriptionWarning(found.message), stacklevel=2)


def _hardware_gate(item: pytest.Item) -> None:
    spec = item.stash.get(SPEC_KEY, None)
    if spec is None or not spec.hardware:
        return
    from pytest_hwperf.hardware.requirements import unmet_requirements

    machine = hardware_context(item.config).machine
    unmet = [phrase for req in spec.hardware for phrase in unmet_requirements(req, machine)]
    if unmet:
        item.stash[HARDWARE_SKIP_KEY] = True
        skip_or_fail(item.config, "hardware: " + "; ".join(dict.fromkeys(unmet)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # A skip for unmet hardware points at the test, as a skip mark's does, not at the
    # plugin line that raised it.
    if (
        report.skipped
        and call.when == "setup"
        and item.stash.get(HARDWARE_SKIP_KEY, False)
        and isinstance(report.longrepr, tuple)
    ):
        path, line, _ = item.reportinfo()
        report.longrepr = (str(path), (line or 0) + 1, report.longrepr[2])
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    error = item.stash.get(MARKER_ERROR_KEY, None)
    if error is not None:
        pytest.fail(error, pytrace=False)
    oversubscribed = item.stash.get(DECLARED_OVERSUBSCRIPTION_KEY, None)
    if oversubscribed is not None:
        # Not run: measuring an oversubscribed config would time the contention. The
        # session's report turns this into the performance failure (`P`).
        pytest.fail(f"hwperf: oversubscribed: {oversubscribed}", pytrace=False)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`pytest -n auto` starts one worker per usable core: the affinity set capped by the
    container's CPU quota. pytest-xdist's own rule counts the host's cores (psutil), which
    oversubscribes pinned or quota-limited runners (pytest-xdist #1012). Its
    PYTEST_XDIST_AUTO_NUM_WORKERS variable still wins."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    from pytest_hwperf.hardware.cpu import read_affinity, read_cpu_quota, usable_cores

    cores, _source = usable_cores(len(read_affinity()), read_cpu_quota())
    return cores


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, object]
) -> None:
    """pytest-benchmark's saved machine_info gains an `hwperf` block: usable cores and
    their source, GPUs, thread pools and the fingerprint (its own has none of them)."""
    from pytest_hwperf.measure.from_benchmark import machine_info_block

    context = hardware_context(config)
    fp = context.fingerprint
    machine = context.machine
    threads = machine.threads
    pools = threads.get("native_pools", [])
    machine_info["hwperf"] = machine_info_block(
        usable_cores=machine.cpu.usable_cores,
        usable_source=machine.cpu.usable_source,
        gpus=[g.to_record() for g in machine.gpus.visible],
        thread_pools=list(pools) if isinstance(pools, list) else [],
        torch_threads={k: v for k, v in threads.items() if k.startswith("torch_")},
        fingerprint=fp.digest,
        fingerprint_label=fp.label,
    )
