"""The text embedder: per-request latency and bulk throughput."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the embedder tests need PyTorch (pip install torch)")

from models.embedder import EMBEDDING_DIM, N_FEATURES, build_embedder, featurize  # noqa: E402

QUERIES = [
    "cheap flights to lisbon in may",
    "how to reset a router",
    "best vegetarian lasagne recipe",
    "python dataclass frozen default factory",
]


@pytest.fixture(scope="module")
def embedder():
    return build_embedder(seed=0)


@pytest.mark.latency(ms=1, percentile=95)
def test_query_latency(hwperf, embedder):
    """One search request: featurize the query text, embed it, and both end to end."""

    def embed_query(texts):
        return embedder(featurize(texts))

    with torch.inference_mode():
        features = hwperf(featurize, QUERIES[:1], name="featurize")
        embedding = hwperf(embedder, features, name="embed")
        end_to_end = hwperf(embed_query, QUERIES[:1], name="end-to-end")
        batch = embedder(featurize(QUERIES))

    assert features.shape == (1, N_FEATURES)
    assert embedding.shape == end_to_end.shape == (1, EMBEDDING_DIM)
    # Embeddings are unit vectors, and a query embeds the same alone or in a batch.
    assert torch.allclose(batch.norm(dim=-1), torch.ones(len(QUERIES)), atol=1e-5)
    assert torch.allclose(embedding[0], batch[0], atol=1e-5)
    # Each named measurement is recorded, and judged against the budget, on its own.
    assert list(hwperf.results) == ["featurize", "embed", "end-to-end"]


@pytest.mark.throughput(min_per_s=2_000, batch_size=256)
def test_bulk_throughput(hwperf, device, hwperf_model):
    """Re-indexing a corpus: 256 documents per call, on every device present (the
    `device` fixture); hwperf_model puts the model in eval and inference mode there, and
    the measurement synchronises the device."""
    model = hwperf_model(build_embedder(seed=0), device)
    features = torch.rand(256, N_FEATURES, generator=torch.Generator().manual_seed(0))
    embeddings = hwperf(model, features.to(device), name="embed-256")

    assert embeddings.shape == (256, EMBEDDING_DIM)
    assert torch.isfinite(embeddings).all()
