"""The base session of a same-run A/B run: a second pytest process rooted at the REF.

Same interpreter, `pytest --hwperf` in the base checkout, with the head's measuring
options and `--hwperf-ab-peer=ADDRESS`. Its environment puts the checkout (and its
`src/`) first on `PYTHONPATH`, so the project's code is imported from the REF and not
from the head's editable install; the plugin itself is the head's (the process loads it
from the head's location before pytest starts), so both sides speak the same protocol
whatever the REF holds. Its output goes to a log in the run's temporary directory; when
it ends early, its exit status and the first error line of that log are the reason
every measurement it did not reach gives.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest_hwperf
from pytest_hwperf.ab.protocol import AUTHKEY_ENV

__all__ = ["PLUGIN_ENV", "BaseProcess", "base_environment", "exit_reason"]

# Where the head's pytest_hwperf package lives, for the base to load it from.
PLUGIN_ENV = "HWPERF_AB_PLUGIN"
# The base's first lines: end with the head (Linux's parent-death signal), load the
# head's pytest_hwperf (so the entry point resolves to it), then run pytest with the
# given arguments.
_BOOTSTRAP = """\
import ctypes, importlib.util, os, signal, sys
try:  # Linux: end with the head, whatever ends it (SIGKILL included)
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
except Exception:
    pass
if os.getppid() != int(os.environ.pop("HWPERF_AB_PARENT", "0") or os.getppid()):
    sys.exit("hwperf: the head session ended before this one started")
where = os.environ.pop("HWPERF_AB_PLUGIN", "")
if where:
    spec = importlib.util.spec_from_file_location(
        "pytest_hwperf", os.path.join(where, "__init__.py"), submodule_search_locations=[where]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["pytest_hwperf"] = module
    spec.loader.exec_module(module)
import pytest
sys.exit(pytest.console_main())
"""
# Environment the base must not inherit: the head's step summary is the head's.
_NOT_INHERITED = ("GITHUB_STEP_SUMMARY", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT")
# The line of its output that says what went wrong, in this order: an exception's line
# in a report ("E   ModuleNotFoundError: ..."), an argument error, any error line.
_ERROR_LINES = (
    re.compile(r"^E\s+\S"),
    re.compile(r"\berror: (?!usage)", re.IGNORECASE),
    re.compile(r"^(ERROR\b|\w+Error\b)"),
)
# When ending it: SIGTERM, then this long, then SIGKILL.
_TERMINATE_GRACE_S = 5.0


def base_environment(environ: Mapping[str, str], checkout: Path, authkey: bytes) -> dict[str, str]:
    """The base's environment: the checkout (and its `src/`) first on PYTHONPATH, the
    connection's key, the head's plugin location; nothing of the head's CI summary."""
    env = {k: v for k, v in environ.items() if k not in _NOT_INHERITED}
    first = [str(checkout)]
    if (checkout / "src").is_dir():
        first.append(str(checkout / "src"))
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(first + rest)
    env[AUTHKEY_ENV] = authkey.hex()
    env[PLUGIN_ENV] = str(Path(pytest_hwperf.__file__).resolve().parent)
    env["HWPERF_AB_PARENT"] = str(os.getpid())
    return env


def exit_reason(returncode: int, log: str) -> str:
    """Why the base session ended, in one line: its exit status and the first error line
    of its output (else its last line)."""
    status = f"killed by signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    found = next(
        (line for pattern in _ERROR_LINES for line in lines if pattern.search(line)),
        lines[-1] if lines else None,
    )
    if found is None:
        return f"its session ended ({status}, no output)"
    found = re.sub(r"^E\s+", "", found)
    if len(found) > 200:
        found = found[:197] + "..."
    return f"its session ended ({status}): {found}"


class BaseProcess:
    """The running base session; `end()` ends it (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        on_exit: Callable[[str], object],
    ) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            # Its own session: a Ctrl-C at the terminal reaches the head, which ends it.
            self._process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, *args],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._on_exit = on_exit
        self._watcher = threading.Thread(target=self._watch, name="hwperf-ab-base", daemon=True)
        self._watcher.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _watch(self) -> None:
        returncode = self._process.wait()
        log = ""
        with contextlib.suppress(OSError):
            log = self.log_path.read_text(encoding="utf-8", errors="replace")
        self._on_exit(exit_reason(returncode, log))

    def running(self) -> bool:
        return self._process.poll() is None

    def end(self) -> None:
        """End it if it still runs, and wait until it has."""
        process = self._process
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.terminate()
            try:
                process.wait(_TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    process.kill()
                process.wait()
        self._watcher.join(_TERMINATE_GRACE_S)
