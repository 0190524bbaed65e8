"""The session's "would this be a regression?", asked by the `hwperf` fixture right after
a measurement's first round, so that a suspect is measured again (--hwperf-confirm)
before its verdict; and "which reference workload gauged the saved runs?", so that this
run's gauge is of the same kind (measure/reference.py). The stash keys the session fills
and the per-test object that asks them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pytest

from pytest_hwperf.plugin.markers import SPEC_KEY, TestSpec

__all__ = ["REGRESSION_CHECK_KEY", "SAVED_KIND_KEY", "RegressionCheck", "Suspect", "suspect_for"]


class RegressionCheck(Protocol):
    """Would the regression gate fail this fastest call (ms), or this p95, of a test's
    measurement? Arguments: test id, measurement name, device, value, the test's spec,
    the p95 in ms (None: not per call), the reference workload's time in ms and its kind
    (None: not timed, --hwperf-reference off)."""

    def __call__(
        self,
        test_id: str,
        name: str,
        device: str,
        value_ms: float,
        spec: TestSpec,
        p95_ms: float | None,
        reference_ms: float | None,
        reference_kind: str | None,
        /,
    ) -> bool: ...


# Under --hwperf: the session's answer to "would this be a regression?", put there when
# the session is registered; `hwperf` measures a suspect again (--hwperf-confirm).
REGRESSION_CHECK_KEY: pytest.StashKey[RegressionCheck] = pytest.StashKey()
# And its answer to "which reference kind gauged the saved runs of (test id, name,
# device)?" (None: none, or not one kind).
SAVED_KIND_KEY: pytest.StashKey[Callable[[str, str, str], str | None]] = pytest.StashKey()


class Suspect:
    """One test's questions to the session: called as (name, device, fastest call in ms,
    p95 in ms, reference ms, reference kind), would the gate fail it; `saved_kind(name,
    device)`, the reference kind its saved runs were gauged with."""

    def __init__(
        self,
        check: RegressionCheck,
        node_id: str,
        spec: TestSpec,
        saved_kinds: Callable[[str, str, str], str | None] | None = None,
    ) -> None:
        self._check, self._node_id, self._spec = check, node_id, spec
        self._saved_kinds = saved_kinds

    def __call__(
        self,
        name: str,
        device: str,
        value_ms: float,
        p95_ms: float | None,
        reference_ms: float | None = None,
        reference_kind: str | None = None,
    ) -> bool:
        node, spec = self._node_id, self._spec
        return bool(
            self._check(node, name, device, value_ms, spec, p95_ms, reference_ms, reference_kind)
        )

    def saved_kind(self, name: str, device: str) -> str | None:
        if self._saved_kinds is None:
            return None
        return self._saved_kinds(self._node_id, name, device)


def suspect_for(request: pytest.FixtureRequest) -> Suspect | None:
    """The session's questions for this test, when there is a session."""
    check = request.config.stash.get(REGRESSION_CHECK_KEY, None)
    if check is None:
        return None
    node = request.node
    return Suspect(
        check,
        node.nodeid,
        node.stash.get(SPEC_KEY, TestSpec()),
        request.config.stash.get(SAVED_KIND_KEY, None),
    )
