"""Writing a file so that nothing half-written is ever seen: the one helper every file
the plugin writes goes through (baselines, the JSON, Markdown and HTML reports).

A temporary file in the same folder, flushed and fsynced, then `os.replace`: a reader,
or a crash, sees the old file or the new one and never a mix. The new file keeps the
mode of the one it replaces, else gets the mode the umask gives a new file (mkstemp's
private 0600 would hide a report or a committed baseline from other users).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["MAX_READ_BYTES", "UnreadableFile", "atomic_write", "new_file_mode", "read_regular"]


def new_file_mode() -> int:
    """The mode `open()` gives a new file under this process's umask (0o644 under 022)."""
    umask = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    if umask is None:  # not Linux: read it the only other way, setting it back at once
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` (text is written as UTF-8 with "\\n" line ends),
    creating missing parent folders. Raises OSError; never leaves its temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = new_file_mode()
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# The largest file the plugin reads (a baseline, a JSON report): a baseline of 20 runs
# of 1,000 measurements with their kept samples is ~60 MB; a report of that many
# measurements with every sample can be larger, so reports get more room.
MAX_READ_BYTES = 256 * 1024 * 1024


class UnreadableFile(OSError):
    """A file the plugin will not read: not a regular file, or over the size cap. The
    message is one line naming the file and why."""


def read_regular(path: Path, *, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of `path`, read only when it is a regular file (after symlinks) of at
    most `limit` bytes: a FIFO, a device (`/dev/zero`) or a socket would block or never
    end, and a huge file would exhaust memory. Raises `UnreadableFile` for those,
    OSError (FileNotFoundError, PermissionError...) when it cannot be opened."""
    import stat

    path = Path(path)
    # O_NONBLOCK: opening a FIFO with no writer must not block before fstat can refuse it.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"{path} is not a regular file; refusing to read it")
        if info.st_size > limit:
            raise UnreadableFile(
                f"{path} is {info.st_size:,} bytes, over the {limit:,}-byte limit"
                " pytest-hwperf reads; refusing to read it"
            )
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:  # grew while being read
                raise UnreadableFile(f"{path} grew over the {limit:,}-byte limit while being read")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
