"""MapScribe's version, read from the plugin's metadata.txt (the one place it is written; the
repository root's __init__.py and pyproject.toml repeat it, checked equal by a test)."""

from __future__ import annotations

from pathlib import Path


def _read_version() -> str:
    metadata = Path(__file__).resolve().parents[1] / "metadata.txt"
    try:
        for line in metadata.read_text(encoding="utf-8").splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


__version__ = _read_version()
