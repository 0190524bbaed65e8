"""The JSON report: a versioned document of every measurement (docs/json-schema.md).

Written atomically (a temporary file in the same folder, then a rename), so a reader
never sees half a report and a failed write leaves any earlier report intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "ReportError", "build_document", "load_document", "write_document"]

SCHEMA_VERSION = 1


class ReportError(Exception):
    """A report could not be read or written; the message says which file and why."""


def build_document(
    records: Sequence[Mapping[str, Any]],
    *,
    environment: Mapping[str, Any],
    settings: Mapping[str, Any],
    plugin_version: str | None,
    sweeps: Sequence[Mapping[str, Any]] = (),
    advice: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    outcomes = [r.get("outcome") for r in records]
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": "pytest-hwperf", "version": plugin_version},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": dict(environment),
        "settings": dict(settings),
        "summary": {
            "measurements": len(records),
            "pass": outcomes.count("pass"),
            "fail": outcomes.count("fail"),
            "inconclusive": outcomes.count("inconclusive"),
            "no_budget": outcomes.count(None),
        },
        "measurements": [dict(r) for r in records],
        "sweeps": [dict(s) for s in sweeps],
        # Added fields keep schema version 1: readers of version 1 ignore what they do
        # not know. Only a changed or removed field raises the version.
        "advice": [dict(a) for a in advice],
    }


def write_document(path: Path, document: Mapping[str, Any]) -> None:
    """Write `document` to `path` atomically, creating missing parent folders."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(document, fh, indent=1, sort_keys=True, allow_nan=False)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot write the JSON report {path}: {exc}") from exc


def load_document(path: Path) -> dict[str, Any]:
    """Read a JSON report, refusing one that is corrupt or of a newer schema."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path} is not a pytest-hwperf report (not UTF-8 text)") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(document, dict) or "schema_version" not in document:
        raise ReportError(f"{path} is not a pytest-hwperf report (no schema_version)")
    version = document["schema_version"]
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ReportError(
            f"{path} has schema version {version!r}; this pytest-hwperf reads up to"
            f" {SCHEMA_VERSION}: upgrade pytest-hwperf to read it"
        )
    return document
