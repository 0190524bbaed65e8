"""Where pytest-xdist workers run: disjoint CPU sets and one GPU each.

Under `pytest -n N --hwperf`, N workers measuring at once on shared cores would time
each other's contention, and every worker would pick cuda:0 (as `-n auto` on a GPU box
did). Each worker therefore pins itself, before the conftests import torch, to its own
contiguous share of the usable CPUs, limits its thread pools to that share, and sees
one GPU (by `CUDA_VISIBLE_DEVICES`) when there are any. With more workers than CPUs,
shares cannot be disjoint: workers then get one CPU each, round robin, and the
placement says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

__all__ = ["Placement", "apply_placement", "split_cpus", "xdist_placement"]

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def split_cpus(cpus: Sequence[int], parts: int) -> tuple[tuple[int, ...], ...]:
    """Split `cpus` into `parts` disjoint contiguous runs (sorted); the first
    `len(cpus) % parts` runs get one CPU more. Raises ValueError with fewer CPUs than parts."""
    ordered = sorted(set(cpus))
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    if len(ordered) < parts:
        from pytest_hwperf.hardware.cpu import format_cpu_list

        raise ValueError(
            f"cannot pin {parts} workers to disjoint CPU sets: only {len(ordered)}"
            f" CPU{'s' if len(ordered) != 1 else ''} ({format_cpu_list(ordered)})"
        )
    base, extra = divmod(len(ordered), parts)
    sets: list[tuple[int, ...]] = []
    start = 0
    for index in range(parts):
        size = base + (1 if index < extra else 0)
        sets.append(tuple(ordered[start : start + size]))
        start += size
    return tuple(sets)


@dataclass(frozen=True)
class Placement:
    """One xdist worker's share."""

    worker: str
    index: int
    count: int
    cpus: tuple[int, ...]
    disjoint: bool
    cuda_visible_devices: str | None  # None: left as it was (no GPU to assign)

    def to_record(self) -> dict[str, object]:
        return {
            "xdist_worker": self.worker,
            "cpus": list(self.cpus),
            "disjoint": self.disjoint,
            "cuda_visible_devices": self.cuda_visible_devices,
        }


def xdist_placement(
    worker: str, count: int, cpus: Sequence[int], gpu_ids: Sequence[str] = ()
) -> Placement:
    """The share of xdist worker `worker` ("gw3") of `count`: its CPUs and its GPU.

    `gpu_ids` are the visible GPUs as `CUDA_VISIBLE_DEVICES` entries (UUIDs or indices);
    worker i gets gpu_ids[i % len(gpu_ids)].
    """
    index = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0
    ordered = sorted(set(cpus))
    if count <= len(ordered):
        share, disjoint = split_cpus(ordered, count)[index % count], True
    else:
        share, disjoint = (ordered[index % len(ordered)],), False
    gpu = gpu_ids[index % len(gpu_ids)] if gpu_ids else None
    return Placement(worker, index, count, share, disjoint, gpu)


def apply_placement(placement: Placement, environ: MutableMapping[str, str] | None = None) -> None:
    """Pin this process to the placement's CPUs, limit thread pools to them (through the
    environment, read when OpenMP, MKL and OpenBLAS start) and select its GPU."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, placement.cpus)
    for name in _THREAD_VARS:
        env[name] = str(len(placement.cpus))
    if placement.cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = placement.cuda_visible_devices


def xdist_worker(environ: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """("gw0", worker count) inside a pytest-xdist worker, else None."""
    env = os.environ if environ is None else environ
    worker, count = env.get("PYTEST_XDIST_WORKER"), env.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count or not count.isdigit():
        return None
    return worker, int(count)
