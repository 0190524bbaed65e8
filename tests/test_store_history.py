"""The SQLite run history, and the git commit a run records."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_hwperf.store import (
    HISTORY_SCHEMA_VERSION,
    SAMPLE_CAP,
    History,
    HistoryRow,
    StoreError,
    TrendRow,
    commit_label,
    current_commit,
    measurement_key,
)

TEST = "tests/test_model.py::test_infer"
KEY = measurement_key(TEST, "latency", "cpu")
KEY_GPU = measurement_key(TEST, "latency", "cuda:0")


def meas(key: str = KEY, *, median: float = 1.0, samples: list[int] | None = None) -> HistoryRow:
    test_id, rest = key.rsplit("::", 1)
    name, device = rest.split("@")
    return HistoryRow(
        key=key,
        test_id=test_id,
        name=name,
        device=device,
        n=100,
        median_ms=median,
        mean_ms=median * 1.1,
        p95_ms=median * 1.5,
        outcome="pass",
        samples_ns=(1_000_000, 1_100_000, 900_000) if samples is None else tuple(samples),
    )


def created(day: int) -> str:
    return f"2024-06-{day:02d}T08:00:00+00:00"


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "history.sqlite"
    history = History(path)
    assert not path.exists()  # nothing is created until a run is recorded
    samples = list(range(1_000_000, 1_005_000))
    history.record_run(
        "run-1",
        created(1),
        "ab12cd34ef56",
        "Test CPU, 4 cores",
        "f" * 40,
        [meas(samples=samples), meas(KEY_GPU, median=0.5)],
    )
    assert path.exists()

    (row,) = history.trend(KEY)
    assert row == TrendRow(
        run_id="run-1",
        created=created(1),
        fingerprint="ab12cd34ef56",
        label="Test CPU, 4 cores",
        commit="f" * 40,
        key=KEY,
        test_id=TEST,
        name="latency",
        device="cpu",
        n=100,
        median_ms=1.0,
        mean_ms=pytest.approx(1.1),  # type: ignore[arg-type]
        p95_ms=1.5,
        outcome="pass",
        samples_ns=row.samples_ns,
    )
    assert len(row.samples_ns) == SAMPLE_CAP  # capped like baselines
    assert (min(row.samples_ns), max(row.samples_ns)) == (samples[0], samples[-1])
    assert history.trend(KEY_GPU)[0].samples_ns == (1_000_000, 1_100_000, 900_000)


def test_schema_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    History(path).record_run("r", created(1), "fp", None, None, [meas()])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == HISTORY_SCHEMA_VERSION == 1
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        columns = [row[1] for row in conn.execute("PRAGMA table_info(measurements)")]
        index = [row[2] for row in conn.execute("PRAGMA index_info(measurements_key)")]
    conn.close()
    assert {"runs", "measurements", "measurements_key"} <= names
    assert columns == [
        "run_id", "key", "test_id", "name", "device", "n",
        "median_ms", "mean_ms", "p95_ms", "outcome", "samples",
    ]  # fmt: skip
    assert index == ["key", "run_id"]


def test_missing_history_reads_empty(tmp_path: Path) -> None:
    history = History(tmp_path / "none.sqlite")
    assert history.trend(KEY) == []
    assert history.medians(KEY, "fp") == []
    assert not (tmp_path / "none.sqlite").exists()


def test_trend_oldest_first_by_key_test_and_fingerprint(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite")
    # Recorded out of date order: the trend follows `created`.
    for day, fp in ((3, "A"), (1, "A"), (2, "B"), (4, "A")):
        history.record_run(
            f"run-{day}",
            created(day),
            fp,
            None,
            None,
            [meas(median=day), meas(KEY_GPU, median=day / 10)],
        )
    assert [r.run_id for r in history.trend(KEY)] == ["run-1", "run-2", "run-3", "run-4"]
    assert [r.median_ms for r in history.trend(KEY)] == [1.0, 2.0, 3.0, 4.0]
    assert [r.run_id for r in history.trend(KEY, limit=2)] == ["run-3", "run-4"]  # the latest
    assert [r.run_id for r in history.trend(KEY, fingerprint="A")] == ["run-1", "run-3", "run-4"]
    by_test = history.trend(TEST)
    assert [(r.run_id, r.device) for r in by_test[:2]] == [("run-1", "cpu"), ("run-1", "cuda:0")]
    assert len(by_test) == 8
    assert history.trend("tests/test_other.py::test_x") == []


def test_medians_per_fingerprint(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite")
    for day in range(1, 8):
        fp = "A" if day % 2 else "B"
        history.record_run(f"run-{day}", created(day), fp, None, None, [meas(median=float(day))])
    assert history.medians(KEY, "A") == [1.0, 3.0, 5.0, 7.0]
    assert history.medians(KEY, "B") == [2.0, 4.0, 6.0]
    assert history.medians(KEY, "A", limit=2) == [5.0, 7.0]
    assert history.medians(KEY_GPU, "A") == []
    assert history.medians(KEY, "C") == []


def test_recording_a_run_again_replaces_it(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite")
    history.record_run("run-1", created(1), "A", None, None, [meas(median=1.0)])
    history.record_run("run-1", created(1), "A", "relabelled", None, [meas(median=2.0)])
    assert [(r.median_ms, r.label) for r in history.trend(KEY)] == [(2.0, "relabelled")]


def test_a_failed_run_is_not_half_recorded(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite")
    history.record_run("run-1", created(1), "A", None, None, [meas()])
    # A name of None violates NOT NULL after the first insert.
    broken = replace(meas(KEY_GPU), name=None)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match=re.escape(str(tmp_path / "h.sqlite"))):
        history.record_run("run-2", created(2), "A", None, None, [meas(), broken])
    assert [r.run_id for r in history.trend(TEST)] == ["run-1"]
    with sqlite3.connect(tmp_path / "h.sqlite") as conn:
        assert conn.execute("SELECT id FROM runs").fetchall() == [("run-1",)]
    conn.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_a_writer_killed_mid_transaction_leaves_the_previous_history(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    history = History(path)
    history.record_run("run-1", created(1), "A", None, None, [meas()])
    # A tiny page cache makes SQLite spill uncommitted pages into the file, so the kill
    # leaves a changed file and a hot journal: the next open must roll it back, even
    # when it only reads.
    code = textwrap.dedent(
        """
        import sqlite3, sys, time
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("PRAGMA cache_size = 1")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO runs VALUES ('run-2', '2024-06-02', 'A', NULL, NULL)")
        for i in range(5000):
            conn.execute(
                "INSERT INTO measurements (run_id, key, test_id, name, device, median_ms)"
                " VALUES ('run-2', ?, 't', 'n', 'cpu', 1.0)", (f"k{i}",))
        print("writing", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "writing"
        assert (tmp_path / "h.sqlite-journal").exists()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()

    reopened = History(path)
    assert [r.run_id for r in reopened.trend(TEST)] == ["run-1"]
    assert reopened.medians(KEY, "A") == [1.0]
    reopened.record_run("run-3", created(3), "A", None, None, [meas(median=3.0)])
    assert reopened.medians(KEY, "A") == [1.0, 3.0]


# ------------------------------------------------------------------ refusing bad files


def _expect_refused(path: Path, reason: str) -> None:
    data = path.read_bytes()
    with pytest.raises(StoreError) as error:
        History(path)
    message = str(error.value)
    assert str(path) in message
    assert reason in message
    assert "\n" not in message
    assert path.read_bytes() == data
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize(
    "data",
    [b"this is not a database\n" * 20, b"SQLite format 3\x00" + b"\x07" * 2000],
    ids=["text", "bad-sqlite-body"],
)
def test_not_sqlite_is_refused_and_left_alone(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "history.sqlite"
    path.write_bytes(data)
    _expect_refused(path, "not")


def test_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    History(path).record_run("r", created(1), "fp", None, None, [meas()])
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {HISTORY_SCHEMA_VERSION + 1}")
    conn.close()
    _expect_refused(path, "newer pytest-hwperf: upgrade")


def test_writes_to_a_refused_file_are_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    history = History(path)  # fine while missing
    path.write_bytes(b"not sqlite at all")
    with pytest.raises(StoreError, match="not an SQLite database"):
        history.record_run("r", created(1), "fp", None, None, [meas()])
    with pytest.raises(StoreError):
        history.trend(KEY)
    assert path.read_bytes() == b"not sqlite at all"


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    _expect_refused(path, "not a pytest-hwperf history")


# ------------------------------------------------------------------ git

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git must not find a repository above tmp_path, nor read the user's config."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


@needs_git
@pytest.mark.usefixtures("isolated_git")
def test_not_a_repository(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    assert current_commit(folder) is None
    assert commit_label(folder) is None
    assert current_commit(tmp_path / "does-not-exist") is None


@needs_git
@pytest.mark.usefixtures("isolated_git")
def test_repository_with_one_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    assert current_commit(repo) is None  # no commit yet
    (repo / "model.py").write_text("x = 1\n", encoding="utf-8")
    _git(repo, "add", "model.py")
    _git(repo, "commit", "-q", "-m", "one")
    sha = _git(repo, "rev-parse", "HEAD")

    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    assert current_commit(repo) == sha
    sub = repo / "sub"
    sub.mkdir()
    assert current_commit(sub) == sha
    assert commit_label(repo) == sha
    (repo / "history.sqlite").write_bytes(b"")  # untracked files are not "dirty"
    assert commit_label(repo) == sha
    (repo / "model.py").write_text("x = 2\n", encoding="utf-8")
    assert commit_label(repo) == f"{sha}+dirty"


def test_git_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert current_commit(tmp_path) is None
    assert commit_label(tmp_path) is None


# ---------------------------------------------------------- hostile rows and files (issue 13)

_DEEP = "[" * 100_000 + "]" * 100_000
# The two corruptions of the issue, and a few more a hand edit could leave.
_CORRUPTIONS = {
    "median-text": ("median_ms", "abc", "'median_ms' must be a number"),
    "deep-samples": ("samples", _DEEP, "'samples' is nested too deeply"),
    "samples-not-json": ("samples", "[1, 2", "'samples' is not valid JSON"),
    "samples-not-ints": ("samples", '[1, "x"]', "'samples' must be a list of integers"),
    "n-text": ("n", "many", "'n' must be an integer"),
    "p95-blob": ("p95_ms", b"\x00\x01", "'p95_ms' must be a number"),
    "device-blob": ("device", b"\xff", "'device' must be text"),
}


def _corrupt(path: Path, column: str, value: object, run_id: str = "r2") -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE measurements SET {column} = ? WHERE run_id = ?", (value, run_id))
    conn.close()


@pytest.mark.parametrize("corruption", list(_CORRUPTIONS))
def test_rows_that_do_not_validate_are_skipped_with_one_warning(
    tmp_path: Path, corruption: str
) -> None:
    column, value, why = _CORRUPTIONS[corruption]
    path = tmp_path / "history.sqlite"
    for day in (1, 2, 3):
        History(path).record_run(f"r{day}", created(day), "fp", None, None, [meas(median=day)])
    _corrupt(path, column, value)

    history = History(path)
    rows = history.trend(KEY)
    assert [r.run_id for r in rows] == ["r1", "r3"]  # the others are all still there
    (warning,) = history.warnings
    assert "\n" not in warning
    assert len(warning) < 400
    assert str(path) in warning
    assert "skipped 1 row that does not validate" in warning
    assert "'r2'" in warning
    assert why in warning
    assert history.trend(KEY) == rows
    assert len(history.warnings) == 1  # the same warning is not repeated
    if column == "median_ms":
        fresh = History(path)
        assert fresh.medians(KEY, "fp") == [1.0, 3.0]
        (warning,) = fresh.warnings
        assert str(path) in warning
        assert why in warning


def test_a_valid_history_gives_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    History(path).record_run("r", created(1), "fp", None, None, [meas()])
    history = History(path)
    assert len(history.trend(KEY)) == 1
    assert history.medians(KEY, "fp") == [1.0]
    assert history.warnings == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX files")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_a_path_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "history.sqlite"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    for attempt in (
        lambda: History(path),
        lambda: History(tmp_path / "other.sqlite").__class__(path).trend(KEY),
    ):
        with pytest.raises(StoreError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message
        assert str(path) in message
        assert "not a regular file" in message
    history = History(tmp_path / "fine.sqlite")
    history.path = path  # a file replaced after the history was opened
    with pytest.raises(StoreError, match="not a regular file"):
        history.record_run("r", created(1), "fp", None, None, [meas()])


@pytest.mark.parametrize("corruption", ["median-text", "deep-samples"])
def test_cli_history_skips_a_bad_row_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], corruption: str
) -> None:
    from pytest_hwperf import cli

    column, value, why = _CORRUPTIONS[corruption]
    path = tmp_path / "history.sqlite"
    for day in (1, 2):
        History(path).record_run(f"r{day}", created(day), "fp", None, None, [meas(median=day)])
    _corrupt(path, column, value)
    assert cli.main(["history", TEST, "--dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert KEY in out
    assert "1 run" in out
    (line,) = err.splitlines()
    assert line.startswith("hwperf history: warning: history database ")
    assert str(path) in line
    assert why in line
    assert "Traceback" not in out + err


_QUICK = (
    "--hwperf",
    "--hwperf-max-time=0.2",
    "--hwperf-confirm=1",
    "--hwperf-warmup=0.01",
    "--hwperf-reference=off",
    "-p",
    "no:randomly",
)


@pytest.mark.parametrize("corruption", ["median-text", "deep-samples"])
def test_a_corrupt_history_row_costs_neither_the_html_nor_the_exit_status(
    pytester: pytest.Pytester, corruption: str
) -> None:
    column, value, why = _CORRUPTIONS[corruption]
    pytester.makepyfile(test_a="def test_a(hwperf):\n    hwperf(lambda: sum(range(100)))\n")
    first = pytester.runpytest(*_QUICK)
    assert first.ret == 0, first.stdout.str()
    path = pytester.path / ".hwperf" / "history.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE measurements SET {column} = ?", (value,))
    conn.close()

    result = pytester.runpytest(*_QUICK, "--hwperf-html=h.html")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    result.stdout.fnmatch_lines(["hwperf: HTML report written to *h.html", "*1 passed*"])
    (warning,) = [line for line in output.splitlines() if "skipped" in line]
    assert warning.startswith("hwperf: warning: history database ")
    assert str(path) in warning
    assert why in warning
    assert (pytester.path / "h.html").read_text().startswith("<!DOCTYPE html>")
