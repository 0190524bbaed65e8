"""Baseline files: round trips, keeping runs, stable JSON, thinning, refusing bad files,
and surviving a save killed with SIGKILL."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_hwperf.files import MAX_READ_BYTES
from pytest_hwperf.judge import stats
from pytest_hwperf.records.types import FingerprintRecord
from pytest_hwperf.store import (
    KEEP_RUNS,
    SAMPLE_CAP,
    SCHEMA_VERSION,
    Baseline,
    BaselineStore,
    RunSummary,
    StoreError,
    measurement_key,
    thin_samples,
)
from pytest_hwperf.store.locking import lock_path

REPO = Path(__file__).resolve().parents[1]

DIGEST = "ab12cd34ef56"
FP = FingerprintRecord(
    digest=DIGEST,
    label="Test CPU x86-64-v3, 4 cores, 16 GB RAM class, no GPU",
    hashed={"cpu": {"model": "Test CPU", "usable_cores": 4}, "fingerprint_version": 1},
)
# The fingerprint as a report carries it: its volatile facts are never saved.
FP_JSON: dict[str, Any] = {
    "digest": FP.digest,
    "label": FP.label,
    "hashed": dict(FP.hashed),
    "volatile": {"hostname": "builder-7"},
}
K1 = measurement_key("tests/test_model.py::test_infer", "latency", "cpu")
K2 = measurement_key("tests/test_model.py::test_infer[gpu]", "latency", "cuda:0")


def summary(i: int, *, base_ns: int = 1_000_000, n: int = 11, block_size: int = 1) -> RunSummary:
    samples = [base_ns + i * 1000 + j * 10 for j in range(n)]
    return RunSummary.from_samples(
        f"run-{i:03d}", f"2024-05-{i + 1:02d}T12:00:00+00:00", f"{i:040x}", samples, block_size
    )


def folder_names(store: BaselineStore) -> list[str]:
    return sorted(p.name for p in store.folder.iterdir())


# ------------------------------------------------------------------ RunSummary


def test_measurement_key() -> None:
    assert (
        measurement_key("t.py::test_a[1]", "latency", "cuda:0") == "t.py::test_a[1]::latency@cuda:0"
    )


def test_from_samples_statistics() -> None:
    run = RunSummary.from_samples("r", "2024-01-01T00:00:00+00:00", None, [4, 1, 3, 2, 5], 1)
    ms = np.array([1, 2, 3, 4, 5]) / 1e6
    assert run.n == 5
    assert run.median_ms == pytest.approx(3e-6)
    assert run.mean_ms == pytest.approx(3e-6)
    assert run.p95_ms == stats.percentile(ms, 95)
    assert run.samples_ns == (4, 1, 3, 2, 5)  # under the cap: kept as measured
    assert run.min_ms == pytest.approx(1e-6)  # the gate's figure: the fastest call
    # Measured in more rounds than the samples hold: the fastest of all rounds is given.
    rounds = RunSummary.from_samples("r", "2024-01-01T00:00:00+00:00", None, [4, 5], 1, min_ms=2e-6)
    assert rounds.min_ms == 2e-6


def test_from_samples_blocked_has_no_p95() -> None:
    run = RunSummary.from_samples("r", "2024-01-01T00:00:00+00:00", None, [10, 20, 30], 8)
    assert run.p95_ms is None
    assert run.block_size == 8


@pytest.mark.parametrize(
    ("samples", "block_size"),
    [([], 1), ([1, -2], 1), ([1.5, 2.5], 1), ([1, 2], 0)],
    ids=["empty", "negative", "floats", "block-size-0"],
)
def test_from_samples_rejects(samples: list[Any], block_size: int) -> None:
    with pytest.raises(ValueError, match=r"."):
        RunSummary.from_samples("r", "2024-01-01T00:00:00+00:00", None, samples, block_size)


def test_thinning_keeps_cap_extremes_and_distribution() -> None:
    rng = np.random.default_rng(7)
    samples = rng.lognormal(mean=14, sigma=0.3, size=50_001).astype(np.int64)
    run = RunSummary.from_samples("r", "2024-01-01T00:00:00+00:00", "abc", samples, 1)

    assert run.n == 50_001
    assert len(run.samples_ns) == SAMPLE_CAP
    assert min(run.samples_ns) == samples.min()
    assert max(run.samples_ns) == samples.max()
    # Statistics come from every sample, not the kept ones.
    assert run.median_ms == float(np.median(samples)) / 1e6
    assert run.mean_ms == pytest.approx(float(samples.mean()) / 1e6, rel=1e-12)
    # The kept set has the full set's quantiles within one rank step (25 of 50001).
    full, kept = np.sort(samples), np.sort(np.array(run.samples_ns))
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        rank = int(np.searchsorted(full, np.quantile(kept, q)))
        assert abs(rank - q * (full.size - 1)) <= 26
    # Kept samples stay in measured order: they are a subsequence of the input.
    it = iter(samples.tolist())
    assert all(any(v == w for w in it) for v in run.samples_ns)


def test_thin_samples_below_cap_is_identity() -> None:
    assert thin_samples([3, 1, 2]) == (3, 1, 2)
    assert thin_samples(list(range(10)), cap=4) == (0, 3, 6, 9)


def test_record_round_trip() -> None:
    run = summary(3)
    record = json.loads(json.dumps(run.to_record()))
    assert RunSummary.from_record(record) == run
    blocked = summary(1, block_size=4)
    assert RunSummary.from_record(json.loads(json.dumps(blocked.to_record()))) == blocked


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", "11"),
        ("n", True),
        ("n", 0),
        ("median_ms", "1.0"),
        ("median_ms", float("nan")),
        ("mean_ms", None),
        ("p95_ms", "fast"),
        ("samples_ns", [1.5]),
        ("samples_ns", "1,2,3"),
        ("samples_ns", list(range(12))),  # more than n
        ("run_id", 7),
        ("commit", 7),
        ("block_size", 0),
        ("min_ms", "1.0"),
        ("min_ms", -1.0),
    ],
)
def test_from_record_rejects_bad_types(field: str, value: object) -> None:
    record: dict[str, object] = dict(summary(1).to_record())
    record[field] = value
    with pytest.raises(ValueError, match=field):
        RunSummary.from_record(record)


def test_a_run_saved_before_the_gate_figure_loads_without_it() -> None:
    record = summary(1).to_record()
    del record["min_ms"]
    assert RunSummary.from_record(record).min_ms is None


def test_from_record_rejects_missing_field() -> None:
    record = summary(1).to_record()
    del record["created"]
    with pytest.raises(ValueError, match="created"):
        RunSummary.from_record(record)


# ------------------------------------------------------------------ saving and loading


def test_save_load_round_trip(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / ".hwperf")
    assert store.load(DIGEST) is None
    path = store.save(FP, {K1: summary(1), K2: summary(2, base_ns=5_000_000)})

    assert path == tmp_path / ".hwperf" / "baselines" / "ab12cd34ef56.json"
    assert path == store.path_for("ab12cd34ef56")
    baseline = store.load(DIGEST)
    assert isinstance(baseline, Baseline)
    assert baseline.path == path
    assert baseline.fingerprint == FP
    assert baseline.runs_for(K1) == (summary(1),)
    assert baseline.runs_for(K2) == (summary(2, base_ns=5_000_000),)
    assert baseline.runs_for("missing::x@cpu") == ()
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["schema_version"] == SCHEMA_VERSION
    assert "volatile" not in document["fingerprint"]  # churns; kept out of diffs


def test_save_keeps_last_runs_oldest_first(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    for i in range(7):
        store.save(FP, {K1: summary(i)})
    baseline = store.load(DIGEST)
    assert baseline is not None
    assert KEEP_RUNS == 5
    assert [r.run_id for r in baseline.runs_for(K1)] == [f"run-{i:03d}" for i in range(2, 7)]
    store.save(FP, {K1: summary(7)}, keep=2)
    baseline = store.load(DIGEST)
    assert baseline is not None
    assert [r.run_id for r in baseline.runs_for(K1)] == ["run-006", "run-007"]
    with pytest.raises(ValueError, match="keep"):
        store.save(FP, {K1: summary(8)}, keep=0)


def test_save_leaves_other_keys_alone(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.save(FP, {K1: summary(1), K2: summary(2)})
    store.save(FP, {K1: summary(3)})
    baseline = store.load(DIGEST)
    assert baseline is not None
    # The older run of K1 keeps its statistics, not its samples; K2 is untouched.
    assert baseline.runs_for(K1) == (replace(summary(1), samples_ns=()), summary(3))
    assert baseline.runs_for(K2) == (summary(2),)


def test_only_the_newest_run_keeps_its_samples(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    for i in range(3):
        store.save(FP, {K1: summary(i)})
    baseline = store.load(DIGEST)
    assert baseline is not None
    runs = baseline.runs_for(K1)
    assert [len(r.samples_ns) > 0 for r in runs] == [False, False, True]
    assert [r.median_ms for r in runs] == [summary(i).median_ms for i in range(3)]


def test_saving_the_same_run_twice_changes_nothing(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.save(FP, {K1: summary(1), K2: summary(2)})
    first = path.read_bytes()
    store.save(FP, {K1: summary(1), K2: summary(2)})
    assert path.read_bytes() == first


def test_accept_replaces_runs_of_the_given_keys(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    for i in range(3):
        store.save(FP, {K1: summary(i), K2: summary(10 + i)})
    store.accept(FP, {K1: summary(20)})
    baseline = store.load(DIGEST)
    assert baseline is not None
    assert baseline.runs_for(K1) == (summary(20),)
    assert len(baseline.runs_for(K2)) == 3


def test_json_is_stable_and_sorted(tmp_path: Path) -> None:
    runs = {K1: summary(1), K2: summary(2)}
    reordered_fp = FingerprintRecord(
        hashed=dict(reversed(list(FP.hashed.items()))), label=FP.label, digest=DIGEST
    )
    a = BaselineStore(tmp_path / "a").save(FP, runs)
    b = BaselineStore(tmp_path / "b").save(reordered_fp, dict(reversed(list(runs.items()))))
    text = a.read_text(encoding="utf-8")
    assert a.read_bytes() == b.read_bytes()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n"


def test_saved_file_is_readable_by_others(tmp_path: Path) -> None:
    path = BaselineStore(tmp_path).save(FP, {K1: summary(1)})
    if os.name == "posix":
        assert path.stat().st_mode & 0o044 == 0o044  # not mkstemp's 0600


def test_bad_digest_is_refused(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    with pytest.raises(ValueError, match="digest"):
        store.path_for("../escape")
    with pytest.raises(ValueError, match="digest"):
        store.save(replace(FP, digest=".hidden"), {K1: summary(1)})


def test_list(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    assert store.list() == []
    store.save(FP, {K1: summary(1), K2: summary(4)})
    other = replace(FP, digest="ffff00001111", label="Other")
    store.save(other, {K1: summary(2)})
    (store.folder / "0bad.json").write_text("{oops", encoding="utf-8")
    (store.folder / ".ab12cd34ef56.json.x1.tmp").write_text("{", encoding="utf-8")

    infos = store.list()
    assert [i.digest for i in infos] == ["0bad", "ab12cd34ef56", "ffff00001111"]
    bad, good, second = infos
    assert bad.error is not None
    assert str(store.folder / "0bad.json") in bad.error
    assert good.error is None
    assert good.label == FP.label
    assert good.measurements == 2
    assert good.updated == summary(4).created
    assert good.path == store.path_for("ab12cd34ef56")
    assert second.label == "Other"


# ------------------------------------------------------------------ refusing bad files


def _valid_text() -> str:
    document = {
        "schema_version": 1,
        "fingerprint": {k: FP_JSON[k] for k in ("digest", "label", "hashed")},
        "measurements": {K1: [summary(1).to_record()]},
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def _with(change: dict[str, object]) -> bytes:
    document = json.loads(_valid_text())
    document.update(change)
    return json.dumps(document).encode()


def _without(key: str) -> bytes:
    document = json.loads(_valid_text())
    del document[key]
    return json.dumps(document).encode()


def _bad_run() -> bytes:
    document = json.loads(_valid_text())
    document["measurements"][K1][0]["median_ms"] = "fast"
    return json.dumps(document).encode()


BAD_FILES = {
    "not-json": (b"{this is not json", "not valid JSON"),
    "truncated": (_valid_text().encode()[: len(_valid_text()) // 2], "not valid JSON"),
    "empty": (b"", "is empty"),
    "not-an-object": (b"[1, 2, 3]\n", "not a JSON object"),
    "no-schema-version": (_without("schema_version"), "no schema_version"),
    "bad-schema-version": (_with({"schema_version": "1"}), "invalid schema_version"),
    "newer-schema": (_with({"schema_version": SCHEMA_VERSION + 1}), "newer pytest-hwperf: upgrade"),
    "measurements-not-object": (_with({"measurements": [1]}), "'measurements'"),
    "runs-not-list": (_with({"measurements": {K1: {"n": 1}}}), "malformed entry"),
    "wrong-types": (_bad_run(), "malformed entry"),
    "other-digest": (
        _with({"fingerprint": {**FP_JSON, "digest": "000000000000", "volatile": None}}),
        "not 'ab12cd34ef56'",
    ),
    "not-utf8": (b"\xff\xfe{}", "not UTF-8"),
}


@pytest.mark.parametrize("content", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_file_is_reported_and_never_overwritten(tmp_path: Path, content: str) -> None:
    data, reason = BAD_FILES[content]
    store = BaselineStore(tmp_path / ".hwperf")
    path = store.path_for(DIGEST)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)

    with pytest.raises(StoreError) as load_error:
        store.load(DIGEST)
    message = str(load_error.value)
    assert str(path) in message
    assert reason in message
    assert "\n" not in message
    assert "left unchanged" in message
    if content != "newer-schema":
        assert "--hwperf-save" in message  # says what to do

    for write in (store.save, store.accept):
        with pytest.raises(StoreError, match=re.escape(str(path))):
            write(FP, {K1: summary(9)})
    assert path.read_bytes() == data
    assert folder_names(store) == [path.name]  # no temporary file left either


def test_good_file_text_loads(tmp_path: Path) -> None:
    """The fixture the bad files are made from is itself valid."""
    store = BaselineStore(tmp_path)
    store.folder.mkdir()
    store.path_for(DIGEST).write_text(_valid_text(), encoding="utf-8")
    baseline = store.load(DIGEST)
    assert baseline is not None
    assert baseline.runs_for(K1) == (summary(1),)


def test_stale_temp_files_are_cleaned_by_the_next_save(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.save(FP, {K1: summary(1)})
    old = store.folder / ".ab12cd34ef56.json.dead1.tmp"
    fresh = store.folder / ".ab12cd34ef56.json.live2.tmp"  # maybe a save in progress
    for temp in (old, fresh):
        temp.write_text('{"half": ', encoding="utf-8")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    store.save(FP, {K1: summary(2)})
    assert not old.exists()
    assert fresh.exists()


# ------------------------------------------------------------------ SIGKILL mid-save

_CHILD_PRELUDE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from pytest_hwperf.records.types import FingerprintRecord
    from pytest_hwperf.store import BaselineStore, RunSummary

    FP = FingerprintRecord(digest="ab12cd34ef56", label="Test CPU", hashed={"cpu": 1})

    def big(tag, keys=40, n=2000):
        runs = {}
        for k in range(keys):
            samples = tuple(1_000_000 + tag * 7 + k * 13 + j for j in range(n))
            runs[f"t.py::test_{k}::latency@cpu"] = RunSummary(
                run_id=f"run-{tag}", created="2024-06-01T00:00:00+00:00", commit=None,
                n=n, block_size=1, median_ms=1.0 + tag, mean_ms=1.0 + tag, p95_ms=None,
                samples_ns=samples)
        return runs

    store = BaselineStore(Path(sys.argv[1]))
    """
)

_POSIX_ONLY = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


def _spawn(code: str, root: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD_PRELUDE + textwrap.dedent(code), str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"the child exited early with status {proc.wait()}"
    return line.strip()


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert proc.stdout is not None
    proc.stdout.close()


# The child stalls at a chosen point of the save and is killed there with SIGKILL.
_STALLS = {
    # Half of the new text written to the temporary file: a torn write.
    "mid-write": """
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, fh):
                self.fh = fh
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return self.fh.__exit__(*exc)
            def fileno(self):
                return self.fh.fileno()
            def flush(self):
                self.fh.flush()
            def write(self, text):
                self.fh.write(text[: len(text) // 2])
                self.fh.flush()
                print("writing", flush=True)
                time.sleep(60)

        os.fdopen = lambda *args, **kwargs: HalfWriter(real_fdopen(*args, **kwargs))
        """,
    # The whole new file written and fsynced, killed where it would be renamed.
    "before-rename": """
        def stalled_replace(src, dst):
            print("writing", flush=True)
            time.sleep(60)

        os.replace = stalled_replace
        """,
}


@_POSIX_ONLY
@pytest.mark.parametrize("stall", list(_STALLS))
def test_sigkill_while_saving_keeps_the_previous_baseline(tmp_path: Path, stall: str) -> None:
    store = BaselineStore(tmp_path)
    store.save(FP, {K1: summary(1), K2: summary(2)})
    path = store.path_for(DIGEST)
    before_bytes, before = path.read_bytes(), store.load(DIGEST)

    proc = _spawn(textwrap.dedent(_STALLS[stall]) + "store.save(FP, big(1))\n", tmp_path)
    try:
        assert _read_line(proc) == "writing"
    finally:
        _kill(proc)

    assert path.read_bytes() == before_bytes
    assert store.load(DIGEST) == before
    # The killed save's lock file may stay too (the kernel released its lock); the next
    # save takes it and deletes it.
    temps = [p for p in store.folder.iterdir() if p not in (path, lock_path(path))]
    assert temps, "the killed save's temporary file should be there"
    assert all(p.name.startswith(".ab12cd34ef56.json.") and p.name.endswith(".tmp") for p in temps)
    (temp,) = temps
    if stall == "mid-write":  # a torn file, that no reader ever looks at
        with pytest.raises(json.JSONDecodeError):
            json.loads(temp.read_text(encoding="utf-8"))
    else:  # complete, yet never renamed into place
        assert json.loads(temp.read_text(encoding="utf-8"))["measurements"]
    assert [i.digest for i in store.list()] == ["ab12cd34ef56"]  # temp files are ignored
    # The next save works, and once it is stale it deletes the leftover.
    os.utime(temp, (time.time() - 3600, time.time() - 3600))
    store.save(FP, {K1: summary(3)})
    assert folder_names(store) == [path.name]


@_POSIX_ONLY
def test_sigkill_at_random_moments_of_repeated_saves(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for(DIGEST)
    # The child alternates two large baselines and is killed at random moments (mostly
    # while loading or encoding: on a fast disk the write itself is brief, which is why
    # the test above pins the torn-write and before-rename moments). Whatever the moment,
    # the file must be one of the two, whole.
    code = """
        a, b = big(1), big(2)
        store.accept(FP, a)
        print("saved", flush=True)
        while True:
            store.accept(FP, b)
            store.accept(FP, a)
            print("saved", flush=True)
        """
    rng = random.Random(5)
    for _ in range(3):
        proc = _spawn(code, tmp_path)
        try:
            assert _read_line(proc) == "saved"
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            _kill(proc)
        baseline = store.load(DIGEST)
        assert baseline is not None
        run_ids = {run.run_id for runs in baseline.measurements.values() for run in runs}
        assert run_ids in ({"run-1"}, {"run-2"})
        assert len(baseline.measurements) == 40
        assert all(len(runs[0].samples_ns) == 2000 for runs in baseline.measurements.values())
        assert path.read_bytes().endswith(b"}\n")


# ------------------------------------------------------------------ hostile files (issue 13)

_DEEP = "[" * 100_000 + "]" * 100_000


def _hostile(kind: str, path: Path) -> None:
    """Put a file at `path` that must be refused in one line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "dev-zero":  # reading it never ends
        path.symlink_to("/dev/zero")
    elif kind == "fifo":  # reading it blocks for ever
        os.mkfifo(path)
    elif kind == "over-cap":  # sparse: its size is over the cap, its disk use nothing
        with path.open("wb") as fh:
            fh.truncate(MAX_READ_BYTES + 1)
    elif kind == "deep-list":
        path.write_text(_DEEP, encoding="utf-8")
    elif kind == "deep-measurements":
        path.write_text(
            '{"schema_version": 1, "fingerprint": {"digest": "ab12cd34ef56", "label": "x"},'
            f' "measurements": {{"k": {_DEEP}}}}}',
            encoding="utf-8",
        )
    else:
        raise AssertionError(kind)


_HOSTILE = ["dev-zero", "fifo", "over-cap", "deep-list", "deep-measurements"]
_WHY = {
    "dev-zero": "not a regular file",
    "fifo": "not a regular file",
    "over-cap": "over the",
    "deep-list": "nested too deeply",
    "deep-measurements": "nested too deeply",
}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX files")
@pytest.mark.parametrize("kind", _HOSTILE)
def test_hostile_file_is_one_line_error_and_never_overwritten(tmp_path: Path, kind: str) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for(DIGEST)
    _hostile(kind, path)
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        store.load(DIGEST)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert _WHY[kind] in message
    # Saving over it is refused the same way; the file is left as it was.
    before = os.lstat(path)
    with pytest.raises(StoreError, match=re.escape(_WHY[kind])):
        store.save(FP, {K1: summary(1)})
    after = os.lstat(path)
    assert (after.st_mode, after.st_size, after.st_mtime_ns) == (
        before.st_mode,
        before.st_size,
        before.st_mtime_ns,
    )
    assert time.monotonic() - started < 20  # nothing read for ever, nothing blocked


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX files")
@pytest.mark.parametrize("kind", _HOSTILE)
def test_list_reports_a_hostile_file_and_lists_the_others(tmp_path: Path, kind: str) -> None:
    store = BaselineStore(tmp_path)
    store.save(FP, {K1: summary(1)})
    store.save(replace(FP, digest="zz99"), {K1: summary(2)})
    _hostile(kind, store.folder / "mm00.json")
    infos = store.list()
    assert [i.digest for i in infos] == ["ab12cd34ef56", "mm00", "zz99"]
    bad = infos[1]
    assert bad.error is not None
    assert _WHY[kind] in bad.error
    assert str(store.folder / "mm00.json") in bad.error
    assert infos[0].error is None
    assert infos[2].error is None


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from pytest_hwperf import cli

    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX files")
@pytest.mark.parametrize("kind", ["dev-zero", "deep-list", "deep-measurements"])
def test_cli_baseline_commands_on_a_hostile_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    root = tmp_path / ".hwperf"
    store = BaselineStore(root)
    store.save(replace(FP, digest="zz99"), {K1: summary(2)})
    path = store.path_for(DIGEST)
    _hostile(kind, path)

    code, out, err = _cli(capsys, "baseline", "list", "--dir", str(root))
    assert code == 2
    assert "zz99" in out  # the other file is still listed
    (line,) = [x for x in out.splitlines() if x.startswith(DIGEST)]
    assert str(path) in line
    assert _WHY[kind] in line
    assert "Traceback" not in out + err

    code, out, err = _cli(capsys, "baseline", "show", DIGEST, "--dir", str(root))
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("hwperf baseline show: error: ")
    assert str(path) in line
    assert _WHY[kind] in line

    report = tmp_path / "report.json"
    _write_report(report)
    code, out, err = _cli(capsys, "baseline", "accept", str(report), "--dir", str(root))
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("hwperf baseline accept: error: ")
    assert str(path) in line
    assert os.path.islink(path) == (kind == "dev-zero")  # left as it was


def _write_report(path: Path) -> None:
    """A JSON report with one measured result on fingerprint DIGEST."""
    from _typed_records import typed

    from pytest_hwperf.report import build_document, write_document

    record = typed({"samples_ns": [1_000_000, 1_100_000, 900_000], "fingerprint": FP_JSON})
    document = build_document(
        [record], environment={"fingerprint": FP_JSON}, settings={}, plugin_version=None
    )
    write_document(path, document)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX files")
@pytest.mark.parametrize("kind", ["dev-zero", "deep-list"])
def test_pytest_with_a_hostile_baseline_runs_its_tests_and_says_why_in_one_line(
    pytester: pytest.Pytester, kind: str
) -> None:
    quick = (
        *("--hwperf", "--hwperf-max-time=0.2", "--hwperf-confirm=1", "--hwperf-warmup=0.01"),
        *("--hwperf-reference=off", "-p", "no:randomly"),
    )
    pytester.makepyfile(test_a="def test_a(hwperf):\n    hwperf(lambda: sum(range(100)))\n")
    assert pytester.runpytest(*quick, "--hwperf-save").ret == 0
    (path,) = (pytester.path / ".hwperf" / "baselines").glob("*.json")
    path.unlink()
    _hostile(kind, path)
    result = pytester.runpytest(*quick)
    output = result.stdout.str()
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    result.assert_outcomes(passed=1)
    (line,) = [x for x in output.splitlines() if str(path) in x]
    assert line.startswith("hwperf: error: ")
    assert _WHY[kind] in line
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a gate that could not run
