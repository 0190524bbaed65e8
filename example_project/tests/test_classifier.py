"""The image classifier: single-image latency at p95 and p99, batch throughput."""

from __future__ import annotations

import pytest

torch = pytest.importorskip(
    "torch", reason="the image classifier tests need PyTorch (pip install torch)"
)

from models.classifier import N_CLASSES, build_classifier, preprocess, random_images  # noqa: E402


@pytest.fixture(scope="module")
def classifier():
    return build_classifier(seed=0)


def _assert_probabilities(probs, n):
    assert probs.shape == (n, N_CLASSES)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert torch.allclose(probs.sum(dim=-1), torch.ones(n), atol=1e-5)


# Wide budgets for a ~0.2 ms forward pass, on purpose. torch runs each convolution on
# all cores (OpenMP), so a call waits for its slowest thread; on a shared 2-core CI
# machine a thread that loses its core stalls the call for whole 4 ms scheduler ticks.
# Measured there: predict p95 0.2-0.4 ms when quiet, 48-118 ms when a neighbour was busy.
# On a dedicated serving box with threads pinned (OMP_NUM_THREADS), tighten them.
@pytest.mark.latency(ms=100, percentile=95)
@pytest.mark.latency(ms=250, percentile=99)
def test_single_image_latency(hwperf, classifier):
    """One request, one image: decode-side preprocessing and the forward pass, each
    within the p95 and the p99 budget."""
    image = random_images(1, seed=0)
    with torch.inference_mode():
        x = hwperf(preprocess, image, name="preprocess")
        probs = hwperf(classifier.predict_proba, x, name="predict")

    assert x.shape == (1, 3, 32, 32)
    _assert_probabilities(probs, 1)
    assert hwperf.last.name == "predict"


@pytest.mark.throughput(min_per_s=100, batch_size=32)
@pytest.mark.latency(ms=250, percentile=50)
def test_batch_throughput(hwperf, classifier):
    """Batched serving: 32 images per call must keep up the rate, with a median batch latency
    within budget."""
    images = random_images(32, seed=1)

    def classify(batch):
        return classifier.predict_proba(preprocess(batch))

    with torch.inference_mode():
        probs = hwperf(classify, images, name="preprocess+predict-32")

    _assert_probabilities(probs, 32)
