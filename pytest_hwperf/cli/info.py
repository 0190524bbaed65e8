"""`hwperf info`: the machine as the plugin sees it (cores, memory, GPUs, threads,
the fingerprint) and how to lay out serving workers on it, as text or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_hwperf import __version__
from pytest_hwperf.cli._common import _count

if TYPE_CHECKING:
    from pytest_hwperf.cli._common import _Commands
    from pytest_hwperf.hardware.fingerprint import Fingerprint
    from pytest_hwperf.hardware.machine import Machine

__all__ = ["info_document", "info_lines", "serving_recommendations"]


_SMALL_REQUESTS_WHY = (
    "small requests gain little from intra-op threads; one single-threaded worker per "
    "core serves that many requests at once without contention"
)
_LARGE_MODEL_WHY = (
    "one request at a time, its operators split over every usable core (intra-op "
    "threads), gives the lowest latency per request"
)


def _layouts(cores: int) -> list[tuple[str, str, int, int, str]]:
    """(key, title, workers, threads per worker, why) for each recommended layout."""
    return [
        ("many_small_requests", "many small requests", cores, 1, _SMALL_REQUESTS_WHY),
        ("large_model_latency", "latency of large models", 1, cores, _LARGE_MODEL_WHY),
    ]


def serving_recommendations(usable_cores: int) -> dict[str, object]:
    """Workers x threads for serving on ``usable_cores`` cores (a simple rule for now).

    Both layouts use every usable core exactly once; more workers x threads than cores
    oversubscribes them and latency becomes a queue for the CPU.
    """
    cores = max(1, usable_cores)
    advice: dict[str, object] = {"usable_cores": cores}
    for key, _, workers, threads, why in _layouts(cores):
        advice[key] = {"workers": workers, "threads_per_worker": threads, "why": why}
    return advice


def info_document(
    machine: Machine,
    fingerprint: Fingerprint,
    libraries: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, object]:
    """What `hwperf info --json` prints: the machine, its fingerprint and the advice."""
    document = machine.to_record()
    document["fingerprint"] = fingerprint.to_record()
    document["recommendations"] = serving_recommendations(machine.cpu.usable_cores)
    document["libraries_loaded"] = dict(libraries or {})
    document["warnings"] = list(notes)
    return document


def _gib(nbytes: int | None) -> str:
    return "unknown" if nbytes is None else f"{nbytes / (1 << 30):.1f} GiB"


def _cpu_lines(machine: Machine) -> list[str]:
    cpu = machine.cpu
    smt = {True: "on", False: "off", None: "unknown"}[cpu.smt]
    physical = "unknown (psutil could not tell)" if cpu.physical is None else str(cpu.physical)
    return [
        "CPU",
        f"  model:     {cpu.model} ({cpu.isa_level or 'ISA level unknown'}), SMT {smt}",
        f"  logical:   {cpu.logical} (os.cpu_count(): the host's count)",
        f"  physical:  {physical} (psutil)",
        f"  usable:    {cpu.usable_cores} ({cpu.usable_source})",
    ]


def _memory_lines(machine: Machine) -> list[str]:
    memory = machine.memory
    limit = "none" if memory.cgroup_limit_bytes is None else _gib(memory.cgroup_limit_bytes)
    return [
        "Memory",
        f"  total:        {_gib(memory.total_bytes)}",
        f"  effective:    {_gib(memory.effective_bytes)}",
        f"  cgroup limit: {limit} ({memory.cgroup_source})",
        f"  available:    {_gib(memory.available_bytes)}",
    ]


def _gpu_lines(machine: Machine) -> list[str]:
    report = machine.gpus
    lines = ["GPU"]
    visible = report.visible
    if not visible:
        lines.append(f"  no GPU: {report.reason or 'none found'}")
    for device in visible:
        cc = device.compute_capability
        facts = [_gib(device.memory_total_bytes)]
        if cc is not None:
            facts.append(f"compute {cc[0]}.{cc[1]}")
        if device.multiprocessors is not None:
            facts.append(f"{device.multiprocessors} SMs")
        if device.mig_mode is not None:
            facts.append(f"MIG {'on' if device.mig_mode else 'off'}")
        facts.append(device.uuid or "no UUID")
        lines.append(f"  cuda:{device.cuda_index}  {device.name}, {', '.join(facts)}")
    hidden = sum(
        1
        for gpu in report.gpus
        if all(device.cuda_index is None for device in (gpu, *gpu.mig_devices))
    )
    if visible and hidden > 0:
        lines.append(
            f"  ({hidden} more hidden by CUDA_VISIBLE_DEVICES={report.cuda_visible_devices})"
        )
    lines.append(f"  detected by: {report.source}")
    if report.driver_version or report.cuda_driver_version:
        lines.append(
            f"  driver: {report.driver_version or 'unknown'}, "
            f"CUDA {report.cuda_driver_version or 'unknown'}"
        )
    return lines


def _pool_text(pool: dict[str, object]) -> str:
    name = str(pool.get("internal_api"))
    if pool.get("version"):
        name += f" {pool['version']}"
    if pool.get("user_api") != pool.get("internal_api"):
        name += f" ({pool.get('user_api')})"
    return f"{name}: {pool.get('num_threads')} threads"


def _thread_lines(machine: Machine, libraries: dict[str, str]) -> list[str]:
    threads = machine.threads
    lines = ["Threads"]
    if "torch_intra_op" in threads:
        lines.append(
            f"  torch:        {threads['torch_intra_op']} intra-op, "
            f"{threads['torch_inter_op']} inter-op"
        )
    else:
        lines.append(f"  torch:        not loaded ({libraries.get('torch', 'not imported')})")
    pools = threads.get("native_pools")
    described = [
        _pool_text(pool)
        for pool in (pools if isinstance(pools, list) else [])
        if isinstance(pool, dict)
    ]
    lines.append(f"  native pools: {'; '.join(described) or 'none loaded'}")
    env = threads.get("env")
    settings = [f"{k}={v}" for k, v in env.items()] if isinstance(env, dict) else []
    lines.append(
        f"  environment:  {' '.join(settings) or 'no OMP_/MKL_/OPENBLAS_/KMP_/GOMP_ variables'}"
    )
    return lines


def _software_line(machine: Machine) -> str:
    software = machine.software
    parts = [
        f"Python {software.get('python')} ({software.get('python_implementation')}, "
        f"{software.get('platform')} {software.get('machine')})"
    ]
    for name in ("pytest", "numpy", "torch"):
        parts.append(f"{name} {software.get(name) or 'not installed'}")
    return "Software: " + ", ".join(parts)


def info_lines(
    machine: Machine,
    fingerprint: Fingerprint,
    libraries: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> list[str]:
    """The readable report `hwperf info` prints."""
    libraries = libraries or {}
    cores = max(1, machine.cpu.usable_cores)
    lines = [f"pytest-hwperf {__version__} on {machine.hostname}"]
    lines += _cpu_lines(machine)
    lines += _memory_lines(machine)
    lines += _gpu_lines(machine)
    lines += _thread_lines(machine, libraries)
    lines.append(_software_line(machine))
    lines += [
        "Fingerprint",
        f"  digest: {fingerprint.digest}",
        f"  label:  {fingerprint.label}",
        f"Serving on {cores} usable core{'s' if cores != 1 else ''} (workers x threads)",
    ]
    for _, title, workers, threads, why in _layouts(cores):
        lines.append(
            f"  {title}: {_count(workers, 'worker')} x {_count(threads, 'thread')} -- {why}"
        )
    lines += [f"warning: {note}" for note in notes]
    return lines


def _info(args: argparse.Namespace) -> int:
    # Nothing here may end in a traceback: a machine that cannot be read is a one-line
    # error, a degraded reading (a malformed cgroup file) a warning line.
    try:
        from pytest_hwperf.hardware.cpu import read_affinity
        from pytest_hwperf.hardware.fingerprint import fingerprint
        from pytest_hwperf.hardware.machine import detect_machine, load_measured_libraries

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Before torch loads: its OpenMP runtime may pin this thread to one CPU.
            affinity = read_affinity()
            libraries = load_measured_libraries()
            machine = detect_machine(affinity=affinity)
            found = fingerprint(machine)
        notes = [str(w.message) for w in caught]
        if args.json:
            document = info_document(machine, found, libraries, notes)
            text = json.dumps(document, indent=2, sort_keys=False, default=str)
        else:
            text = "\n".join(info_lines(machine, found, libraries, notes))
    except Exception as exc:
        print(f"hwperf info: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0


def register(commands: _Commands) -> None:
    """Add `info` to the `hwperf` subcommands."""
    info = commands.add_parser(
        "info", help="Show cores, memory, GPUs, threads and the fingerprint, as measured here"
    )
    info.add_argument("--json", action="store_true", help="Print the same as one JSON object")
    info.set_defaults(run=_info)
