"""Same-run A/B (`--hwperf-against=REF`): the hooks of both sessions.

The head (the session the user started) resolves REF at configure (a usage error in one
line when it cannot: an unknown ref, no repository, a missing directory, a worktree
that cannot be made; and under pytest-xdist's `-n` or with `--hwperf-save`, which it
refuses), starts the base session as the run starts, so that the base's start-up and
collection overlap the head's own, hands it the perf tests once collected, pairs every
`hwperf(...)` measurement (plugin/ab_measure.py) and judges the pairs at each test's
report. At the end, also after a failure or Ctrl-C, it ends the base process and
removes the worktree.

The base (started with the internal `--hwperf-ab-peer=ADDRESS`) runs the head's perf
tests that exist at REF in the head's order, says how each ended, measures only the
rounds the head asks for, and writes no file.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from pytest_hwperf.ab.base_process import BaseProcess, base_environment
from pytest_hwperf.ab.client import PeerClient
from pytest_hwperf.ab.coordinator import NEW_AT_HEAD, Coordinator
from pytest_hwperf.ab.protocol import AUTHKEY_ENV
from pytest_hwperf.ab.refs import BaseCheckout, RefError, remove_base, resolve_base
from pytest_hwperf.plugin.ab_measure import BasePairing, HeadPairing, judge_pairs
from pytest_hwperf.plugin.fixtures import AB_KEY, MEASUREMENTS_KEY
from pytest_hwperf.plugin.markers import SPEC_KEY, TestSpec
from pytest_hwperf.plugin.options import AB_PEER_DEST, AB_PEER_FLAG, Settings
from pytest_hwperf.warnings import HwperfWarning

if TYPE_CHECKING:
    from pytest_hwperf.measure import Measurement

__all__ = ["configure", "unconfigure"]

PEER_OPTION, PEER_DEST = AB_PEER_FLAG, AB_PEER_DEST
# The tests a base session pairs, and the head's Bonferroni family (as the session's).
_PAIRED_FIXTURE = "hwperf"
_PERF_FIXTURES = frozenset({"hwperf", "worker_pool", "benchmark"})
# A wait for the other session never lasts longer than this, whatever the options say.
_LONGEST_WAIT_S = 3600.0

_RUN_KEY: pytest.StashKey[HeadRun | PeerRun] = pytest.StashKey()


def _wait_s(settings: Settings) -> float:
    """How long one side waits for the other at most: the call limit (default 10 x
    --hwperf-max-time, at least 60 s), as a call of a target may take that long."""
    return min(_LONGEST_WAIT_S, settings.call_limit_s or _LONGEST_WAIT_S)


def configure(config: pytest.Config, settings: Settings) -> None:
    """Register the head's or the base's A/B plugin when this session is one."""
    peer = config.getoption(PEER_DEST, None)
    if peer:
        if settings.enabled:
            _register(config, PeerRun(config, _connect(peer, settings)))
        return
    if settings.against is None or hasattr(config, "workerinput"):
        return
    flag = f"--hwperf-against={settings.against}"
    if not settings.enabled:
        config.issue_config_time_warning(
            HwperfWarning(f"{flag} is ignored without --hwperf: nothing is measured"),
            stacklevel=2,
        )
        return
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError(
            f"{flag} does not run under pytest-xdist (-n): the two sessions take turns on"
            " this machine's cores; run without -n (or with -n 0)"
        )
    if settings.save:
        raise pytest.UsageError(
            f"{flag} and --hwperf-save do not go together: an A/B run does not consult or"
            " save baselines"
        )
    try:
        base = resolve_base(settings.against, config.rootpath, cwd=config.invocation_params.dir)
    except RefError as exc:
        raise pytest.UsageError(f"{flag}: {exc}") from None
    _register(config, HeadRun(config, settings, base))


def _connect(address: str, settings: Settings) -> PeerClient:
    key = os.environ.get(AUTHKEY_ENV, "")
    try:
        return PeerClient(address, bytes.fromhex(key), wait_s=10 * _wait_s(settings))
    except (OSError, ValueError, EOFError) as exc:
        raise pytest.UsageError(
            f"{PEER_OPTION}={address}: could not connect to the head session: {exc}"
        ) from None
    except Exception as exc:  # multiprocessing's AuthenticationError, among others
        raise pytest.UsageError(
            f"{PEER_OPTION}={address}: the head session refused this one ({exc})"
        ) from None


def _register(config: pytest.Config, run: HeadRun | PeerRun) -> None:
    config.stash[_RUN_KEY] = run
    config.pluginmanager.register(run, "hwperf-ab")


def unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN_KEY, None)
    if run is None:
        return
    del config.stash[_RUN_KEY]
    run.close()
    with contextlib.suppress(ValueError):
        config.pluginmanager.unregister(run)


def _one_line(report: pytest.TestReport | pytest.CollectReport) -> str:
    """What a failed or skipped report says, in one line."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])  # a skip: (path, line, reason)
    else:
        crash = getattr(longrepr, "reprcrash", None)
        message = getattr(crash, "message", None)
        text = str(message) if message else str(longrepr or report.outcome)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E ")]
    line = (errors or lines or [report.outcome])[0].removeprefix("E").strip()
    return line if len(line) <= 200 else line[:197] + "..."


class HeadRun:
    """The head's side: the base checkout, the coordinator and the base process."""

    def __init__(self, config: pytest.Config, settings: Settings, base: BaseCheckout) -> None:
        self.config = config
        self.settings = settings
        self.base = base
        self.coordinator: Coordinator | None = None
        self.process: BaseProcess | None = None
        self.unavailable: str | None = None  # why nothing at all can be paired
        self.perf_items = 0
        self.ref_failed: str | None = None  # a "REF run failed" line some test got
        self._closed = False
        atexit.register(self.close)  # a head that dies without unconfigure still cleans up

    def pytest_report_header(self) -> list[str]:
        return [f"hwperf: A/B against REF {self.base.label}, measured from {self.base.root}"]

    def _base_args(self) -> list[str] | None:
        """The head's collection arguments as paths in the base checkout (a node id's
        file; what does not exist at REF is left out); None when none exists there."""
        config = self.config
        rootdir = config.rootpath.resolve()
        mapped: list[str] = []
        for arg in config.args:
            path = (config.invocation_params.dir / arg.split("::", 1)[0]).resolve()
            try:
                there = self.base.root / path.relative_to(rootdir)
            except ValueError:
                continue  # outside the root dir: not the project's
            if there.exists() and str(there) not in mapped:
                mapped.append(str(there))
        return mapped or None

    def _forwarded(self) -> list[str]:
        """The head's options the base measures and selects with."""
        s = self.settings
        args = [
            "--hwperf",
            f"--hwperf-max-time={s.max_time_s!r}",
            f"--hwperf-warmup={s.warmup_s!r}",
            f"--hwperf-gc={s.gc}",
            f"--hwperf-oversubscription={s.oversubscription}",
            f"--hwperf-workers={','.join(map(str, s.workers))}",
            f"--hwperf-threads={','.join(map(str, s.threads))}",
            "--hwperf-profile=off",
            "--hwperf-reference=off",
            "--hwperf-confirm=0",
        ]
        if s.call_timeout_s is not None:
            args.append(f"--hwperf-call-timeout={s.call_timeout_s!r}")
        if s.devices is not None:
            args.append(f"--hwperf-devices={','.join(s.devices)}")
        if s.strict_hardware:
            args.append("--hwperf-strict-hardware")
        return args

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.config.option.collectonly:
            return
        paths = self._base_args()
        if paths is None:
            self.unavailable = NEW_AT_HEAD
            return
        temp = self.base.temp or self.base.checkout
        coordinator = Coordinator(wait_s=_wait_s(self.settings))
        xdist = ["-n", "0"] if self.config.pluginmanager.hasplugin("xdist") else []
        args = [
            *paths,
            f"{PEER_OPTION}={coordinator.address}",
            f"--rootdir={self.base.root}",
            f"--hwperf-baseline-dir={temp / 'hwperf'}",
            "--continue-on-collection-errors",
            "-p",
            "no:cacheprovider",
            "-q",
            *xdist,
            *self._forwarded(),
        ]
        try:
            process = BaseProcess(
                args,
                cwd=self.base.root,
                env=base_environment(os.environ, self.base.checkout, coordinator.authkey),
                log_path=temp / "base.log",
                on_exit=coordinator.process_ended,
            )
        except OSError as exc:
            coordinator.close()
            self.unavailable = f"REF run failed: its session could not start: {exc}"
            return
        coordinator.watching_process()
        coordinator.on_give_up = process.end
        coordinator.start()
        self.coordinator, self.process = coordinator, process

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = session.items
        self.perf_items = sum(
            1 for item in items if _PERF_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        if self.coordinator is not None:
            self.coordinator.set_plan(
                [i.nodeid for i in items if _PAIRED_FIXTURE in getattr(i, "fixturenames", ())]
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Before the fixtures: the test's `hwperf` handle takes its pairing from here.
        item.stash[AB_KEY] = HeadPairing(
            self.coordinator,
            item.nodeid,
            self.settings,
            item.stash.get(SPEC_KEY, TestSpec()),
            unavailable=self.unavailable,
        )

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        # Innermost wrapper: the comparisons are made before the session judges the test.
        report = yield
        pairing = item.stash.get(AB_KEY, None)
        if call.when == "call" and isinstance(pairing, HeadPairing):
            measurements: list[Measurement] = item.stash.get(MEASUREMENTS_KEY, [])
            judge_pairs(
                measurements,
                pairing,
                settings=self.settings,
                spec=item.stash.get(SPEC_KEY, TestSpec()),
                perf_items=self.perf_items,
                ref=self.base.label,
            )
            failed = [v for v in pairing.results.values() if str(v).startswith("REF run failed")]
            self.ref_failed = self.ref_failed or (str(failed[0]) if failed else None)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and self.coordinator is not None:
            self.coordinator.test_over(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.ref_failed is not None:  # once, beside the lines of the tests it cost
            terminalreporter.write_line(
                f"hwperf: A/B against {self.base.label}: {self.ref_failed}", yellow=True
            )

    def close(self) -> None:
        """End the base session and remove the worktree; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError):
            atexit.unregister(self.close)
        if self.coordinator is not None:
            self.coordinator.finish()
        if self.process is not None:
            self.process.end()
        if self.coordinator is not None:
            self.coordinator.close()
        problem = remove_base(self.base)
        if problem is not None:
            sys.stderr.write(f"hwperf: A/B: could not clean up: {problem}\n")


class PeerRun:
    """The base's side: the head's plan, each test's end, and the rounds."""

    def __init__(self, config: pytest.Config, client: PeerClient) -> None:
        self.config = config
        self.client = client
        self.session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            path = report.nodeid.split("::", 1)[0]
            self.client.error(path, f"collecting {path} failed: {_one_line(report)}")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        # Last, after any reordering plugin: the head's tests, in the head's order.
        plan = self.client.plan()
        order = {test: index for index, test in enumerate(plan or ())}
        kept = sorted((i for i in items if i.nodeid in order), key=lambda i: order[i.nodeid])
        dropped = [i for i in items if i.nodeid not in order]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        if plan is not None:  # no plan: the head is gone, or never said; nothing runs
            self.client.collected([i.nodeid for i in kept])

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        item.stash[AB_KEY] = BasePairing(self.client, item.nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            reason = "" if report.passed else _one_line(report)
            self.client.done(report.nodeid, report.outcome, reason)
        if self.client.finished and self.session is not None:
            self.session.shouldstop = "hwperf: the head session has ended"

    def close(self) -> None:
        self.client.close()
