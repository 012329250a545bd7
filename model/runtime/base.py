"""What a captioning runtime is, and which one to use: plain Python and numpy, no torch.

Two runtimes caption images with the same model file and give the same captions:

- ``torch``: the network itself (:mod:`.torch_captioner`); training always needs torch;
- ``onnx``: the ONNX graphs that ``mapscribe export-onnx`` wrote into the model file, run by
  ONNX Runtime, with the beam search in numpy (:mod:`.onnx_captioner`): a 30 MB install
  instead of torch's gigabytes.

``auto`` takes torch when it is installed, else ONNX Runtime. :func:`.choice.open_runtime` is
the one place that opens one.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..errors import MapScribeError
from ..nn.config import DecodingParams

TORCH = "torch"
ONNX = "onnx"
AUTO = "auto"
RUNTIMES = (AUTO, TORCH, ONNX)

# What to install for each runtime (constraints.txt pins the versions tested).
TORCH_INSTALL = "pip install torch torchvision"
ONNX_INSTALL = "pip install onnxruntime"


class RuntimeChoiceError(MapScribeError, ValueError):
    """The runtime asked for cannot run here, or the model file cannot run on it."""


class RuntimeMemoryError(MapScribeError, MemoryError):
    """The device ran out of memory on a batch; a smaller batch or beam may fit."""


@dataclass
class RuntimeCaption:
    """One image's caption, whichever runtime made it."""

    text: str
    words: List[str]
    score: float                 # mean log-probability per token (≤ 0; nearer 0 = surer)
    finished: bool               # reached <end> within the maximum length
    attention: Optional[np.ndarray] = None  # (words, grid, grid) when asked for
    theme: Optional[str] = None  # the scene theme, when the model has a theme head
    theme_probability: Optional[float] = None


class CaptionRuntime:
    """The interface of a runtime: what the captioning job and ``mapscribe predict`` use.

    ``name`` is "torch" or "onnx", ``device_label`` says where it runs for people (e.g. "cpu",
    "cuda:0 (NVIDIA …)", "cpu (ONNX Runtime 1.32.0)"), ``input_size`` is the side S of the
    square images the model takes.
    """

    name: str = ""
    device_label: str = ""
    input_size: int = 0

    def caption_batch(self, pixels: np.ndarray, decoding: DecodingParams
                      ) -> List[RuntimeCaption]:
        """Images as uint8 (n, 3, S, S) RGB → one caption each, in order."""
        raise NotImplementedError


def module_installed(name: str) -> bool:
    """Whether ``import name`` can work, without importing it (torch takes seconds)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked installation: not usable
        return False


def resolve_runtime(name: str) -> str:
    """'auto' → 'torch' when torch is installed, else 'onnx'; a named runtime is checked to be
    installed. Raises :class:`RuntimeChoiceError` saying what to install."""
    choice = (name or AUTO).strip().lower()
    if choice not in RUNTIMES:
        raise RuntimeChoiceError(f"unknown runtime {name!r}; use {', '.join(RUNTIMES)}")
    has_torch, has_onnx = module_installed("torch"), module_installed("onnxruntime")
    if choice == AUTO:
        if has_torch:
            return TORCH
        if has_onnx:
            return ONNX
        raise RuntimeChoiceError(
            "neither torch nor onnxruntime is installed, so no model can run: to caption, "
            f"{ONNX_INSTALL} (small); to train and caption, {TORCH_INSTALL}")
    if choice == TORCH and not has_torch:
        raise RuntimeChoiceError(f"runtime 'torch': torch is not installed; {TORCH_INSTALL}, "
                                 "or use the runtime 'onnx' (or 'auto')")
    if choice == ONNX and not has_onnx:
        raise RuntimeChoiceError(f"runtime 'onnx': onnxruntime is not installed; "
                                 f"{ONNX_INSTALL}, or use the runtime 'torch' (or 'auto')")
    return choice


def image_pixels(image, size: int) -> np.ndarray:
    """A PIL RGB image → uint8 (3, size, size), resized as the training images were
    (bilinear), so every runtime sees the same pixels."""
    from PIL import Image

    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
