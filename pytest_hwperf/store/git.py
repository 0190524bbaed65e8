"""The commit a run was measured on, for the history and baselines.

Best effort and bounded: git may be missing, the folder may not be a repository, git
may refuse it (a "dubious ownership" check) or hang on a network file system. All of
those give None after at most ``GIT_TIMEOUT_S`` per call, never an error: a run
without a commit is still a run.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

__all__ = ["GIT_TIMEOUT_S", "commit_label", "current_commit"]

GIT_TIMEOUT_S = 5.0

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # SHA-1, or SHA-256 repositories


def _git(cwd: Path, *args: str) -> str | None:
    """git's stdout, or None when it is missing, fails or times out."""
    # Optional locks off: a read-only "git status" must not take the index lock that a
    # concurrent "git commit" in the same checkout needs.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout if done.returncode == 0 else None


def current_commit(cwd: Path) -> str | None:
    """The full sha of HEAD in the repository containing ``cwd``, or None."""
    out = _git(cwd, "rev-parse", "--verify", "--quiet", "HEAD")
    if out is None:
        return None
    sha = out.strip()
    return sha if _SHA.match(sha) else None


def commit_label(cwd: Path) -> str | None:
    """HEAD's sha, with "+dirty" when tracked files differ from it; None outside git.

    Untracked files are not counted: the history database and new baselines under
    ``.hwperf/`` would otherwise mark every run after the first as dirty. When the
    status itself cannot be read the plain sha is returned.
    """
    sha = current_commit(cwd)
    if sha is None:
        return None
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return f"{sha}+dirty" if status and status.strip() else sha
