"""The run history: every ``--hwperf`` run in one SQLite file (stdlib ``sqlite3``).

Baselines keep a few runs and are committed; the history keeps every run on this
checkout, so the regression gate can weigh the run-to-run spread of a measurement on a
fingerprint (``medians``) and ``hwperf history`` can show a trend (``trend``).

- Schema version in ``PRAGMA user_version`` from day one. A file that is not SQLite,
  is some other program's database, or has a newer version raises ``StoreError`` naming
  the path and what to do; it is never written to.
- A run is recorded in one transaction (SQLite's journal makes it atomic: a killed
  process leaves the previous state), taken with ``BEGIN IMMEDIATE`` so that the schema
  check and the inserts see the same file. Concurrent writers (two runs in one rootdir)
  wait for each other, up to ``BUSY_TIMEOUT_S``, instead of failing: both runs are kept.
- Only a regular file is opened: a FIFO, a device or a directory at the path is refused
  in one line before sqlite3 touches it.
- Rows are checked as they are read: one that does not validate (a number that is text,
  samples that are not a list of integers or are nested too deep to parse) is skipped,
  and the reader adds one line naming the file to ``History.warnings``; it never costs
  the rest of the history.
- Readers never create the file and never write to it, except that SQLite itself rolls
  back a transaction a killed writer left half done; only ``record_run`` (called by the
  controller process) creates the file, its schema and missing parent folders.
- Raw samples are stored as JSON, capped like baselines' (``thin_samples``).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_hwperf.store.baselines import StoreError, thin_samples

__all__ = [
    "BUSY_TIMEOUT_S",
    "HISTORY_SCHEMA_VERSION",
    "History",
    "HistoryRow",
    "RecordedTest",
    "TrendRow",
]

HISTORY_SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another run's transaction

_SQLITE_MAGIC = b"SQLite format 3\x00"
_FIX = "move it aside or delete it to start a new history"

_SCHEMA = (
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        label TEXT,
        commit_sha TEXT
    )""",
    """CREATE TABLE measurements (
        run_id TEXT NOT NULL REFERENCES runs(id),
        key TEXT NOT NULL,
        test_id TEXT NOT NULL,
        name TEXT NOT NULL,
        device TEXT NOT NULL,
        n INTEGER,
        median_ms REAL,
        mean_ms REAL,
        p95_ms REAL,
        outcome TEXT,
        samples TEXT
    )""",
    "CREATE INDEX measurements_key ON measurements (key, run_id)",
    "CREATE INDEX measurements_test_id ON measurements (test_id, run_id)",
    "CREATE INDEX runs_fingerprint ON runs (fingerprint, created)",
)
_TABLES = {"runs", "measurements"}


@dataclass(frozen=True)
class HistoryRow:
    """One measurement of the run being recorded, as the history stores it.

    ``samples_ns`` may be None (no samples stored); at most ``SAMPLE_CAP`` of them are
    kept (``thin_samples``)."""

    key: str
    test_id: str
    name: str
    device: str
    n: int | None = None
    median_ms: float | None = None
    mean_ms: float | None = None
    p95_ms: float | None = None
    outcome: str | None = None
    samples_ns: tuple[int, ...] | None = None


def _row(run_id: str, m: HistoryRow) -> tuple[object, ...]:
    """One row of the ``measurements`` table (its samples as JSON)."""
    return (
        run_id,
        m.key,
        m.test_id,
        m.name,
        m.device,
        None if m.n is None else int(m.n),
        _opt_float(m.median_ms),
        _opt_float(m.mean_ms),
        _opt_float(m.p95_ms),
        m.outcome,
        None
        if m.samples_ns is None
        else json.dumps(list(thin_samples(m.samples_ns)), separators=(",", ":")),
    )


@dataclass(frozen=True)
class RecordedTest:
    """One test id of the history, as `hwperf history` lists them."""

    test_id: str
    measurements: int
    runs: int
    last_run: str


@dataclass(frozen=True)
class TrendRow:
    """One measurement of one past run, with the run's facts."""

    run_id: str
    created: str
    fingerprint: str
    label: str | None
    commit: str | None
    key: str
    test_id: str
    name: str
    device: str
    n: int | None
    median_ms: float | None
    mean_ms: float | None
    p95_ms: float | None
    outcome: str | None
    samples_ns: tuple[int, ...]


def _opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


# ------------------------------------------------------------------ checking rows read


def _shown(value: object, width: int = 40) -> str:
    """A value in a warning: its repr (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _text(row: Sequence[object], index: int, what: str, *, optional: bool = False) -> str | None:
    value = row[index]
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what!r} must be text, got {_shown(value)}")
    return value


def _number(row: Sequence[object], index: int, what: str) -> float | None:
    value = row[index]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what!r} must be a number, got {_shown(value)}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what!r} must be finite and >= 0, got {_shown(value)}")
    return number


def _count(row: Sequence[object], index: int, what: str) -> int | None:
    value = row[index]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what!r} must be an integer >= 0, got {_shown(value)}")
    return value


def _samples(value: object) -> tuple[int, ...]:
    """The stored samples (JSON text of a list of integer nanoseconds)."""
    if value is None or value == "":
        return ()
    if not isinstance(value, str):
        raise ValueError(f"'samples' must be JSON text, got {type(value).__name__}")
    try:
        found = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"'samples' is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ValueError("'samples' is nested too deeply to parse") from None
    if not isinstance(found, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in found
    ):
        raise ValueError("'samples' must be a list of integers >= 0")
    return tuple(found)


def _trend_row(row: Sequence[object]) -> TrendRow:
    """One row of ``trend``'s query as a TrendRow; ValueError names the first bad field."""
    return TrendRow(
        run_id=str(_text(row, 0, "run id")),
        created=str(_text(row, 1, "created")),
        fingerprint=str(_text(row, 2, "fingerprint")),
        label=_text(row, 3, "label", optional=True),
        commit=_text(row, 4, "commit", optional=True),
        key=str(_text(row, 5, "key")),
        test_id=str(_text(row, 6, "test_id")),
        name=str(_text(row, 7, "name")),
        device=str(_text(row, 8, "device")),
        n=_count(row, 9, "n"),
        median_ms=_number(row, 10, "median_ms"),
        mean_ms=_number(row, 11, "mean_ms"),
        p95_ms=_number(row, 12, "p95_ms"),
        outcome=_text(row, 13, "outcome", optional=True),
        samples_ns=_samples(row[14]),
    )


class History:
    """The SQLite run history at ``path`` (by default ``.hwperf/history.sqlite``).

    Construction checks an existing file (StoreError when it cannot be used) and creates
    nothing; a missing file reads as an empty history.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # One line per reading that skipped rows that do not validate (naming the file,
        # how many and the first reason); the caller shows them as warnings.
        self.warnings: list[str] = []
        if self.path.exists():
            with self._connect(create=False) as conn:
                self._check_schema(conn)

    # ------------------------------------------------------------------ opening

    def _error(self, what: str) -> StoreError:
        return StoreError(f"history database {self.path} {what}: {_FIX}; it was left unchanged")

    def _check_header(self) -> None:
        """Refuse a file that is not SQLite, or not a regular file at all (a FIFO would
        block, a device never end), before sqlite3 touches it."""
        # O_NONBLOCK: opening a FIFO with no writer must not block before fstat refuses it.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.path, flags)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise self._error("is not a regular file")
                head = os.read(fd, len(_SQLITE_MAGIC))
            finally:
                os.close(fd)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(
                f"history database {self.path} cannot be read ({exc.strerror or exc}):"
                " check its permissions; it was left unchanged"
            ) from exc
        if head and head != _SQLITE_MAGIC:
            raise self._error("is not an SQLite database")

    @contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (transactions are explicit), closed on exit;
        sqlite3 errors become StoreError. Only with ``create`` is a missing file (and its
        folder) created."""
        self._check_header()
        try:
            if not create:
                # "rw", not "ro": it never creates the file, yet it can roll back the hot
                # journal a killed writer left, which a read-only connection refuses to.
                uri = self.path.resolve().as_uri() + "?mode=rw"
                conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            with closing(conn):
                yield conn
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise self._error(f"is not a usable SQLite database ({exc})") from exc
            raise StoreError(
                f"cannot use history database {self.path} ({exc}); it was left unchanged"
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot open history database {self.path} ({exc.strerror or exc})"
            ) from exc

    def _check_schema(self, conn: sqlite3.Connection) -> bool:
        """True when the schema is in place, False for an empty database; StoreError for
        a newer version or a database that is not a history."""
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > HISTORY_SCHEMA_VERSION:
            raise StoreError(
                f"history database {self.path} has schema version {version} (this"
                f" pytest-hwperf reads up to {HISTORY_SCHEMA_VERSION}): it was written by a"
                " newer pytest-hwperf: upgrade pytest-hwperf; it was left unchanged"
            )
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if version == 0:
            if tables:
                raise self._error(
                    f"is not a pytest-hwperf history (no schema version; tables {sorted(tables)})"
                )
            return False
        missing = _TABLES - tables
        if missing:
            raise self._error(f"lacks the tables {sorted(missing)}")
        return True

    # ------------------------------------------------------------------ writing

    def record_run(
        self,
        run_id: str,
        created: str,
        fingerprint_digest: str,
        label: str | None,
        commit: str | None,
        measurements: Sequence[HistoryRow],
    ) -> None:
        """Record one run and its measurements (one ``HistoryRow`` each) in one
        transaction. Recording a ``run_id`` again replaces that run, so a retry cannot
        count one run twice.
        """
        rows = [_row(run_id, m) for m in measurements]
        with self._connect(create=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not self._check_schema(conn):
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {HISTORY_SCHEMA_VERSION}")
                conn.execute("DELETE FROM measurements WHERE run_id = ?", (run_id,))
                conn.execute(
                    "INSERT OR REPLACE INTO runs (id, created, fingerprint, label, commit_sha)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (run_id, created, fingerprint_digest, label, commit),
                )
                conn.executemany(
                    "INSERT INTO measurements (run_id, key, test_id, name, device, n,"
                    " median_ms, mean_ms, p95_ms, outcome, samples)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                if conn.in_transaction:  # SQLite may already have rolled back
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ------------------------------------------------------------------ reading

    def trend(
        self, key_or_test_id: str, *, fingerprint: str | None = None, limit: int = 50
    ) -> list[TrendRow]:
        """The last ``limit`` recorded values, oldest first, of one measurement (an exact
        key) or of every measurement of a test id; optionally on one fingerprint only."""
        if not self.path.exists():
            return []
        query = (
            "SELECT r.id, r.created, r.fingerprint, r.label, r.commit_sha, m.key, m.test_id,"
            " m.name, m.device, m.n, m.median_ms, m.mean_ms, m.p95_ms, m.outcome, m.samples"
            " FROM measurements m JOIN runs r ON r.id = m.run_id"
            " WHERE (m.key = ? OR m.test_id = ?)"
        )
        params: list[str | int] = [key_or_test_id, key_or_test_id]
        if fingerprint is not None:
            query += " AND r.fingerprint = ?"
            params.append(fingerprint)
        query += " ORDER BY r.created DESC, r.rowid DESC, m.key DESC LIMIT ?"
        params.append(limit)
        with self._connect(create=False) as conn:
            if not self._check_schema(conn):
                return []
            rows = conn.execute(query, params).fetchall()
        found: list[TrendRow] = []
        skipped: list[tuple[object, object, str]] = []
        for row in reversed(rows):
            try:
                found.append(_trend_row(row))
            except ValueError as exc:
                skipped.append((row[0], row[5], str(exc)))
        self._warn_skipped(skipped)
        return found

    def recorded(self) -> list[RecordedTest]:
        """Every recorded test id: its measurements, runs and last run, by test id."""
        if not self.path.exists():
            return []
        query = (
            "SELECT m.test_id, COUNT(DISTINCT m.key), COUNT(DISTINCT m.run_id), MAX(r.created)"
            " FROM measurements m JOIN runs r ON r.id = m.run_id"
            " GROUP BY m.test_id ORDER BY m.test_id"
        )
        with self._connect(create=False) as conn:
            if not self._check_schema(conn):
                return []
            rows = conn.execute(query).fetchall()
        found: list[RecordedTest] = []
        for test_id, measurements, runs, last in rows:
            if not isinstance(test_id, str) or not isinstance(last, str):
                continue  # a row that does not validate is not listed
            found.append(RecordedTest(test_id, int(measurements), int(runs), last))
        return found

    def medians(self, key: str, fingerprint: str, limit: int = 20) -> list[float]:
        """The medians of one measurement in the last ``limit`` runs on one fingerprint,
        oldest first: the run-to-run spread the regression gate weighs."""
        if not self.path.exists():
            return []
        with self._connect(create=False) as conn:
            if not self._check_schema(conn):
                return []
            rows = conn.execute(
                "SELECT r.id, m.key, m.median_ms FROM measurements m"
                " JOIN runs r ON r.id = m.run_id"
                " WHERE m.key = ? AND r.fingerprint = ? AND m.median_ms IS NOT NULL"
                " ORDER BY r.created DESC, r.rowid DESC LIMIT ?",
                (key, fingerprint, limit),
            ).fetchall()
        found: list[float] = []
        skipped: list[tuple[object, object, str]] = []
        for row in reversed(rows):
            try:
                median = _number(row, 2, "median_ms")
            except ValueError as exc:
                skipped.append((row[0], row[1], str(exc)))
            else:
                if median is not None:
                    found.append(median)
        self._warn_skipped(skipped)
        return found

    def _warn_skipped(self, skipped: Sequence[tuple[object, object, str]]) -> None:
        """One line in ``warnings`` for the rows a reader skipped, each given as (run id,
        key, reason): the file, how many, and the first one's run, key and reason."""
        if not skipped:
            return
        run_id, key, reason = skipped[0]
        count = len(skipped)
        rows = "1 row that does" if count == 1 else f"{count} rows that do"
        line = (
            f"history database {self.path}: skipped {rows} not validate (first: run"
            f" {_shown(run_id)}, key {_shown(key)}: {reason})"
        )
        if line not in self.warnings:
            self.warnings.append(line)
