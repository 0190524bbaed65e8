"""Which saved runs a session compares with: this hardware's baseline, found by digest,
by migration from an older fingerprint version, or not at all (and then which other
hardware has one).

A baseline file is named by the digest of the fingerprint it was saved under. When the
fingerprint's definition changes (``FINGERPRINT_VERSION``), the same machine gets a new
digest, and its committed baselines would all read "no baseline". So a session that finds
no file for its digest looks at the others: a file saved under an *older* fingerprint
version whose hardware part is this machine's is this machine's baseline (several such
files, saved before and after a software upgrade that version 1 hashed, are merged,
their runs ordered by when they were saved). Their runs did not record their versions;
they are read from what the old fingerprint hashed, so a comparison across an upgrade
still names it. The first ``--hwperf-save`` then writes the new file, carrying these runs
over (``BaselineStore.save(carry=...)``); the old files are left for people to delete.

Where nothing matches, the files of other hardware are named with how they differ, so a
user who expected a comparison learns why there is none (another runner class, a CPU
quota that changed the usable cores).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pytest_hwperf.hardware.fingerprint import (
    FINGERPRINT_VERSION,
    hardware_differences,
    same_hardware,
    v1_versions,
)
from pytest_hwperf.judge.gate import SavedRun
from pytest_hwperf.judge.tail import SavedTail
from pytest_hwperf.records.types import FingerprintRecord
from pytest_hwperf.store.baselines import (
    Baseline,
    BaselineStore,
    RunSummary,
    StoreError,
    gate_runs,
)

__all__ = ["FoundBaseline", "find_baseline", "gate_inputs", "migrates_to", "with_versions"]

_SHOWN_ELSEWHERE = 2  # other hardware named in the line; the rest are counted


@dataclass(frozen=True)
class FoundBaseline:
    """``baseline``: this hardware's saved runs (None: none). ``migrated_from``: the
    older-version files they were read from (empty when the file of this digest was
    found). ``elsewhere``: when there is none, the baselines of other hardware, one
    phrase each ("a1b8adefb739 (model AMD EPYC, here Intel Xeon)")."""

    baseline: Baseline | None
    migrated_from: tuple[Path, ...] = ()
    elsewhere: tuple[str, ...] = ()

    def no_baseline_note(self) -> str | None:
        """What the "no baseline" line adds: which other hardware has one, and how it
        differs from this machine; None when no other baseline exists."""
        if not self.elsewhere:
            return None
        shown = "; ".join(self.elsewhere[:_SHOWN_ELSEWHERE])
        more = len(self.elsewhere) - _SHOWN_ELSEWHERE
        extra = f"; and {more} more" if more > 0 else ""
        return f"baselines exist for other hardware: {shown}{extra}"


def _version_of(hashed: Mapping[str, object]) -> int:
    value = hashed.get("fingerprint_version")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def gate_inputs(runs: Sequence[RunSummary]) -> list[SavedRun]:
    """The saved runs of one key as the regression gate takes them (`gate.SavedRun`):
    those that recorded its figure, each with its fastest call, reference, versions,
    rounds and tail. The plugin and `hwperf compare` both read saved runs through here."""
    return [
        SavedRun(
            value,
            run.reference_ms,
            run.reference_kind,
            run.versions,
            run.round_min_ms,
            SavedTail(run.p95_ms, run.round_p95_ms, len(run.round_min_ms)),
        )
        for run, value in gate_runs(runs)
    ]


def migrates_to(ours: Mapping[str, object], theirs: Mapping[str, object]) -> bool:
    """Whether a baseline saved under the fingerprint `theirs` (hashed facts) is this
    machine's (`ours`): saved under an older fingerprint version, on the same hardware."""
    return _version_of(theirs) < FINGERPRINT_VERSION and same_hardware(ours, theirs)


def with_versions(run: RunSummary, hashed: Mapping[str, object]) -> RunSummary:
    """A run saved before runs kept their versions: those its fingerprint hashed."""
    return run if run.versions else replace(run, versions=v1_versions(hashed))


def _others(store: BaselineStore, digest: str) -> list[Baseline]:
    """Every readable baseline file but this digest's. A file that cannot be read is
    passed over: it belongs to other hardware and is reported where it is used."""
    found: list[Baseline] = []
    try:
        paths = sorted(p for p in store.folder.glob("*.json") if not p.name.startswith("."))
    except OSError:
        return found
    for path in paths:
        other = path.name[: -len(".json")]
        if other == digest:
            continue
        try:
            baseline = store.load(other)
        except (StoreError, ValueError):
            continue
        if baseline is not None:
            found.append(baseline)
    return found


def _merged(fingerprint: FingerprintRecord, old: list[Baseline]) -> Baseline:
    measurements: dict[str, list[RunSummary]] = {}
    for baseline in old:
        for key, runs in baseline.measurements.items():
            measurements.setdefault(key, []).extend(
                with_versions(run, baseline.fingerprint.hashed) for run in runs
            )
    return Baseline(
        fingerprint=fingerprint,
        measurements={
            key: tuple(sorted(runs, key=lambda run: run.created))
            for key, runs in measurements.items()
        },
        path=old[0].path,
    )


def find_baseline(store: BaselineStore, fingerprint: FingerprintRecord) -> FoundBaseline:
    """This machine's saved runs (see the module). StoreError when this digest's own file
    cannot be used: then nothing is compared, and nothing may be saved over it."""
    exact = store.load(fingerprint.digest)
    if exact is not None:
        return FoundBaseline(exact)
    others = _others(store, fingerprint.digest)
    old = [other for other in others if migrates_to(fingerprint.hashed, other.fingerprint.hashed)]
    if old:
        return FoundBaseline(_merged(fingerprint, old), tuple(b.path for b in old))
    described = []
    for other in others:
        differences = hardware_differences(fingerprint.hashed, other.fingerprint.hashed)
        what = ", ".join(differences[:3]) if differences else "the same hardware"
        if len(differences) > 3:
            what += f" and {len(differences) - 3} more"
        described.append((len(differences), f"{other.fingerprint.digest} ({what})"))
    described.sort(key=lambda item: item[0])
    return FoundBaseline(None, elsewhere=tuple(text for _, text in described))
