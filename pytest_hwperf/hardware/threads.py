"""The thread settings in force, recorded with every measurement.

torch's intra/inter-op thread counts are read only when torch is already imported
(reading them must not import it), native pools through threadpoolctl, and the
threading variables of the environment as they are.
"""

from __future__ import annotations

import os
import sys

from pytest_hwperf.hardware.probing import quiet_probe

__all__ = ["THREAD_ENV_PREFIXES", "thread_settings"]

THREAD_ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_")


def _native_pools() -> list[dict[str, object]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - a declared dependency
        return []
    pools: list[dict[str, object]] = []
    with quiet_probe():
        found = threadpool_info()
    for info in found:
        pools.append(
            {
                "user_api": info.get("user_api"),
                "internal_api": info.get("internal_api"),
                "num_threads": info.get("num_threads"),
                "version": info.get("version"),
            }
        )
    return pools


def thread_settings() -> dict[str, object]:
    """torch threads (when torch is loaded), native pools and the threading environment."""
    settings: dict[str, object] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        settings["torch_intra_op"] = int(torch.get_num_threads())
        settings["torch_inter_op"] = int(torch.get_num_interop_threads())
    settings["native_pools"] = _native_pools()
    settings["env"] = {
        key: value
        for key, value in sorted(os.environ.items())
        if key.startswith(THREAD_ENV_PREFIXES)
    }
    return settings
