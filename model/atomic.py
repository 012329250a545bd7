"""Atomic file writes: readers see the old file or the new one, never half of one.

A file written here gets the permissions any new file would get (``0o666`` less the umask), or
keeps those of the file it replaces: :func:`tempfile.mkstemp` alone would make every export and
model file readable by its owner only (``0o600``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    write_stream_atomic(path, lambda stream: stream.write(data))


def write_stream_atomic(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Let ``write`` fill an open binary stream that becomes ``path`` atomically: for data too
    large to hold twice in memory (e.g. ``torch.save`` of gigabytes of cached features)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), _mode_for(path))
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def new_file_mode() -> int:
    """The permission bits a new file gets here: ``0o666`` less the process's umask."""
    return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux)."""
    umask = _umask_from_proc()
    if umask is not None:
        return umask
    # Elsewhere the only way is to set it and put it back (a moment in which another thread
    # creating a file would get 0o022; harmless).
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _umask_from_proc() -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _mode_for(path: Path) -> int:
    """Keep the permission bits of the file being replaced; a new file gets the umask's."""
    try:
        return path.stat().st_mode & 0o7777 & ~0o7000  # no set-id or sticky bits
    except OSError:
        return new_file_mode()
