"""What a pool run gives: its samples gathered into a :class:`PoolRun`, and the run as a
judged :class:`~pytest_hwperf.measure.result.Measurement`.

numpy, the statistics and the measurement are imported only when a run is gathered or
judged, so starting a pool imports nothing beyond the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from pytest_hwperf.judge.budgets import Budget
    from pytest_hwperf.measure.result import Measurement
    from pytest_hwperf.workers.pool import PoolConfig
    from pytest_hwperf.workers.worker import WorkerInfo

__all__ = ["TIMING_METHOD", "LatencySamples", "PoolRun", "measurement_from_run"]

TIMING_METHOD = "perf_counter_ns per request (parent, queueing included)"


class LatencySamples:
    """The latency figures of a run's per-request samples (`samples_ns`, int64 ns), for
    a worker pool's run and a served model's alike; NaN without samples."""

    samples_ns: np.ndarray

    @property
    def mean_ms(self) -> float:
        return float(self.samples_ns.mean()) / 1e6 if self.samples_ns.size else math.nan

    def percentile_ms(self, pct: float) -> float:
        """The ``pct``-th percentile of the latencies in ms (NaN without samples)."""
        from pytest_hwperf.judge import stats

        if not self.samples_ns.size:
            return math.nan
        return stats.percentile(self.samples_ns, pct) / 1e6

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p95_ms(self) -> float:
        return self.percentile_ms(95)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)


@dataclass(frozen=True, eq=False)
class PoolRun(LatencySamples):
    """One closed-loop run: per-request latency samples and the throughput it reached."""

    samples_ns: np.ndarray  # int64, one per measured request, in completion order
    requests: int
    elapsed_ns: int  # first measured request issued -> last result received
    throughput_per_s: float  # requests / elapsed
    per_worker_counts: tuple[int, ...]  # measured requests served by each worker
    config: PoolConfig
    concurrency: int
    warmup_requests: int
    warmup_ns: int
    stop_reason: str  # "requests" or "duration"
    workers: tuple[WorkerInfo, ...] = ()

    @classmethod
    def gather(
        cls,
        samples: Sequence[int],
        counts: Sequence[int],
        elapsed_ns: int,
        *,
        config: PoolConfig,
        concurrency: int,
        warmup_requests: int,
        warmup_ns: int,
        stop_reason: str,
        workers: tuple[WorkerInfo, ...],
    ) -> PoolRun:
        """The run from the closed loop's latencies (ns) and per-worker request counts."""
        import numpy as np

        array = np.asarray(samples, dtype=np.int64)
        return cls(
            samples_ns=array,
            requests=int(array.size),
            elapsed_ns=elapsed_ns,
            throughput_per_s=array.size / (elapsed_ns / 1e9) if elapsed_ns > 0 else float("inf"),
            per_worker_counts=tuple(counts),
            config=config,
            concurrency=concurrency,
            warmup_requests=warmup_requests,
            warmup_ns=warmup_ns,
            stop_reason=stop_reason,
            workers=workers,
        )


def measurement_from_run(
    run: PoolRun,
    *,
    name: str,
    budgets: Sequence[Budget] = (),
    alpha: float = 0.01,
    device: str = "cpu",
) -> Measurement:
    """The run as a :class:`Measurement`, with its budgets judged at level ``alpha``.

    Latency budgets are judged on the per-request latencies (queueing included).
    Throughput budgets are judged on what the pool delivered, requests / elapsed, not on
    one request's latency: with ``concurrency`` requests in flight a request's latency
    is not the pool's time per request. By Little's law throughput = in-flight / mean
    latency, so the latencies are divided by the mean number in flight (throughput x
    mean latency) and judged as usual; the measured rate is then the pool's. A budget
    still undecided on these samples is inconclusive.
    """
    import numpy as np

    from pytest_hwperf.judge.budgets import ThroughputBudget
    from pytest_hwperf.judge.compliance import BudgetVerdict, judge, settle
    from pytest_hwperf.measure.result import Measurement

    if run.samples_ns.size == 0:
        raise ValueError("the run has no samples")
    config = run.config
    samples = np.asarray(run.samples_ns, dtype=np.int64)
    mean_ns = float(samples.mean())
    in_flight = run.throughput_per_s * mean_ns / 1e9
    verdicts: list[BudgetVerdict] = []
    for budget in dict.fromkeys(budgets):
        if isinstance(budget, ThroughputBudget) and in_flight > 0 and np.isfinite(in_flight):
            verdicts.append(judge(budget, samples.astype(np.float64) / in_flight, alpha))
        else:
            verdicts.append(judge(budget, samples, alpha))

    notes = [
        f"{config.workers} worker process{'es' if config.workers != 1 else ''} x"
        f" {config.threads} {'thread' if config.threads == 1 else 'threads'} each, closed"
        f" loop at concurrency {run.concurrency}; {_placement(run)}",
        f"pool throughput {run.throughput_per_s:.4g} requests/s ({run.requests} requests in"
        f" {run.elapsed_ns / 1e9:.3g} s); per-call figures are per request, queueing"
        " included",
        "requests served per worker: "
        + ", ".join(f"worker {i}: {c}" for i, c in enumerate(run.per_worker_counts)),
    ]
    if any(isinstance(b, ThroughputBudget) for b in budgets):
        notes.append(
            f"throughput budgets judged on the pool's rate: latencies divided by the mean"
            f" number in flight ({in_flight:.3g}, Little's law)"
        )
    threads: dict[str, object] = {
        "workers": config.workers,
        "threads_per_worker": config.threads,
        "pinned": config.pin,
        "concurrency": run.concurrency,
        "per_worker": [
            {"index": w.index, "pid": w.pid, "cpus": list(w.cpus), **w.threads} for w in run.workers
        ],
    }
    return Measurement.from_samples(
        name=name,
        device=device,
        samples_ns=samples,
        timing_method=TIMING_METHOD,
        warmup_calls=run.warmup_requests,
        warmup_ns=run.warmup_ns,
        per_call_estimate_ns=mean_ns,
        gc_policy="worker processes (not managed)",
        stop_reason=run.stop_reason,
        alpha=alpha,
        sampling_ns=run.elapsed_ns,
        verdicts=settle(verdicts),
        notes=notes,
        threads=threads,
    )


def _placement(run: PoolRun) -> str:
    """Where the workers ran: each one's pinned set, or the CPUs they could run on."""
    from pytest_hwperf.hardware.cpu import format_cpu_list

    sets = [w.pinned for w in run.workers] or [None] * run.config.workers
    if run.config.pin and all(s is not None for s in sets):
        return "pinned: " + "; ".join(
            f"worker {i} on CPU {format_cpu_list(s or ())}" for i, s in enumerate(sets)
        )
    seen = sorted({cpu for w in run.workers for cpu in w.cpus})
    where = f" (each may run on CPUs {format_cpu_list(seen)})" if seen else ""
    return f"not pinned{where}"
