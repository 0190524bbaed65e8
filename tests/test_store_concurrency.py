"""Concurrent savers (issue 13, item 1): two processes saving to one baseline, or
recording runs in one history, at the same moment, lose nothing whatever the
interleaving; the lock is released by a killed holder, and a stuck one costs a one-line
error, not a hang."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from pytest_hwperf.records.types import FingerprintRecord
from pytest_hwperf.store import BaselineStore, History, HistoryRow, RunSummary, StoreError, locking

POSIX = pytest.mark.skipif(not hasattr(os, "fork"), reason="the workers are forked (POSIX)")

ROUNDS = 20
FP = FingerprintRecord(digest="ab12cd34ef56", label="Test CPU", hashed={"cpu": 1})


def _run(tag: str, n: int = 2000) -> RunSummary:
    samples = tuple(1_000_000 + j for j in range(n))
    return RunSummary(
        run_id=tag,
        created="2024-06-01T00:00:00+00:00",
        commit=None,
        n=n,
        block_size=1,
        median_ms=1.0,
        mean_ms=1.0,
        p95_ms=None,
        samples_ns=samples,
        min_ms=1.0,
    )


@pytest.fixture(params=["flock", "exclusive-file"])
def lock_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of locking: flock (POSIX) and the O_CREAT|O_EXCL lock file used where
    there is no fcntl (the forked workers inherit the choice)."""
    if request.param == "exclusive-file":
        monkeypatch.setattr(locking, "_fcntl", None)
    return str(request.param)


def _saver(root: str, worker: int, barrier: Barrier, kind: str) -> None:
    if kind == "exclusive-file":
        locking._fcntl = None
    store = BaselineStore(Path(root))
    for i in range(ROUNDS):
        barrier.wait(timeout=60)
        # A fresh file per round (both create it), and one that grows every round.
        store.save(_fingerprint(f"round{i:02d}"), {f"t.py::w{worker}::x@cpu": _run(f"r{i}")})
        store.save(FP, {f"t.py::w{worker}_{i}::x@cpu": _run(f"r{i}", n=200)})
    os._exit(0)


def _fingerprint(digest: str) -> FingerprintRecord:
    return FingerprintRecord(digest=digest, label="Test CPU", hashed={"cpu": 1})


def _fork_pair(target: Callable[..., None], args: tuple[object, ...]) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    procs = [
        context.Process(target=target, args=(*args[:1], w, barrier, *args[1:])) for w in (0, 1)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert [proc.exitcode for proc in procs] == [0, 0]


@POSIX
def test_two_processes_saving_at_once_keep_every_record(tmp_path: Path, lock_kind: str) -> None:
    store = BaselineStore(tmp_path)
    # A large baseline to begin with (~100 keys of 2000 samples): a slow read-modify-write,
    # so that unlocked saves would overlap.
    store.save(FP, {f"t.py::big{k}::x@cpu": _run("old") for k in range(100)})
    _fork_pair(_saver, (str(tmp_path), lock_kind))

    for i in range(ROUNDS):
        baseline = store.load(f"round{i:02d}")
        assert baseline is not None
        assert set(baseline.measurements) == {"t.py::w0::x@cpu", "t.py::w1::x@cpu"}, i
    shared = store.load(FP.digest)
    assert shared is not None
    expected = {f"t.py::w{w}_{i}::x@cpu" for w in (0, 1) for i in range(ROUNDS)}
    assert expected <= set(shared.measurements)
    assert len(shared.measurements) == 100 + len(expected)
    # No lock file and no temporary file stays behind.
    assert sorted(p.name for p in store.folder.iterdir() if p.name.startswith(".")) == []


def _recorder(root: str, worker: int, barrier: Barrier) -> None:
    rows = [
        HistoryRow(
            key=f"t.py::w{worker}_{k}::x@cpu",
            test_id=f"t.py::w{worker}_{k}",
            name="x",
            device="cpu",
            n=3,
            median_ms=1.0,
            samples_ns=tuple(range(2000)),
        )
        for k in range(50)
    ]
    for i in range(ROUNDS):
        barrier.wait(timeout=60)
        for db in (f"fresh{i:02d}.sqlite", "shared.sqlite"):  # created by both, and growing
            History(Path(root) / db).record_run(
                f"w{worker}-r{i}", "2024-06-01T00:00:00+00:00", "fp", None, None, rows
            )
    os._exit(0)


@POSIX
def test_two_processes_recording_history_at_once_keep_every_run(tmp_path: Path) -> None:
    _fork_pair(_recorder, (str(tmp_path),))
    for i in range(ROUNDS):
        history = History(tmp_path / f"fresh{i:02d}.sqlite")
        assert {r.run_id for r in history.trend("t.py::w0_0")} == {f"w0-r{i}"}
        assert {r.run_id for r in history.trend("t.py::w1_0")} == {f"w1-r{i}"}
    shared = History(tmp_path / "shared.sqlite")
    for w in (0, 1):
        assert {r.run_id for r in shared.trend(f"t.py::w{w}_7")} == {
            f"w{w}-r{i}" for i in range(ROUNDS)
        }


# ------------------------------------------------------------------ the lock itself


def test_a_stuck_holder_costs_a_one_line_error_naming_the_lock(
    tmp_path: Path, lock_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BaselineStore(tmp_path)
    store.save(FP, {"k": _run("a")})
    before = store.path_for(FP.digest).read_bytes()
    monkeypatch.setattr(locking, "LOCK_TIMEOUT_S", 0.3)
    with locking.exclusive(store.path_for(FP.digest)):
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            store.save(FP, {"k": _run("b")})
        assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "\n" not in message
    assert str(locking.lock_path(store.path_for(FP.digest))) in message
    assert str(store.path_for(FP.digest)) in message
    assert store.path_for(FP.digest).read_bytes() == before
    store.save(FP, {"k": _run("b")})  # released: saving works again


def test_a_lock_file_left_by_a_dead_holder_does_not_block(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for(FP.digest)
    path.parent.mkdir(parents=True)
    locking.lock_path(path).write_text("12345\n")  # flock: no one holds it
    store.save(FP, {"k": _run("a")})
    assert store.load(FP.digest) is not None
    assert not locking.lock_path(path).exists()


def test_a_stale_exclusive_lock_file_is_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locking, "_fcntl", None)
    store = BaselineStore(tmp_path)
    path = store.path_for(FP.digest)
    path.parent.mkdir(parents=True)
    lock = locking.lock_path(path)
    lock.write_text("12345\n")  # its holder died holding it
    old = time.time() - locking.STALE_LOCK_S - 60
    os.utime(lock, (old, old))
    store.save(FP, {"k": _run("a")})
    assert store.load(FP.digest) is not None
    assert not lock.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX")
def test_a_holder_killed_with_sigkill_releases_the_lock(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for(FP.digest)
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from pytest_hwperf.store.locking import exclusive\n"
        "with exclusive(Path(sys.argv[1])):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    store.save(FP, {"k": _run("a")})  # the kernel released the killed holder's lock
    assert set(json.loads(path.read_text())["measurements"]) == {"k"}


# ------------------------------------------------------------------ two pytest runs

_QUICK = (
    "--hwperf",
    "--hwperf-max-time=0.2",
    "--hwperf-confirm=1",
    "--hwperf-warmup=0.01",
    "--hwperf-reference=off",
    "-p",
    "no:randomly",
    "-p",
    "no:cacheprovider",
)

_TEST = """
def test_{name}(hwperf):
    hwperf(lambda: sum(range(100)))
"""


@POSIX
def test_two_pytest_save_runs_at_once_keep_both_records(pytester: pytest.Pytester) -> None:
    for name in ("base", "x", "y"):
        pytester.makepyfile(**{f"test_{name}": _TEST.format(name=name)})
    first = pytester.runpytest_subprocess(*_QUICK, "--hwperf-save", "test_base.py")
    assert first.ret == 0, first.stdout.str()
    (path,) = (pytester.path / ".hwperf" / "baselines").glob("*.json")
    # A large baseline (~5 MB, as in the issue): each save's read-modify-write is slow
    # enough that two unlocked saves overlap.
    document = json.loads(path.read_text())
    (run,) = next(iter(document["measurements"].values()))
    big = {**run, "n": 2000, "samples_ns": list(range(1_000_000, 1_002_000))}
    for k in range(200):
        document["measurements"][f"test_big.py::test_{k}::x@cpu"] = [big]
    path.write_text(json.dumps(document, indent=1))

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", *_QUICK, "--hwperf-save", f"test_{name}.py"],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("x", "y")
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output
        assert "baseline saved" in output, output
    keys = set(json.loads(path.read_text())["measurements"])
    assert {k.split("::")[0] for k in keys} >= {"test_base.py", "test_x.py", "test_y.py"}
    assert len(keys) == 203
