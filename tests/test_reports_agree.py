"""Every report gives each measurement the same verdict, and the same counts (issue 14,
item 6): the terminal table, the Markdown, the HTML, the JSON report and the run history,
over one session with a pass, a budget failure, a regression and a memory-only budget.
And throughput stands in items per second next to a budget in items."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from _output import load_json

from pytest_hwperf import cli
from pytest_hwperf.records.codec import from_json
from pytest_hwperf.records.types import MeasurementRecord
from pytest_hwperf.report import load_document
from pytest_hwperf.report.cells import plural, rate_text
from pytest_hwperf.store import History

# Sleeping targets do not follow the CPU's speed: no reference rescaling for them.
QUICK = (
    "--hwperf",
    # A pass of p95 needs ~150 samples: 0.1 s of these targets, within the limit.
    "--hwperf-max-time=1",
    "--hwperf-confirm=1",
    "--hwperf-warmup=0.01",
    "--hwperf-reference=off",
    "-p",
    "no:randomly",
)
REPORTS = ("--hwperf-json=r.json", "--hwperf-markdown=r.md", "--hwperf-html=r.html")

FOUR = """
import os
import time

import pytest


def steady():
    time.sleep(0.0005)


def slowed():
    time.sleep(0.0005 * float(os.environ.get("SLOW", "1")))


@pytest.mark.latency(ms=1000)
def test_pass(hwperf):
    hwperf(steady)


@pytest.mark.latency(ms=0.1)
def test_budget(hwperf):
    hwperf(steady)


@pytest.mark.latency(ms=1000)  # met: only the regression fails it
def test_regressed(hwperf):
    hwperf(slowed)


@pytest.mark.memory(rss_mb=100000)
def test_memory(hwperf):
    hwperf(steady)
"""

EXPECTED = {
    "test_four.py::test_pass": "pass",
    "test_four.py::test_budget": "fail",
    "test_four.py::test_regressed": "fail",
    "test_four.py::test_memory": "pass",
}


def _terminal(stdout: str) -> dict[str, str]:
    """The verdict column of the terminal's summary table, by test id (left-aligned
    columns start under their header). The session's table is the last one: a failing
    test's section has its own."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("test ") and "verdict" in line)
    header = lines[start]
    at = header.index("verdict")
    found = {}
    for line in lines[start + 1 :]:
        if not line.startswith("test_four.py::"):
            break
        found[line.split()[0]] = line[at:].split()[0]
    return found


def _markdown(text: str) -> tuple[str, dict[str, str]]:
    """The Markdown's count line and its verdict column by test id."""
    lines = text.splitlines()
    counts = next(line for line in lines if "failing their test" in line)
    table = [line for line in lines if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split(" | ")]
    verdicts = {}
    for row in table[2:]:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        verdicts[cells[header.index("test")].strip("`")] = cells[header.index("verdict")]
    return counts, verdicts


def _html(page: str) -> tuple[str, dict[str, int], dict[str, str], dict[str, str]]:
    """The HTML's banner, summary counts, summary-table verdicts and section pills."""
    banner = re.search(r'<div class="banner \w+">(.*?)</div>', page)
    assert banner
    counts = {
        label: int(n)
        for n, label in re.findall(
            r'<div class="count[^"]*"><b>(\d+)</b><span>([^<]*)</span></div>', page
        )
    }
    rows = {}
    for row in re.findall(r"<tr><td class=\"test\">(.*?)</tr>", page):
        test = re.search(r'<span class="file">([^<]*)</span><b>([^<]*)</b>', row)
        pill = re.search(r'<td><span class="pill (\w+)">([^<]*)</span></td>', row)
        assert test, row
        assert pill, row
        assert pill.group(1) == pill.group(2)
        rows[f"{test.group(1)}::{test.group(2)}"] = pill.group(2)
    sections = {}
    for head, test_id in re.findall(
        r'<div class="m-head">(.*?)</div><div class="test-id mono">([^<]*)</div>', page
    ):
        pill = re.match(r'<span class="pill \w+">([^<]*)</span>', head)
        assert pill, head
        sections[test_id] = pill.group(1)
    return banner.group(1), counts, rows, sections


def _history(root: Path) -> dict[str, str]:
    """The outcome each test's last run recorded in the history database."""
    history = History(root / ".hwperf" / "history.sqlite")
    found = {}
    for test_id in EXPECTED:
        rows = history.trend(test_id)
        assert rows, test_id
        found[test_id] = rows[-1].outcome or "no budget"
    return found


def _history_cli(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """The outcome column of `hwperf history TEST_ID`, its last run, by test id."""
    found = {}
    for test_id in EXPECTED:
        capsys.readouterr()
        assert cli.main(["history", test_id, "--dir", str(root / ".hwperf")]) == 0
        out = capsys.readouterr().out.splitlines()
        rows = [line for line in out if re.match(r"\s+\d{4}-\d\d-\d\dT", line)]
        assert rows, out
        found[test_id] = rows[-1].split()[-1]
    return found


def test_every_report_gives_the_same_verdicts_and_counts(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makepyfile(test_four=FOUR)
    for _ in range(3):  # the regressed test's baseline, fast
        saved = pytester.runpytest(*QUICK, "--hwperf-save", "-k", "test_regressed")
        assert saved.ret == pytest.ExitCode.OK, saved.stdout.str()
    monkeypatch.setenv("SLOW", "4")
    result = pytester.runpytest(*QUICK, *REPORTS)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*test_regressed*REGRESSION*"])
    root = pytester.path

    # The JSON: each record's verdict, and the summary counting them.
    data = load_json(root / "r.json")
    records = [from_json(MeasurementRecord, m) for m in data["measurements"]]
    verdicts = {r.test_id: r.verdict for r in records}
    assert verdicts == EXPECTED
    regressed = next(r for r in records if r.test_id == "test_four.py::test_regressed")
    assert regressed.outcome != "fail"  # its budget was not missed ...
    assert regressed.comparison is not None
    assert regressed.comparison.outcome == "regression"
    memory = next(r for r in records if r.test_id == "test_four.py::test_memory")
    assert memory.budgets == ()
    assert memory.outcome == "pass"
    summary = data["summary"]
    assert summary["measurements"] == 4
    outcomes = Counter(r.outcome for r in records)
    # By outcome, as before: the regressed one's budget was not missed.
    assert (summary["pass"], summary["fail"]) == (outcomes["pass"], 1)
    assert summary["failing"] == summary["verdict_fail"] == 2
    assert summary["verdict_pass"] == 2
    assert summary["verdict_inconclusive"] == summary["verdict_no_budget"] == 0
    assert summary["regressions"] == 1
    assert load_document(root / "r.json").summary == summary

    # The terminal table: FAIL is the failing verdict, written loud.
    shown = {
        verdict: word.upper() if word == "fail" else word for verdict, word in EXPECTED.items()
    }
    assert _terminal(result.stdout.str()) == shown

    # The Markdown: its rows and its count line.
    count_line, md_verdicts = _markdown((root / "r.md").read_text(encoding="utf-8"))
    icons = {"pass": "pass", "fail": "**FAIL**"}
    assert md_verdicts == {t: icons[v] for t, v in EXPECTED.items()}
    assert count_line == "4 measurements, 2 failing their test, 1 regression."

    # The HTML: the banner, the summary's counts, its table and each section's pill.
    page = (root / "r.html").read_text(encoding="utf-8")
    banner, counts, rows, sections = _html(page)
    assert rows == sections == EXPECTED
    assert banner == "2 of 4 failing their test (1 by regression)"
    assert counts == {
        "pass": 2,
        "fail": 2,
        "inconclusive": 0,
        "no budget": 0,
        "by regression": 1,
    }
    tally = Counter(EXPECTED.values())
    assert counts["pass"] + counts["fail"] == len(EXPECTED) == summary["measurements"]
    assert (counts["pass"], counts["fail"]) == (tally["pass"], tally["fail"])
    assert (counts["fail"], counts["by regression"]) == (
        summary["failing"],
        summary["regressions"],
    )
    # The memory-only budget, as the terminal writes it; and the baseline runs counted.
    memory_row = next(r for r in re.findall(r"<tr>(.*?)</tr>", page) if "test_memory" in r)
    assert '<td class="budget">rss&lt;=100000MB</td>' in memory_row
    assert "rss<=100000MB" in result.stdout.str()
    assert "3 baseline runs</p>" in page

    # The history: the run failed by a regression is recorded as failing.
    assert _history(root) == EXPECTED
    assert _history_cli(root, capsys) == EXPECTED


THROUGHPUT = """
import time

import pytest


@pytest.mark.throughput(min_per_s=2000, batch_size=64)
def test_batch(hwperf):
    hwperf(lambda: time.sleep(0.002), name="batch")
"""


def test_throughput_is_in_items_per_second_next_to_an_items_budget(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makepyfile(test_items=THROUGHPUT)
    result = pytester.runpytest(*QUICK, *REPORTS)
    result.assert_outcomes(passed=1)
    (data,) = load_json(pytester.path / "r.json")["measurements"]
    record = from_json(MeasurementRecord, data)
    items = record.items_per_s
    calls = record.stats.throughput_per_s
    assert items is not None
    assert calls is not None
    assert items > 30 * calls  # 64 items a call: not the calls per second
    figure = rate_text(items, " items/s")

    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    assert '<td class="budget">≥ 2,000 items/s</td>' in page
    assert f"throughput <b>{figure}</b>" in page
    assert rate_text(calls) not in re.findall(r"throughput <b>([^<]*)</b>", page)

    markdown = (pytester.path / "r.md").read_text(encoding="utf-8")
    header = next(line for line in markdown.splitlines() if line.startswith("| test "))
    row = next(line for line in markdown.splitlines() if "test_items.py" in line)
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    names = [c.strip() for c in header.strip("|").split(" | ")]
    assert cells[names.index("throughput")] == figure
    assert cells[names.index("budget")] == ">=2,000/s"
    assert cells[names.index("verdict")] == "pass"


def test_plural() -> None:
    assert plural(1, "baseline run") == "1 baseline run"
    assert plural(3, "baseline run") == "3 baseline runs"
    assert plural(0, "measurement") == "0 measurements"
    assert plural(1_200, "call") == "1,200 calls"
