"""Reading what an in-process pytester run printed (shared by the plugin tests)."""

from __future__ import annotations

import pytest


def output_of(result: pytest.RunResult) -> str:
    """Everything the run wrote, stdout then stderr."""
    return "\n".join(result.outlines + result.errlines)


def assert_clean(result: pytest.RunResult) -> None:
    """No internal error and no traceback anywhere in the output."""
    text = output_of(result)
    assert "INTERNALERROR" not in text
    assert "Traceback" not in text
