"""The reaper: stops an MLServer's process group when the test process is gone.

`python -m pytest_hwperf.serving.reaper <pgid> [<folder>]` is started with its own
session and its stdin a pipe from the test process, right after the server. It waits
for one line. "disarm" means the test process stopped the server itself: the reaper
exits. End of file without it means the test process died (SIGKILL, a crash, a hard
exit on a hung call): the reaper sends SIGTERM to the server's process group, then
SIGKILL to what is left after a grace period, and removes `<folder>` (the server's
temporary settings folder). So a SIGKILL of pytest leaves no server and no worker
behind: MLServer's workers stay in the server's process group even when orphaned.

The pipe's write end is close-on-exec, so no process the test starts keeps it open; the
reaper also watches its parent pid, in case a forked child of the test process holds it.
Only the standard library is imported: the reaper starts in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time

__all__ = ["DISARM", "GRACE_S", "PARENT_POLL_S", "main"]

DISARM = "disarm"
GRACE_S = 3.0  # between SIGTERM and SIGKILL of the group
PARENT_POLL_S = 0.5


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - the group is someone else's now
        return False
    return True


def _kill_group(pgid: int, grace_s: float) -> None:
    """SIGTERM to the group, SIGKILL after `grace_s` to whatever is left."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _watch_parent(parent: int, gone: threading.Event) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    gone.set()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or not args[0].isdigit():
        print("usage: python -m pytest_hwperf.serving.reaper <pgid> [<folder>]", file=sys.stderr)
        return 2
    pgid = int(args[0])
    folder = args[1] if len(args) > 1 else None
    # Ctrl-C at a terminal reaches the test process, which stops the server itself; the
    # reaper has its own session anyway, and ignores both so that only EOF drives it.
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    gone = threading.Event()
    threading.Thread(target=_watch_parent, args=(os.getppid(), gone), daemon=True).start()
    result: list[str] = []

    def read() -> None:
        line = sys.stdin.readline()
        result.append(line.strip())
        gone.set()

    threading.Thread(target=read, daemon=True).start()
    gone.wait()
    if result and result[0] == DISARM:
        return 0
    _kill_group(pgid, GRACE_S)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
