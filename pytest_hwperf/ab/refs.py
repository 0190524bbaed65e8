"""`--hwperf-against=REF`: where the base side runs from, made and removed.

REF is a directory (another checkout of the project) or a git ref of the repository
that holds pytest's root dir, resolved with `git rev-parse --verify REF^{commit}`. A
ref gets a detached `git worktree` of its commit in a temporary directory, removed
(`git worktree remove --force`, then `prune`) when the session ends, however it ends.
Every problem is a `RefError` with one line: an unknown ref, no git repository, no
git, a worktree that cannot be made.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BaseCheckout", "RefError", "remove_base", "resolve_base"]

# git answers these in milliseconds; a worktree of a large repository takes longer.
_GIT_TIMEOUT_S = 300.0


class RefError(Exception):
    """REF cannot be run; the message is one line."""


@dataclass(frozen=True)
class BaseCheckout:
    """The code to measure as the base: `root` is the directory that stands for the
    head's root dir there (the base session runs in it)."""

    spec: str  # REF as given
    label: str  # what lines name it: "HEAD~1 (3f2a9c1)", "../old (directory)"
    root: Path
    checkout: Path  # the worktree's (or the directory's) top
    repo: Path | None = None  # the repository a worktree was added to
    commit: str | None = None
    # Our temporary directory (the worktree, the base session's log and files), removed
    # at the end.
    temp: Path | None = None


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise RefError("git is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise RefError(f"git {' '.join(args)} did not finish within {_GIT_TIMEOUT_S:g} s") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _toplevel(rootdir: Path) -> Path | None:
    found = _git(["rev-parse", "--show-toplevel"], rootdir)
    if found.returncode != 0 or not found.stdout.strip():
        return None
    return Path(found.stdout.strip()).resolve()


def _within(top: Path | None, rootdir: Path) -> Path:
    """The root dir relative to the repository's top (`.` outside one)."""
    if top is None:
        return Path()
    try:
        return rootdir.resolve().relative_to(top)
    except ValueError:
        return Path()


def resolve_base(spec: str, rootdir: Path, *, cwd: Path | None = None) -> BaseCheckout:
    """The base checkout for REF `spec`: a directory as it is, a git ref as a new
    worktree (remove it with `remove_base`). Raises RefError."""
    text = spec.strip()
    if not text:
        raise RefError("expected a git ref or a directory, got an empty value")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    top = _toplevel(rootdir) if shutil.which("git") else None
    if path.is_dir():
        checkout = path.resolve()
        root = checkout / _within(top, rootdir)
        return BaseCheckout(
            spec=text,
            label=f"{text} (directory)",
            root=root if root.is_dir() else checkout,
            checkout=checkout,
            temp=Path(tempfile.mkdtemp(prefix="hwperf-ab-")),
        )
    if shutil.which("git") is None:
        raise RefError(f"{text!r} is not a directory, and git is not installed to read it as a ref")
    if top is None:
        raise RefError(f"{text!r} is not a directory, and {rootdir} is not in a git repository")
    found = _git(["rev-parse", "--verify", "--quiet", f"{text}^{{commit}}"], top)
    commit = found.stdout.strip()
    if found.returncode != 0 or not commit:
        raise RefError(
            f"{text!r} is neither a commit of the git repository at {top} nor a directory"
        )
    short = _git(["rev-parse", "--short", commit], top).stdout.strip() or commit[:12]
    temp = Path(tempfile.mkdtemp(prefix="hwperf-ab-"))
    checkout = temp / "ref"
    made = _git(["worktree", "add", "--detach", "--quiet", str(checkout), commit], top)
    if made.returncode != 0:
        shutil.rmtree(temp, ignore_errors=True)
        _git(["worktree", "prune"], top)
        raise RefError(f"could not make a worktree of {text}: {_last_line(made.stderr)}")
    return BaseCheckout(
        spec=text,
        label=f"{text} ({short})",
        root=checkout / _within(top, rootdir),
        checkout=checkout,
        repo=top,
        commit=commit,
        temp=temp,
    )


def remove_base(base: BaseCheckout) -> str | None:
    """Remove the worktree `resolve_base` made and the temporary directory (a directory
    REF itself is left alone). Never raises; returns what could not be removed, in one
    line, or None."""
    problem: str | None = None
    if base.repo is not None:
        with contextlib.suppress(RefError):
            removed = _git(["worktree", "remove", "--force", str(base.checkout)], base.repo)
            if removed.returncode != 0 and base.checkout.exists():
                problem = f"git worktree remove {base.checkout}: {_last_line(removed.stderr)}"
        if base.temp is not None:
            shutil.rmtree(base.temp, ignore_errors=True)
        with contextlib.suppress(RefError):
            _git(["worktree", "prune"], base.repo)
    elif base.temp is not None:
        shutil.rmtree(base.temp, ignore_errors=True)
    if base.temp is not None and base.temp.exists():
        problem = problem or f"{base.temp} could not be removed"
    return problem
