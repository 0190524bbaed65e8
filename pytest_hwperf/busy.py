"""When a round counts as disturbed: the policy over the CPU wait that
measure/contention.py reads (its docstring says what the figure is and how it was
calibrated). Kept apart from the reading so that the records and the judging layers,
which only ask "was this round disturbed?", import nothing from the measuring layer."""

from __future__ import annotations

__all__ = ["DISTURBED_CPU_WAIT", "busy_note", "is_disturbed"]

DISTURBED_CPU_WAIT = 0.10
"""The CPU wait (summed thread wait per second of the round) from which a round is
disturbed: a tenth of the round spent waiting for a CPU. Quiet rounds stay under 0.03
on this project's runner; a co-tenant's burst brings it to ~1."""


def is_disturbed(wait: float | None, threshold: float | None = DISTURBED_CPU_WAIT) -> bool:
    """Whether a round with this CPU wait was disturbed: it reached `threshold`
    (`--hwperf-busy-wait`; None or 0: never). An unknown wait is not disturbed."""
    if wait is None or not threshold:
        return False
    return wait >= threshold


def busy_note(waits: list[float | None]) -> str:
    """Why a verdict was not given: every round measured while the machine was busy."""
    known = [w for w in waits if w is not None]
    worst = f"; CPU wait up to {max(known):.2f}" if known else ""
    rounds = len(waits)
    return (
        f"the machine was busy in all {rounds} round{'s' if rounds != 1 else ''}: this"
        f" test's threads waited for a CPU {DISTURBED_CPU_WAIT:.0%} of the time or more"
        f"{worst} (other processes, or more threads than cores)"
    )
