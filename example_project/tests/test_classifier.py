"""The image classifier: single-image latency at p95 and p99 on every device present,
batch throughput on the CPU, and half-precision batch throughput on a GPU."""

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
#
# Does this model need a GPU? The test runs on every device present (the `device`
# fixture; the CI jobs choose them with --hwperf-devices), against the same budgets, so
# the summary's device advice can answer from the measurements: on the CPU, well within.
@pytest.mark.latency(ms=100, percentile=95)
@pytest.mark.latency(ms=250, percentile=99)
def test_single_image_latency(hwperf, device, hwperf_model):
    """One request, one image: decode-side preprocessing (on the CPU, wherever the model
    runs) and the forward pass on `device`, each within the p95 and the p99 budget."""
    model = hwperf_model(build_classifier(seed=0), device)  # eval, moved, inference mode
    image = random_images(1, seed=0)
    with torch.inference_mode():
        x = hwperf(preprocess, image, name="preprocess", device="cpu")
    logits = hwperf(model, x.to(device), name="predict")  # synchronises `device`

    assert x.shape == (1, 3, 32, 32)
    _assert_probabilities(logits.float().softmax(dim=-1).cpu(), 1)
    assert hwperf.last.name == "predict"
    assert hwperf["predict"].device == device


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


# GPU serving: half precision, 256 images per call. Runs only where CUDA is (the GPU CI
# job); elsewhere `hardware` skips it with the reason, and the CPU job deselects it with
# -m "not gpu". Under --hwperf-strict-hardware (the GPU job) a runner that lost its GPU
# fails it instead of going green by skipping. The device memory budget is torch's
# allocator peak for tensors (weights, the batch, activations: tens of MB here), so a
# change that kept every activation in float32 would still pass; a leak would not.
@pytest.mark.gpu
@pytest.mark.hardware(gpu=True, min_gpu_memory_gb=4)
@pytest.mark.throughput(min_per_s=20_000, batch_size=256)
@pytest.mark.memory(gpu_mb=1024)
def test_gpu_batch_throughput_fp16(hwperf, hwperf_model):
    """Batched GPU serving in float16: 256 images per call must keep up 20,000 images/s,
    within 1 GiB of device memory."""
    model = hwperf_model(build_classifier(seed=0), "cuda", dtype="float16")
    with torch.inference_mode():
        batch = preprocess(random_images(256, seed=2)).to("cuda", torch.float16)
    logits = hwperf(model, batch, name="predict-256-fp16")

    assert logits.dtype == torch.float16
    _assert_probabilities(logits.float().softmax(dim=-1).cpu(), 256)
