"""`hwperf against REF [PYTEST_ARGS ...]`: same-run A/B as a command.

It runs `python -m pytest --hwperf --hwperf-against=REF PYTEST_ARGS` with this Python,
in the current folder, and exits with pytest's exit status: the comparison itself is
the plugin's (plugin/ab_session.py), so a test judged by the command and by the option
gets the same verdict. What the command adds is the name a CI step reads (`hwperf
against origin/main`); a REF that cannot be one is a one-line error, as from the option."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import TYPE_CHECKING

from pytest_hwperf.cli._common import _fail
from pytest_hwperf.report.terminal import visible

if TYPE_CHECKING:
    from pytest_hwperf.cli._common import _Commands

# pytest's exit status for an interrupted session (pytest.ExitCode.INTERRUPTED).
INTERRUPTED = 2


def pytest_command(ref: str, pytest_args: list[str]) -> list[str]:
    """The pytest command line `hwperf against` runs."""
    args = pytest_args[1:] if pytest_args[:1] == ["--"] else pytest_args
    return [sys.executable, "-m", "pytest", "--hwperf", f"--hwperf-against={ref}", *args]


def _against(args: argparse.Namespace) -> int:
    ref: str = args.ref
    if not ref.strip() or ref.startswith("-") or any(c in ref for c in "\0\n\r"):
        return _fail(
            "against", f"REF {visible(ref)!r} is not a git ref or a path to another checkout"
        )
    command = pytest_command(ref, list(args.pytest_args))
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return INTERRUPTED
    except OSError as exc:
        return _fail("against", f"cannot run pytest: {exc}")


def register(commands: _Commands) -> None:
    """Add `against` to the `hwperf` subcommands."""
    against = commands.add_parser(
        "against",
        help="Run the perf tests here against REF in one session (same-run A/B)",
        description="Run `pytest --hwperf --hwperf-against=REF [PYTEST_ARGS]`: each perf"
        " test measured as of REF and as of the working tree, in alternating rounds on"
        " this machine, the change judged on the pairs. Exits with pytest's status.",
    )
    against.add_argument(
        "ref", metavar="REF", help="A git ref (HEAD~1, origin/main, a tag) or another checkout"
    )
    against.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        metavar="PYTEST_ARGS",
        help="More pytest arguments: paths, -k, --hwperf-json=...",
    )
    against.set_defaults(run=_against)
