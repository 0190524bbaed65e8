"""The documentation and the plugin agree: every option, ini key, marker and fixture is
documented, and the docs name no option the plugin lacks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_hwperf.plugin.markers import MARKERS
from pytest_hwperf.plugin.options import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
FIXTURES = (
    "hwperf",
    "device",
    "hwperf_model",
    "worker_config",
    "worker_pool",
    "mlserver",
    "hwinfo",
)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.flag)
def test_every_option_and_ini_key_is_documented(option):
    assert re.search(rf"`{re.escape(option.flag)}[`=]", REFERENCE), option.flag
    assert f"`{option.ini}`" in REFERENCE, option.ini
    assert re.search(rf"`{re.escape(option.flag)}[`=]", README), f"{option.flag} not in README"


def test_docs_name_no_option_the_plugin_lacks():
    known = {o.flag for o in OPTIONS}
    for name, text in (("docs/reference.md", REFERENCE), ("README.md", README)):
        mentioned = set(re.findall(r"--hwperf(?:-[a-z]+)*", text))
        assert mentioned <= known, f"{name} names unknown options: {sorted(mentioned - known)}"


@pytest.mark.parametrize("marker", MARKERS, ids=lambda m: m.NAME)
def test_every_marker_is_documented_with_its_signature(marker):
    assert f"### `{marker.NAME}{marker.SIGNATURE}`" in REFERENCE


@pytest.mark.parametrize("fixture", FIXTURES)
def test_every_fixture_is_documented(fixture):
    assert f"## The `{fixture}` fixture" in REFERENCE


def test_help_matches_the_option_table(pytester: pytest.Pytester):
    result = pytester.runpytest("--help")
    flags = set(re.findall(r"^\s+(--hwperf(?:-[a-z]+)*)", result.stdout.str(), re.MULTILINE))
    assert flags == {o.flag for o in OPTIONS}


def test_the_readmes_sample_table_has_the_columns_the_plugin_prints():
    """The README's sample output is real output; its table header must be the one the
    terminal summary prints today (a column added to the table must reach the README)."""
    from _typed_records import typed

    from pytest_hwperf.report.terminal import summary_lines

    sample = README.split("(real output, trimmed to the part after collection):", 1)[1]
    headers = [line.split() for line in sample.split("```")[1].splitlines()]
    headers = [cols for cols in headers if cols[:2] == ["test", "name"]]
    assert headers, "no table in the README's sample output"
    # As in the sample: measured (with memory figures) and compared (no baseline yet).
    record = typed(
        {
            "outcome": "pass",
            "memory": {"rss_peak_mb": 239.0},
            "comparison": {"outcome": "no baseline", "current_ms": 1.0},
        }
    )
    printed = summary_lines([record])[0].split()
    for cols in headers:
        assert cols == printed
