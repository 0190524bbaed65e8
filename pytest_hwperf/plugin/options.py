"""The pytest side of the options declared in `pytest_hwperf.settings`.

Every option becomes a command-line flag and an ini key. Every CLI default is None so
that an ini value is never hidden by a flag's default (the bug pytest-timeout #175 had);
the precedence is command line > ini > default. A bad value is a `pytest.UsageError`
that names where it came from.

argparse keeps each value under the option's ini key (`hwperf_max_time`), a name no
other plugin uses; `Settings` gets it under the option's `dest`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from pytest_hwperf.settings import OPTIONS, Option, Settings

__all__ = [
    "AB_PEER_DEST",
    "AB_PEER_FLAG",
    "OPTIONS",
    "Option",
    "Settings",
    "add_options",
    "resolve_settings",
]

T = TypeVar("T")

AB_PEER_FLAG = "--hwperf-ab-peer"
AB_PEER_DEST = "hwperf_ab_peer"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("hwperf", "hardware-aware performance testing (pytest-hwperf)")
    for option in OPTIONS:
        if option.metavar is None:
            group.addoption(
                option.flag, action="store_true", default=None, dest=option.ini, help=option.help
            )
        else:
            group.addoption(
                option.flag,
                action="store",
                default=None,
                dest=option.ini,
                metavar=option.metavar,
                help=option.help,
            )
        parser.addini(option.ini, help=option.help, type="string", default="")
    # Internal, not in --help: the base session of a same-run A/B run (--hwperf-against)
    # is started with the head's address (plugin/ab_session.py).
    group.addoption(
        AB_PEER_FLAG, action="store", default=None, dest=AB_PEER_DEST, help=argparse.SUPPRESS
    )


def _resolve(config: pytest.Config, option: Option[T]) -> tuple[T, str]:
    cli_value = config.getoption(option.ini)
    if cli_value is not None:
        if option.metavar is None:
            return cast("T", bool(cli_value)), "command line"
        where = f"command line option {option.flag}"
        raw = str(cli_value)
    else:
        ini_value = config.getini(option.ini)
        if ini_value in ("", None, []):
            return _located(option.default, config.rootpath), "default"
        inipath = config.inipath
        where = f"ini option {option.ini}" + (f" in {inipath}" if inipath else "")
        raw = ini_value if isinstance(ini_value, str) else str(ini_value)
    try:
        value = option.parse(raw)
    except ValueError as exc:
        raise pytest.UsageError(f"{where}: invalid value {raw!r}: {exc}") from None
    if cli_value is None and config.inipath:
        # A path in the ini file is relative to that file, wherever pytest is started.
        value = _located(value, config.inipath.parent)
    return value, where


def _located(value: T, base: Path) -> T:
    """A relative path made relative to `base`; any other value as it is."""
    if isinstance(value, Path) and not value.is_absolute():
        return cast("T", base / value)
    return value


def resolve_settings(config: pytest.Config) -> Settings:
    """Resolve every option with precedence command line > ini > default.

    A relative default path is relative to the root dir (`.hwperf` lives at the project
    root wherever pytest is started), one from the ini file to that file, one from the
    command line to the current directory.
    """
    values: dict[str, Any] = {}  # each option parsed to its own type
    sources: list[tuple[str, str]] = []
    for option in OPTIONS:
        values[option.dest], where = _resolve(config, option)
        sources.append((option.flag, where))
    return Settings(**values, sources=tuple(sources))


# Where the settings live: on the config, from pytest_configure on.
SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
__all__ += ["SETTINGS_KEY"]
