"""The names of the profilers `--hwperf-profile` offers.

Apart from `profile.py`, which runs them, so that parsing the option (at every pytest
start) does not import the profiling machinery.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["PROFILERS", "ProfilerChoice"]

ProfilerChoice = Literal["auto", "off", "cprofile", "py-spy", "scalene", "torch"]
PROFILERS: tuple[ProfilerChoice, ...] = ("auto", "off", "cprofile", "py-spy", "scalene", "torch")
