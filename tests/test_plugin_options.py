"""Every option of pytest-hwperf, from the command line and from `[tool.pytest.ini_options]`.

Each option is checked for what it does (JSON settings and timing, the sample count,
the verdict), not only for being parsed; the command line wins over the ini file; a bad
value is a usage error (exit code 4) that names the option and where it came from.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from _output import FAST_RUN, assert_clean, load_json, output_of

from pytest_hwperf.plugin.options import OPTIONS
from pytest_hwperf.settings import DEFAULTS, MAX_SECONDS, Settings
from pytest_hwperf.settings import option as find_option


@pytest.fixture(autouse=True)
def _options_as_given(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about where each option's value comes from (ini, command line,
    defaults): the suite's PYTEST_ADDOPTS (conftest.py) would override the ini."""
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


# A test that measures a tiny target without a budget: it stops after ~0.1 s.
TINY_TEST = """
def test_tiny(hwperf):
    assert hwperf(lambda: sum(range(50))) == 1225
"""

# A measurement of a ~10 ms target without a budget, and one of a ~1 ms target under a
# p95 budget far above it.
SLEEPY_TEST = """
import time
import pytest

def ten_ms():
    time.sleep(0.01)

def one_ms():
    time.sleep(0.001)

def test_sleepy(hwperf):
    hwperf(ten_ms)

@pytest.mark.latency(ms=50)
def test_budget(hwperf):
    hwperf(one_ms)
"""

# Writes what the hwperf handle saw, so the outer test can tell measured from functional.
MODE_TEST = """
from pathlib import Path

def test_mode(hwperf):
    assert hwperf(lambda: 3) == 3
    Path("mode.txt").write_text(f"{hwperf.enabled} {hwperf.last.mode} {hwperf.last.n}")
"""

# p99.9 needs thousands of samples to be shown met; 0.2 s of 1 ms calls cannot give
# them, and nothing near 1 s will breach it: the verdict is inconclusive.
INCONCLUSIVE_TEST = """
import time
import pytest

@pytest.mark.latency(ms=1000, percentile=99.9)
def test_undecidable(hwperf):
    hwperf(time.sleep, 0.001)

def test_other():
    pass
"""


def ini(pytester: pytest.Pytester, **values: str) -> Path:
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return pytester.makepyprojecttoml("[tool.pytest.ini_options]\n" + "\n".join(lines) + "\n")


def option_names() -> list[str]:
    return [o.name or "enabled" for o in OPTIONS]


# --- discoverability -----------------------------------------------------------------


def test_the_option_table_is_what_these_tests_cover():
    """A new option must be added to the tests below (ini, command line, bad value)."""
    assert option_names() == [
        "enabled",
        "max_time",
        "warmup",
        "call_timeout",
        "alpha",
        "inconclusive",
        "gc",
        "json",
        "markdown",
        "html",
        "baseline_dir",
        "save",
        "regression",
        "confirm",
        "confirm_pause",
        "busy_wait",
        "reference",
        "fail_on_improvement",
        "against",  # its runs: tests/test_ab.py
        "devices",
        "oversubscription",
        "workers",
        "threads",
        "strict_hardware",
        "profile",
    ]


def test_each_option_is_a_settings_field_with_its_default():
    """Declared once: the option's dest is the Settings field, its default the field's."""
    declared = {f.name: f.default for f in dataclasses.fields(Settings)}
    for o in OPTIONS:
        assert declared[o.dest] == o.default == getattr(DEFAULTS, o.dest), o.flag
        assert o.ini == "hwperf" + (f"_{o.name}" if o.name else "")
        assert find_option(o.flag) is find_option(o.ini) is find_option(o.dest) is o
    assert set(declared) - {o.dest for o in OPTIONS} == {"sources"}
    assert Settings() == DEFAULTS
    assert (DEFAULTS.regression_pct, find_option("regression").parse("5%")) == (10.0, 5.0)
    with pytest.raises(KeyError, match="no hwperf option 'nope'"):
        find_option("nope")


def test_help_lists_every_option_and_its_ini_key(pytester: pytest.Pytester):
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*hardware-aware performance testing (pytest-hwperf)*"])
    for option in OPTIONS:
        flag = option.flag if option.metavar is None else f"{option.flag}={option.metavar}"
        result.stdout.re_match_lines([rf"^\s+{flag}(\s|$)"])
        result.stdout.re_match_lines([rf"^\s+{option.ini} \(string\):"])


# --- values that work: ini, command line, and the command line winning ------------------

# option -> (ini value, command-line value, key in the JSON settings, parsed ini, parsed cli)
VALUED = {
    "max_time": ("1.5", "2.5", "max_time_s", 1.5, 2.5),
    "warmup": ("0.02", "0.01", "warmup_s", 0.02, 0.01),
    "alpha": ("0.05", "0.002", "alpha", 0.05, 0.002),
    "inconclusive": ("fail", "pass", "inconclusive", "fail", "pass"),
    "gc": ("disable", "collect", "gc", "disable", "collect"),
    "confirm": ("0", "5", "confirm", 0, 5),
    "confirm_pause": ("0.5", "0", "confirm_pause_s", 0.5, 0.0),
    "busy_wait": ("0.25", "0", "busy_wait", 0.25, 0.0),
    "reference": ("on", "off", "reference", True, False),
}


def cli_flag(name: str) -> str:
    return "--hwperf-" + name.replace("_", "-")


@pytest.mark.parametrize("where", ["ini", "cli", "both"])
@pytest.mark.parametrize("name", sorted(VALUED))
def test_valued_option_from_ini_and_command_line(pytester: pytest.Pytester, name, where):
    ini_value, cli_value, key, parsed_ini, parsed_cli = VALUED[name]
    pytester.makepyfile(test_tiny=TINY_TEST)
    if where in ("ini", "both"):
        ini(pytester, **{f"hwperf_{name}": ini_value})
    # the fast options, less the one under test
    args = ["--hwperf", "--hwperf-json=out.json"]
    args += [arg for arg in FAST_RUN if not arg.startswith(f"{cli_flag(name)}=")]
    if where in ("cli", "both"):
        args.append(f"{cli_flag(name)}={cli_value}")
    result = pytester.runpytest(*args)
    assert_clean(result)
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    expected = parsed_ini if where == "ini" else parsed_cli
    document = load_json(pytester.path / "out.json")
    assert document["settings"][key] == expected
    (record,) = document["measurements"]
    if name == "alpha":
        assert record["timing"]["alpha"] == expected
    if name == "gc":
        gc = {"disable": "collect-then-disabled", "collect": "collect-then-enabled"}
        assert record["timing"]["gc"] == gc[expected]
    # The header states the resolved settings as well.
    shown = f"{expected:g}" if isinstance(expected, float) else expected
    header = {
        "max_time": f"up to {shown} s per measurement",
        "warmup": f"warm-up {shown} s",
        "alpha": f"alpha {shown}",
        "inconclusive": f"inconclusive -> {shown}",
        "gc": f"gc {shown})",
    }.get(name)
    if header is not None:
        result.stdout.fnmatch_lines([f"hwperf: measuring*{header}*"])


@pytest.mark.parametrize("where", ["ini", "cli", "both"])
def test_json_option_from_ini_and_command_line(pytester: pytest.Pytester, where):
    pytester.makepyfile(test_tiny=TINY_TEST)
    if where in ("ini", "both"):
        ini(pytester, hwperf_json="from-ini.json")
    args = ["--hwperf", *FAST_RUN]
    if where in ("cli", "both"):
        args.append("--hwperf-json=reports/from-cli.json")
    result = pytester.runpytest(*args)
    assert_clean(result)
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    written = "from-ini.json" if where == "ini" else "reports/from-cli.json"
    not_written = "reports/from-cli.json" if where == "ini" else "from-ini.json"
    assert not (pytester.path / not_written).exists()
    document = load_json(pytester.path / written)
    assert document["schema_version"] == 1
    assert [m["test_id"] for m in document["measurements"]] == ["test_tiny.py::test_tiny"]
    result.stdout.fnmatch_lines([f"hwperf: JSON report written to *{written}"])


def test_relative_json_path_in_ini_is_relative_to_the_ini_file(pytester: pytest.Pytester):
    pytester.makepyfile(test_tiny=TINY_TEST)
    ini(pytester, hwperf_json="out/report.json")
    sub = pytester.mkdir("elsewhere")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        result = pytester.runpytest("--hwperf", *FAST_RUN, str(pytester.path))
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    assert (pytester.path / "out" / "report.json").exists()
    assert not (sub / "out").exists()


@pytest.mark.parametrize(
    ("ini_values", "args", "measured"),
    [
        pytest.param({}, [], False, id="default-off"),
        pytest.param({"hwperf": "true"}, [], True, id="ini-true"),
        pytest.param({"hwperf": "yes"}, [], True, id="ini-yes"),
        pytest.param({"hwperf": "false"}, [], False, id="ini-false"),
        pytest.param({}, ["--hwperf"], True, id="cli"),
        pytest.param({"hwperf": "false"}, ["--hwperf"], True, id="cli-over-ini-false"),
    ],
)
def test_hwperf_switch_from_ini_and_command_line(
    pytester: pytest.Pytester, ini_values, args, measured
):
    pytester.makepyfile(test_mode=MODE_TEST)
    if ini_values:
        ini(pytester, **ini_values)
    result = pytester.runpytest(*args, *FAST_RUN)
    assert_clean(result)
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    enabled, mode, n = (pytester.path / "mode.txt").read_text().split()
    if measured:
        assert (enabled, mode) == ("True", "measured")
        assert int(n) > 1
        result.stdout.fnmatch_lines(["hwperf: measuring*"])
    else:
        assert (enabled, mode, n) == ("False", "functional", "1")
        result.stdout.no_fnmatch_line("hwperf: measuring*")


def test_hwperf_switch_as_a_toml_boolean(pytester: pytest.Pytester):
    """`hwperf = true` (a TOML boolean, not a string) turns measuring on."""
    pytester.makepyfile(test_mode=MODE_TEST)
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\nhwperf = true\n")
    result = pytester.runpytest(*FAST_RUN)
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    enabled, mode, _ = (pytester.path / "mode.txt").read_text().split()
    assert (enabled, mode) == ("True", "measured")


# --- what each option does ---------------------------------------------------------------


def test_max_time_from_ini_bounds_the_sampling(pytester: pytest.Pytester):
    """Without a budget a measurement aims at 200 samples; 0.25 s of 10 ms calls is ~25."""
    pytester.makepyfile(test_sleepy=SLEEPY_TEST)
    ini(pytester, hwperf_max_time="0.25")
    # the time limit under test comes from the ini file: only the warm-up is given
    result = pytester.runpytest(
        "--hwperf", "--hwperf-warmup=0.01", "--hwperf-json=out.json", "test_sleepy.py::test_sleepy"
    )
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    records = {r["test_id"]: r for r in load_json(pytester.path / "out.json")["measurements"]}
    sleepy = records["test_sleepy.py::test_sleepy"]
    assert 1 <= sleepy["stats"]["n"] <= 26
    assert sleepy["timing"]["stop_reason"] == "max-time"


def test_warmup_from_ini_and_command_line(pytester: pytest.Pytester):
    pytester.makepyfile(test_sleepy=SLEEPY_TEST)
    ini(pytester, hwperf_warmup="0.2")
    # 0.2 s: the 10 ms target has no budget, so the run lasts the whole time limit; the
    # warm-up under test comes from the ini file, then from the command line
    args = ("--hwperf", "--hwperf-max-time=0.2", "test_sleepy.py::test_sleepy")
    result = pytester.runpytest(*args, "--hwperf-json=ini.json")
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    records = {r["test_id"]: r for r in load_json(pytester.path / "ini.json")["measurements"]}
    timing = records["test_sleepy.py::test_sleepy"]["timing"]
    # Warm-up runs for at least 0.2 s; each call takes >= 10 ms, so at most ~20 calls.
    assert timing["warmup_ms"] >= 200
    assert 2 <= timing["warmup_calls"] <= 21

    result = pytester.runpytest(*args, "--hwperf-warmup=0.001", "--hwperf-json=cli.json")
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    records = {r["test_id"]: r for r in load_json(pytester.path / "cli.json")["measurements"]}
    # Two calls (the minimum) already exceed 1 ms.
    assert records["test_sleepy.py::test_sleepy"]["timing"]["warmup_calls"] == 2


def test_alpha_changes_how_many_samples_a_pass_needs(pytester: pytest.Pytester):
    """A stricter level needs more samples before compliance is shown (p95, no call over)."""
    pytester.makepyfile(
        test_budget="""
        import time
        import pytest

        @pytest.mark.latency(ms=50)
        def test_budget(hwperf):
            hwperf(time.sleep, 0.001)
        """
    )
    ini(pytester, hwperf_alpha="0.5")
    loose = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=loose.json")
    strict = pytester.runpytest(
        "--hwperf", *FAST_RUN, "--hwperf-alpha=0.001", "--hwperf-json=s.json"
    )
    assert loose.ret == strict.ret == pytest.ExitCode.OK
    (loose_record,) = load_json(pytester.path / "loose.json")["measurements"]
    (strict_record,) = load_json(pytester.path / "s.json")["measurements"]
    assert loose_record["timing"]["alpha"] == 0.5
    assert strict_record["timing"]["alpha"] == 0.001
    assert loose_record["outcome"] == strict_record["outcome"] == "pass"
    # At least -ln(alpha per look) / -ln(0.95) samples: ~57 for 0.5/9, ~178 for 0.001/9.
    assert loose_record["budgets"][0]["n"] < strict_record["budgets"][0]["n"]
    assert strict_record["budgets"][0]["n"] >= 178


@pytest.mark.parametrize(
    ("ini_value", "args", "fails"),
    [
        pytest.param(None, [], False, id="default-pass"),
        pytest.param("fail", [], True, id="ini-fail"),
        pytest.param(None, ["--hwperf-inconclusive=fail"], True, id="cli-fail"),
        pytest.param("fail", ["--hwperf-inconclusive=pass"], False, id="cli-pass-over-ini"),
    ],
)
def test_inconclusive_policy(pytester: pytest.Pytester, ini_value, args, fails):
    pytester.makepyfile(test_undecidable=INCONCLUSIVE_TEST)
    if ini_value is not None:
        ini(pytester, hwperf_inconclusive=ini_value)
    # 0.2 s: a p99.9 budget needs thousands of samples, so it stays undecided (as this
    # test needs), and the run is short
    result = pytester.runpytest("--hwperf", "--hwperf-max-time=0.2", "--hwperf-warmup=0.01", *args)
    assert_clean(result)
    # One verdict in every report: under --hwperf-inconclusive=fail the undecided budget
    # fails its test, and the table says FAIL; otherwise it says inconclusive.
    verdict = "FAIL" if fails else "inconclusive"
    result.stdout.fnmatch_lines([f"*test_undecidable.py::test_undecidable*{verdict}*"])
    if fails:
        result.assert_outcomes(passed=1, failed=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            [
                "hwperf: 'sleep' on cpu: inconclusive within 0.2 s (--hwperf-inconclusive=fail):"
                " p99.9 *undecided against budget 1000 ms*"
            ]
        )
    else:
        result.assert_outcomes(passed=2)
        assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    ("args", "recorded"),
    [
        pytest.param([], "collect-then-disabled", id="ini-disable"),
        pytest.param(["--hwperf-gc=collect"], "collect-then-enabled", id="cli-over-ini"),
    ],
)
def test_gc_policy_is_recorded(pytester: pytest.Pytester, args, recorded):
    pytester.makepyfile(
        test_gc="""
        import gc

        def test_gc(hwperf):
            seen = []
            hwperf(lambda: seen.append(gc.isenabled()))
            assert gc.isenabled()  # restored after sampling
            with open("gc.txt", "w") as fh:
                fh.write(str(seen[-1]))
        """
    )
    ini(pytester, hwperf_gc="disable")
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json", *args)
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    (record,) = load_json(pytester.path / "out.json")["measurements"]
    assert record["timing"]["gc"] == recorded
    # The last call was a sample: garbage collection was off during sampling or not.
    assert (pytester.path / "gc.txt").read_text() == str(recorded == "collect-then-enabled")


# --- bad values ----------------------------------------------------------------------

BAD_VALUES = [
    ("max_time", "abc"),
    ("max_time", "0"),
    ("max_time", "-1"),
    ("max_time", "inf"),
    ("max_time", "1e308"),
    ("max_time", "86401"),
    ("warmup", "soon"),
    ("warmup", "-0.1"),
    ("warmup", "1e308"),
    ("call_timeout", "-1"),
    ("call_timeout", "1e308"),
    ("call_timeout", "soon"),
    ("confirm_pause", "-1"),
    ("confirm_pause", "61"),
    ("confirm_pause", "nan"),
    ("confirm_pause", "soon"),
    ("busy_wait", "-0.1"),
    ("busy_wait", "17"),
    ("busy_wait", "nan"),
    ("busy_wait", "busy"),
    ("alpha", "0"),
    ("alpha", "0.6"),
    ("alpha", "low"),
    ("inconclusive", "maybe"),
    ("gc", "sometimes"),
    ("devices", "tpu"),
    ("devices", "cuda:x"),
    ("devices", " , "),
    ("oversubscription", "sometimes"),
    ("workers", "0"),
    ("workers", "two"),
    ("threads", "1,-2"),
    ("regression", "0"),
    ("regression", "lots"),
    ("regression", "-5%"),
    ("reference", "sometimes"),
    ("confirm", "-1"),
    ("confirm", "many"),
    ("confirm", "21"),
    ("html", "   "),
    ("profile", "yappi"),
    ("against", "   "),
]


@pytest.mark.parametrize(("name", "bad"), [*BAD_VALUES, ("json", "")])
def test_bad_command_line_value_is_a_usage_error(pytester: pytest.Pytester, name, bad):
    pytester.makepyfile(test_tiny=TINY_TEST)
    flag = cli_flag(name)
    result = pytester.runpytest("--hwperf", f"{flag}={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert_clean(result)
    result.stderr.fnmatch_lines([f"ERROR: command line option {flag}: invalid value {bad!r}: *"])
    result.stdout.no_fnmatch_line("*collected*")


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        *BAD_VALUES,
        ("json", "   "),
        ("", "maybe"),
        ("", "2"),
        ("strict_hardware", "perhaps"),
    ],
)
def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester, name, bad):
    pytester.makepyfile(test_tiny=TINY_TEST)
    key = f"hwperf_{name}" if name else "hwperf"
    toml = ini(pytester, **{key: bad})
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert_clean(result)
    result.stderr.fnmatch_lines([f"ERROR: ini option {key} in {toml}: invalid value {bad!r}: *"])


@pytest.mark.parametrize("name", ["max_time", "warmup"])
@pytest.mark.parametrize("where", ["ini", "cli"])
def test_a_time_beyond_a_day_is_one_usage_error_line(pytester: pytest.Pytester, name, where):
    """1e308 s would reach the sampler and fail every test with a traceback (issue 13)."""
    pytester.makepyfile(test_tiny=TINY_TEST)
    args = ["--hwperf"]
    if where == "ini":
        toml = ini(pytester, **{f"hwperf_{name}": "1e308"})
        origin = f"ini option hwperf_{name} in {toml}"
    else:
        args.append(f"{cli_flag(name)}=1e308")
        origin = f"command line option {cli_flag(name)}"
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert_clean(result)
    assert [line for line in result.errlines if line.strip()] == [
        f"ERROR: {origin}: invalid value '1e308': expected a time in seconds, a positive"
        " number up to 86400 (1 day)"
    ]
    result.stdout.no_fnmatch_line("*collected*")


def test_a_time_of_one_day_is_accepted(pytester: pytest.Pytester):
    pytester.makepyfile(test_tiny=TINY_TEST)
    day = f"{MAX_SECONDS:g}"
    result = pytester.runpytest(
        "--hwperf", f"--hwperf-max-time={day}", f"--hwperf-warmup={day}", "--collect-only"
    )
    assert result.ret == pytest.ExitCode.OK, output_of(result)


def test_the_command_line_hides_a_bad_ini_value(pytester: pytest.Pytester):
    """The ini value is never read when the command line gives one."""
    pytester.makepyfile(test_tiny=TINY_TEST)
    ini(pytester, hwperf_alpha="bogus", hwperf_gc="sometimes")
    result = pytester.runpytest(
        "--hwperf", *FAST_RUN, "--hwperf-alpha=0.05", "--hwperf-gc=disable", "--hwperf-json=o.json"
    )
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    settings = load_json(pytester.path / "o.json")["settings"]
    assert (settings["alpha"], settings["gc"]) == (0.05, "disable")


def test_bad_ini_value_is_an_error_even_without_hwperf(pytester: pytest.Pytester):
    pytester.makepyfile(test_tiny=TINY_TEST)
    toml = ini(pytester, hwperf_max_time="forever")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert_clean(result)
    result.stderr.fnmatch_lines([f"ERROR: ini option hwperf_max_time in {toml}: *"])


# --- devices and strict hardware -------------------------------------------------------

DEVICE_TEST = """
def test_on(device):
    assert device in ("cpu", "cuda:0", "cuda:1")
"""


@pytest.mark.parametrize(
    ("ini_value", "args", "ids"),
    [
        pytest.param("cpu", [], ["test_on[cpu]"], id="ini"),
        pytest.param(
            None, ["--hwperf-devices=cpu,cuda:1"], ["test_on[cpu]", "test_on[cuda:1]"], id="cli"
        ),
        pytest.param("cpu", ["--hwperf-devices=cuda"], ["test_on[cuda]"], id="cli-wins"),
    ],
)
def test_devices_from_ini_and_command_line(pytester: pytest.Pytester, ini_value, args, ids):
    pytester.makepyfile(test_dev=DEVICE_TEST)
    if ini_value is not None:
        ini(pytester, hwperf_devices=ini_value)
    result = pytester.runpytest("--collect-only", "-q", *args)
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    collected = [line.split("::", 1)[1] for line in result.outlines if "::" in line]
    assert collected == ids


@pytest.mark.parametrize("where", ["ini", "cli"])
def test_strict_hardware_from_ini_and_command_line(pytester: pytest.Pytester, where):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.hardware(min_cores=100000)
        def test_huge():
            pass
        """
    )
    args = []
    if where == "ini":
        ini(pytester, hwperf_strict_hardware="true")
    else:
        args.append("--hwperf-strict-hardware")
    result = pytester.runpytest(*args)
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*hardware: needs >= 100000 usable cores*--hwperf-strict-hardware*"]
    )
    plain = pytester.runpytest("-p", "no:cacheprovider") if where == "cli" else None
    if plain is not None:
        plain.assert_outcomes(skipped=1)
