"""The thread settings in force, recorded with every measurement.

torch's intra/inter-op thread counts are read only when torch is already imported
(reading them must not import it), native pools through threadpoolctl, and the
threading variables of the environment as they are.
"""

from __future__ import annotations

import os
import sys

from pytest_hwperf.hardware.probing import quiet_probe

__all__ = ["THREAD_ENV_PREFIXES", "thread_env", "thread_settings"]

THREAD_ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_")

# threadpoolctl sets KMP_DUPLICATE_LIB_OK=True when it is imported (so that two OpenMP
# runtimes in one process do not abort): that is not the user's setting. Whether the
# user had set it is read here, before anything of this package imports threadpoolctl.
_SET_ON_IMPORT = {"KMP_DUPLICATE_LIB_OK": "True"}
_USER_SET = frozenset(key for key in _SET_ON_IMPORT if key in os.environ)


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
    settings["env"] = thread_env()
    return settings


def thread_env() -> dict[str, str]:
    """The threading variables of the environment as the user set them: without those
    a library set on its own import (threadpoolctl's `KMP_DUPLICATE_LIB_OK=True`)."""
    return {
        key: value
        for key, value in sorted(os.environ.items())
        if key.startswith(THREAD_ENV_PREFIXES)
        and (key in _USER_SET or _SET_ON_IMPORT.get(key) != value)
    }
