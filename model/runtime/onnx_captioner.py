"""Captioning without torch: the model file's ONNX graphs in ONNX Runtime, the beam search in
numpy (:mod:`.numpy_beam`). numpy and onnxruntime only; a test runs it with torch blocked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import numpy as np

from ..data.text import detokenize
from ..modelfile.header import read_header
from ..modelfile.onnx_section import read_onnx_section
from ..nn.config import DecodingParams
from .base import ONNX, CaptionRuntime, RuntimeCaption
from .numpy_beam import beam_search
from .onnx_sessions import OnnxGraphs


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class OnnxCaptioner(CaptionRuntime):
    """A model file's captioner on ONNX Runtime (``device``: auto, cpu, cuda, cuda:N)."""

    name = ONNX

    def __init__(self, path: "str | os.PathLike", device: str = "auto"):
        import onnxruntime

        self.path = Path(path)
        self.header = read_header(self.path)
        self.vocabulary = self.header.vocabulary
        self.themes = tuple(getattr(self.header.config, "themes", ()) or ())
        self.input_size = int(self.header.config.input_size)
        self.grid_size = int(self.header.config.grid_size)
        self.graphs = OnnxGraphs(read_onnx_section(self.path), device, str(self.path))
        self.device_label = f"{self.graphs.requested} (ONNX Runtime {onnxruntime.__version__})"

    def caption_batch(self, pixels: np.ndarray, decoding: DecodingParams
                      ) -> List[RuntimeCaption]:
        """uint8 (n, 3, S, S) → one caption each (the theme too when the model has a head)."""
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"caption_batch takes uint8 images (n, 3, S, S); got "
                             f"{pixels.dtype} {pixels.shape}")
        if not len(pixels):
            return []
        outputs = self.graphs.encode(pixels)
        result = beam_search(self.graphs.start, self.graphs.step, outputs["features"], decoding)
        captions = []
        for index, words in enumerate(result.words(self.vocabulary)):
            attention = None
            if result.attention is not None:
                attention = result.attention[index, :len(words)].reshape(
                    len(words), self.grid_size, self.grid_size)
            captions.append(RuntimeCaption(detokenize(words), words,
                                           float(result.mean_log_prob[index]),
                                           bool(result.finished[index]), attention))
        if "theme_logits" in outputs and self.themes:
            probabilities = _softmax(outputs["theme_logits"])
            for caption, row in zip(captions, probabilities):
                best = int(row.argmax())
                caption.theme, caption.theme_probability = self.themes[best], float(row[best])
        return captions
