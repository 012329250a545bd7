"""Where MapScribe's runtime packages live when QGIS's Python lacks them, and what is missing.

Nothing here imports torch: :func:`missing_dependencies` finds modules without importing them.

The managed folder is ``<QGIS profile>/python/mapscribe-packages/py3.X``:

* the profile folder is always writable by the user (no administrator rights, unlike QGIS's
  own Python on Windows or /usr on Linux) and is where QGIS already keeps the user's plugins,
  so removing the profile removes the packages too;
* ``py3.X``: compiled wheels (torch) fit one Python version; after a QGIS upgrade to another
  Python the old folder is simply not used and the panel offers to install again;
* ``MAPSCRIBE_PACKAGES_DIR`` replaces ``<profile>/python/mapscribe-packages`` (tests, or a
  folder shared by several profiles: the CUDA build takes about 5 GB).

The folder goes *first* on ``sys.path``, and only when the running Python lacks a runtime
package on its own: the folder holds only what QGIS's Python lacks or has too old (say
sympy), so those must win, while a QGIS whose Python already has everything never sees it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import List, Optional

from qgis.core import QgsApplication

from .packages import (
    CAPTIONING,
    INSTALL_RECORD,
    ONNXRUNTIME,
    RASTERIO,
    RUNTIME_PACKAGES,
    TORCH_PACKAGES,
    TRAINING,
    RuntimePackage,
)

LOGGER = logging.getLogger(__name__)
MANAGED_DIR_ENV = "MAPSCRIBE_PACKAGES_DIR"
MANAGED_DIR_NAME = "mapscribe-packages"


def managed_folder() -> Path:
    """The folder MapScribe installs its runtime packages into (it may not exist yet)."""
    configured = os.environ.get(MANAGED_DIR_ENV)
    base = (Path(configured) if configured
            else Path(QgsApplication.qgisSettingsDirPath()) / "python" / MANAGED_DIR_NAME)
    return base / f"py{sys.version_info[0]}.{sys.version_info[1]}"


def importable(package: RuntimePackage) -> bool:
    """Whether the package's top-level module can be found (nothing is imported, so there is no
    torch start-up cost)."""
    try:
        return importlib.util.find_spec(package.module) is not None
    except (ImportError, ValueError):  # a broken or blocked installation: not usable
        return False


def lacking() -> List[RuntimePackage]:
    """The runtime packages whose top-level module cannot be found."""
    return [p for p in RUNTIME_PACKAGES if not importable(p)]


def keep_triton_out() -> None:
    """Make ``import triton`` fail in this process, unless something imported it already.

    torchvision imports torch._dynamo, which imports triton when it is installed (PyPI's
    Linux torch requires it); loading triton's bundled LLVM next to the LLVM that Mesa's
    OpenGL has loaded into QGIS kills QGIS with a segmentation fault (seen with QGIS 3.22 under
    Xvfb). triton only serves torch.compile, which MapScribe never uses; torch treats a failed
    ``import triton`` as "no triton"."""
    sys.modules.setdefault("triton", None)


def ensure_managed_path() -> Optional[Path]:
    """Put the managed folder first on ``sys.path`` if it exists and the running Python lacks a
    runtime package on its own; return the folder when it is on the path. Also keeps triton
    out (:func:`keep_triton_out`). Call it at plugin load, before anything imports torch, and
    after an installation."""
    keep_triton_out()
    folder = managed_folder()
    if str(folder) in sys.path:
        return folder
    if not folder.is_dir() or not lacking():
        return None
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    LOGGER.info("MapScribe's packages are taken from %s", folder)
    return folder


def missing_dependencies(purpose: str = CAPTIONING) -> List[str]:
    """The pip names of what QGIS's Python lacks for ``purpose`` (fast; imports nothing):

    * captioning: a runtime, ONNX Runtime (``onnxruntime``) or torch with its companions; and
      ``rasterio``, which reads the rasters;
    * training: torch and its companions.
    """
    ensure_managed_path()
    # The folder's contents may have changed since Python last listed it (an installation).
    importlib.invalidate_caches()
    torch_missing = [p.name for p in TORCH_PACKAGES if not importable(p)]
    if purpose == TRAINING:
        return torch_missing
    missing = [] if importable(ONNXRUNTIME) or not torch_missing else [ONNXRUNTIME.name]
    if not importable(RASTERIO):
        missing.append(RASTERIO.name)
    return missing


def install_record() -> Optional[dict]:
    """What the last installation into the managed folder put there, or None."""
    path = managed_folder() / INSTALL_RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def nvidia_gpu_present() -> bool:
    """A hint for the default choice only: is there an NVIDIA driver on this computer?"""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None
