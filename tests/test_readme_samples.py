"""scripts/readme_samples.py: the README's sample output is replaced between its markers
and nowhere else, and `--check` compares shapes (columns, rows, verdict words), not the
figures that differ from run to run. Synthetic text only: nothing here runs pytest."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "readme_samples", ROOT / "scripts" / "readme_samples.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rs = _script()

SAMPLE = """\
collected 2 items

test_a.py P.                                                             [100%]

=================================== FAILURES ===================================
__________________________________ test_slow ___________________________________
hwperf: 'sleep' on cpu: p95 20.15 ms (>= 20.12 ms at 99.9% confidence) breaches budget 5.00 ms (8/8 calls over budget)
------------------------------------ hwperf ------------------------------------
test                  name   device  n      p50      p95      p99    rss  budget       verdict      min  baseline  change
test_a.py::test_slow  sleep  cpu     8  20.12ms  20.15ms  20.16ms  239MB  p95<=5.00ms  FAIL     20.10ms         -  no baseline
sleep: profile (cprofile): .hwperf/profiles/test_a.py_test_slow-sleep-20261203T131330384291.prof
sleep: profile:   {built-in method time.sleep}  own 1008.0 ms (100%)
==================================== hwperf ====================================
test                  name   device    n      p50      p95      p99    rss  budget        verdict      min  baseline  change
test_a.py::test_slow  sleep  cpu       8  20.12ms  20.15ms  20.16ms  239MB  p95<=5.00ms   FAIL     20.10ms         -  no baseline
test_a.py::test_fast  sleep  cpu     256   1.11ms   1.13ms   1.21ms  240MB  p95<=50.00ms  pass      1.09ms         -  no baseline
=========================== short test summary info ============================
PERF test_a.py::test_slow - hwperf: 'sleep' on cpu: p95 20.15 ms (>= 20.12 ms...
========================= 1 failed, 1 passed in 4.03s ==========================
"""  # noqa: E501

# The same run on a slower day: every figure and so every width differs, the profile
# has another timestamp, and pytest cuts the short summary at another character.
ANOTHER_RUN = """\
collected 2 items

test_a.py P.                                                             [100%]

=================================== FAILURES ===================================
__________________________________ test_slow ___________________________________
hwperf: 'sleep' on cpu: p95 120.9 ms (>= 101.12 ms at 99.9% confidence) breaches budget 5.00 ms (9/10 calls over budget)
------------------------------------ hwperf ------------------------------------
test                  name   device   n       p50       p95       p99     rss  budget       verdict       min  baseline  change
test_a.py::test_slow  sleep  cpu     10  100.12ms  120.90ms  130.16ms  56.8MB  p95<=5.00ms  FAIL     100.10ms         -  no baseline
sleep: profile (cprofile): .hwperf/profiles/test_a.py_test_slow-sleep-20271224T235959000001.prof
sleep: profile:   {built-in method time.sleep}  own 998.5 ms (99%)
==================================== hwperf ====================================
test                  name   device     n       p50       p95       p99     rss  budget        verdict       min  baseline  change
test_a.py::test_slow  sleep  cpu       10  100.12ms  120.90ms  130.16ms  56.8MB  p95<=5.00ms   FAIL     100.10ms         -  no baseline
test_a.py::test_fast  sleep  cpu     1024    1.11ms    1.13ms   11.21ms  57.9MB  p95<=50.00ms  pass        1.09ms         -  no baseline
=========================== short test summary info ============================
PERF test_a.py::test_slow - hwperf: 'sleep' on cpu: p95 120.9 ms (>= 101.12 m...
======================== 1 failed, 1 passed in 14.03s ==========================
"""  # noqa: E501

README = f"""\
# Title

Some text with trailing spaces   \n\
```python
def test_slow(hwperf):
    hwperf(time.sleep, 0.02)
```

`pytest --hwperf` (real output):

{rs.OPEN}
```
old output
```
{rs.CLOSE}

After the sample: `code`, unicode \u2014 and no final newline."""


# -- shapes ------------------------------------------------------------------------------


def test_changed_figures_widths_and_timings_keep_the_shape():
    assert rs.shape_difference(SAMPLE, ANOTHER_RUN) is None


def test_masking_keeps_words_with_digits_and_masks_figures():
    line = "test_a.py::test_fast  sleep  cpu     256   1.11ms  240MB  p95<=50.00ms  pass"
    assert rs.shape_of_line(line) == "test_a.py::test_fast sleep cpu # #ms #MB p95<=#ms pass"


def test_an_added_column_is_caught():
    current = SAMPLE.replace("  change\n", "  change  gpu\n")
    problem = rs.shape_difference(SAMPLE, current)
    assert problem is not None
    assert "\n" not in problem
    assert "line 9 is now" in problem
    assert "gpu" in problem
    assert "(and 1 more difference(s))" in problem  # both tables' headers
    assert "python scripts/readme_samples.py" in problem


def test_a_removed_column_is_caught():
    current = SAMPLE.replace("  rss  budget", "  budget")
    assert rs.shape_difference(SAMPLE, current) is not None


def test_a_removed_row_is_caught():
    fast = next(line for line in SAMPLE.splitlines() if line.startswith("test_a.py::test_fast"))
    problem = rs.shape_difference(SAMPLE, SAMPLE.replace(fast + "\n", ""))
    assert problem is not None
    assert "line 16 is gone" in problem
    assert "test_a.py::test_fast" in problem


def test_an_added_line_is_caught():
    extra = "sleep: profile:   pytest_hwperf/plugin/fixtures.py:265(target)  own 0.6 ms (0%)\n"
    marker = "==================================== hwperf ="
    current = SAMPLE.replace(marker, extra + marker)
    problem = rs.shape_difference(SAMPLE, current)
    assert problem is not None
    assert "a line is new before README line 13" in problem
    assert "fixtures.py:#(target)" in problem


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  pass      1.09ms", "  FAIL      1.09ms"),  # a verdict word
        ("PERF test_a.py", "FAILED test_a.py"),  # the status word
        ("test_a.py::test_fast", "test_a.py::test_quick"),  # a test id
        ("sleep: profile (cprofile)", "sleep: profile (py-spy)"),
        ("  p99  ", "  p90  "),  # a column's name, digits and all
    ],
)
def test_a_changed_word_is_caught(old, new):
    assert old in SAMPLE
    assert rs.shape_difference(SAMPLE, SAMPLE.replace(old, new)) is not None


# -- the block between the markers -------------------------------------------------------


def test_replacing_the_sample_leaves_everything_outside_the_markers_byte_identical():
    updated = rs.replace_sample(README, SAMPLE)
    before, after = README.split("old output\n")
    head = before[: -len("```\n")]
    tail = after[len("```\n") :]
    assert updated.startswith(head)
    assert updated.endswith(tail)
    assert updated == f"{head}```\n{SAMPLE}```\n{tail}"
    assert rs.read_sample(updated) == SAMPLE
    assert rs.replace_sample(updated, SAMPLE) == updated  # a second run changes nothing


def test_the_test_file_is_the_python_block_before_the_sample():
    assert rs.sample_source(README) == "def test_slow(hwperf):\n    hwperf(time.sleep, 0.02)\n"


@pytest.mark.parametrize(
    ("readme", "message"),
    [
        (
            README.replace(rs.OPEN, ""),
            "marker line '<!-- sample: pytest --hwperf test_a.py -->' not found",
        ),
        (README.replace(rs.CLOSE, ""), "marker line '<!-- /sample -->' not found"),
        (README + "\n" + rs.CLOSE + "\n", "'<!-- /sample -->' found 2 times"),
        (
            README.replace(rs.OPEN, "@").replace(rs.CLOSE, rs.OPEN).replace("@", rs.CLOSE),
            "comes before",
        ),
        (README.replace("```\nold output\n```", "old output"), "is not a code block"),
    ],
    ids=["no-open", "no-close", "twice", "reversed", "no-fence"],
)
def test_bad_markers_are_a_one_line_error(readme, message):
    with pytest.raises(rs.SampleError) as info:
        rs.read_sample(readme)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    if "code block" not in message:  # nothing to replace without both markers
        with pytest.raises(rs.SampleError, match=message):
            rs.replace_sample(readme, SAMPLE)


def test_the_command_reports_missing_markers_in_one_line_without_running_pytest(
    tmp_path, capsys, monkeypatch
):
    def no_run(source):
        raise AssertionError("pytest ran")

    monkeypatch.setattr(rs, "run_sample", no_run)
    readme = tmp_path / "README.md"
    readme.write_text(README.replace(rs.CLOSE, ""), encoding="utf-8")
    for argv in ([str(readme)], ["--check", str(readme)]):
        assert rs.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "'<!-- /sample -->' not found" in err
    assert readme.read_text(encoding="utf-8") == README.replace(rs.CLOSE, "")


def test_the_command_rewrites_the_block_and_checks_it(tmp_path, capsys, monkeypatch):
    runs = iter([SAMPLE, ANOTHER_RUN, ANOTHER_RUN.replace("  change\n", "  change  gpu\n")])
    monkeypatch.setattr(rs, "run_sample", lambda source: next(runs))
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    assert rs.main([str(readme)]) == 0
    assert rs.read_sample(readme.read_text(encoding="utf-8")) == SAMPLE
    assert rs.main(["--check", str(readme)]) == 0  # other figures: same shape
    assert rs.main(["--check", str(readme)]) == 1  # a column more
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "is stale: line 9 is now" in err
    assert rs.read_sample(readme.read_text(encoding="utf-8")) == SAMPLE  # --check wrote nothing


# -- trimming the real output ------------------------------------------------------------


def test_trimming_keeps_the_part_after_collection_with_relative_paths(tmp_path):
    project = tmp_path / "proj"
    output = (
        "============================= test session starts ==============================\n"
        f"rootdir: {project}\n"
        "collected 1 item   \n"
        "\n"
        f"x: profile (cprofile): {project}/.hwperf/profiles/t.prof\n"
        "x: profile:   /checkout/pytest_hwperf/plugin/fixtures.py:265(target)  own 0.1 ms\n"
        "\n"
    )
    assert rs.trim(output, project, "/checkout") == (
        "collected 1 item\n"
        "\n"
        "x: profile (cprofile): .hwperf/profiles/t.prof\n"
        "x: profile:   pytest_hwperf/plugin/fixtures.py:265(target)  own 0.1 ms\n"
    )


def test_output_without_collection_is_a_one_line_error(tmp_path):
    with pytest.raises(rs.SampleError, match=r"collected nothing; its last line: ERROR: boom$"):
        rs.trim("ImportError\nERROR: boom\n", tmp_path)


def test_the_readme_has_the_markers_and_the_test_file_it_shows_the_output_of():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sample = rs.read_sample(readme)
    assert sample.startswith("collected 2 items\n")
    source = rs.sample_source(readme)
    assert "def test_slow(hwperf):" in source
    assert "def test_fast(hwperf):" in source
    assert "python scripts/readme_samples.py" in readme
