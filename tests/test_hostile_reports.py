"""Hostile and absurd report files, names and numbers (issue 13, items 3, 4, 5, 7, 11, 12,
13 and 14): whatever a report holds, `hwperf report`, `hwperf report --html` and
`hwperf compare` answer in one line with exit status 2 or print it safely, and the end
of an --hwperf session writes every report it can, each failure one line.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _output import FAST_RUN, assert_clean, output_of
from _typed_records import typed

# Imported before any in-process run, so every run and the monkeypatching below use
# these very modules (pytester drops the modules a run imported first).
import pytest_hwperf.plugin.session
import pytest_hwperf.plugin.writing
from pytest_hwperf import cli
from pytest_hwperf.records.codec import to_json
from pytest_hwperf.records.types import FingerprintRecord, MeasurementRecord
from pytest_hwperf.report import Document, build_document, load_document, write_document
from pytest_hwperf.report.html import render_html
from pytest_hwperf.report.json_report import MAX_REPORT_BYTES
from pytest_hwperf.report.markdown import code_span, markdown_summary, md_text
from pytest_hwperf.report.terminal import mb_text, ms_text, summary_lines, visible
from pytest_hwperf.store import BaselineStore, RunSummary, TrendRow
from pytest_hwperf.units import fmt_change

ESCAPES = "\x1b[2J\x1b]0;PWNED\x07"
IMG_ID = "a`<img src=https://attacker.example/p.png>`b"
ONERROR = '"><img src=x onerror=alert(2)>'
DIGEST = "f00dfeed0001"
# A run of 20 digits is no figure the report should print (1e308 has 309).
LONG_NUMBER = re.compile(r"\d{20}")


def _record(**fields: Any) -> MeasurementRecord:
    data: dict[str, Any] = {
        "test_id": "t.py::test_a",
        "name": "forward",
        "device": "cpu",
        "samples_ns": [1_000_000, 1_200_000, 1_100_000],
        "stats": {"n": 3, "min_ms": 1.0, "p50_ms": 1.1, "p95_ms": 1.2, "p99_ms": 1.2},
        "fingerprint": {"digest": DIGEST, "label": "test box"},
    }
    data.update(fields)
    return typed(data)


def _write_report(path: Path, *records: MeasurementRecord) -> Path:
    document = build_document(list(records), environment={}, settings={}, plugin_version="0")
    write_document(path, document)
    return path


def _one_line_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], command: str, named: Path
) -> str:
    """Run `hwperf argv` in this process: exit 2, nothing on stdout, one line on stderr
    naming `named`; returns that line."""
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hwperf {command}: error: ")
    assert str(named) in lines[0]
    return lines[0]


def _commands(bad: Path, good: Path, tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    """(argv, command) of every command that reads a report, given `bad` where it reads."""
    yield ["report", str(bad)], "report"
    yield ["report", str(bad), "--html", str(tmp_path / "out.html")], "report"
    yield ["compare", str(bad), str(good)], "compare"
    yield ["compare", str(good), str(bad)], "compare"


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return _write_report(tmp_path / "good.json", _record())


# -- item 3: what is not a regular file, or is too large ---------------------------------


def _hwperf(*argv: str) -> subprocess.CompletedProcess[str]:
    """`hwperf` in a fresh process with a time limit: a read that blocks or never ends
    fails the test instead of hanging the suite."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_hwperf.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero (POSIX)")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_fifo_or_a_device_is_refused_in_one_line(tmp_path: Path, good: Path, kind: str):
    bad = tmp_path / "report.json"
    if kind == "fifo":
        os.mkfifo(bad)  # no writer: reading it would block forever
    else:
        bad.symlink_to("/dev/zero")  # reading it would never end
    for argv, command in _commands(bad, good, tmp_path):
        done = _hwperf(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            f"hwperf {command}: error: {bad} is not a regular file; refusing to read it"
        ]
    assert not (tmp_path / "out.html").exists()


def test_a_report_over_the_size_cap_is_refused_in_one_line(tmp_path: Path, good: Path, capsys):
    bad = tmp_path / "huge.json"
    with bad.open("wb") as fh:  # sparse: no disk space is used, and nothing is read
        fh.truncate(MAX_REPORT_BYTES + 1)
    for argv, command in _commands(bad, good, tmp_path):
        line = _one_line_error(capsys, argv, command, bad)
        assert "limit" in line


# -- item 4: nested deeper than the parser follows ----------------------------------------


DEEP = 100_000


@pytest.mark.parametrize(
    "content",
    [
        "[" * DEEP + "]" * DEEP,
        '{"schema_version": 1, "measurements": ' + "[" * DEEP + "]" * DEEP + "}",
        '{"schema_version": 1, "environment": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}",
        # Below the parser's own limit, beyond the reader's (64 levels).
        '{"schema_version": 1, "measurements": [{"test_id": "t", "name": "n", "device": "c",'
        ' "mode": "measured", "samples_ns": [1], "stats": {"n": 1, "n_calls": 1,'
        ' "mean_ms": 1.0, "stdev_ms": 0, "min_ms": 1.0, "max_ms": 1.0}, "timing": {}, "threads": '
        + '{"a": ' * 200
        + "1"
        + "}" * 200
        + "}]}",
    ],
    ids=["array", "measurements", "environment", "threads-200"],
)
def test_deep_nesting_is_one_line_naming_the_file(tmp_path: Path, good: Path, capsys, content):
    bad = tmp_path / "deep.json"
    bad.write_text(content, encoding="utf-8")
    for argv, command in _commands(bad, good, tmp_path):
        _one_line_error(capsys, argv, command, bad)
    assert not (tmp_path / "out.html").exists()


# -- item 7: wrong types and integers beyond any float ------------------------------------


def test_measurements_of_the_wrong_type_are_one_line(tmp_path: Path, good: Path, capsys):
    bad = tmp_path / "dict.json"
    bad.write_text(json.dumps({"schema_version": 1, "measurements": {"a": 1}}))
    for argv, command in _commands(bad, good, tmp_path):
        _one_line_error(capsys, argv, command, bad)


@pytest.mark.parametrize("where", ["samples_ns", "stats.n", "schema_version"])
@pytest.mark.parametrize("digits", [400, 5000])  # 5000: more than Python converts to int
def test_an_integer_beyond_64_bits_is_one_line(
    tmp_path: Path, good: Path, capsys, where: str, digits: int
):
    data = json.loads(good.read_text())
    huge = "1" + "0" * digits
    if where == "samples_ns":
        data["measurements"][0]["samples_ns"] = [0]
    elif where == "stats.n":
        data["measurements"][0]["stats"]["n"] = 0
    else:
        data["schema_version"] = 0
    text = json.dumps(data, indent=1)
    text = {
        "samples_ns": lambda t: t.replace(
            '"samples_ns": [\n    0\n   ]', f'"samples_ns": [{huge}]'
        ),
        "stats.n": lambda t: t.replace('"n": 0', f'"n": {huge}'),
        "schema_version": lambda t: t.replace('"schema_version": 0', f'"schema_version": {huge}'),
    }[where](text)
    assert huge in text
    bad = tmp_path / "huge-int.json"
    bad.write_text(text)
    for argv, command in _commands(bad, good, tmp_path):
        line = _one_line_error(capsys, argv, command, bad)
        assert len(line) < 400  # the integer is not repeated
    assert not (tmp_path / "out.html").exists()


# -- item 5: the HTML survives history rows and records with absurd numbers ---------------


def _trend(key: str, median: object, i: int) -> TrendRow:
    return TrendRow(
        run_id=f"r{i}",
        created=f"2026-11-{10 + i:02d}T12:00:00+00:00",
        fingerprint=DIGEST,
        label=None,
        commit=None,
        key=key,
        test_id="t.py::test_a",
        name="forward",
        device="cpu",
        n=3,
        median_ms=median,  # type: ignore[arg-type]  # what an edited database may hold
        mean_ms=None,
        p95_ms=None,
        outcome=None,
        samples_ns=(),
    )


def _coordinates(page: str) -> list[str]:
    return re.findall(r'\b(?:x|y|x1|x2|y1|y2|cx|cy|width|height|d)="([^"]*)"', page)


def test_history_rows_with_strange_medians_leave_only_their_point_out():
    record = _record()
    odd: list[object] = ["abc", math.nan, math.inf, -math.inf, None, True, b"\x00", 10**400]
    rows = [_trend(record.key, m, i) for i, m in enumerate([1.0, *odd, 1.1])]
    page = render_html(
        Document(schema_version=1, measurements=(record,)), history={record.key: rows}
    )
    assert "<figcaption>History</figcaption>" in page
    assert "last 2 runs on this fingerprint" in page  # the two good rows, nothing else
    for value in _coordinates(page):
        assert "nan" not in value, value
        assert "inf" not in value, value
    only_bad = [_trend(record.key, m, i) for i, m in enumerate(odd)]
    page = render_html(
        Document(schema_version=1, measurements=(record,)), history={record.key: only_bad}
    )
    assert "<figcaption>History</figcaption>" not in page


def _with_every_float(data: object, value: float) -> object:
    if isinstance(data, dict):
        return {k: _with_every_float(v, value) for k, v in data.items()}
    if isinstance(data, list):
        return [_with_every_float(v, value) for v in data]
    if isinstance(data, float):
        return value
    return data


@pytest.mark.parametrize("value", [1e308, -1e308, 5e-324, 1e-300, 1e300, 0.0, 1e15])
def test_absurd_figures_are_drawn_without_overflow(tmp_path: Path, value: float):
    """Every float of a full record (budgets, comparison, memory, sweep) set to one
    absurd value, and samples at the ends of the 64-bit range: the report is read and
    drawn, with short, finite coordinates, and the history row beside it too."""
    from test_html_report import make_document

    data = _with_every_float(to_json(make_document()), value)
    assert isinstance(data, dict)
    data["measurements"][0]["samples_ns"] = [0, 1, 2**63 - 1]
    path = tmp_path / "absurd.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    document = load_document(path)
    key = document.measurements[0].key
    page = render_html(document, history={key: [_trend(key, value, 0), _trend(key, 1.0, 1)]})
    assert page.rstrip().endswith("</html>")
    for coordinate in _coordinates(page):
        assert "nan" not in coordinate, coordinate
        assert "inf" not in coordinate, coordinate
        assert not LONG_NUMBER.search(coordinate), coordinate[:80]
    assert not LONG_NUMBER.search(re.sub(r"<[^>]*>", " ", page)), "a figure of 20+ digits"


# -- item 5: the end of the session, one line per report that cannot be written ----------


TARGET = """
import time

import pytest


@pytest.mark.parametrize("case", ["x"], ids=[{case_id!r}])
def test_work(hwperf, case):
    hwperf(time.sleep, 0.001, name={name!r})
"""
QUICK = (
    "--hwperf",
    *FAST_RUN,
    "--hwperf-confirm=1",
    "--hwperf-reference=off",
    "-p",
    "no:randomly",
)


def _project(pytester: pytest.Pytester, case_id: str = "plain", name: str = "sleep") -> None:
    pytester.makepyfile(test_target=TARGET.format(case_id=case_id, name=name))


REPORTS = ("--hwperf-json=r.json", "--hwperf-html=r.html", "--hwperf-markdown=r.md")


@pytest.mark.parametrize("broken", ["html", "markdown", "document"])
def test_a_report_that_cannot_be_rendered_is_one_line_and_the_others_are_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, broken: str
):
    def boom(*args: object, **kwargs: object) -> str:
        raise ValueError("no renderer foresaw\nthis value")

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    target = {
        "html": "pytest_hwperf.report.html.render_html",
        "markdown": "pytest_hwperf.report.markdown.markdown_summary",
        "document": "pytest_hwperf.plugin.writing.build_document",
    }[broken]
    monkeypatch.setattr(target, boom)
    assert pytest_hwperf.plugin.writing is sys.modules["pytest_hwperf.plugin.writing"]
    _project(pytester)
    result = pytester.runpytest(*QUICK, *REPORTS)
    assert_clean(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a requested report is missing
    errors = [line for line in result.outlines if line.startswith("hwperf: error:")]
    expected = {
        "html": [
            "hwperf: error: cannot write the HTML report r.html: ValueError: no renderer"
            " foresaw this value"
        ],
        "markdown": [
            "hwperf: error: cannot write the Markdown report r.md: ValueError: no"
            " renderer foresaw this value"
        ],
        "document": [
            "hwperf: error: cannot write the JSON report r.json and the HTML report"
            " r.html: ValueError: no renderer foresaw this value"
        ],
    }[broken]
    assert errors == expected
    written = {name for name in ("r.json", "r.html", "r.md") if (pytester.path / name).exists()}
    assert (
        written
        == {
            "html": {"r.json", "r.md"},
            "markdown": {"r.json", "r.html"},
            "document": {"r.md"},
        }[broken]
    )


def test_a_corrupt_history_row_does_not_cost_the_html_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    _project(pytester)
    assert pytester.runpytest(*QUICK).ret == pytest.ExitCode.OK
    with sqlite3.connect(pytester.path / ".hwperf" / "history.sqlite") as conn:
        conn.execute("UPDATE measurements SET median_ms = 'abc'")
    conn.close()
    result = pytester.runpytest(*QUICK, "--hwperf-html=h.html")
    assert_clean(result)
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "h.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
    result.stdout.fnmatch_lines(["hwperf: HTML report written to h.html"])


# -- item 11: Markdown and step-summary injection -----------------------------------------


def _split_cells(row: str) -> list[str]:
    """A GFM table row's cells: split at each "|" not escaped by a backslash."""
    assert row.startswith("| "), row
    assert row.endswith(" |"), row
    return [c.strip() for c in re.split(r"(?<!\\)\|", row[1:-1])]


def _is_code_span(cell: str) -> bool:
    """A whole cell that is one code span: a fence, the text, the same fence, and no
    run of exactly that many backticks inside."""
    match = re.fullmatch(r"(`+)(.*?)\1", cell)
    if match is None:
        return False
    fence = match.group(1)
    return all(len(run) != len(fence) for run in re.findall("`+", match.group(2)))


def _assert_safe_markdown(text: str) -> None:
    """Every table cell is a code span or holds no "<" and no unescaped link, image or
    backtick; the other lines hold no raw HTML."""
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            for cell in _split_cells(line):
                if _is_code_span(cell):
                    continue
                assert "<" not in cell, cell
                assert not re.search(r"(?<!\\)[`\[]", cell), cell
        elif not line.startswith("```"):
            inline = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", line)  # drop code spans
            assert "<" not in inline, line


HOSTILE = [
    (f"t.py::test_x[{IMG_ID}]", ONERROR, "cpu"),
    ("t.py::test_y[``` ` ``]", "![x](https://attacker.example/i.png)", "<b>cuda</b>|x"),
    ("t.py::test_z[\\|<img src=y>]", "a\\|<img src=z>[l](http://q) `c`", f"cpu{ESCAPES}"),
    ("`", "``", "` `"),
]


def _hostile_records() -> list[MeasurementRecord]:
    return [
        _record(test_id=t, name=n, device=d, memory={"rss_peak_mb": 1e308}) for t, n, d in HOSTILE
    ]


def test_markdown_escapes_every_user_string():
    text = markdown_summary(_hostile_records(), fingerprint=f"fp`<img src=f>{ESCAPES}")
    _assert_safe_markdown(text)
    assert "\x1b" not in text
    assert "\x07" not in text
    rows = [
        line for line in text.splitlines() if line.startswith("| t.py") or line.startswith("| `")
    ]
    assert [_split_cells(r)[0] for r in rows][:1] == [
        "``t.py::test_x[a`<img src=https://attacker.example/p.png>`b]``"
    ]
    assert _split_cells(rows[0])[1] == '"&gt;&lt;img src=x onerror=alert(2)&gt;'
    assert "1e+308MB" in text
    assert not LONG_NUMBER.search(text)


def test_markdown_renders_to_the_same_text_on_github():
    """Through cmark-gfm, GitHub's own renderer (when installed): no element but the
    table's, and every cell shows the user's string as it is."""
    cmarkgfm = pytest.importorskip("cmarkgfm")
    from cmarkgfm.cmark import Options

    records = _hostile_records()
    text = markdown_summary(records, fingerprint="fp`<img src=f>")
    page = cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)
    tags = set(re.findall(r"<([a-z0-9]+)", page))
    assert tags <= {"h2", "p", "code", "table", "thead", "tbody", "tr", "th", "td", "a"}, tags
    assert "<img" not in page
    assert "<b>" not in page
    assert "fp`&lt;img src=f&gt;" in page
    import html as html_module

    cells = re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", page, re.S)
    shown = [
        tuple(html_module.unescape(re.sub(r"</?(code|a)[^>]*>", "", c)) for c in row)
        for row in cells
    ]
    assert shown == [(t, n, visible(d)) for t, n, d in HOSTILE]


def test_code_span_and_text_helpers():
    assert code_span("plain") == "`plain`"
    assert code_span("a`b") == "``a`b``"
    assert code_span("``x") == "``` ``x ```"
    assert code_span("") == ""
    assert md_text("<a href=x>&[y](z)`") == "&lt;a href=x&gt;&amp;\\[y\\](z)\\`"
    assert md_text("line\nbreak") == "line\\\\x0abreak"  # shows as line\x0abreak


# -- item 12: terminal escape injection ----------------------------------------------------


def test_visible_shows_control_characters():
    assert visible(ESCAPES) == "\\x1b[2J\\x1b]0;PWNED\\x07"
    assert visible("tab\there\nnl\x7f\x9b\u202e") == "tab\\x09here\\x0anl\\x7f\\x9b\\u202e"
    assert visible("plain µs → ünïcode") == "plain µs → ünïcode"


def _assert_no_controls(text: str) -> None:
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text)


def test_report_and_compare_print_control_characters_visibly(tmp_path: Path, capsys):
    evil = _record(
        test_id=f"t.py::test_{ESCAPES}",
        name=f"n{ESCAPES}",
        device=f"cpu{ESCAPES}",
        comparison={"outcome": f"odd{ESCAPES}", "current_ms": 1.0, "reason": ESCAPES},
    )
    path = _write_report(tmp_path / f"r{ESCAPES}.json", evil)
    for line in summary_lines([evil]):
        _assert_no_controls(line)
    assert cli.main(["report", str(path)]) == 0
    out, err = capsys.readouterr()
    _assert_no_controls(out + err)
    assert "t.py::test_\\x1b[2J\\x1b]0;PWNED\\x07" in out
    assert cli.main(["compare", str(path), str(path)]) == 0
    out, err = capsys.readouterr()
    _assert_no_controls(out + err)
    assert "n\\x1b[2J" in out
    (tmp_path / f"bad{ESCAPES}.json").write_text("{")
    assert cli.main(["report", str(tmp_path / f"bad{ESCAPES}.json")]) == 2
    out, err = capsys.readouterr()
    _assert_no_controls(out + err)


def test_compare_regression_line_is_visible(tmp_path: Path, capsys):
    base = _write_report(tmp_path / "base.json", _record(name=f"n{ESCAPES}"))
    slow = _record(
        name=f"n{ESCAPES}",
        samples_ns=[5_000_000] * 3,
        stats={"n": 3, "min_ms": 5.0},
    )
    new = _write_report(tmp_path / "new.json", slow)
    assert cli.main(["compare", str(base), str(new)]) == 1
    out, _ = capsys.readouterr()
    _assert_no_controls(out)
    assert "regression: t.py::test_a 'n\\x1b[2J" in out


# -- item 13: numbers beyond any measurement ------------------------------------------------


def test_figures_beyond_1e12_are_scientific():
    assert ms_text(1e308) == "1e+308ms"
    assert ms_text(10**400) == "infms"
    assert ms_text(1.5) == "1.50ms"
    assert mb_text(1e308) == "1e+308MB"
    assert mb_text(2048.0) == "2048MB"
    assert fmt_change(1e308) == "+1e+308%"
    assert fmt_change(-0.01) == "+0.0%"
    record = _record(
        stats={"n": 3, "min_ms": 1e308, "p50_ms": 1e308, "p95_ms": 1e308, "p99_ms": 1e308},
        memory={"rss_peak_mb": 1e308},
        budgets=[{"kind": "latency", "percentile": 95.0, "budget_ms": 1e308}],
        comparison={
            "outcome": "regression",
            "current_ms": 1e308,
            "baseline_ms": 1e-300,
            "change_pct": 1e308,
        },
    )
    lines = summary_lines([record])
    assert not LONG_NUMBER.search("\n".join(lines)), lines
    for figure in ("1e+308ms", "1e+308MB", "+1e+308%"):
        assert figure in lines[1]


def _baseline(root: Path, key: str, min_ms: float) -> Path:
    store = BaselineStore(root)
    fingerprint = FingerprintRecord(digest=DIGEST, label="test box")
    for i in range(3):
        run = RunSummary(
            run_id=f"r{i}",
            created=f"2026-11-0{i + 1}T00:00:00+00:00",
            commit=None,
            n=3,
            block_size=1,
            median_ms=min_ms,
            mean_ms=min_ms,
            p95_ms=min_ms,
            samples_ns=(1_000_000,),
            min_ms=min_ms * (1 + i / 100),
        )
        path = store.save(fingerprint, {key: run})
    return path


def test_compare_against_a_baseline_of_1e308(tmp_path: Path, capsys):
    record = _record()
    new = _write_report(tmp_path / "new.json", record)
    baseline = _baseline(tmp_path / ".hwperf", record.key, 1e308)
    assert cli.main(["compare", str(baseline), str(new)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert not LONG_NUMBER.search(out), out
    assert "1e+308ms" in out
    # And a run of 1e308 against a baseline of 1 ms: a regression, its figures short.
    huge = _record(stats={"n": 3, "min_ms": 1e308})
    new = _write_report(tmp_path / "huge.json", huge)
    baseline = _baseline(tmp_path / "other", record.key, 1.0)
    assert cli.main(["compare", str(baseline), str(new)]) == 1
    out, _ = capsys.readouterr()
    table = [line for line in out.splitlines() if not line.startswith("regression:")]
    assert not LONG_NUMBER.search("\n".join(table)), out
    assert "1e+308ms" in out


# -- the plugin: hostile names in its table, Markdown and step summary --------------------


def test_plugin_writes_hostile_names_safely(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _project(pytester, case_id=IMG_ID, name=f"{ONERROR}{ESCAPES}")
    result = pytester.runpytest(*QUICK, "--hwperf-markdown=r.md")
    assert_clean(result)
    assert result.ret == pytest.ExitCode.OK
    text = output_of(result)
    _assert_no_controls(text)
    assert '"><img src=x onerror=alert(2)>\\x1b[2J' in text
    markdown = (pytester.path / "r.md").read_text(encoding="utf-8")
    assert summary.read_text(encoding="utf-8") == markdown
    _assert_safe_markdown(markdown)
    assert f"``test_target.py::test_work[{IMG_ID}]``" in markdown


# -- item 14: report and baseline files follow the umask ----------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_follow_the_umask(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, umask: int, mode: int
):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    _project(pytester)
    previous = os.umask(umask)
    try:
        result = pytester.runpytest(*QUICK, *REPORTS, "--hwperf-save")
    finally:
        os.umask(previous)
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    (baseline,) = (pytester.path / ".hwperf" / "baselines").glob("*.json")
    for path in (
        pytester.path / "r.json",
        pytester.path / "r.html",
        pytester.path / "r.md",
        baseline,
    ):
        assert oct(path.stat().st_mode & 0o777) == oct(mode), path


def test_the_regression_line_writes_an_absurd_change_in_scientific_notation():
    """Item 13: a baseline of 1 ms against a run of 1e308 ms is judged with a reason line
    of normal length (the change is +1e+310%, not 310 digits)."""
    from pytest_hwperf.judge.gate import SavedRun, compare_with_runs

    found = compare_with_runs(
        1e308,
        [SavedRun(1.0), SavedRun(1.01), SavedRun(0.99)],
        key="t::m@cpu",
        threshold_pct=10.0,
        alpha=0.01,
    )
    assert found.outcome == "regression"
    assert len(found.reason) < 300, found.reason
    assert "e+" in found.reason
