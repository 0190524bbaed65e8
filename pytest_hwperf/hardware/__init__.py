"""What the machine is and how it is set up: CPU, memory, GPUs, threads, software
versions, and the fingerprint that keys baselines.

Importing this package stays light (no psutil, numpy or torch): the plugin imports it
at pytest start-up. ``Machine`` and ``detect_machine`` pull in the detectors (psutil)
on first use, through the module ``__getattr__`` below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The function shares its name with its module; importing it here binds the package
# attribute to the function (the module stays importable by its full name).
from pytest_hwperf.hardware.fingerprint import Fingerprint, fingerprint
from pytest_hwperf.hardware.threads import thread_settings
from pytest_hwperf.hardware.versions import software_versions

if TYPE_CHECKING:
    from pytest_hwperf.hardware.machine import Machine, detect_machine

__all__ = [
    "Fingerprint",
    "Machine",
    "detect_machine",
    "fingerprint",
    "software_versions",
    "thread_settings",
]

_LAZY = {
    "Machine": "pytest_hwperf.hardware.machine",
    "detect_machine": "pytest_hwperf.hardware.machine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
