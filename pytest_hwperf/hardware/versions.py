"""Versions of the software that a measurement depends on."""

from __future__ import annotations

import platform
import sys
from functools import lru_cache
from importlib import metadata

from pytest_hwperf.hardware.probing import quiet_probe

__all__ = ["software_versions"]


def _version(dist: str) -> str | None:
    try:
        with quiet_probe():
            return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def software_versions() -> dict[str, str | None]:
    """Python, the plugin and the libraries it measures with (None when not installed).

    Read from package metadata, so nothing is imported to learn a version.
    """
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": sys.platform,
        "machine": platform.machine(),
        "pytest_hwperf": _version("pytest-hwperf"),
        "pytest": _version("pytest"),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
    }
