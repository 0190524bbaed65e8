"""The text embedder served by a real MLServer (serving/embedder/): one search request
over HTTP, and its parallel workers x threads swept under a closed-loop load."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the served embedder needs PyTorch (pip install torch)")
if find_spec("mlserver") is None:  # MLServer runs as a subprocess; it is never imported here
    pytest.skip(
        "the served embedder needs MLServer (pip install 'pytest-hwperf[mlserver]')",
        allow_module_level=True,
    )

from models.embedder import EMBEDDING_DIM, build_embedder, featurize  # noqa: E402

from pytest_hwperf import WorkerConfig  # noqa: E402

# The model folder MLServer serves: model-settings.json and the runtime (runtime.py)
# that builds models/embedder.py's model in each worker.
MODEL_DIR = Path(__file__).resolve().parent.parent / "serving" / "embedder"

QUERIES = [
    "cheap flights to lisbon in may",
    "how to reset a router",
    "best vegetarian lasagne recipe",
    "python dataclass frozen default factory",
]

# The serving configs swept: parallel workers x torch threads per worker.
GRID = [WorkerConfig(workers, threads) for workers in (1, 2, 4) for threads in (1, 2)]


@pytest.fixture(scope="module")
def reference():
    """The embeddings of QUERIES computed in this process, to check the server's."""
    with torch.inference_mode():
        return build_embedder(seed=0)(featurize(QUERIES)).numpy()


@pytest.fixture
def served_config(worker_config, hwinfo):
    """The grid case, if this machine can serve it: a config with more threads in all
    than usable cores is skipped here (the oversubscription gate would fail it unmeasured;
    a `workers` marker's declared config is failed instead, as test_fraud.py's would)."""
    workers, threads, cores = worker_config.workers, worker_config.threads, hwinfo.usable_cores
    if worker_config.total > cores:
        pytest.skip(
            f"{workers} worker{'s' * (workers > 1)} x {threads} thread{'s' * (threads > 1)}"
            f" = {worker_config.total} > {cores} usable core{'s' * (cores > 1)}: not swept here"
        )
    return worker_config


# One search request end to end: the query text over HTTP/JSON to one single-threaded
# MLServer worker, featurized and embedded there, and the embedding back. Quiet p95
# 2.8-4 ms on the shared 2-core machine, 9-16 ms with one or two busy neighbours; 50 ms
# leaves room for that (the model alone is ~0.1 ms: the rest is HTTP, JSON, the
# server's event loop and its hand-off to the worker).
@pytest.mark.workers(1, threads=1)
@pytest.mark.latency(ms=50, percentile=95)
def test_search_request_latency(hwperf, mlserver, reference):
    """One query, timed from the client's send to the decoded reply."""
    import numpy as np

    server = mlserver(MODEL_DIR)
    embedding = hwperf(server.infer, np.array(QUERIES[:1]), name="served-query")

    assert embedding.shape == (1, EMBEDDING_DIM)
    # The server's embedding is the one this process computes: same model, same seed.
    assert np.allclose(embedding[0], reference[0], atol=1e-5)
    assert len(server.worker_pids) == 1


# Each config under a closed loop of 2 requests in flight per worker, each request the
# four queries; the sweep in the summary lists requests/s and p95 per config and
# recommends the fastest within the latency budget. p95 6-20 ms per config on the shared
# 2-core machine (the clients share it), up to 27 ms with one or two busy neighbours and
# 48 ms (1 worker x 2 threads) while other test suites ran too: 100 ms.
@pytest.mark.latency(ms=100, percentile=95)
@pytest.mark.parametrize("worker_config", GRID, ids=[c.id for c in GRID], indirect=True)
def test_served_sweep(mlserver, served_config, reference):
    """The embedder behind MLServer, `parallel_workers` x threads from the grid case."""
    import numpy as np

    server = mlserver(MODEL_DIR)
    assert len(server.worker_pids) == served_config.workers
    texts = np.array(QUERIES)
    assert np.allclose(server.infer(texts), reference, atol=1e-5)

    run = server.load(texts, concurrency=2 * served_config.workers, seconds=2.0, name="serve-4")

    assert run.mode == "closed"
    assert run.concurrency == 2 * served_config.workers
    assert run.requests > 0
    assert run.errors == 0
