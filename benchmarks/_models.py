"""Picklable model factories for the benchmarks' worker pools (spawned workers import
this module by name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def make_mlp() -> Callable[[Any], float]:
    """A small torch MLP (batch 32, 512 -> 1024 -> 512), as in PEERS.md's table."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 512)
    ).eval()

    def serve(x: Any) -> float:
        with torch.inference_mode():
            return float(model(x).sum())

    return serve
