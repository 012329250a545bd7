"""The one place that picks and opens a captioning runtime for a model file. No torch is
imported unless the torch runtime is chosen."""

from __future__ import annotations

import os
from pathlib import Path

from ..modelfile.onnx_section import has_onnx_graphs
from .base import ONNX, TORCH, CaptionRuntime, RuntimeChoiceError, resolve_runtime


def check_runtime(model: "str | os.PathLike", runtime: str = "auto") -> str:
    """The runtime that will caption with ``model`` ('torch' or 'onnx'), checked without loading
    anything but the model file's header: what is installed, and, for 'onnx', that the file
    carries ONNX graphs. Raises :class:`~.base.RuntimeChoiceError` saying what to do."""
    chosen = resolve_runtime(runtime)
    if chosen == ONNX and not has_onnx_graphs(model):
        how = ("" if runtime == ONNX else
               " (torch, which can run any model file, is not installed here)")
        raise RuntimeChoiceError(
            f"{model}: this model file has no ONNX graphs, so ONNX Runtime cannot caption with "
            f"it{how}. Add them once, where torch is installed: mapscribe export-onnx {model}")
    return chosen


def open_runtime(model: "str | os.PathLike", runtime: str = "auto", device: str = "auto"
                 ) -> CaptionRuntime:
    """Load ``model`` on the runtime asked for ('auto': torch when installed, else ONNX
    Runtime) and the device asked for."""
    chosen = check_runtime(model, runtime)
    if chosen == TORCH:
        from .torch_captioner import TorchCaptioner

        return TorchCaptioner(Path(model), device)
    from .onnx_captioner import OnnxCaptioner

    return OnnxCaptioner(Path(model), device)
