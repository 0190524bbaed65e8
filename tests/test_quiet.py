"""measure/quiet.py: a wait that ends when other processes leave this one's CPUs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hwperf.measure.quiet import QUIET_SHARE, busy_share, until_quiet


class FakeMachine:
    """A clock, a sleep that moves it, and the busy share each step reads."""

    def __init__(self, shares: list[float | None]) -> None:
        self.now = 0.0
        self.shares = list(shares)
        self.reads = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds

    def read(self) -> float | None:
        self.reads += 1
        if self.reads == 1:
            return None  # the first reading only starts the count
        return self.shares.pop(0) if self.shares else 1.0


def _wait(machine: FakeMachine, longest_s: float) -> float:
    return until_quiet(
        longest_s, read=machine.read, sleep=machine.sleep, clock=machine.clock, step_s=0.05
    )


def test_a_quiet_machine_ends_the_wait_after_one_step():
    machine = FakeMachine([0.0])
    assert _wait(machine, 1.6) == pytest.approx(0.05)


def test_the_wait_ends_with_the_burst():
    machine = FakeMachine([1.0, 0.95, QUIET_SHARE + 0.01, 0.1])
    assert _wait(machine, 1.6) == pytest.approx(0.2)


def test_a_machine_busy_throughout_waits_the_longest_and_no_more():
    machine = FakeMachine([])
    assert _wait(machine, 0.42) == pytest.approx(0.42)


def test_an_unknown_share_waits_as_a_plain_sleep():
    machine = FakeMachine([None] * 100)
    assert _wait(machine, 0.3) == pytest.approx(0.3)


def test_no_wait_asked_waits_not_at_all():
    machine = FakeMachine([0.0])
    assert _wait(machine, 0.0) == 0.0
    assert machine.reads == 0


def test_the_real_reader_gives_a_share_or_none():
    import time

    read = busy_share()
    assert read() is None  # the first reading has nothing to compare with
    time.sleep(0.02)
    found = read()
    assert found is None or 0.0 <= found <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    shares=st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), max_size=40),
    longest_s=st.floats(0.0, 2.0),
)
def test_the_wait_ends_at_the_first_quiet_step_and_never_past_the_longest(shares, longest_s):
    machine = FakeMachine(shares)
    waited = _wait(machine, longest_s)
    assert 0.0 <= waited <= longest_s + 1e-9
    steps = machine.reads - 1 if machine.reads else 0  # the first reading only starts
    seen = shares[:steps]
    quiet_at = next((i for i, s in enumerate(seen) if s is not None and s < QUIET_SHARE), None)
    if quiet_at is not None:  # ended there, at the first quiet step
        assert quiet_at == steps - 1
    elif longest_s > 0:  # no quiet step: the wait lasted its whole length
        assert waited == pytest.approx(longest_s)
