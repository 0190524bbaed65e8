"""The JSON report's document, typed: what `--hwperf-json` writes and `hwperf report`
reads (docs/json-schema.md, "Document").

A field is named exactly as its key in the file, so `records.codec.to_json` writes the
document and `from_json` reads it back; `document_from_json` adds the one check the
codec cannot make (the summary's counts are integers). Fields that reports written by
older releases lack take their defaults (`advice` is the one the schema names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_hwperf.records.codec import RecordError, from_json
from pytest_hwperf.records.types import Facts, JSONValue, MeasurementRecord  # noqa: F401
from pytest_hwperf.report.sweep import Sweep

__all__ = ["Document", "Generator", "document_from_json"]

# JSONValue is imported for the codec: `Facts` names it by a forward reference, which
# `typing.get_type_hints` resolves in this module's namespace.


@dataclass(frozen=True)
class Generator:
    """What wrote the report: `pytest-hwperf` and its version (None when unknown)."""

    name: str = "pytest-hwperf"
    version: str | None = None


@dataclass(frozen=True)
class Document:
    """One JSON report: the session's measurements, with what they ran on and under."""

    schema_version: int
    generator: Generator | None = None
    created_at: str | None = None  # ISO 8601, UTC, whole seconds
    environment: Facts = field(default_factory=dict)  # software versions, machine, fingerprint
    settings: Facts = field(default_factory=dict)  # the session's resolved settings
    # Counts by outcome: `measurements`, `pass`, `fail`, `inconclusive`, `no_budget`; by
    # the test-level verdict: `failing`, `verdict_pass`, `verdict_fail`,
    # `verdict_inconclusive`, `verdict_no_budget`, `regressions` (docs/json-schema.md; a
    # mapping, as `pass` cannot name a field).
    summary: Mapping[str, int] = field(default_factory=dict)
    measurements: tuple[MeasurementRecord, ...] = ()
    sweeps: tuple[Sweep, ...] = ()
    advice: tuple[Facts, ...] = ()  # the device advice (report/advice.py), as written


def document_from_json(data: object, where: str = "$") -> Document:
    """Read a `Document` from a parsed JSON value; RecordError says where it is wrong."""
    document = from_json(Document, data, where)
    # The codec reads a mapping's values as JSON values: the counts are checked here.
    counts: Mapping[str, object] = document.summary
    for key, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int):
            shown = type(count).__name__ if isinstance(count, dict | list) else repr(count)[:60]
            raise RecordError(f"{where}.summary.{key}: expected an integer, got {shown}")
    return document
