"""`CUDA_VISIBLE_DEVICES` applied the way CUDA applies it, and CUDA devices matched to
NVML's by UUID: which of the GPUs NVML lists this process's CUDA will see, and under
which index (`GpuInfo.cuda_index`).

Pure functions of their inputs (the environment is passed in); the GPU records are
hardware/gpu.py's, which re-exports the public names here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_hwperf.hardware.gpu import GpuInfo

__all__ = ["match_by_uuid", "parse_cuda_visible_devices", "visible_devices", "with_cuda_indices"]


def _strtoul(text: str) -> int:
    """The leading integer of an entry, as CUDA's strtoul-like parse reads it ("1gpu" is
    1); -1 when there is none."""
    end = 0
    while end < len(text) and (text[end].isdigit() or (end == 0 and text[end] in "+-")):
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return -1


def parse_cuda_visible_devices(value: str | None) -> list[int] | list[str] | None:
    """`CUDA_VISIBLE_DEVICES` as CUDA reads it: None when unset (every device), else the
    ordinals or the GPU-/MIG- UUID prefixes it selects, in order.

    The first entry decides the form. An entry that is not of that form (a negative or
    non-numeric ordinal, "NoDevFiles") ends the list; a repeated entry selects nothing
    at all. Ordinals past the device count and unmatched UUIDs are cut in
    `visible_devices`, where the devices are known. Follows torch's
    `_parse_visible_devices`, which mirrors the CUDA runtime.
    """
    if value is None:
        return None
    entries = [entry.strip() for entry in value.split(",")]
    prefix = next((p for p in ("GPU-", "MIG-") if entries[0].startswith(p)), None)
    if prefix is not None:
        uuids: list[str] = []
        for entry in entries:
            if not entry.startswith(prefix):
                break
            if entry in uuids:
                return []
            uuids.append(entry)
        return uuids
    ordinals: list[int] = []
    for entry in entries:
        ordinal = _strtoul(entry)
        if ordinal < 0:
            break
        if ordinal in ordinals:
            return []
        ordinals.append(ordinal)
    return ordinals


def _by_uuid_prefix(prefix: str, candidates: Sequence[GpuInfo]) -> GpuInfo | None:
    """The one device whose UUID starts with prefix; None when none or several do
    (CUDA treats an ambiguous prefix as invalid)."""
    matches = [d for d in candidates if d.uuid is not None and d.uuid.startswith(prefix)]
    return matches[0] if len(matches) == 1 else None


def visible_devices(environ: Mapping[str, str], gpus: Sequence[GpuInfo]) -> list[GpuInfo]:
    """The devices CUDA will see under environ's `CUDA_VISIBLE_DEVICES`, in CUDA's order,
    each a copy with `cuda_index` set.

    gpus are in NVML order, which is PCI bus order. Unset means all of them in that
    order: CUDA enumerates in PCI bus order only under `CUDA_DEVICE_ORDER=PCI_BUS_ID`
    and "fastest first" otherwise, which agrees on machines of identical GPUs (ties go
    by bus) but not always on mixed ones; set `CUDA_DEVICE_ORDER=PCI_BUS_ID` where the
    exact mapping matters. Ordinals index that order too. GPU-<uuid> entries match
    UUID prefixes; MIG-<uuid> entries match the MIG instances in `GpuInfo.mig_devices`.
    An entry that matches nothing, or several devices, ends the list, as in CUDA.
    (With MIG enabled and the variable unset, CUDA enumerates MIG instances; this
    lists the whole GPUs.)
    """
    selection = parse_cuda_visible_devices(environ.get("CUDA_VISIBLE_DEVICES"))
    chosen: list[GpuInfo] = []
    if selection is None:
        chosen = list(gpus)
    elif selection and isinstance(selection[0], str):
        migs = [m for gpu in gpus for m in gpu.mig_devices]
        candidates = migs if selection[0].startswith("MIG-") else list(gpus)
        for entry in selection:
            device = _by_uuid_prefix(str(entry), candidates)
            if device is None:
                break
            if device in chosen:
                return []
            chosen.append(device)
    else:
        for ordinal in selection:
            if not isinstance(ordinal, int) or ordinal >= len(gpus):
                break
            chosen.append(gpus[ordinal])
    return [replace(device, cuda_index=i) for i, device in enumerate(chosen)]


def _normalized_uuid(uuid: str) -> list[str]:
    uuid = uuid.strip().lower()
    if uuid.startswith(("gpu-", "mig-")):
        return [uuid]
    # torch's device properties give the bare UUID, without the GPU-/MIG- prefix.
    return [f"gpu-{uuid}", f"mig-{uuid}"]


def match_by_uuid(nvml_gpus: Sequence[GpuInfo], cuda_uuids: Sequence[str]) -> list[GpuInfo | None]:
    """For each CUDA device (position = CUDA index), the NVML GPU or MIG instance with
    the same UUID, a copy with `cuda_index` set; None where NVML has no such device.

    This is how a caller that already has CUDA initialized (the test's own torch)
    maps `cuda:N` to NVML's facts exactly, whatever the device order. UUIDs match
    with or without their "GPU-"/"MIG-" prefix, ignoring case.
    """
    by_uuid = {
        device.uuid.lower(): device
        for gpu in nvml_gpus
        for device in (gpu, *gpu.mig_devices)
        if device.uuid is not None
    }
    matched: list[GpuInfo | None] = []
    for cuda_index, uuid in enumerate(cuda_uuids):
        device = next((by_uuid[u] for u in _normalized_uuid(uuid) if u in by_uuid), None)
        matched.append(None if device is None else replace(device, cuda_index=cuda_index))
    return matched


def with_cuda_indices(gpus: Iterable[GpuInfo], visible: Sequence[GpuInfo]) -> tuple[GpuInfo, ...]:
    """gpus with the cuda_index of each visible device (GPU or MIG instance) set."""
    index_of = {(d.index, d.uuid): d.cuda_index for d in visible}
    return tuple(
        replace(
            gpu,
            cuda_index=index_of.get((gpu.index, gpu.uuid)),
            mig_devices=tuple(
                replace(m, cuda_index=index_of.get((m.index, m.uuid))) for m in gpu.mig_devices
            ),
        )
        for gpu in gpus
    )
