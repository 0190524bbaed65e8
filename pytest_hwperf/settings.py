"""The session's settings and the option table they come from, declared once.

Each setting is one field of `Settings`, declared with `_option(...)`: its flag (the ini
key is derived from it: `--hwperf-max-time` <-> `hwperf_max_time`), its default, its
parser and its help. `OPTIONS` is read off the dataclass, so a default, a field name and
an option can never disagree: the field name is the option's `dest`, the field's default
is the option's default.

Pure Python: the pytest glue (addoption/addini, precedence command line > ini > default,
usage errors) is `pytest_hwperf.plugin.options`; the `hwperf` command reads defaults and
parsers from here (`DEFAULTS.regression_pct`, `option("--hwperf-alpha").parse`).
"""

# ruff: noqa: RUF009  # the `Settings` defaults are `_option` fields, built once at import

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast, get_args

from pytest_hwperf.judge.budgets import parse_threshold
from pytest_hwperf.profiling.tools import ProfilerChoice

__all__ = [
    "DEFAULTS",
    "MAX_SECONDS",
    "OPTIONS",
    "GcPolicy",
    "InconclusivePolicy",
    "Option",
    "OversubscriptionPolicy",
    "Settings",
    "option",
    "parse_alpha",
    "parse_bool",
    "parse_call_timeout",
    "parse_counts",
    "parse_devices",
    "parse_path",
    "parse_percent",
    "parse_ref",
    "parse_rounds",
    "parse_seconds",
]

T = TypeVar("T")

InconclusivePolicy = Literal["pass", "fail"]
GcPolicy = Literal["collect", "disable"]
OversubscriptionPolicy = Literal["fail", "warn", "off"]

MAX_SECONDS = 86400.0
"""Upper bound of every time option (one day): a time beyond it is a typo, and a time
near the float range breaks the sampler's arithmetic."""

# -- value parsers: raw text (command line or ini) -> value, ValueError with one line ------


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def parse_seconds(raw: str) -> float:
    """A positive time in seconds, at most `MAX_SECONDS` (one day)."""
    what = f"expected a time in seconds, a positive number up to {MAX_SECONDS:g} (1 day)"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(what) from None
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise ValueError(what)
    return value


def parse_call_timeout(raw: str) -> float:
    """A call's time limit: seconds as `parse_seconds`, or 0 / off for no limit (0.0)."""
    if raw.strip().lower() in ("0", "0.0", "off", "none"):
        return 0.0
    try:
        return parse_seconds(raw)
    except ValueError:
        raise ValueError(
            f"expected a time in seconds, a positive number up to {MAX_SECONDS:g} (1 day),"
            " or 0 or off for no limit"
        ) from None


CALL_TIMEOUT_FLOOR_S = 60.0
CALL_TIMEOUT_MAX_TIMES = 10.0


def parse_pause(raw: str) -> float:
    """The longest pause between confirmation rounds: seconds up to 60, or 0 (none)."""
    what = "expected a pause in seconds, from 0 (rounds back to back) up to 60"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(what) from None
    if not (math.isfinite(value) and 0 <= value <= 60):
        raise ValueError(what)
    return value


def parse_busy_wait(raw: str) -> float:
    """The CPU wait from which a round is disturbed: a fraction from 0 (off) up to 16."""
    what = "expected a CPU wait per second of a round, from 0 (off) up to 16, e.g. 0.1"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(what) from None
    if not (math.isfinite(value) and 0 <= value <= 16):
        raise ValueError(what)
    return value


def parse_alpha(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a significance level between 0 and 0.5") from None
    if not 0 < value <= 0.5:
        raise ValueError("expected a significance level between 0 and 0.5")
    return value


class Choice:
    """A parser for one of a `Literal`'s values (case-insensitive); its metavar is a|b|c."""

    def __init__(self, kind: object) -> None:
        self.choices: tuple[str, ...] = get_args(kind)

    def __call__(self, raw: str) -> Any:
        value = raw.strip().lower()
        if value not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}")
        return value


def parse_path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("expected a file path")
    return Path(raw)


def parse_devices(raw: str) -> tuple[str, ...]:
    from pytest_hwperf.measure.device import DeviceError, normalize_device

    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names:
        raise ValueError("expected a comma-separated list of devices such as cpu,cuda")
    devices: list[str] = []
    for name in names:
        try:
            device = normalize_device(name)
        except DeviceError as exc:
            raise ValueError(str(exc)) from None
        if device not in devices:
            devices.append(device)
    return tuple(devices)


def parse_percent(raw: str) -> float:
    """A tolerated slowdown in percent: "10" and "10%" mean 10% (`parse_threshold`)."""
    return parse_threshold(raw)


def parse_counts(raw: str) -> tuple[int, ...]:
    values: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"expected a comma-separated list of positive integers, got {part!r}")
        if int(part) not in values:
            values.append(int(part))
    if not values:
        raise ValueError("expected a comma-separated list of positive integers such as 1,2,4")
    return tuple(values)


def parse_ref(raw: str) -> str:
    """A git ref or a directory for `--hwperf-against` (resolved by the plugin)."""
    value = raw.strip()
    if not value:
        raise ValueError("expected a git ref (branch, tag, commit) or a directory")
    return value


def parse_rounds(raw: str) -> int:
    value = raw.strip()
    if not value.isdigit() or int(value) > 20:
        raise ValueError(f"expected a whole number of rounds from 0 to 20, got {raw!r}")
    return int(value)


# -- the option table -------------------------------------------------------------------


@dataclass(frozen=True)
class Option(Generic[T]):
    """One setting: `flag` on the command line, `ini` in the ini file, `dest` in `Settings`."""

    flag: str  # --hwperf or --hwperf-<name>
    help: str
    default: T
    parse: Callable[[str], T]
    metavar: str | None = None  # None: a flag without a value
    dest: str = ""  # the Settings field, filled in from the dataclass

    @property
    def ini(self) -> str:
        """`--hwperf-max-time` -> `hwperf_max_time`."""
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def name(self) -> str:
        """The part after `--hwperf-` with underscores ("" for --hwperf itself)."""
        return self.ini.removeprefix("hwperf").removeprefix("_")


_OPTION = "hwperf.option"


def _option(
    flag: str, default: T, parse: Callable[[str], T], help: str, metavar: str | None = None
) -> T:
    """A `Settings` field that is also an option (typed as its value for the checker)."""
    if metavar is None and isinstance(parse, Choice):
        metavar = "|".join(parse.choices)
    declared = Option(flag, help, default, parse, metavar)
    return field(default=default, metadata={_OPTION: declared})


@dataclass(frozen=True)
class Settings:
    """The resolved settings of a session (resolved once, at configure).

    The fields declared with `_option` are the options, in `--help` order; their
    defaults are the option defaults.
    """

    enabled: bool = _option(
        "--hwperf",
        False,
        parse_bool,
        "Measure performance and judge budgets (without it a perf test runs its target once)",
    )
    max_time_s: float = _option(
        "--hwperf-max-time",
        5.0,
        parse_seconds,
        "Measuring time per measurement before a verdict must be given, in seconds, at most"
        " 86400 (default 5)",
        "SECONDS",
    )
    warmup_s: float = _option(
        "--hwperf-warmup",
        0.1,
        parse_seconds,
        "Minimum warm-up time per measurement, in seconds, at most 86400; warm-up calls are"
        " never samples (default 0.1)",
        "SECONDS",
    )
    call_timeout_s: float | None = _option(  # None: the default, from max_time_s
        "--hwperf-call-timeout",
        None,
        parse_call_timeout,
        "Hard limit on one measured call (warm-up or sample), in seconds: a call still"
        " running then fails its test (default: 10 x --hwperf-max-time, at least 60;"
        " 0 or off: no limit)",
        "SECONDS",
    )
    alpha: float = _option(
        "--hwperf-alpha",
        0.01,
        parse_alpha,
        "Significance level of budget verdicts: the chance of a wrong pass, or of a wrong"
        " fail, per budget (default 0.01)",
        "LEVEL",
    )
    inconclusive: InconclusivePolicy = _option(
        "--hwperf-inconclusive",
        "pass",
        Choice(InconclusivePolicy),
        "What a budget that could not be decided within --hwperf-max-time does: pass or"
        " fail (default pass)",
    )
    gc: GcPolicy = _option(
        "--hwperf-gc",
        "collect",
        Choice(GcPolicy),
        "Garbage collection while sampling: collect (collect first, leave it enabled) or"
        " disable (collect first, disable while sampling) (default collect)",
    )
    json_path: Path | None = _option(
        "--hwperf-json",
        None,
        parse_path,
        "Write the results, raw samples included, as JSON to PATH",
        "PATH",
    )
    markdown_path: Path | None = _option(
        "--hwperf-markdown",
        None,
        parse_path,
        "Write a Markdown summary to PATH (also appended to $GITHUB_STEP_SUMMARY when set)",
        "PATH",
    )
    html_path: Path | None = _option(
        "--hwperf-html",
        None,
        parse_path,
        "Write a self-contained HTML report with charts (latency distributions against the"
        " budgets, baseline, history, sweeps) to PATH",
        "PATH",
    )
    baseline_dir: Path = _option(
        "--hwperf-baseline-dir",
        Path(".hwperf"),  # relative: to the root dir (the plugin resolves it)
        parse_path,
        "Where baselines (JSON, meant to be committed) and run history (SQLite) live"
        " (default .hwperf)",
        "DIR",
    )
    save: bool = _option(
        "--hwperf-save",
        False,
        parse_bool,
        "Record this run as the baseline for this machine's fingerprint",
    )
    regression_pct: float = _option(
        "--hwperf-regression",
        10.0,
        parse_percent,
        "Tolerated slowdown against the baseline, in percent (default 10)",
        "PCT",
    )
    confirm: int = _option(
        "--hwperf-confirm",
        5,
        parse_rounds,
        "Rounds more that a run being saved, and a run whose first round looks like a"
        " regression, are measured in; the gate judges the fastest call of all (default 5;"
        " 0: one round always)",
        "N",
    )
    confirm_pause_s: float = _option(
        "--hwperf-confirm-pause",
        1.6,
        parse_pause,
        "Longest pause between the rounds that confirm a breached budget or a suspected"
        " regression, in seconds: they wait 0.1, 0.2, 0.4 ... up to it, so that they span"
        " a co-tenant's bursts instead of sharing one; after a disturbed round the wait"
        " ends once the machine is quiet (default 1.6; 0: back to back)",
        "SECONDS",
    )
    busy_wait: float = _option(
        "--hwperf-busy-wait",
        0.1,
        parse_busy_wait,
        "The CPU wait (this test's threads' run-queue wait per second of a round, from the"
        " kernel) from which a round counts as disturbed by a busy machine: confirmation"
        " rounds measure a quiet one in its place and the gates do not judge it"
        " (default 0.1; 0: off)",
        "FRACTION",
    )
    reference: bool = _option(
        "--hwperf-reference",
        True,
        parse_bool,
        "Time a fixed CPU workload after each round of a CPU measurement and rescale the"
        " stored baseline by the share of the machine's speed change a model follows: on"
        " or off (default on; not used under --hwperf-against, whose sides share the"
        " machine's minutes; see docs/statistics.md)",
        "on|off",
    )
    fail_on_improvement: bool = _option(
        "--hwperf-fail-on-improvement",
        False,
        parse_bool,
        "Fail a test that got significantly faster than its baseline, to force a refresh",
    )
    against: str | None = _option(  # None: compare with the saved baseline
        "--hwperf-against",
        None,
        parse_ref,
        "Same-run A/B: measure each perf test as of REF (a git ref, or the directory of"
        " another checkout) and as of the working tree, in alternating rounds on this"
        " machine, and gate on the paired difference instead of the saved baseline",
        "REF",
    )
    devices: tuple[str, ...] | None = _option(  # None: every device present
        "--hwperf-devices",
        None,
        parse_devices,
        "Devices the device fixture is parametrized over, comma-separated (cpu, cuda,"
        " cuda:1, mps) (default: every device present)",
        "LIST",
    )
    oversubscription: OversubscriptionPolicy = _option(
        "--hwperf-oversubscription",
        "fail",
        Choice(OversubscriptionPolicy),
        "What a workers x threads config above the usable cores does: fail, warn or off"
        " (default fail)",
    )
    workers: tuple[int, ...] = _option(
        "--hwperf-workers",
        (1,),
        parse_counts,
        "Worker counts the worker_config fixture is parametrized over, e.g. 1,2,4 (default 1)",
        "LIST",
    )
    threads: tuple[int, ...] = _option(
        "--hwperf-threads",
        (1,),
        parse_counts,
        "Threads per worker the worker_config fixture is parametrized over, e.g. 1,2 (default 1)",
        "LIST",
    )
    strict_hardware: bool = _option(
        "--hwperf-strict-hardware",
        False,
        parse_bool,
        "Fail, instead of skipping, a test whose device or hardware requirement this"
        " machine lacks (GPU runners must not go green by skipping)",
    )
    profile: ProfilerChoice = _option(
        "--hwperf-profile",
        "auto",
        Choice(ProfilerChoice),
        "Profile a measurement that fails its budget or regresses and keep the artifact under"
        " <baseline dir>/profiles: auto (torch.profiler for CUDA, else cProfile), off, cprofile,"
        " py-spy, scalene or torch (default auto)",
    )
    sources: tuple[tuple[str, str], ...] = ()  # (flag, where its value came from); no option

    @property
    def call_limit_s(self) -> float | None:
        """The limit on one measured call in seconds, None for none: --hwperf-call-timeout,
        by default 10 x --hwperf-max-time and at least 60 s (0 or off: None)."""
        if self.call_timeout_s is None:
            return max(CALL_TIMEOUT_FLOOR_S, CALL_TIMEOUT_MAX_TIMES * self.max_time_s)
        return self.call_timeout_s or None


def _declared(f: Field[Any]) -> Option[Any] | None:
    declared = f.metadata.get(_OPTION)
    return None if declared is None else replace(cast("Option[Any]", declared), dest=f.name)


OPTIONS: tuple[Option[Any], ...] = tuple(
    o for o in (_declared(f) for f in fields(Settings)) if o is not None
)
"""Every option, in `Settings`' field order (the order of `--help`)."""

DEFAULTS = Settings()
"""The default of every setting: `DEFAULTS.regression_pct`, `DEFAULTS.alpha`, ..."""

_BY_KEY: dict[str, Option[Any]] = {
    key: o for o in OPTIONS for key in (o.flag, o.ini, o.dest, o.name) if key
}


def option(key: str) -> Option[Any]:
    """An option by its flag (`--hwperf-regression`), ini key (`hwperf_regression`), name
    (`regression`) or `Settings` field (`regression_pct`)."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"no hwperf option {key!r}") from None
