"""What the `hwperf` fixture asks of same-run A/B: the one call-out it makes.

The fixture knows nothing of git, processes or the other session: under
`--hwperf-against` (and in the base session it starts) each test's handle gets a
`Pairing` (plugin/ab_measure.py), which measures in its place. On the head side the
pairing meets the base, lets the handle take its usual measurement (the samples of
record, budgets judged) while the base waits, then takes the alternating rounds; on the
base side it warms up and measures only the rounds the head asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from pytest_hwperf.measure import DeviceSync, Measurement

__all__ = ["Pairing"]

T = TypeVar("T")


class Pairing(Protocol):
    def takes(self, name: str) -> bool:
        """Whether `measure` takes this call of measurement `name` (False for the call
        the pairing itself makes to take the handle's usual measurement)."""
        ...

    def measure(
        self, handle: Any, target: Callable[[], T], name: str, sync: DeviceSync
    ) -> tuple[T, Measurement]:
        """Measure `target` as measurement `name` of the test, paired with the other
        side: its last result and the measurement."""
        ...
