"""The closed and open load loops (pytest_hwperf/serving/load.py) against a fake V2
server, and their runs as measurements.

Timing checks compare latencies within one run (later against earlier requests) with
wide margins; none asserts an absolute wall-clock figure.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from _fake_v2 import FakeV2, fake_v2

from pytest_hwperf.judge.budgets import LatencyBudget, ThroughputBudget
from pytest_hwperf.judge.compliance import Outcome
from pytest_hwperf.serving.load import (
    OPEN_LOOP_TIMING_METHOD,
    TIMING_METHOD,
    ServerRun,
    closed_loop,
    measurement_from_server_run,
    open_loop,
)
from pytest_hwperf.serving.v2 import V2Client, encode_request

BODY = encode_request(np.ones((2, 3), np.float32))
SERVICE_S = 0.02  # the serial fake server's time per request


@pytest.fixture
def fake() -> Iterator[FakeV2]:
    with fake_v2() as server:
        yield server


class Clients:
    """A client factory that remembers what it made, to check they were all closed."""

    def __init__(self, fake: FakeV2, timeout_s: float = 5.0) -> None:
        self.fake = fake
        self.timeout_s = timeout_s
        self.made: list[V2Client] = []
        self.closed = 0

    def __call__(self) -> V2Client:
        factory = self

        class Counted(V2Client):
            def close(self) -> None:
                factory.closed += 1
                super().close()

        client = Counted(self.fake.host, self.fake.port, "tiny", timeout_s=self.timeout_s)
        self.made.append(client)
        return client

    def all_closed(self) -> bool:
        return self.closed >= len(self.made) > 0


def fail_from(first: int) -> Callable[[int, bytes], object]:
    return lambda n, body: (500, json.dumps({"error": "boom"}).encode()) if n >= first else None


def fail_only(which: int) -> Callable[[int, bytes], object]:
    return lambda n, body: (500, json.dumps({"error": "boom"}).encode()) if n == which else None


def quarter_medians(run: ServerRun) -> tuple[float, float]:
    samples = run.samples_ns
    quarter = samples.size // 4
    return float(np.median(samples[:quarter])), float(np.median(samples[-quarter:]))


# --- closed loop --------------------------------------------------------------------


def test_closed_loop_counts_requests_and_warm_up(fake: FakeV2) -> None:
    clients = Clients(fake)
    run = closed_loop(clients, BODY, concurrency=3, seconds=None, requests=40, warmup_requests=6)
    assert run.mode == "closed"
    assert run.requests == 40
    assert run.samples_ns.shape == (40,)
    assert run.samples_ns.dtype == np.int64
    assert (run.samples_ns > 0).all()
    assert fake.requests == 46  # warm-up requests are sent but not samples
    assert fake.connections == 3  # one keep-alive connection per client
    assert (run.errors, run.first_error, run.stop_reason) == (0, None, "requests")
    assert (run.concurrency, run.rate_per_s, run.warmup_requests) == (3, None, 6)
    assert run.elapsed_ns > 0
    assert run.throughput_per_s == pytest.approx(40 / (run.elapsed_ns / 1e9))
    assert run.p50_ms <= run.p95_ms <= run.p99_ms
    assert run.mean_ms > 0
    assert clients.all_closed()


def test_warm_up_opens_every_client_connection(fake: FakeV2) -> None:
    run = closed_loop(
        Clients(fake), BODY, concurrency=3, seconds=None, requests=1, warmup_requests=3
    )
    assert run.requests == 1
    assert fake.requests == 4
    assert fake.connections == 3  # one warm-up request each: no sample pays a connect


def test_closed_loop_stops_at_its_duration(fake: FakeV2) -> None:
    fake.service_s = 0.005
    run = closed_loop(
        Clients(fake), BODY, concurrency=2, seconds=0.3, requests=None, warmup_requests=0
    )
    assert run.stop_reason == "duration"
    assert run.requests > 0
    assert fake.requests == run.requests
    assert run.seconds == 0.3


def test_closed_loop_stops_at_the_first_error(fake: FakeV2) -> None:
    fake.behaviour = fail_only(12)
    clients = Clients(fake)
    run = closed_loop(
        clients, BODY, concurrency=3, seconds=None, requests=10_000, warmup_requests=2
    )
    assert run.errors == 1
    assert run.first_error == "HTTP 500: boom"
    assert run.stop_reason == "error"
    # Stopped at the error, far short of the 10,000 asked for. How many the other
    # clients sent before the failing one's thread read its answer depends on the
    # scheduler (25 in a serial CI run on 2 loaded cores), so no tighter bound here.
    assert fake.requests < 100
    assert run.requests == fake.requests - 2 - 1
    assert clients.all_closed()


def test_closed_loop_error_in_warm_up_gives_an_empty_run(fake: FakeV2) -> None:
    fake.behaviour = fail_from(1)
    run = closed_loop(
        Clients(fake), BODY, concurrency=1, seconds=1.0, requests=None, warmup_requests=5
    )
    assert (run.requests, run.errors, run.stop_reason) == (0, 1, "error")
    assert run.first_error == "HTTP 500: boom"
    assert fake.requests == 1
    assert np.isnan(run.p95_ms)
    with pytest.raises(ValueError, match="no samples"):
        measurement_from_server_run(run, name="load", workers=1, threads=1, url="u")


def test_a_failure_that_is_not_a_request_error_is_raised() -> None:
    class Broken:
        def post_infer(self, body: bytes) -> bytes:
            raise RuntimeError("a bug")

        def close(self) -> None:
            pass

    with pytest.raises(RuntimeError, match="a bug"):
        closed_loop(Broken, BODY, concurrency=2, seconds=None, requests=5, warmup_requests=0)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"concurrency": 0}, "concurrency must be an int >= 1"),
        ({"concurrency": True}, "concurrency must be an int >= 1"),
        ({"requests": 0}, "requests must be an int >= 1"),
        ({"seconds": -1.0}, "seconds must be a positive number"),
        ({"seconds": None, "requests": None}, "give requests=, seconds= or both"),
        ({"warmup_requests": -1}, "warmup_requests must be an int >= 0"),
    ],
)
def test_closed_loop_refuses_bad_arguments(kwargs: dict[str, object], says: str) -> None:
    made: list[object] = []
    arguments: dict[str, object] = {
        "concurrency": 1,
        "seconds": 1.0,
        "requests": None,
        "warmup_requests": 0,
        **kwargs,
    }
    with pytest.raises(ValueError, match=says):
        closed_loop(lambda: made.append(1), BODY, **arguments)  # type: ignore[arg-type]
    assert made == []  # refused before any client was made


# --- open loop ----------------------------------------------------------------------


def test_open_loop_counts_latency_from_due_times_when_overloaded(fake: FakeV2) -> None:
    # One request at a time, 20 ms each: 50 requests/s. Offered 200/s, so each request
    # waits for all before it: latency from the due time grows through the run.
    fake.serial, fake.service_s = True, SERVICE_S
    rate = 4 / SERVICE_S
    run = open_loop(
        Clients(fake),
        BODY,
        rate=rate,
        seconds=0.4,
        max_in_flight=4,
        warmup_requests=2,
        drain_s=30.0,
    )
    assert run.mode == "open"
    assert (run.errors, run.unsent, run.stop_reason) == (0, 0, "duration")
    assert run.requests == 80
    first, last = quarter_medians(run)
    assert last > 3 * first
    assert run.p95_ms > 8 * SERVICE_S * 1e3
    # The client pool alone would hide it: at most 4 in flight, each served in turn.
    assert run.throughput_per_s < rate


def test_open_loop_under_capacity_does_not_grow(fake: FakeV2) -> None:
    fake.serial, fake.service_s = True, SERVICE_S
    rate = 0.25 / SERVICE_S
    clients = Clients(fake)
    run = open_loop(clients, BODY, rate=rate, seconds=2.0, max_in_flight=2, warmup_requests=2)
    assert (run.errors, run.unsent, run.stop_reason) == (0, 0, "duration")
    assert run.requests == 25
    assert fake.requests == 25 + 2
    assert run.rate_per_s == rate
    assert run.concurrency == 2
    first, last = quarter_medians(run)
    assert last < 3 * first
    assert clients.all_closed()


def test_open_loop_drain_limit_leaves_requests_unsent(fake: FakeV2) -> None:
    fake.serial, fake.service_s = True, SERVICE_S
    run = open_loop(
        Clients(fake),
        BODY,
        rate=10 / SERVICE_S,
        seconds=0.5,
        max_in_flight=2,
        warmup_requests=0,
        drain_s=0.1,
    )
    assert run.stop_reason == "overloaded"
    assert run.unsent > 0
    assert run.requests + run.unsent == 250
    assert fake.requests == run.requests


def test_open_loop_stops_at_the_first_error(fake: FakeV2) -> None:
    fake.behaviour = fail_only(6)
    clients = Clients(fake)
    run = open_loop(clients, BODY, rate=100.0, seconds=2.0, max_in_flight=2, warmup_requests=1)
    assert (run.errors, run.first_error, run.stop_reason) == (1, "HTTP 500: boom", "error")
    assert run.requests < 200
    assert fake.requests <= 6 + 2
    assert clients.all_closed()


def test_open_loop_request_timeout_is_an_error(fake: FakeV2) -> None:
    release = threading.Event()

    def slow(n: int, body: bytes) -> None:
        release.wait(2.0)  # longer than the client's timeout

    fake.behaviour = slow
    run = open_loop(
        Clients(fake, timeout_s=0.2),
        BODY,
        rate=20.0,
        seconds=0.5,
        max_in_flight=1,
        warmup_requests=0,
    )
    release.set()
    assert run.errors == 1
    assert run.first_error is not None
    assert "no response within 0.2 s" in run.first_error


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"rate": 0.0}, "rate must be a positive number"),
        ({"rate": float("inf")}, "rate must be a positive number"),
        ({"seconds": 0}, "seconds must be a positive number"),
        ({"max_in_flight": 0}, "max_in_flight must be an int >= 1"),
        ({"drain_s": -1.0}, "drain_s must be a positive number"),
    ],
)
def test_open_loop_refuses_bad_arguments(kwargs: dict[str, object], says: str) -> None:
    arguments: dict[str, object] = {
        "rate": 10.0,
        "seconds": 1.0,
        "max_in_flight": 1,
        "warmup_requests": 0,
        **kwargs,
    }
    with pytest.raises(ValueError, match=says):
        open_loop(lambda: None, BODY, **arguments)  # type: ignore[arg-type]


# --- the measurement ----------------------------------------------------------------


def synthetic(mode: str, **fields: object) -> ServerRun:
    """400 requests of 10 ms each over 1 s: 400 requests/s with 4 in flight."""
    values: dict[str, object] = {
        "samples_ns": np.full(400, 10_000_000, dtype=np.int64) + np.arange(400, dtype=np.int64) % 7,
        "requests": 400,
        "errors": 0,
        "first_error": None,
        "elapsed_ns": 1_000_000_000,
        "throughput_per_s": 400.0,
        "mode": mode,
        "concurrency": 4,
        "rate_per_s": 400.0 if mode == "open" else None,
        "seconds": 1.0,
        "warmup_requests": 8,
        "stop_reason": "duration",
        "warmup_ns": 5_000_000,
        **fields,
    }
    return ServerRun(**values)  # type: ignore[arg-type]


def test_closed_loop_measurement_judges_throughput_on_the_served_rate() -> None:
    budgets = [
        LatencyBudget(ms=50.0),
        ThroughputBudget(min_per_s=300.0),  # served 400/s, though each request took 10 ms
    ]
    m = measurement_from_server_run(
        synthetic("closed"),
        name="load",
        budgets=budgets,
        alpha=0.01,
        workers=2,
        threads=1,
        url="http://127.0.0.1:8080",
    )
    assert [v.outcome for v in m.verdicts] == [Outcome.PASS, Outcome.PASS]
    assert m.served_per_s == 400.0
    assert m.timing_method == TIMING_METHOD
    assert (m.warmup_calls, m.warmup_ns, m.sampling_ns) == (8, 5_000_000, 1_000_000_000)
    assert m.stop_reason == "duration"
    text = " | ".join(m.notes)
    assert "MLServer at http://127.0.0.1:8080, 2 worker processes x 1 thread each" in text
    assert "closed loop at concurrency 4" in text
    assert "served 400 requests/s (400 requests in 1 s)" in text
    assert "Little's law" in text
    assert m.threads["load"] == "closed"


def test_measurement_fails_budgets_the_run_missed() -> None:
    budgets = [LatencyBudget(ms=5.0), ThroughputBudget(min_per_s=1000.0)]
    m = measurement_from_server_run(
        synthetic("closed"), name="load", budgets=budgets, workers=1, threads=2, url="u"
    )
    assert [v.outcome for v in m.verdicts] == [Outcome.FAIL, Outcome.FAIL]


def test_open_loop_measurement_says_how_latency_was_taken() -> None:
    m = measurement_from_server_run(
        synthetic("open", unsent=3, stop_reason="overloaded"),
        name="load",
        budgets=[ThroughputBudget(min_per_s=10.0)],
        workers=1,
        threads=1,
        url="http://h:1",
    )
    assert m.timing_method == OPEN_LOOP_TIMING_METHOD
    text = " | ".join(m.notes)
    assert "open loop: requests due at 400/s for 1 s, up to 4 in flight" in text
    assert "from its due time" in text
    assert "waiting for a free client" in text
    assert "3 due requests were never sent" in text
    assert "at most the offered rate" in text
    assert m.stop_reason == "overloaded"
    assert m.verdicts[0].outcome == Outcome.PASS


def test_measurement_of_a_real_run(fake: FakeV2) -> None:
    run = closed_loop(
        Clients(fake), BODY, concurrency=2, seconds=None, requests=30, warmup_requests=2
    )
    m = measurement_from_server_run(run, name="load", workers=1, threads=1, url="u")
    assert m.n == 30
    assert m.served_per_s == run.throughput_per_s
    assert m.p95_ms == pytest.approx(run.p95_ms)
