"""The threading environment shown (`hwperf info`, every measurement's `threads.env`) is
the user's: threadpoolctl's own `KMP_DUPLICATE_LIB_OK=True`, set when it is imported,
is not listed as if the user had set it (issue 14, item 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _info_env(env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest_hwperf.cli", "info", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    ).stdout
    found = json.loads(out)["threads"]["env"]
    assert isinstance(found, dict)
    return found


def test_threadpoolctls_own_setting_is_not_shown_as_the_users():
    env = {k: v for k, v in os.environ.items() if k != "KMP_DUPLICATE_LIB_OK"}
    env["OMP_NUM_THREADS"] = "2"
    shown = _info_env(env)
    assert shown.get("OMP_NUM_THREADS") == "2"
    assert "KMP_DUPLICATE_LIB_OK" not in shown


def test_a_users_own_setting_is_shown():
    env = dict(os.environ, KMP_DUPLICATE_LIB_OK="True")
    assert _info_env(env).get("KMP_DUPLICATE_LIB_OK") == "True"
