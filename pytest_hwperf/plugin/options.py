"""Command-line options and their ini twins, declared once.

Each option is one `Option`: its flag, ini key, default, help and parser. Every CLI
default is None so that an ini value is never hidden by a flag's default (the bug
pytest-timeout #175 had); the precedence is command line > ini > default. A bad
value is a `pytest.UsageError` that names where it came from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

import pytest

from pytest_hwperf.profiling.tools import PROFILERS, ProfilerChoice

__all__ = ["OPTIONS", "Option", "Settings", "add_options", "resolve_settings"]

T = TypeVar("T")

InconclusivePolicy = Literal["pass", "fail"]
GcPolicy = Literal["collect", "disable"]


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _positive_float(what: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected {what}, a positive number") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"expected {what}, a positive number")
        return value

    return parse


def parse_alpha(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a significance level between 0 and 0.5") from None
    if not 0 < value <= 0.5:
        raise ValueError("expected a significance level between 0 and 0.5")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


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
    from pytest_hwperf.judge.regression import parse_threshold

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


def parse_rounds(raw: str) -> int:
    value = raw.strip()
    if not value.isdigit() or int(value) > 20:
        raise ValueError(f"expected a whole number of rounds from 0 to 20, got {raw!r}")
    return int(value)


@dataclass(frozen=True)
class Option(Generic[T]):
    """One setting: `--hwperf-<name>` on the command line, `hwperf_<name>` in the ini file."""

    name: str  # "" for --hwperf itself
    help: str
    default: T
    parse: Callable[[str], T]
    metavar: str | None = None  # None: a flag without a value

    @property
    def flag(self) -> str:
        return "--hwperf" + (f"-{self.name.replace('_', '-')}" if self.name else "")

    @property
    def ini(self) -> str:
        return "hwperf" + (f"_{self.name}" if self.name else "")

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS: tuple[Option[Any], ...] = (
    Option(
        "",
        "Measure performance and judge budgets (without it a perf test runs its target once)",
        False,
        parse_bool,
    ),
    Option(
        "max_time",
        "Measuring time per measurement before a verdict must be given, in seconds (default 5)",
        5.0,
        _positive_float("a time in seconds"),
        "SECONDS",
    ),
    Option(
        "warmup",
        "Minimum warm-up time per measurement, in seconds; warm-up calls are never samples"
        " (default 0.1)",
        0.1,
        _positive_float("a time in seconds"),
        "SECONDS",
    ),
    Option(
        "alpha",
        "Significance level of budget verdicts: the chance of a wrong pass, or of a wrong"
        " fail, per budget (default 0.01)",
        0.01,
        parse_alpha,
        "LEVEL",
    ),
    Option(
        "inconclusive",
        "What a budget that could not be decided within --hwperf-max-time does: pass or"
        " fail (default pass)",
        "pass",
        _choice("pass", "fail"),
        "pass|fail",
    ),
    Option(
        "gc",
        "Garbage collection while sampling: collect (collect first, leave it enabled) or"
        " disable (collect first, disable while sampling) (default collect)",
        "collect",
        _choice("collect", "disable"),
        "collect|disable",
    ),
    Option(
        "json",
        "Write the results, raw samples included, as JSON to PATH",
        None,
        parse_path,
        "PATH",
    ),
    Option(
        "markdown",
        "Write a Markdown summary to PATH (also appended to $GITHUB_STEP_SUMMARY when set)",
        None,
        parse_path,
        "PATH",
    ),
    Option(
        "html",
        "Write a self-contained HTML report with charts (latency distributions against the"
        " budgets, baseline, history, sweeps) to PATH",
        None,
        parse_path,
        "PATH",
    ),
    Option(
        "baseline_dir",
        "Where baselines (JSON, meant to be committed) and run history (SQLite) live"
        " (default .hwperf)",
        Path(".hwperf"),
        parse_path,
        "DIR",
    ),
    Option(
        "save",
        "Record this run as the baseline for this machine's fingerprint",
        False,
        parse_bool,
    ),
    Option(
        "regression",
        "Tolerated slowdown against the baseline, in percent (default 10)",
        10.0,
        parse_percent,
        "PCT",
    ),
    Option(
        "confirm",
        "Rounds more that a run being saved, and a run whose first round looks like a"
        " regression, are measured in; the gate judges the fastest call of all (default 5;"
        " 0: one round always)",
        5,
        parse_rounds,
        "N",
    ),
    Option(
        "reference",
        "Time a fixed CPU workload around each CPU measurement and rescale the baseline by"
        " the machine's speed: on or off (default off: on a shared runner it cost more"
        " detections than the false alarms it saved, see docs/statistics.md)",
        False,
        parse_bool,
        "on|off",
    ),
    Option(
        "fail_on_improvement",
        "Fail a test that got significantly faster than its baseline, to force a refresh",
        False,
        parse_bool,
    ),
    Option(
        "devices",
        "Devices the device fixture is parametrized over, comma-separated (cpu, cuda,"
        " cuda:1, mps) (default: every device present)",
        None,
        parse_devices,
        "LIST",
    ),
    Option(
        "oversubscription",
        "What a workers x threads config above the usable cores does: fail, warn or off"
        " (default fail)",
        "fail",
        _choice("fail", "warn", "off"),
        "fail|warn|off",
    ),
    Option(
        "workers",
        "Worker counts the worker_config fixture is parametrized over, e.g. 1,2,4 (default 1)",
        (1,),
        parse_counts,
        "LIST",
    ),
    Option(
        "threads",
        "Threads per worker the worker_config fixture is parametrized over, e.g. 1,2 (default 1)",
        (1,),
        parse_counts,
        "LIST",
    ),
    Option(
        "strict_hardware",
        "Fail, instead of skipping, a test whose device or hardware requirement this"
        " machine lacks (GPU runners must not go green by skipping)",
        False,
        parse_bool,
    ),
    Option(
        "profile",
        "Profile a measurement that fails its budget or regresses and keep the artifact under"
        " <baseline dir>/profiles: auto (torch.profiler for CUDA, else cProfile), off, cprofile,"
        " py-spy, scalene or torch (default auto)",
        "auto",
        _choice(*PROFILERS),
        "auto|off|cprofile|py-spy|scalene|torch",
    ),
)


@dataclass(frozen=True)
class Settings:
    """The resolved settings of a session (resolved once, at configure)."""

    enabled: bool = False
    max_time_s: float = 5.0
    warmup_s: float = 0.1
    alpha: float = 0.01
    inconclusive: InconclusivePolicy = "pass"
    gc: GcPolicy = "collect"
    json_path: Path | None = None
    devices: tuple[str, ...] | None = None  # None: every device present
    strict_hardware: bool = False
    oversubscription: Literal["fail", "warn", "off"] = "fail"
    workers: tuple[int, ...] = (1,)
    threads: tuple[int, ...] = (1,)
    markdown_path: Path | None = None
    html_path: Path | None = None
    baseline_dir: Path = Path(".hwperf")
    save: bool = False
    regression_pct: float = 10.0
    fail_on_improvement: bool = False
    confirm: int = 5  # rounds to measure a suspected regression again
    reference: bool = False
    profile: ProfilerChoice = "auto"  # what profiles a failing measurement (issue 6)
    sources: tuple[tuple[str, str], ...] = ()  # (option, where its value came from)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("hwperf", "hardware-aware performance testing (pytest-hwperf)")
    for option in OPTIONS:
        if option.metavar is None:
            group.addoption(
                option.flag, action="store_true", default=None, dest=option.dest, help=option.help
            )
        else:
            group.addoption(
                option.flag,
                action="store",
                default=None,
                dest=option.dest,
                metavar=option.metavar,
                help=option.help,
            )
        parser.addini(option.ini, help=option.help, type="string", default="")


def _resolve(config: pytest.Config, option: Option[T]) -> tuple[T, str]:
    cli_value = config.getoption(option.dest)
    if cli_value is not None:
        if option.metavar is None:
            return cast("T", bool(cli_value)), "command line"
        where = f"command line option {option.flag}"
        raw = str(cli_value)
    else:
        ini_value = config.getini(option.ini)
        if ini_value in ("", None, []):
            return option.default, "default"
        inipath = config.inipath
        where = f"ini option {option.ini}" + (f" in {inipath}" if inipath else "")
        raw = ini_value if isinstance(ini_value, str) else str(ini_value)
    try:
        value = option.parse(raw)
    except ValueError as exc:
        raise pytest.UsageError(f"{where}: invalid value {raw!r}: {exc}") from None
    if isinstance(value, Path) and cli_value is None and config.inipath and not value.is_absolute():
        # A path in the ini file is relative to that file, wherever pytest is started.
        value = cast(T, config.inipath.parent / value)
    return value, where


def resolve_settings(config: pytest.Config) -> Settings:
    """Resolve every option with precedence command line > ini > default."""
    values: dict[str, Any] = {}
    sources: list[tuple[str, str]] = []
    for option in OPTIONS:
        value, where = _resolve(config, option)
        values[option.name or "enabled"] = value
        sources.append((option.flag, where))
        if option.name == "baseline_dir" and where == "default":
            # The default lives at the project root, wherever pytest is started.
            values["baseline_dir"] = config.rootpath / ".hwperf"
    return Settings(
        enabled=values["enabled"],
        max_time_s=values["max_time"],
        warmup_s=values["warmup"],
        alpha=values["alpha"],
        inconclusive=values["inconclusive"],
        gc=values["gc"],
        json_path=values["json"],
        devices=values["devices"],
        strict_hardware=values["strict_hardware"],
        oversubscription=values["oversubscription"],
        workers=values["workers"],
        threads=values["threads"],
        markdown_path=values["markdown"],
        html_path=values["html"],
        baseline_dir=values["baseline_dir"],
        save=values["save"],
        regression_pct=values["regression"],
        fail_on_improvement=values["fail_on_improvement"],
        confirm=values["confirm"],
        reference=values["reference"],
        profile=values["profile"],
        sources=tuple(sources),
    )
