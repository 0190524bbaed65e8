"""Baselines: one JSON file per hardware fingerprint, meant to be committed.

``<root>/baselines/<digest>.json`` holds, for every measurement key, the summaries of
the last ``KEEP_RUNS`` saved runs on that fingerprint (oldest first). Measurements are
never compared across fingerprints, so the digest is the file name and the file repeats
the fingerprint it was recorded on (its digest, label and what was hashed) for people
and for a check on load.

Why the file looks the way it does:

- Diff-friendly: keys sorted, one value per line (``indent=1``), a trailing newline, and
  nothing that changes when the data does not (no "last written" stamp), so saving the
  same data twice gives byte-identical files and a review shows only what moved.
- Raw samples are kept so that a later, better test can be run on old baselines, but
  within a cap: ``SAMPLE_CAP`` per run (see ``thin_samples``). Statistics are always
  computed from every sample before thinning.
- ``schema_version`` from day one. A file that is corrupt, truncated or of a newer
  schema raises ``StoreError`` naming the path and what to do; it is never overwritten
  (``save`` loads first and writes nothing when that fails).
- Writes are atomic: a temporary file in the same folder (``.<digest>.json.*.tmp``),
  flushed and fsynced, then ``os.replace``. A process killed mid-write leaves the
  previous file whole; its temporary file is never read (no loader looks at names
  starting with ".") and is deleted by the next successful save once it is a minute old.
- Saves are serialised: ``save`` and ``accept`` hold an exclusive lock (``locking.py``:
  ``flock`` on ``.<digest>.json.lock`` beside the file, deleted on release) while they
  read the file again, merge their runs into what is there and write it, so two runs
  saving at once both keep their records.
- Reads are bounded: only a regular file of at most ``files.MAX_READ_BYTES`` is read (a
  symlink to ``/dev/zero`` or a FIFO is refused in one line), and JSON nested too deep
  to parse is a ``StoreError`` like any other malformed file.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_hwperf.files import UnreadableFile, atomic_write, read_regular
from pytest_hwperf.records.codec import as_facts
from pytest_hwperf.records.types import FingerprintRecord, JSONValue
from pytest_hwperf.store.locking import exclusive
from pytest_hwperf.store.runs import (
    SAMPLE_CAP,
    RunSummary,
    gate_runs,
    measurement_key,
    run_of_record,
    thin_samples,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "KEEP_RUNS",
    "SAMPLE_CAP",
    "SCHEMA_VERSION",
    "Baseline",
    "BaselineInfo",
    "BaselineStore",
    "RunSummary",
    "StoreError",
    "gate_runs",
    "measurement_key",
    "run_of_record",
    "thin_samples",
]

SCHEMA_VERSION = 1
KEEP_RUNS = 5  # runs kept per measurement: past spread without unbounded growth


_DIGEST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")  # a file name, not a path
_STALE_TEMP_S = 60.0  # a temporary file this old belongs to no live save
_FIX = "restore it from git or delete it to record a new baseline with --hwperf-save"


class StoreError(Exception):
    """A baseline or history file could not be used; the one-line message names the file,
    what is wrong and what to do. The file is left as it was."""


@dataclass(frozen=True)
class Baseline:
    """A loaded baseline file: its fingerprint (digest, label, hashed) and, per
    measurement key, the kept runs oldest first."""

    fingerprint: FingerprintRecord
    measurements: dict[str, tuple[RunSummary, ...]]
    path: Path

    def runs_for(self, key: str) -> tuple[RunSummary, ...]:
        """The kept runs of one measurement, oldest first; empty when it has none."""
        return self.measurements.get(key, ())


@dataclass(frozen=True)
class BaselineInfo:
    """One baseline file as ``hwperf baseline list`` shows it. ``error`` is set (and the
    other facts may be missing) when the file could not be read."""

    digest: str
    label: str | None
    path: Path
    measurements: int
    updated: str | None  # the newest run's ``created``
    error: str | None = None


# ------------------------------------------------------------------ the store


def _check_digest(digest: object) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ValueError(f"fingerprint digest must be a plain name, got {digest!r}")
    return digest


def _fingerprint_from_json(data: Mapping[str, object]) -> FingerprintRecord:
    """A baseline file's fingerprint object; ValueError names what is wrong. Keys other
    than digest, label and hashed are not kept."""
    label, hashed = data.get("label"), data.get("hashed", {})
    digest = _check_digest(data.get("digest"))
    if not isinstance(label, str):
        raise ValueError(f"fingerprint label must be a string, got {label!r}")
    if not isinstance(hashed, Mapping):
        raise ValueError("fingerprint 'hashed' must be a mapping")
    return FingerprintRecord(digest=digest, label=label, hashed=as_facts(hashed, "hashed"))


def _fingerprint_json(fingerprint: FingerprintRecord) -> dict[str, JSONValue]:
    """The part of a fingerprint a baseline keeps (digest, label and what was hashed);
    volatile facts churn, so they are never part of it, to keep diffs quiet."""
    return {
        "digest": _check_digest(fingerprint.digest),
        "label": fingerprint.label,
        "hashed": as_facts(fingerprint.hashed, "fingerprint.hashed"),
    }


def _parse(path: Path, digest: str, text: str) -> Baseline:
    def bad(what: str) -> StoreError:
        return StoreError(f"baseline file {path} {what}: {_FIX}; it was left unchanged")

    if not text.strip():
        raise bad("is empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad(f"is not valid JSON ({exc.msg}, line {exc.lineno}; truncated?)") from exc
    except RecursionError:
        raise bad("is nested too deeply to parse") from None
    except ValueError as exc:  # an integer literal beyond Python's digit limit
        raise bad(f"is not valid JSON ({' '.join(str(exc).split())[:80]})") from None
    try:
        return _parse_document(path, digest, document, bad)
    except RecursionError:  # a fingerprint nested just below the parser's own limit
        raise bad("is nested too deeply to read") from None


def _parse_document(
    path: Path, digest: str, document: object, bad: Callable[[str], StoreError]
) -> Baseline:
    if not isinstance(document, dict):
        raise bad("is not a JSON object")
    if "schema_version" not in document:
        raise bad("has no schema_version, so it is not a pytest-hwperf baseline")
    version = document["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"has an invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"baseline file {path} has schema version {version} (this pytest-hwperf reads"
            f" up to {SCHEMA_VERSION}): it was written by a newer pytest-hwperf: upgrade"
            " pytest-hwperf to use it; it was left unchanged"
        )
    found = document.get("fingerprint")
    if not isinstance(found, dict):
        raise bad("has no 'fingerprint' object")
    try:
        fingerprint = _fingerprint_from_json(found)
    except ValueError as exc:
        raise bad(f"has a malformed fingerprint ({exc})") from exc
    if fingerprint.digest != digest:
        raise bad(f"holds fingerprint {fingerprint.digest!r}, not {digest!r} as named")
    entries = document.get("measurements")
    if not isinstance(entries, dict):
        raise bad("has no 'measurements' object")
    measurements: dict[str, tuple[RunSummary, ...]] = {}
    for key, runs in entries.items():
        if not isinstance(runs, list):
            raise bad(f"has a malformed entry for {key!r} (not a list of runs)")
        try:
            measurements[key] = tuple(RunSummary.from_record(run) for run in runs)
        except ValueError as exc:
            raise bad(f"has a malformed entry for {key!r} ({exc})") from exc
    return Baseline(fingerprint=fingerprint, measurements=measurements, path=path)


def _clean_stale_temps(path: Path) -> None:
    """Delete temporary files that killed saves of ``path`` left behind."""
    cutoff = time.time() - _STALE_TEMP_S
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if temp.stat().st_mtime < cutoff:
                temp.unlink()


def _write_atomic(path: Path, text: str) -> None:
    atomic_write(path, text)


class BaselineStore:
    """Baseline files under ``root/baselines``. Only the controller process writes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def folder(self) -> Path:
        return self.root / "baselines"

    def path_for(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            shown = digest if len(digest) <= 40 else f"{digest[:20]}... ({len(digest)} characters)"
            raise ValueError(f"fingerprint digest must be a plain name, got {shown!r}")
        return self.folder / f"{digest}.json"

    def load(self, digest: str) -> Baseline | None:
        """The baseline of one fingerprint; None when it has none. StoreError when the
        file cannot be used (the message says why and what to do)."""
        path = self.path_for(digest)
        try:
            data = read_regular(path)
        except FileNotFoundError:
            return None
        except UnreadableFile as exc:  # a FIFO, a device, or over the size cap
            raise StoreError(f"baseline file {exc}: {_FIX}; it was left unchanged") from None
        except OSError as exc:
            raise StoreError(
                f"baseline file {path} cannot be read ({exc.strerror or exc}):"
                " check its permissions; it was left unchanged"
            ) from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreError(
                f"baseline file {path} is not UTF-8 text: {_FIX}; it was left unchanged"
            ) from exc
        return _parse(path, digest, text)

    def save(
        self,
        fingerprint: FingerprintRecord,
        runs: Mapping[str, RunSummary],
        *,
        keep: int = KEEP_RUNS,
        carry: Mapping[str, Sequence[RunSummary]] | None = None,
    ) -> Path:
        """Add one run per key to the fingerprint's baseline, keeping each key's last
        ``keep`` runs; keys not in ``runs`` stay as they were.

        ``carry``: runs to start from when this fingerprint has no file yet (the runs of
        baselines saved under an older fingerprint version of the same hardware, so that
        the first save after an upgrade continues their history); ignored otherwise.

        A run whose ``run_id`` is already kept for its key replaces that entry, so saving
        the same run twice changes nothing. When the existing file cannot be loaded the
        StoreError propagates and nothing is written.
        """
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        return self._update(fingerprint, runs, keep=keep, carry=carry)

    def accept(self, fingerprint: FingerprintRecord, runs: Mapping[str, RunSummary]) -> Path:
        """Make each given run the only baseline run of its key (promote a run's results);
        other keys stay as they were."""
        return self._update(fingerprint, runs, keep=1)

    def _update(
        self,
        fingerprint: FingerprintRecord,
        runs: Mapping[str, RunSummary],
        *,
        keep: int,
        carry: Mapping[str, Sequence[RunSummary]] | None = None,
    ) -> Path:
        record = _fingerprint_json(fingerprint)
        path = self.path_for(fingerprint.digest)
        try:
            with exclusive(path):
                # Read again under the lock: another run may have saved since this one
                # started; its runs are kept and these are merged into them.
                written = self._merge_and_write(path, record, fingerprint.digest, runs, keep, carry)
        except OSError as exc:  # the lock (its folder, its file, or a stuck holder)
            raise StoreError(
                f"cannot lock baseline file {path} to save it ({exc.strerror or exc});"
                " the file is unchanged"
            ) from exc
        _clean_stale_temps(path)
        return written

    def _merge_and_write(
        self,
        path: Path,
        record: dict[str, JSONValue],
        digest: str,
        runs: Mapping[str, RunSummary],
        keep: int,
        carry: Mapping[str, Sequence[RunSummary]] | None = None,
    ) -> Path:
        current = self.load(digest)  # a StoreError stops before any write
        if current is not None:
            measurements = dict(current.measurements)
        else:
            measurements = {key: tuple(kept) for key, kept in (carry or {}).items()}
        for key, run in runs.items():
            kept = [r for r in measurements.get(key, ()) if r.run_id != run.run_id]
            kept.append(run)
            kept = kept[-keep:]
            # Older runs keep their statistics (their medians give the run-to-run
            # spread) but not their samples: only the newest run's are kept, so the
            # committed file stays small.
            kept = [replace(r, samples_ns=()) for r in kept[:-1]] + kept[-1:]
            measurements[key] = tuple(kept)
        document: dict[str, JSONValue] = {
            "schema_version": SCHEMA_VERSION,
            "fingerprint": record,
            "measurements": {
                key: [run.to_record() for run in kept] for key, kept in measurements.items()
            },
        }
        try:
            text = json.dumps(document, indent=1, sort_keys=True, allow_nan=False) + "\n"
        except ValueError as exc:  # a NaN or infinity in the data
            raise ValueError(f"cannot save a baseline with non-finite numbers: {exc}") from exc
        try:
            _write_atomic(path, text)
        except OSError as exc:
            raise StoreError(
                f"cannot write baseline file {path} ({exc.strerror or exc}):"
                " the previous file is unchanged"
            ) from exc
        return path

    def list(self) -> builtins.list[BaselineInfo]:
        """Every baseline file, by digest; an unusable one is listed with its error."""
        try:
            paths = sorted(p for p in self.folder.glob("*.json") if not p.name.startswith("."))
        except OSError:
            return []
        infos: list[BaselineInfo] = []
        for path in paths:
            digest = path.name[: -len(".json")]
            try:
                baseline = self.load(digest)
            except (StoreError, ValueError) as exc:
                infos.append(BaselineInfo(digest, None, path, 0, None, error=str(exc)))
                continue
            if baseline is None:  # removed while listing
                continue
            created = [r.created for runs in baseline.measurements.values() for r in runs]
            infos.append(
                BaselineInfo(
                    digest=digest,
                    label=baseline.fingerprint.label,
                    path=path,
                    measurements=len(baseline.measurements),
                    updated=max(created) if created else None,
                )
            )
        return infos
