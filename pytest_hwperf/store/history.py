"""The run history: every ``--hwperf`` run in one SQLite file (stdlib ``sqlite3``).

Baselines keep a few runs and are committed; the history keeps every run on this
checkout, so the regression gate can weigh the run-to-run spread of a measurement on a
fingerprint (``medians``) and ``hwperf history`` can show a trend (``trend``).

- Schema version in ``PRAGMA user_version`` from day one. A file that is not SQLite,
  is some other program's database, or has a newer version raises ``StoreError`` naming
  the path and what to do; it is never written to.
- A run is recorded in one transaction (SQLite's journal makes it atomic: a killed
  process leaves the previous state), taken with ``BEGIN IMMEDIATE`` so that the schema
  check and the inserts see the same file.
- Readers never create the file and never write to it, except that SQLite itself rolls
  back a transaction a killed writer left half done; only ``record_run`` (called by the
  controller process) creates the file, its schema and missing parent folders.
- Raw samples are stored as JSON, capped like baselines' (``thin_samples``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_hwperf.store.baselines import StoreError, thin_samples

__all__ = ["HISTORY_SCHEMA_VERSION", "History", "HistoryRow", "TrendRow"]

HISTORY_SCHEMA_VERSION = 1

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


class History:
    """The SQLite run history at ``path`` (by default ``.hwperf/history.sqlite``).

    Construction checks an existing file (StoreError when it cannot be used) and creates
    nothing; a missing file reads as an empty history.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.exists():
            with self._connect(create=False) as conn:
                self._check_schema(conn)

    # ------------------------------------------------------------------ opening

    def _error(self, what: str) -> StoreError:
        return StoreError(f"history database {self.path} {what}: {_FIX}; it was left unchanged")

    def _check_header(self) -> None:
        """Refuse a file that is not SQLite before sqlite3 touches it."""
        try:
            with self.path.open("rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
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
                conn = sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
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
        return [
            TrendRow(
                run_id=row[0],
                created=row[1],
                fingerprint=row[2],
                label=row[3],
                commit=row[4],
                key=row[5],
                test_id=row[6],
                name=row[7],
                device=row[8],
                n=row[9],
                median_ms=row[10],
                mean_ms=row[11],
                p95_ms=row[12],
                outcome=row[13],
                samples_ns=tuple(json.loads(row[14])) if row[14] else (),
            )
            for row in reversed(rows)
        ]

    def medians(self, key: str, fingerprint: str, limit: int = 20) -> list[float]:
        """The medians of one measurement in the last ``limit`` runs on one fingerprint,
        oldest first: the run-to-run spread the regression gate weighs."""
        if not self.path.exists():
            return []
        with self._connect(create=False) as conn:
            if not self._check_schema(conn):
                return []
            rows = conn.execute(
                "SELECT m.median_ms FROM measurements m JOIN runs r ON r.id = m.run_id"
                " WHERE m.key = ? AND r.fingerprint = ? AND m.median_ms IS NOT NULL"
                " ORDER BY r.created DESC, r.rowid DESC LIMIT ?",
                (key, fingerprint, limit),
            ).fetchall()
        return [float(row[0]) for row in reversed(rows)]
