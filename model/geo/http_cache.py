"""A disk cache of fetched map tiles, under MapScribe's cache folder, capped in size and age.

One file per response, named by a SHA-256 of its URL (so neither the URL nor an API key in it is
written anywhere), holding the body as it came: an image, or nothing for "no tile here" (HTTP
404/204), so a second run over the same area asks the server for nothing it already answered.
Files are written to a temporary name and renamed, so a crash leaves no half tile; a file that
cannot be read is ignored. When the folder grows past its cap the oldest files go first.

The folder: ``$MAPSCRIBE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mapscribe``, else
``~/.cache/mapscribe``; tiles live in its ``tiles/`` subfolder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple, Union

log = logging.getLogger(__name__)

# A cached answer that said "no tile here".
MISSING = b""


def default_cache_dir() -> Path:
    """MapScribe's cache folder (see the module documentation)."""
    configured = os.environ.get("MAPSCRIBE_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "mapscribe"


class TileCache:
    """Responses by URL, on disk. Thread-safe; every method swallows disk errors (a cache that
    cannot be written only means more requests), logging the first one."""

    def __init__(self, folder: Union[str, Path], max_bytes: int, max_age_s: float):
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()
        self._size: Optional[int] = None  # bytes in the folder, counted on the first write
        self._warned = False

    def _path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.tile"

    def get(self, url: str) -> Optional[bytes]:
        """The cached body (``MISSING`` for "no tile"), or None when not cached or too old."""
        path = self._path(url)
        try:
            stat = path.stat()
            if time.time() - stat.st_mtime > self.max_age_s:
                return None
            return path.read_bytes()
        except OSError:
            return None

    def put(self, url: str, body: bytes) -> None:
        path = self._path(url)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(body)
            os.replace(temporary, path)
        except OSError as error:
            self._warn(error)
            try:
                temporary.unlink()
            except OSError:
                pass
            return
        with self._lock:
            if self._size is None:
                self._size = sum(size for _, size, _ in self._files())
            else:
                self._size += len(body)
            if self._size > self.max_bytes:
                self._size = self._evict()

    def _files(self) -> List[Tuple[float, int, Path]]:
        found = []
        for path in self.folder.glob("??/*.tile"):
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append((stat.st_mtime, stat.st_size, path))
        return found

    def _evict(self) -> int:
        """Remove the oldest files until the folder holds at most 90% of the cap."""
        files = sorted(self._files())
        total = sum(size for _, size, _ in files)
        target = int(self.max_bytes * 0.9)
        for _, size, path in files:
            if total <= target:
                break
            try:
                path.unlink()
                total -= size
            except OSError:
                continue
        log.debug("tile cache %s trimmed to %d bytes", self.folder, total)
        return total

    def _warn(self, error: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("the tile cache %s cannot be written (%s): tiles are fetched without it",
                        self.folder, error)
