"""Running the plugin in pytester and reading what the run printed and wrote (shared by
the plugin tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# A quick measuring run. A test whose assertions need a particular time limit or warm-up
# spells its own, with the reason; everywhere else the value does not matter.
# Confirmation rounds back to back: spreading them over seconds is for co-tenants'
# bursts (tests/test_budget_rounds.py tests the pauses themselves).
FAST_RUN = (
    "--hwperf-max-time=1",
    "--hwperf-warmup=0.01",
    "--hwperf-confirm-pause=0",
)


def load_json(path: Path) -> dict[str, Any]:
    """A JSON document a run wrote (the --hwperf-json report, facts a test saved)."""
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def output_of(result: pytest.RunResult) -> str:
    """Everything the run wrote, stdout then stderr."""
    return "\n".join(result.outlines + result.errlines)


def assert_clean(result: pytest.RunResult) -> None:
    """No internal error and no traceback anywhere in the output."""
    text = output_of(result)
    assert "INTERNALERROR" not in text
    assert "Traceback" not in text
