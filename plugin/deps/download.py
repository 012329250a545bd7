"""How many megabytes of an installation are in: the files pip will fetch, their sizes, and
what has arrived so far.

pip prints no overall progress (``--progress-bar off``: its bar is for terminals). The resolved
files are known before pip installs them (the report of its dry run), so their sizes are asked
for first (``HEAD``; a local file's size is read), and while pip runs the meter looks at what
it downloads into its temporary folder (``TMPDIR``, set to a folder of ours for the child) and
at which files its output names: done = every file pip has moved past, plus the part of the one
it is downloading. A file whose size cannot be learnt counts once it is in, and the total is
then "at least".

Plain Python: no Qt, no QGIS.
"""

from __future__ import annotations

import glob
import os
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

MB = 1_000_000


def file_name(url: str) -> str:
    return os.path.basename(urllib.parse.urlparse(url).path)


def remote_size(url: str, timeout_s: float = 5.0) -> Optional[int]:
    """The size in bytes of the file at ``url`` (file:// or http(s)), or None when it cannot be
    learnt quickly."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        try:
            return os.path.getsize(urllib.request.url2pathname(parsed.path))
        except OSError:
            return None
    if parsed.scheme not in ("http", "https"):
        return None
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            length = answer.headers.get("Content-Length")
            return int(length) if length else None
    except (OSError, ValueError):
        return None


class DownloadMeter:
    """Counts the bytes of ``urls`` that pip has fetched; ``scratch`` is pip's TMPDIR."""

    def __init__(self, urls: List[str], scratch: Path, sizes: Optional[Dict[str, int]] = None):
        self.scratch = Path(scratch)
        self.names = [file_name(u) for u in urls]
        self.local = {file_name(u) for u in urls if u.startswith("file:")}
        if sizes is None:
            with ThreadPoolExecutor(max_workers=8) as pool:
                found = list(pool.map(remote_size, urls))
            sizes = {name: size for name, size in zip(self.names, found) if size is not None}
        self.sizes = sizes
        self.started: List[str] = []
        self.finished = False
        self._most = 0  # never goes back

    @property
    def total_bytes(self) -> int:
        """The bytes of every file whose size is known."""
        return sum(self.sizes.get(name, 0) for name in self.names)

    @property
    def sizes_known(self) -> bool:
        return all(name in self.sizes for name in self.names)

    def line(self, text: str) -> None:
        """pip's output: a line naming a file means pip has moved on to it."""
        for name in self.names:
            if name in text and name not in self.started:
                self.started.append(name)

    def _partial(self, name: str) -> int:
        paths = glob.glob(str(self.scratch / "*" / name)) + glob.glob(str(self.scratch / name))
        sizes = []
        for path in paths:
            try:
                sizes.append(os.path.getsize(path))
            except OSError:
                pass
        return max(sizes, default=0)

    def done_bytes(self) -> int:
        """Bytes in so far: the files pip has moved past, local files it has reached, and the
        part of the file it is fetching."""
        if self.finished:
            return max(self.total_bytes, sum(self.sizes.values()))
        done = 0
        for index, name in enumerate(self.started):
            passed = index < len(self.started) - 1 or name in self.local
            size = self.sizes.get(name)
            if passed and size is not None:
                done += size
            else:
                done += min(self._partial(name), size) if size else self._partial(name)
        self._most = max(self._most, done)
        return self._most


def mb_text(done: int, total: int, exact_total: bool = True) -> str:
    """'12.3 of 28.0 MB' (or 'at least 28.0 MB' when a size is unknown)."""
    if total <= 0:
        return f"{done / MB:.1f} MB"
    return f"{done / MB:.1f} of {'' if exact_total else 'at least '}{total / MB:.1f} MB"
