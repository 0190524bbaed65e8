"""The fraud detector (scikit-learn trees): model quality, one request in its serving
config, batch re-scoring within a memory budget, and a pool of serving workers."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "sklearn", reason="the fraud detector tests need scikit-learn (pip install scikit-learn)"
)

from models.fraud import N_FEATURES, fraud_probability, make_transactions, serving_model


@pytest.fixture(scope="module")
def holdout():
    """Transactions the model was not trained on (another seed)."""
    return make_transactions(5000, seed=1)


def test_detector_quality(holdout):
    """Not a performance test: the model ranks fraud well enough to serve."""
    from sklearn.metrics import roc_auc_score

    x, y = holdout
    assert 0.05 < y.mean() < 0.2
    assert roc_auc_score(y, fraud_probability(x)) >= 0.75


# The serving config this model ships with: 2 workers x 1 thread, one single-threaded
# worker per core (small requests gain nothing from intra-op threads). worker_config
# applies the 1 thread in this process too, so the latency measured is one worker's.
# Quiet p95 0.7-0.8 ms on one thread, up to 6 ms with busy neighbours on a shared 2-core
# machine; 20 ms, a card-authorisation-sized budget, leaves room for that. The CPU meets
# it many times over: this model needs no GPU.
@pytest.mark.workers(2, threads=1)
@pytest.mark.latency(ms=20, percentile=95)
def test_score_one_transaction(hwperf, hwperf_model, worker_config, holdout):
    """One authorisation request: score one transaction, as one serving worker does."""
    from threadpoolctl import threadpool_info

    model = hwperf_model(fraud_probability)  # a plain callable, served on the CPU
    x, _ = holdout
    p = hwperf(model, x[:1], name="score-1")

    assert p.shape == (1,)
    assert 0.0 <= p[0] <= 1.0
    assert p[0] == pytest.approx(fraud_probability(x[:2])[0])  # the same alone as in a batch
    assert (worker_config.workers, worker_config.threads) == (2, 1)
    # The tree ensemble's OpenMP pool runs on the worker's one thread, as it will in serving.
    openmp = [pool for pool in threadpool_info() if pool["user_api"] == "openmp"]
    assert openmp
    assert all(pool["num_threads"] == 1 for pool in openmp)


# Quiet: 1,000 rows in 2.5-3 ms (~350,000/s) on the trees' two OpenMP threads. With a
# busy neighbour a call waits for the thread that lost its core (means of 30-40 ms were
# measured, single calls up to 0.7 s), so the floor is 5,000 rows/s (200 ms per call).
# The RAM budget covers the whole process (torch is loaded too, ~350 MB); what it guards
# against is a batch path that copies the data many times over.
@pytest.mark.memory(rss_mb=4000)
@pytest.mark.throughput(min_per_s=5_000, batch_size=1000)
def test_rescore_batch(hwperf, holdout):
    """Nightly re-scoring: 1,000 transactions per call."""
    x, _ = holdout
    probs = hwperf(fraud_probability, x[:1000], name="rescore-1000")

    assert probs.shape == (1000,)
    assert ((probs >= 0) & (probs <= 1)).all()


# One single-threaded worker per usable core (at most 4, to keep the test short): the
# serving layout for a light CPU model. hwinfo.usable_cores is the affinity capped by the
# container's CPU quota, not os.cpu_count(). Each request is timed from send to reply,
# queueing and the pipe included, so the budgets are those of the service, not the model.
@pytest.mark.hardware(min_cores=2)
@pytest.mark.latency(ms=100, percentile=95)
@pytest.mark.throughput(min_per_s=100)
def test_serve_from_worker_processes(worker_pool, hwinfo, holdout):
    """A pool of serving worker processes under a closed-loop load, one request in flight
    per worker."""
    workers = min(hwinfo.usable_cores, 4)
    pool = worker_pool(serving_model, workers=workers, threads=1)
    x, _ = holdout
    requests = [x[i : i + 1] for i in range(64)]
    run = pool.run(requests, concurrency=workers, duration_s=2.0, name="serve-1")

    assert run.requests >= workers
    assert len(run.per_worker_counts) == workers
    assert all(count > 0 for count in run.per_worker_counts)
    assert x.shape[1] == N_FEATURES
