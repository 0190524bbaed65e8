"""The JSON report: a versioned document of every measurement (docs/json-schema.md).

`build_document` makes the typed `Document`; `write_document` writes it through
`records.codec.to_json`, atomically (a temporary file in the same folder, then a rename),
so a reader never sees half a report and a failed write leaves any earlier report
intact; `load_document` reads one back, refusing a corrupt, malformed or newer file with
one line naming it. Only a regular file of at most `MAX_REPORT_BYTES` is read (a FIFO
would block, `/dev/zero` would never end), and a document nested deeper than Python's
parser can follow, or holding an integer beyond 64 bits, is refused the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_hwperf.files import MAX_READ_BYTES, UnreadableFile, atomic_write, read_regular
from pytest_hwperf.judge.verdict import count_verdicts
from pytest_hwperf.records.codec import RecordError, as_facts, path_key, to_json
from pytest_hwperf.records.types import JSONValue, MeasurementRecord
from pytest_hwperf.report.document import Document, Generator, document_from_json
from pytest_hwperf.report.sweep import Sweep

__all__ = [
    "MAX_INTEGER",
    "MAX_REPORT_BYTES",
    "SCHEMA_VERSION",
    "Document",
    "ReportError",
    "build_document",
    "load_document",
    "read_document_json",
    "write_document",
]

SCHEMA_VERSION = 1

# The largest report read: the size cap of every file the plugin reads (files.py), twice
# over, since a report keeps every sample of every measurement.
MAX_REPORT_BYTES = 2 * MAX_READ_BYTES

# The largest integer a report may hold: counts and nanoseconds fit in 64 bits (2**63 ns
# is 292 years); a larger one is a corrupt or hostile file, and would overflow a float.
MAX_INTEGER = 2**63 - 1


class ReportError(Exception):
    """A report could not be read or written; the message says which file and why."""


def build_document(
    records: Sequence[MeasurementRecord],
    *,
    environment: Mapping[str, object],
    settings: Mapping[str, object],
    plugin_version: str | None,
    sweeps: Sequence[Sweep] = (),
    advice: Sequence[Mapping[str, JSONValue]] = (),
) -> Document:
    """The session's document. `environment` and `settings` are checked to be JSON values
    (and copied); a value that is not one is a RecordError."""
    outcomes = [r.outcome for r in records]
    verdicts = count_verdicts(records)
    return Document(
        schema_version=SCHEMA_VERSION,
        generator=Generator(name="pytest-hwperf", version=plugin_version),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        environment=as_facts(environment, "environment"),
        settings=as_facts(settings, "settings"),
        summary={
            "measurements": len(records),
            "pass": outcomes.count("pass"),
            "fail": outcomes.count("fail"),
            "inconclusive": outcomes.count("inconclusive"),
            "no_budget": outcomes.count(None),
            # By the test-level verdict (`MeasurementRecord.verdict`), as every report
            # shows it: a regression or an oversubscribed config fails its test too.
            "failing": verdicts.failing,
            "verdict_pass": verdicts.passing,
            "verdict_fail": verdicts.failing,
            "verdict_inconclusive": verdicts.inconclusive,
            "verdict_no_budget": verdicts.no_budget,
            "regressions": verdicts.regressions,
        },
        measurements=tuple(records),
        sweeps=tuple(sweeps),
        # Added fields keep schema version 1: readers of version 1 ignore what they do
        # not know. Only a changed or removed field raises the version.
        advice=tuple(as_facts(a, f"advice[{i}]") for i, a in enumerate(advice)),
    )


def write_document(path: Path, document: Document) -> None:
    """Write `document` to `path` atomically, creating missing parent folders."""
    try:
        text = json.dumps(to_json(document), indent=1, sort_keys=True, allow_nan=False) + "\n"
        atomic_write(path, text)
    except (OSError, TypeError, ValueError) as exc:
        raise ReportError(f"cannot write the JSON report {path}: {exc}") from exc


def _shown(value: object) -> str:
    """A short repr of a JSON value for a message: a scalar's repr, cut at 40 characters
    (an integer of 4,000 digits is not one line), or the type of a container."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    text = repr(value) if not isinstance(value, int) or abs(value) <= MAX_INTEGER else "(huge)"
    return text if len(text) <= 40 else text[:37] + "..."


def _huge_integer(document: object) -> str | None:
    """Where `document` holds an integer beyond `MAX_INTEGER` in size ("$.a[3]"), or
    None. Iterative: the document may be as deep as the parser allowed."""
    stack: list[tuple[object, str]] = [(document, "$")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{path_key(k)}") for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
            return where
    return None


def read_document_json(path: Path, *, limit: int = MAX_REPORT_BYTES) -> dict[str, Any]:
    """The parsed JSON of a report file, its schema version checked: the one place a
    report is an untyped value (`load_document` reads it into a `Document`). Only a
    regular file of at most `limit` bytes is read. ReportError, one line naming the
    file, for anything that is not a report."""
    try:
        text = read_regular(path, limit=limit).decode("utf-8")
    except UnreadableFile as exc:
        raise ReportError(str(exc)) from None
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path} is not a pytest-hwperf report (not UTF-8 text)") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    except RecursionError:
        raise ReportError(f"{path} is not a pytest-hwperf report (nested too deep)") from None
    except ValueError:  # an integer of more digits than Python converts
        raise ReportError(
            f"{path} is not a pytest-hwperf report (an integer out of range)"
        ) from None
    if not isinstance(document, dict) or "schema_version" not in document:
        raise ReportError(f"{path} is not a pytest-hwperf report (no schema_version)")
    version = document["schema_version"]
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ReportError(
            f"{path} has schema version {_shown(version)}; this pytest-hwperf reads up to"
            f" {SCHEMA_VERSION}: upgrade pytest-hwperf to read it"
        )
    huge = _huge_integer(document)
    if huge is not None:
        raise ReportError(
            f"{path} is not a valid pytest-hwperf report: {huge}: an integer out of range"
            f" (beyond {MAX_INTEGER})"
        )
    return document


def load_document(path: Path) -> Document:
    """Read a JSON report, refusing one that is corrupt, malformed or of a newer schema;
    fields that reports of older releases lack take their defaults."""
    data = read_document_json(path)
    try:
        return document_from_json(data)
    except RecordError as exc:
        raise ReportError(f"{path} is not a valid pytest-hwperf report: {exc}") from exc
