"""The session's "would this be a regression?", asked by the `hwperf` fixture right after
a measurement's first round, so that a suspect is measured again (--hwperf-confirm)
before its verdict: the stash key the session fills and the per-test question."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pytest

from pytest_hwperf.plugin.markers import SPEC_KEY, TestSpec

__all__ = ["REGRESSION_CHECK_KEY", "RegressionCheck", "Suspect", "suspect_for"]


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


Suspect = Callable[[str, str, float, "float | None", "float | None", "str | None"], bool]


# Under --hwperf: the session's answer to "would this be a regression?", put there when
# the session is registered; `hwperf` measures a suspect again (--hwperf-confirm).
REGRESSION_CHECK_KEY: pytest.StashKey[RegressionCheck] = pytest.StashKey()


def suspect_for(request: pytest.FixtureRequest) -> Suspect | None:
    """The session's "would this be a regression?" for this test, when there is one."""
    check = request.config.stash.get(REGRESSION_CHECK_KEY, None)
    if check is None:
        return None
    node = request.node
    spec = node.stash.get(SPEC_KEY, TestSpec())

    def suspect(
        name: str,
        device: str,
        value_ms: float,
        p95_ms: float | None,
        reference_ms: float | None = None,
        reference_kind: str | None = None,
    ) -> bool:
        return bool(
            check(node.nodeid, name, device, value_ms, spec, p95_ms, reference_ms, reference_kind)
        )

    return suspect
