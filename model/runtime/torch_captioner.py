"""Captioning with torch: the network of the model file itself (:mod:`..nn.captioner`)."""

from __future__ import annotations

import os
from typing import List

import numpy as np
import torch

from ..modelfile.weights import load_model
from ..nn.config import DecodingParams
from ..nn.device import resolve_device
from .base import TORCH, CaptionRuntime, RuntimeCaption, RuntimeMemoryError


def device_label(device: torch.device) -> str:
    """'cpu', 'mps', or 'cuda:0 (NVIDIA …)' for people."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


class TorchCaptioner(CaptionRuntime):
    """A model file's captioner on torch (``device``: auto, cpu, cuda, cuda:N, mps)."""

    name = TORCH

    def __init__(self, path: "str | os.PathLike", device: str = "auto"):
        self.device = resolve_device(device)
        self.captioner = load_model(path, self.device)
        self.header = self.captioner.header
        self.input_size = int(self.captioner.config.input_size)
        self.device_label = device_label(self.device)

    def caption_batch(self, pixels: np.ndarray, decoding: DecodingParams
                      ) -> List[RuntimeCaption]:
        """uint8 (n, 3, S, S) → one caption each; the encoder scales and normalises on the
        device."""
        if not len(pixels):
            return []
        images = torch.from_numpy(np.ascontiguousarray(pixels))
        try:
            captions = self.captioner.caption_images(images.to(self.device, non_blocking=True),
                                                     decoding)
        except RuntimeError as error:
            if "out of memory" in str(error).lower():
                raise RuntimeMemoryError(f"{self.device_label} ran out of memory") from None
            raise
        return [RuntimeCaption(caption.text, caption.words, caption.score, caption.finished,
                               None if caption.attention is None else caption.attention.numpy(),
                               getattr(caption, "theme", None),
                               getattr(caption, "theme_probability", None))
                for caption in captions]
