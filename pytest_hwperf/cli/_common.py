"""What several `hwperf` commands share: the one-line error, tables, the argument
types, the baseline folder option and the reading of JSON reports.

Every command module imports this one; it imports none of them, nor the package
`pytest_hwperf.cli` itself."""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pytest_hwperf.records.codec import from_json, measurement_from_json
from pytest_hwperf.records.types import FingerprintRecord, MeasurementRecord
from pytest_hwperf.report import ReportError, read_document_json
from pytest_hwperf.report.terminal import visible
from pytest_hwperf.settings import DEFAULTS, parse_alpha, parse_percent
from pytest_hwperf.store import StoreError

T = TypeVar("T")

if TYPE_CHECKING:
    from typing import TypeAlias

    #: What `build_parser` hands each command module's `register`: the subcommands.
    _Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

DEFAULT_DIR = str(DEFAULTS.baseline_dir)  # the plugin's own default, declared once


class _InputError(ValueError):
    """An input that cannot be used; the one-line message names it."""


_INPUT_ERRORS = (StoreError, ReportError, OSError, sqlite3.Error, ValueError)


def _fail(command: str, exc: BaseException | str) -> int:
    """One line on stderr, exit status 2: what every unusable input gets. Control
    characters from a file's name or content are shown as escapes (`visible`)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"hwperf {command}: error: {visible(message)}", file=sys.stderr)
    return 2


# -- text -------------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# -- JSON reports -----------------------------------------------------------------------


def _number(value: object) -> float | None:
    """A positive finite number from a JSON document, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number > 0.0 and math.isfinite(number) else None


def _gate_ms(record: MeasurementRecord) -> float:
    """The figure the plugin's gate compares for a record (the very property it uses):
    the fastest call over every round; 0.0 when there is none."""
    value = record.gate_ms
    return value if value is not None and math.isfinite(value) and value > 0 else 0.0


@dataclass(frozen=True)
class _Report:
    """A JSON report written by --hwperf-json, read at the edge: its measured records
    (mode "measured", with samples), typed, and the few session facts commands use."""

    path: Path
    measured: tuple[MeasurementRecord, ...]
    fingerprint: FingerprintRecord | None  # `environment.fingerprint`
    created_at: str | None
    perf_items: int | None  # `settings.perf_items`, when a count >= 1
    regression_pct: float | None  # `settings.regression_pct`, when positive
    alpha: float | None  # `settings.alpha`, when positive


def _load_report(path: Path) -> _Report:
    """A JSON report written by --hwperf-json; `_InputError`, `ReportError` or
    `RecordError` (each one line naming the file) when it cannot be used."""
    try:
        document: Mapping[str, object] = read_document_json(path)
    except UnicodeDecodeError:
        raise _InputError(f"{path} is not UTF-8 text, so not a pytest-hwperf report") from None
    records = document.get("measurements")
    if not isinstance(records, list):
        raise _InputError(
            f"{path} is not a JSON report written by --hwperf-json (no 'measurements' list)"
        )
    environment = document.get("environment")
    found = environment.get("fingerprint") if isinstance(environment, dict) else None
    fingerprint = (
        from_json(FingerprintRecord, found, f"{path}: environment.fingerprint")
        if isinstance(found, dict) and isinstance(found.get("digest"), str)
        else None
    )
    found_settings = document.get("settings")
    settings: Mapping[str, object] = found_settings if isinstance(found_settings, dict) else {}
    perf_items = settings.get("perf_items")
    created = document.get("created_at")
    return _Report(
        path=path,
        measured=_measured(records, path),
        fingerprint=fingerprint,
        created_at=created if isinstance(created, str) else None,
        perf_items=perf_items if isinstance(perf_items, int) and perf_items >= 1 else None,
        regression_pct=_number(settings.get("regression_pct")),
        alpha=_number(settings.get("alpha")),
    )


def _measured(records: Sequence[object], path: Path) -> tuple[MeasurementRecord, ...]:
    """The measured records of a report (mode "measured", with samples), checked and
    read through the codec; the others are not read."""
    found = []
    for index, record in enumerate(records):
        where = f"{path}: measurement {index}"
        if not isinstance(record, dict):
            raise _InputError(f"{where} is not an object")
        if record.get("mode") != "measured" or not record.get("samples_ns"):
            continue
        for name in ("test_id", "name", "device"):
            if not isinstance(record.get(name), str):
                raise _InputError(f"{where} has no {name!r} string")
        samples = record["samples_ns"]
        if not isinstance(samples, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in samples
        ):
            raise _InputError(f"{where} has malformed samples_ns (integers >= 0 expected)")
        found.append(measurement_from_json(record, where))
    return tuple(found)


def _fingerprint_of(record: MeasurementRecord, report: _Report) -> FingerprintRecord | None:
    """The fingerprint a record was measured on: its own `fingerprint` (set when the
    plugin compared it), else the report's `environment.fingerprint`; None when neither."""
    return record.fingerprint if record.fingerprint is not None else report.fingerprint


# -- arguments --------------------------------------------------------------------------


def _argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """One of the plugin's option parsers (settings.py) as an argparse type."""

    def convert(raw: str) -> T:
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc}, got {raw!r}") from None

    return convert


_percent_arg = _argument(parse_percent)
_alpha_arg = _argument(parse_alpha)


def _positive_int_arg(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return value


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"The baseline folder, as --hwperf-baseline-dir (default {DEFAULT_DIR})",
    )
