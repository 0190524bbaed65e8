"""Reports rendered from measurement records (plain JSON-compatible dicts)."""

from __future__ import annotations

from pytest_hwperf.report.json_report import (
    SCHEMA_VERSION,
    ReportError,
    build_document,
    load_document,
    write_document,
)
from pytest_hwperf.report.terminal import summary_lines

__all__ = [
    "SCHEMA_VERSION",
    "ReportError",
    "build_document",
    "load_document",
    "summary_lines",
    "write_document",
]
