"""`prepare_model` and the `hwperf_model` fixture: a torch module made ready for
inference (eval mode, moved, cast, called under inference mode) with its size recorded;
plain callables on the CPU only; everything else refused with one line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _output import FAST_RUN

from pytest_hwperf.measure.models import ModelError, PreparedModel, prepare_model
from pytest_hwperf.plugin.fixtures import Hwperf
from pytest_hwperf.plugin.markers import TestSpec
from pytest_hwperf.plugin.options import Settings
from pytest_hwperf.records.codec import to_json

torch = pytest.importorskip("torch", reason="hwperf_model's torch paths need torch")


def linear() -> Any:
    """Linear(8, 4) in train mode: 8*4 weights + 4 biases = 36 parameters, 144 bytes fp32."""
    torch.manual_seed(0)
    module = torch.nn.Linear(8, 4)
    module.train()
    return module


# -- prepare_model: torch modules ------------------------------------------------------


def test_torch_module_is_put_in_eval_mode() -> None:
    module = linear()
    assert module.training
    prepared = prepare_model(module, "cpu")
    assert not module.training
    assert prepared.module is module


def test_parameters_and_bytes_are_exact() -> None:
    prepared = prepare_model(linear(), "cpu")
    assert prepared.parameters == 36
    assert prepared.parameter_bytes == 144
    assert to_json(prepared.info()) == {
        "name": "Linear",
        "device": "cpu",
        "dtype": "float32",
        "parameters": 36,
        "parameter_bytes": 144,
    }


def test_tied_parameters_are_counted_once() -> None:
    shared = torch.nn.Linear(4, 4, bias=False)
    prepared = prepare_model(torch.nn.Sequential(shared, shared), "cpu")
    assert prepared.parameters == 16
    assert prepared.parameter_bytes == 64


@pytest.mark.parametrize("dtype", [torch.float64, "float64", "torch.float64"])
def test_dtype_casts_the_weights(dtype: object) -> None:
    module = linear()
    prepared = prepare_model(module, "cpu", dtype)
    assert module.weight.dtype == torch.float64
    assert module.bias.dtype == torch.float64
    assert prepared.dtype == "float64"
    assert prepared.parameter_bytes == 36 * 8
    out = prepared(torch.ones(2, 8, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_calls_run_under_inference_mode() -> None:
    prepared = prepare_model(linear(), "cpu")
    x = torch.ones(3, 8)
    out = prepared(x)
    assert out.is_inference()
    assert not out.requires_grad
    assert out.shape == (3, 4)
    # The module itself is untouched: called directly it still builds autograd graphs.
    assert not prepared.module(x).is_inference()


def test_prepared_model_computes_what_the_module_computes() -> None:
    module = linear()
    with torch.no_grad():
        expected = module(torch.arange(8.0).reshape(1, 8))
    out = prepare_model(module, "cpu")(torch.arange(8.0).reshape(1, 8))
    assert torch.equal(out, expected)


@pytest.mark.parametrize("dtype", ["float65", "Float64", "device", "", 16, torch.Tensor])
def test_bad_dtype_is_refused_with_one_line(dtype: object) -> None:
    with pytest.raises(ModelError) as info:
        prepare_model(linear(), "cpu", dtype)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("hwperf_model: dtype must be a torch dtype")
    assert repr(dtype) in message


@pytest.mark.parametrize("dtype", [torch.int8, "int8"])
def test_integer_dtype_is_refused_with_a_model_error(dtype: object) -> None:
    with pytest.raises(ModelError):
        prepare_model(linear(), "cpu", dtype)


# -- prepare_model: plain callables ----------------------------------------------------


def predict(values: list[int]) -> int:
    return sum(values)


def test_plain_callable_is_accepted_for_the_cpu() -> None:
    prepared = prepare_model(predict, "cpu")
    assert isinstance(prepared, PreparedModel)
    assert prepared([1, 2, 3]) == 6
    assert prepared.__name__ == "predict"
    assert to_json(prepared.info()) == {
        "name": "predict",
        "device": "cpu",
        "dtype": None,
        "parameters": None,
        "parameter_bytes": None,
    }


def test_plain_callable_is_refused_for_a_gpu_with_one_line() -> None:
    with pytest.raises(ModelError) as info:
        prepare_model(predict, "cuda:0")
    message = str(info.value)
    assert "\n" not in message
    assert "runs on the CPU only" in message
    assert "'cuda:0'" in message
    assert "torch.nn.Module" in message


@pytest.mark.parametrize("model", [object(), 42, "resnet50"])
def test_non_callable_is_refused(model: object) -> None:
    with pytest.raises(ModelError) as info:
        prepare_model(model, "cpu")
    message = str(info.value)
    assert "\n" not in message
    assert "expected a torch.nn.Module or a callable" in message
    assert type(model).__name__ in message


def test_dtype_on_a_plain_callable_is_refused() -> None:
    with pytest.raises(ModelError, match="dtype applies to torch modules only"):
        prepare_model(predict, "cpu", torch.float16)


# -- Hwperf._device_for: which device a measurement synchronizes -----------------------


def handle(default: str | None) -> Hwperf:
    return Hwperf(Settings(), TestSpec(), [], default_device=lambda: default)


def test_device_for_prefers_explicit_then_model_then_fixture() -> None:
    prepared = prepare_model(predict, "cpu")
    assert handle("mps")._device_for(predict, "cuda:1") == "cuda:1"
    assert handle("mps")._device_for(prepared, None) == "cpu"
    assert handle("mps")._device_for(predict, None) == "mps"
    assert handle(None)._device_for(predict, None) is None


# -- the hwperf_model fixture, through pytest ------------------------------------------


def test_hwperf_model_records_the_model_in_the_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import torch

        def test_linear(device, hwperf_model, hwperf):
            model = hwperf_model(torch.nn.Linear(8, 4), device)
            out = hwperf(model, torch.ones(1, 8))
            assert out.is_inference()
            assert hwperf.last.model.parameters == 36
        """
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json")
    result.assert_outcomes(passed=1)
    (record,) = json.loads((pytester.path / "out.json").read_text())["measurements"]
    assert record["test_id"].endswith("::test_linear[cpu]")
    assert record["name"] == "Linear"
    assert record["device"] == "cpu"
    assert record["model"] == {
        "name": "Linear",
        "device": "cpu",
        "dtype": "float32",
        "parameters": 36,
        "parameter_bytes": 144,
    }


def test_one_prepared_model_is_recorded_for_a_wrapped_call(pytester: pytest.Pytester) -> None:
    """The test prepared one model and measures a lambda around it: still that model."""
    pytester.makepyfile(
        """
        import torch

        def test_wrapped(hwperf_model, hwperf):
            model = hwperf_model(torch.nn.Linear(8, 4), "cpu", dtype=torch.float64)
            x = torch.ones(1, 8, dtype=torch.float64)
            hwperf(lambda: model(x), name="wrapped")
        """
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json")
    result.assert_outcomes(passed=1)
    (record,) = json.loads((pytester.path / "out.json").read_text())["measurements"]
    assert record["name"] == "wrapped"
    assert record["model"]["parameters"] == 36
    assert record["model"]["parameter_bytes"] == 288
    assert record["model"]["dtype"] == "float64"


BAD_MODELS = """
import torch

def test_not_callable(hwperf_model):
    hwperf_model(object(), "cpu")

def test_bad_device(hwperf_model):
    hwperf_model(torch.nn.Linear(8, 4), "tpu")

def test_callable_on_gpu(hwperf_model):
    hwperf_model(sum, "cuda")

def test_fine(hwperf_model):
    assert hwperf_model(sum, "cpu")([1, 2]) == 3
"""


@pytest.mark.parametrize("measuring", [True, False], ids=["hwperf", "plain"])
def test_bad_models_fail_their_test_with_one_line(
    pytester: pytest.Pytester, measuring: bool
) -> None:
    pytester.makepyfile(test_bad=BAD_MODELS)
    reprec = pytester.inline_run(*(["--hwperf", *FAST_RUN] if measuring else []))
    reprec.assertoutcome(passed=1, failed=3)
    expected = {
        "test_not_callable": "hwperf_model: expected a torch.nn.Module or a callable, got object",
        "test_bad_device": "unknown device 'tpu'",
        "test_callable_on_gpu": "runs on the CPU only; got device 'cuda:0'",
    }
    for name, text in expected.items():
        report = reprec.matchreport(name, when="call")
        assert report.failed
        message = str(report.longrepr).strip()
        assert text in message, message
        assert "\n" not in message, message


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="CUDA is present here: no missing device to report"
)
def test_torch_module_on_a_missing_gpu_fails_with_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import torch

        def test_on_gpu(hwperf_model):
            hwperf_model(torch.nn.Linear(8, 4), "cuda")
        """
    )
    reprec = pytester.inline_run()
    reprec.assertoutcome(failed=1)
    message = str(reprec.matchreport("test_on_gpu", when="call").longrepr).strip()
    assert "\n" not in message, message
    assert "cuda:0" in message
