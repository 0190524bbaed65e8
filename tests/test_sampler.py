"""The sampling loop, driven by a fake clock: no real time is measured or asserted on."""

from __future__ import annotations

import gc
import itertools
import math

import numpy as np
import pytest

from pytest_hwperf.judge.compliance import LatencyBudget, Outcome, ThroughputBudget
from pytest_hwperf.measure.device import DeviceError, DeviceSync, device_sync, normalize_device
from pytest_hwperf.measure.result import Measurement
from pytest_hwperf.measure.sampler import SamplingPolicy, measure, plan_samples

US = 1_000
MS = 1_000_000
S = 1_000_000_000


class FakeClock:
    """A perf_counter_ns stand-in: reading it takes no time; targets advance it."""

    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now

    def advance(self, ns):
        self.now += int(ns)


class ScriptedTarget:
    """A target whose calls take scripted durations on `clock` (an iterable of ns)."""

    def __init__(self, clock, durations, on_call=None):
        self.clock = clock
        self.durations = iter(durations)
        self.calls = 0
        self.on_call = on_call

    def __call__(self):
        self.calls += 1
        if self.on_call is not None:
            self.on_call(self)
        self.clock.advance(next(self.durations))
        return self.calls


def run(durations, budgets=(), sync=None, on_call=None, **policy):
    clock = FakeClock()
    target = ScriptedTarget(clock, durations, on_call)
    kwargs = {"sync": sync} if sync is not None else {}
    result, m = measure(
        target,
        name="t",
        budgets=budgets,
        policy=SamplingPolicy(**policy),
        clock=clock,
        **kwargs,
    )
    return result, m, target


def looks_for(max_samples, first=8):
    """Scheduled looks: first, 2 first, 4 first, ... below max_samples."""
    out = []
    point = first
    while point < max_samples:
        out.append(point)
        point *= 2
    return out


def min_n_zero_exceedances(pct, alpha):
    """Fewest calls, none over budget, that show compliance: q^n <= alpha, by counting."""
    q = pct / 100
    n = 1
    while q**n > alpha:
        n += 1
    return n


def lazy_then(per_call_ns, first_ns=50 * MS):
    return itertools.chain([first_ns], itertools.repeat(per_call_ns))


# --- warm-up -------------------------------------------------------------------------


def test_warmup_calls_are_never_samples():
    _, m, target = run(lazy_then(1 * MS, first_ns=50 * MS), max_time_s=1.0)
    assert 50 * MS not in m.samples_ns
    assert m.samples_ns.max() == 1 * MS
    assert np.all(m.samples_ns == 1 * MS)
    # Warm-up lasts 0.1 s: 50 ms + 50 calls of 1 ms.
    assert m.warmup_calls == 51
    assert m.warmup_ns == 100 * MS
    # The cost estimate comes from the steady second half of the warm-up, not the first call.
    assert m.per_call_estimate_ns == 1 * MS
    assert target.calls == m.warmup_calls + m.n


def test_warmup_takes_at_least_min_warmup_calls():
    # A single call already exceeds warm-up time; still two warm-up calls.
    _, m, _ = run(itertools.repeat(200 * MS), max_time_s=2.0)
    assert m.warmup_calls == 2
    assert m.per_call_estimate_ns == 200 * MS


# --- budgets: pass, fail, inconclusive ---------------------------------------------------


def test_slow_target_fails_after_few_samples():
    # Every call takes 20 ms against p95 <= 5 ms: all over budget.
    _, m, _ = run(itertools.repeat(20 * MS), [LatencyBudget(5.0)])
    assert m.stop_reason == "failed"
    assert m.outcome is Outcome.FAIL
    [v] = m.verdicts
    assert v.outcome is Outcome.FAIL
    # First look at 8 samples: P(8 of 8 over | 5%) = 0.05^8 ~ 4e-11, far below any
    # per-look alpha.
    assert m.n == 8
    assert v.exceedances == 8
    assert m.looks == 1


@pytest.mark.parametrize("pct", [95, 99])
def test_fast_target_passes_at_the_first_look_that_can_show_it(pct):
    _, m, _ = run(lazy_then(1 * MS), [LatencyBudget(50.0, pct)])
    assert m.stop_reason == "decided"
    assert m.outcome is Outcome.PASS
    # Looks are scheduled 8, 16, ... up to the sample cap (1e6): 17 looks plus the final
    # one, so each look tests at 0.01 / 18.
    looks = looks_for(SamplingPolicy().max_samples)
    assert len(looks) == 17
    needed = min_n_zero_exceedances(pct, 0.01 / (len(looks) + 1))
    first_look_enough = next(n for n in looks if n >= needed)
    assert m.n == first_look_enough
    if pct == 99:
        assert m.n >= 459  # never fewer than the single-look minimum for p99 at 0.01
    assert m.verdicts[0].exceedances == 0
    assert m.verdicts[0].alpha == pytest.approx(0.01 / 18)


def test_budget_at_the_tolerated_fraction_is_inconclusive_at_max_time():
    # 1 call in 20 takes 10 ms, the rest 1 ms: exactly 5% over a p95 budget of 5 ms, so
    # neither compliance nor violation can ever be shown.
    durations = itertools.cycle([1 * MS] * 19 + [10 * MS])
    _, m, _ = run(durations, [LatencyBudget(5.0)], max_time_s=1.0)
    assert m.stop_reason == "max-time"
    assert m.outcome is Outcome.INCONCLUSIVE
    [v] = m.verdicts
    assert v.outcome is Outcome.INCONCLUSIVE
    assert abs(v.exceedances - m.n / 20) <= 1
    # The loop ran to the deadline and no further: the samples add up to the time allowed.
    assert int(m.samples_ns.sum()) >= 1 * S
    assert int(m.samples_ns[:-1].sum()) < 1 * S
    assert any("no decision within 1 s" in note for note in m.notes)


def test_plan_note_when_time_allowed_cannot_show_compliance():
    # 20 ms per call, 1 s: 50 samples; 18 looks -> alpha per look 0.01 / 18.
    # p99 needs the smallest n with 0.99^n <= 0.01 / 18, far more than 50.
    _, m, _ = run(itertools.repeat(20 * MS), [LatencyBudget(50.0, 99)], max_time_s=1.0)
    required = min_n_zero_exceedances(99, 0.01 / 18)
    assert required > 50
    plan_notes = [n for n in m.notes if "need at least" in n]
    assert len(plan_notes) == 1
    note = plan_notes[0]
    assert f"at least {required} samples" in note
    assert "allows ~50" in note
    assert "--hwperf-max-time" in note
    # Raising max time to the suggested value must allow the required count.
    suggested_s = int(note.rsplit("at least ", 1)[1].split()[0])
    assert suggested_s * 1e9 / (20 * MS) >= required
    assert m.n == 50
    assert m.outcome is Outcome.INCONCLUSIVE
    assert m.stop_reason == "max-time"


def test_no_plan_note_when_time_is_enough():
    _, m, _ = run(lazy_then(1 * MS), [LatencyBudget(50.0, 99)])
    assert not any("need at least" in n for n in m.notes)


def test_max_samples_stop():
    # p99 cannot be shown in 100 samples; the sample cap ends the measurement.
    _, m, _ = run(itertools.repeat(1 * MS), [LatencyBudget(50.0, 99)], max_samples=100)
    assert m.n == 100
    assert m.stop_reason == "max-samples"
    assert m.outcome is Outcome.INCONCLUSIVE


def test_throughput_budget_through_measure():
    # 1 ms per call = 1000 calls/s, constant: the Student-t bounds have zero width, but a
    # throughput verdict needs 10 samples, so the first look that decides is 16.
    _, m, _ = run(itertools.repeat(1 * MS), [ThroughputBudget(min_per_s=500.0)])
    assert m.outcome is Outcome.PASS
    assert m.stop_reason == "decided"
    assert m.n == 16
    _, m, _ = run(itertools.repeat(1 * MS), [ThroughputBudget(min_per_s=2000.0)])
    assert m.outcome is Outcome.FAIL
    assert m.stop_reason == "failed"


def test_first_failure_stops_and_says_the_rest_were_not_decided():
    budgets = [LatencyBudget(50.0, 99), ThroughputBudget(min_per_s=2000.0)]
    _, m, _ = run(itertools.repeat(1 * MS), budgets)
    assert m.stop_reason == "failed"
    latency, throughput = m.verdicts
    assert throughput.outcome is Outcome.FAIL
    assert latency.outcome is Outcome.INCONCLUSIVE
    assert m.outcome is Outcome.FAIL
    assert any("stopped at the first failed budget" in n for n in m.notes)


def test_all_budgets_must_be_decided():
    budgets = [LatencyBudget(50.0, 95), LatencyBudget(50.0, 99)]
    _, m, _ = run(lazy_then(1 * MS), budgets)
    assert m.stop_reason == "decided"
    assert [v.outcome for v in m.verdicts] == [Outcome.PASS, Outcome.PASS]
    # p99 decides later than p95; each verdict keeps the n it was decided at.
    assert m.verdicts[0].n < m.verdicts[1].n == m.n


# --- block mode ----------------------------------------------------------------------


def test_block_mode_for_tiny_targets():
    _, m, target = run(itertools.repeat(2 * US), warmup_s=0.001, min_time_s=0.0)
    # 2 us per call is under the 10 us threshold: blocks of ceil(50 us / 2 us) = 25 calls.
    assert m.block_size == 25
    assert m.timing_method == "perf_counter_ns/block-of-25"
    assert np.all(m.samples_ns == 2 * US)
    st = m.stats
    assert st.p50_ms is None
    assert st.p95_ms is None
    assert st.p99_ms is None
    assert st.mean_ms == pytest.approx(0.002)
    assert st.n_calls == m.n * 25
    assert target.calls == m.warmup_calls + m.n * 25
    assert any("blocks of 25 calls" in n for n in m.notes)


def test_block_mode_mean_of_uneven_calls():
    # Calls alternate 1 us and 3 us: whatever the block size, the mean call is 2 us.
    _, m, target = run(itertools.cycle([1 * US, 3 * US]), warmup_s=0.001, min_time_s=0.0)
    assert m.block_size > 1
    assert target.calls == m.warmup_calls + m.n * m.block_size
    assert m.stats.mean_ms == pytest.approx(0.002, rel=0.05)
    assert m.stats.p50_ms is None
    rec = m.to_record()
    assert rec["stats"]["p95_ms"] is None
    assert rec["timing"]["block_size"] == m.block_size


def test_no_block_mode_at_and_above_the_threshold():
    _, m, _ = run(itertools.repeat(10 * US), warmup_s=0.001, min_time_s=0.0)
    assert m.block_size == 1
    assert m.timing_method == "perf_counter_ns"
    assert m.stats.p99_ms == pytest.approx(0.010)


# --- no budget -----------------------------------------------------------------------


@pytest.mark.parametrize("per_call_ms", [1, 20])
def test_no_budget_stops_at_target_samples(per_call_ms):
    # 20 ms per call: 200 samples take 4 s of the 5 s allowed, so sampling must stop
    # at 200 rather than run on to the time limit.
    _, m, _ = run(itertools.repeat(per_call_ms * MS), target_samples=200, min_time_s=0.0)
    assert m.stop_reason == "target-samples"
    assert m.n == 200
    assert m.outcome is None
    assert m.verdicts == []


def test_no_budget_also_waits_for_min_time():
    _, m, _ = run(itertools.repeat(1 * MS), target_samples=200, min_time_s=0.5)
    assert m.stop_reason == "target-samples"
    assert m.n >= 500  # 0.5 s of 1 ms calls
    assert m.n <= 1024  # ... stopping at a look soon after
    assert int(m.samples_ns.sum()) >= 500 * MS


def test_no_budget_stops_at_max_time_when_target_samples_is_out_of_reach():
    _, m, _ = run(itertools.repeat(20 * MS), target_samples=1000, max_time_s=1.0)
    assert m.stop_reason == "max-time"
    assert m.n == 50


# --- gc, result, sync, record -----------------------------------------------------------


def test_gc_disable_during_sampling_and_restored():
    seen = []
    assert gc.isenabled()
    _, m, _ = run(
        itertools.repeat(1 * MS),
        on_call=lambda t: seen.append(gc.isenabled()),
        gc="disable",
        max_time_s=1.0,
        target_samples=50,
    )
    assert gc.isenabled()
    assert m.gc_policy == "collect-then-disabled"
    warm, sampling = seen[: m.warmup_calls], seen[m.warmup_calls :]
    assert all(warm)
    assert len(sampling) == m.n
    assert not any(sampling)


def test_gc_collect_policy_leaves_gc_enabled():
    seen = []
    _, m, _ = run(
        itertools.repeat(1 * MS),
        on_call=lambda t: seen.append(gc.isenabled()),
        gc="collect",
        target_samples=50,
    )
    assert all(seen)
    assert m.gc_policy == "collect-then-enabled"


def test_gc_restored_when_the_target_raises():
    def boom(target):
        if target.calls == 120:  # a sampling call (warm-up is 100 calls of 1 ms)
            raise RuntimeError("boom")

    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"):
        run(itertools.repeat(1 * MS), on_call=boom, gc="disable")
    assert gc.isenabled()


def test_gc_left_disabled_if_it_was_disabled_before():
    gc.disable()
    try:
        run(itertools.repeat(1 * MS), gc="disable", target_samples=20, min_time_s=0.0)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_returns_the_targets_last_result():
    result, m, target = run(itertools.repeat(1 * MS), target_samples=30, min_time_s=0.0)
    assert result == target.calls
    assert result == m.warmup_calls + m.n


def test_device_sync_is_part_of_every_sample():
    clock = FakeClock()
    syncs = []

    def synchronize():
        syncs.append(clock.now)
        clock.advance(4 * MS)  # the device's queued work finishes here

    target = ScriptedTarget(clock, itertools.repeat(1 * MS))
    _, m = measure(
        target,
        name="gpu",
        policy=SamplingPolicy(target_samples=40, min_time_s=0.0),
        sync=DeviceSync("cuda:0", "cuda-synchronize", synchronize),
        clock=clock,
    )
    assert np.all(m.samples_ns == 5 * MS)  # 1 ms enqueue + 4 ms device work
    assert m.device == "cuda:0"
    assert m.sync_method == "cuda-synchronize"
    # One synchronisation before warm-up starts, then one per call.
    assert len(syncs) == 1 + m.warmup_calls + m.n


def test_measurement_record():
    _, m, _ = run(lazy_then(1 * MS), [LatencyBudget(50.0)])
    rec = m.to_record()
    assert rec["name"] == "t"
    assert rec["mode"] == "measured"
    assert rec["outcome"] == "pass"
    assert rec["stats"]["n"] == m.n
    assert rec["timing"]["stop_reason"] == "decided"
    assert rec["timing"]["alpha"] == 0.01
    assert len(rec["samples_ns"]) == m.n
    assert rec["budgets"][0]["outcome"] == "pass"


# --- plan_samples ----------------------------------------------------------------------


def test_plan_looks_and_alpha_per_look():
    policy = SamplingPolicy()  # 5 s, alpha 0.01, first look 8
    plan = plan_samples(1 * MS, [LatencyBudget(10.0, 99)], policy)
    assert plan.block_size == 1
    assert plan.max_samples == 5000
    # Looks up to the sample cap, whatever the time allows: a wrong warm-up estimate
    # must not leave sampling without looks.
    assert plan.looks == tuple(looks_for(policy.max_samples))
    assert plan.alpha_per_look == pytest.approx(0.01 / (len(plan.looks) + 1))
    assert plan.required_samples == min_n_zero_exceedances(99, plan.alpha_per_look)
    assert plan.notes == ()


@pytest.mark.parametrize(
    ("per_call_ns", "max_time_s", "first_look"),
    [(20 * MS, 1.0, 8), (1 * MS, 60.0, 8), (30 * US, 5.0, 8), (1 * MS, 5.0, 10), (2 * S, 5.0, 8)],
)
def test_plan_looks_schedule(per_call_ns, max_time_s, first_look):
    policy = SamplingPolicy(max_time_s=max_time_s, first_look=first_look, alpha=0.05)
    plan = plan_samples(per_call_ns, [], policy)
    affordable = max(1, int(max_time_s * S // per_call_ns))
    assert plan.max_samples == affordable
    assert list(plan.looks) == looks_for(policy.max_samples, first_look)
    assert all(b == 2 * a for a, b in itertools.pairwise(plan.looks))
    assert plan.alpha_per_look == pytest.approx(0.05 / (len(plan.looks) + 1))
    assert plan.required_samples == 0


def test_plan_block_sizes():
    policy = SamplingPolicy()
    assert plan_samples(2 * US, [], policy).block_size == 25  # ceil(50 us / 2 us)
    assert plan_samples(3 * US, [], policy).block_size == math.ceil(50 / 3)
    assert plan_samples(1, [], policy).block_size == 10_000  # capped
    assert plan_samples(0, [], policy).block_size == 10_000  # a zero estimate is clamped
    assert plan_samples(10 * US, [], policy).block_size == 1
    # A block sample costs block * per-call time.
    plan = plan_samples(2 * US, [], policy)
    assert plan.max_samples == int(5 * S // (25 * 2 * US))


def test_plan_respects_max_samples():
    plan = plan_samples(1 * MS, [], SamplingPolicy(max_samples=300))
    assert plan.max_samples == 300
    assert plan.looks == (8, 16, 32, 64, 128, 256)


def test_plan_required_is_the_largest_over_budgets():
    policy = SamplingPolicy()
    budgets = [LatencyBudget(10.0, 95), LatencyBudget(10.0, 99), ThroughputBudget(1.0)]
    plan = plan_samples(1 * MS, budgets, policy)
    assert plan.required_samples == min_n_zero_exceedances(99, plan.alpha_per_look)


# --- device ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("cpu", "cpu"),
        ("CPU", "cpu"),
        ("cuda", "cuda:0"),
        ("CUDA", "cuda:0"),
        (" cuda:1 ", "cuda:1"),
        ("cuda:12", "cuda:12"),
        ("mps", "mps"),
        ("xpu", "xpu:0"),
    ],
)
def test_normalize_device(given, want):
    assert normalize_device(given) == want


def test_normalize_device_uses_str_of_objects():
    class FakeTorchDevice:
        def __str__(self):
            return "cuda:3"

    assert normalize_device(FakeTorchDevice()) == "cuda:3"


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "cuda:-1", "", "cuda0", "tpu:0", 3])
def test_normalize_device_rejects_bad_names(bad):
    with pytest.raises(DeviceError, match="unknown device") as info:
        normalize_device(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "'cpu', 'cuda', 'cuda:N'" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("device", [None, "cpu", "CPU"])
def test_device_sync_cpu_needs_none(device):
    sync = device_sync(device)
    assert sync.device == "cpu"
    assert sync.method == "none"
    assert sync.synchronize is None


def test_device_sync_unsupported_kind():
    with pytest.raises(DeviceError, match="not supported yet"):
        device_sync("xpu")


def test_device_sync_bad_name():
    with pytest.raises(DeviceError, match="unknown device"):
        device_sync("gpu0")


def test_device_sync_cuda_without_cuda():
    torch = pytest.importorskip("torch", reason="device_sync('cuda') needs torch to check CUDA")
    if torch.cuda.is_available():
        sync = device_sync("cuda")
        assert sync.device == "cuda:0"
        assert sync.method == "cuda-synchronize"
        assert sync.synchronize is not None
        return
    with pytest.raises(DeviceError, match="CUDA is not available") as info:
        device_sync("cuda")
    assert "'cuda:0'" in str(info.value)


def test_measurement_from_samples_defaults_match_a_hand_built_one():
    samples = np.array([2 * MS, 4 * MS, 6 * MS], dtype=np.int64)
    notes = ["a note"]
    built = Measurement.from_samples(
        name="m",
        device="cpu",
        samples_ns=samples,
        timing_method="clock",
        gc_policy="gc",
        stop_reason="decided",
        alpha=0.01,
        notes=notes,
    )
    by_hand = Measurement(
        name="m",
        device="cpu",
        mode="measured",
        timing_method="clock",
        sync_method="none",
        block_size=1,
        samples_ns=samples,
        warmup_calls=0,
        warmup_ns=0,
        per_call_estimate_ns=4.0 * MS,  # the samples' mean
        gc_policy="gc",
        stop_reason="decided",
        alpha=0.01,
        looks=1,
        notes=["a note"],
    )
    assert built.to_record() == by_hand.to_record()
    assert built.samples_ns.dtype == np.int64
    assert built.verdicts == []
    assert built.threads == {}
    notes.append("later")  # the measurement keeps its own list
    assert built.notes == ["a note"]
