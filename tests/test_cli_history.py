"""`hwperf history` as a new user starts it (issue 14, item 7): no argument lists the
recorded tests; a short or partial test id works when it is unique, and the candidates
are listed when it is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_hwperf.cli import main
from pytest_hwperf.store import History, HistoryRow

IDS = (
    "tests/test_mlp.py::test_mlp_batch_throughput",
    "tests/test_mlp.py::test_mlp_latency",
    "tests/test_fraud.py::test_score_one",
)


def _row(test_id: str, name: str, median_ms: float) -> HistoryRow:
    return HistoryRow(
        key=f"{test_id}::{name}@cpu",
        test_id=test_id,
        name=name,
        device="cpu",
        n=3,
        median_ms=median_ms,
        mean_ms=median_ms,
        p95_ms=median_ms,
        outcome="pass",
        samples_ns=(1_000_000, 1_100_000, 1_200_000),
    )


@pytest.fixture
def history(tmp_path: Path) -> Path:
    root = tmp_path / ".hwperf"
    store = History(root / "history.sqlite")
    for run in range(2):
        rows = [_row(IDS[0], "mlp", 1.0 + run), _row(IDS[0], "mlp-32", 2.0)]
        if run == 1:
            rows += [_row(IDS[1], "mlp", 0.5), _row(IDS[2], "score", 0.7)]
        store.record_run(
            f"run-{run}", f"2026-12-0{run + 1}T10:00:00+00:00", "abc123", "Test CPU", None, rows
        )
    return root


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["history", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_no_argument_lists_the_recorded_tests(history, capsys):
    code, out, err = _cli(capsys, "--dir", str(history))
    assert (code, err) == (0, "")
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["test", "measurements", "runs", "last", "run"]
    assert lines[1:] == [
        [IDS[2], "1", "1", "2026-12-02T10:00:00+00:00"],
        [IDS[0], "2", "2", "2026-12-02T10:00:00+00:00"],
        [IDS[1], "1", "1", "2026-12-02T10:00:00+00:00"],
    ]


def test_a_unique_part_of_an_id_shows_that_test(history, capsys):
    code, out, err = _cli(capsys, "test_mlp_batch_throughput", "--dir", str(history))
    assert (code, err) == (0, "")
    keys = [line for line in out.splitlines() if not line.startswith(" ")]
    assert sorted(keys) == [f"{IDS[0]}::mlp-32@cpu", f"{IDS[0]}::mlp@cpu"]
    assert "trend: median 1.00ms -> 2.00ms (+100.0%) over 2 runs" in out


def test_an_ambiguous_part_lists_the_candidates(history, capsys):
    code, out, err = _cli(capsys, "test_mlp", "--dir", str(history))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "'test_mlp' matches 2 recorded tests; give one of them:",
        f"  {IDS[0]}",
        f"  {IDS[1]}",
    ]


def test_an_unknown_id_says_how_to_list(history, capsys):
    code, out, _ = _cli(capsys, "test_nothing", "--dir", str(history))
    assert code == 0
    assert out.startswith("no recorded runs of test_nothing in ")
    assert out.rstrip().endswith("(`hwperf history` lists the recorded tests)")


def test_no_history_yet(tmp_path, capsys):
    code, out, _ = _cli(capsys, "--dir", str(tmp_path / ".hwperf"))
    assert code == 0
    assert out.startswith("no recorded runs in ")
