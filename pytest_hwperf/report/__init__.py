"""Reports rendered from typed measurement records and the typed JSON report
(`Document`); JSON is only their (de)serialisation, through `records.codec`."""

from __future__ import annotations

from pytest_hwperf.report.document import Document
from pytest_hwperf.report.json_report import (
    SCHEMA_VERSION,
    ReportError,
    build_document,
    load_document,
    read_document_json,
    write_document,
)
from pytest_hwperf.report.terminal import summary_lines

__all__ = [
    "SCHEMA_VERSION",
    "Document",
    "ReportError",
    "build_document",
    "load_document",
    "read_document_json",
    "summary_lines",
    "write_document",
]
