"""Models made ready for inference measurement: `hwperf_model(model, device, dtype=None)`.

A torch module is put in eval mode, moved (and cast, when asked) to the device, and
each call runs under `torch.inference_mode()` (no autograd bookkeeping, as in serving).
Its parameter count and bytes go into the reports. A plain callable (a scikit-learn
`predict`, a numpy function) is accepted for the CPU as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from pytest_hwperf.records.types import ModelRecord

__all__ = [
    "ModelError",
    "PreparedModel",
    "in_same_torch_mode",
    "is_torch_module",
    "prepare_model",
]

T = TypeVar("T")


class ModelError(ValueError):
    """The model cannot be prepared as asked; the message says why, in one line."""


def is_torch_module(obj: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _dtype(torch: Any, dtype: object) -> Any:
    if dtype is None:
        return None
    found = dtype
    if isinstance(dtype, str):
        found = getattr(torch, dtype.removeprefix("torch."), None)
    if isinstance(found, torch.dtype):
        if found.is_floating_point or found.is_complex:
            return found
        raise ModelError(
            f"hwperf_model: dtype {dtype!r} is not a floating-point dtype; a module's"
            " parameters can be cast to float or complex dtypes only (quantize it instead)"
        )
    raise ModelError(
        f"hwperf_model: dtype must be a torch dtype such as torch.float16, got {dtype!r}"
    )


class PreparedModel:
    """A model ready to call: `prepared(*inputs)` runs it the way it is served."""

    def __init__(
        self,
        target: Callable[..., Any],
        *,
        name: str,
        device: str,
        dtype: str | None,
        parameters: int | None,
        parameter_bytes: int | None,
        inference_mode: Callable[[], Any] | None,
    ) -> None:
        self.module = target
        self.name = name
        self.device = device
        self.dtype = dtype
        self.parameters = parameters
        self.parameter_bytes = parameter_bytes
        self._inference_mode = inference_mode
        self.__name__ = name  # hwperf names a measurement after its target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._inference_mode is None:
            return self.module(*args, **kwargs)
        with self._inference_mode():
            return self.module(*args, **kwargs)

    def info(self) -> ModelRecord:
        """What the reports record about the model."""
        return ModelRecord(
            name=self.name,
            device=self.device,
            dtype=self.dtype,
            parameters=self.parameters,
            parameter_bytes=self.parameter_bytes,
        )


def prepare_model(model: object, device: str, dtype: object = None) -> PreparedModel:
    """Make `model` ready for inference on `device` (normalised: "cpu", "cuda:0", ...)."""
    if is_torch_module(model):
        import torch

        module: Any = model
        target_dtype = _dtype(torch, dtype)
        module.eval()
        module.to(device=torch.device(device), dtype=target_dtype)
        params = list(module.parameters())
        return PreparedModel(
            module,
            name=type(module).__name__,
            device=device,
            dtype=str(target_dtype or (params[0].dtype if params else None)).removeprefix("torch."),
            parameters=sum(p.numel() for p in params),
            parameter_bytes=sum(p.numel() * p.element_size() for p in params),
            inference_mode=torch.inference_mode,
        )
    if not callable(model):
        raise ModelError(
            f"hwperf_model: expected a torch.nn.Module or a callable, got {type(model).__name__}"
        )
    if device != "cpu":
        raise ModelError(
            f"hwperf_model: a plain callable ({type(model).__name__}) runs on the CPU only;"
            f" got device {device!r} (pass a torch.nn.Module to measure on {device})"
        )
    if dtype is not None:
        raise ModelError("hwperf_model: dtype applies to torch modules only")
    name = getattr(model, "__name__", None) or type(model).__name__
    return PreparedModel(
        model,
        name=str(name),
        device="cpu",
        dtype=None,
        parameters=None,
        parameter_bytes=None,
        inference_mode=None,
    )


def in_same_torch_mode(target: Callable[[], T]) -> Callable[[], T]:
    """`target`, called later (to profile it) in the autograd mode it was measured in.

    A test that measures inside `with torch.inference_mode():` has left that block by
    the time its failure is profiled; without the same mode, the target's inference
    tensors would meet autograd and raise.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return target
    inference = bool(torch.is_inference_mode_enabled())
    grad = bool(torch.is_grad_enabled())
    if not inference and grad:
        return target  # torch's defaults: nothing to restore, nothing to add to a profile

    def again() -> T:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return target()

    return again
