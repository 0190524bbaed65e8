"""What the machine is and how it is set up: threads and software versions (CPU, GPU and
fingerprint detection build on these)."""

from __future__ import annotations

from pytest_hwperf.hardware.threads import thread_settings
from pytest_hwperf.hardware.versions import software_versions

__all__ = ["software_versions", "thread_settings"]
