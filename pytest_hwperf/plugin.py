"""pytest-hwperf's hooks: options, markers, marker validation and the session plugin.

Thin wiring only; the work is done in the modules named below. Always active: the
options, the marker registrations, marker validation and the `hwperf` fixture (which
calls its target once without --hwperf). Under --hwperf the `HwperfSession` plugin is
registered and judges, reports and writes.
"""

from __future__ import annotations

import os

import pytest

from pytest_hwperf.fixtures import hwperf
from pytest_hwperf.markers import MARKERS, MarkerError, marker_help, read_spec
from pytest_hwperf.options import add_options, resolve_settings
from pytest_hwperf.state import MARKER_ERROR_KEY, SETTINGS_KEY, SPEC_KEY
from pytest_hwperf.warnings import HwperfWarning

__all__ = ["hwperf"]

_SESSION_NAME = "hwperf-session"
_MARKER_NAMES = frozenset(m.NAME for m in MARKERS)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker_help(marker))
    settings = resolve_settings(config)
    config.stash[SETTINGS_KEY] = settings
    if not settings.enabled and settings.json_path is not None:
        config.issue_config_time_warning(
            HwperfWarning(
                f"--hwperf-json={settings.json_path} is ignored without --hwperf:"
                " nothing is measured, so no report is written"
            ),
            stacklevel=2,
        )
    if settings.enabled:
        from pytest_hwperf.session import HwperfSession

        config.pluginmanager.register(HwperfSession(config, settings), _SESSION_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin(_SESSION_NAME)
    if session is not None:
        config.pluginmanager.unregister(session)


def pytest_itemcollected(item: pytest.Item) -> None:
    marks = [m for m in item.iter_markers() if m.name in _MARKER_NAMES]
    if not marks:
        return
    try:
        item.stash[SPEC_KEY] = read_spec(marks)
    except MarkerError as exc:
        item.stash[MARKER_ERROR_KEY] = f"{item.nodeid}: {exc}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    error = item.stash.get(MARKER_ERROR_KEY, None)
    if error is not None:
        pytest.fail(error, pytrace=False)


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
