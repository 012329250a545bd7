"""How long captioning takes, from speeds measured by ``make bench``: front doors show an
estimate before a run, and never make one up themselves.

The figures are whole-pipeline tiles per second of ``mapscribe caption`` (reading, the model,
beam 3, writing) on this project's reference machine, a 2-core x86-64 CPU without a GPU
(``tests/bench/bench_onnx.py``, ``tests/bench/results/onnx_cpu.json``: the sample raster's 180
tiles, a fresh process each). A device without a measured figure (a GPU) gets no estimate rather
than an invented one. Torch-free: the device 'auto' is resolved with what is already imported.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..runtime.base import AUTO, ONNX, TORCH, resolve_runtime

CPU = "cpu"
GPU = "gpu"
# (runtime, kind of device) -> tiles per second, measured (see the module's docstring).
MEASURED_TILES_PER_S: Dict[Tuple[str, str], float] = {
    (ONNX, CPU): 36.4,
    (TORCH, CPU): 15.8,
}
MEASURED_ON = "a 2-core CPU, beam 3"


@dataclass(frozen=True)
class CaptionTimeEstimate:
    """``seconds`` is None when no speed was measured for this runtime and device."""

    tiles: int
    runtime: str                  # 'torch' or 'onnx'
    device_kind: str              # 'cpu' or 'gpu'
    tiles_per_s: Optional[float]
    seconds: Optional[float]
    basis: str                    # what the figure was measured on, for people


def device_kind(runtime: str, device: str = AUTO) -> str:
    """'cpu' or 'gpu' for a device name; 'auto' as the runtime resolves it here (torch only
    when it is imported already: this never imports it)."""
    name = (device or AUTO).strip().lower()
    if name == CPU:
        return CPU
    if name != AUTO:
        return GPU  # cuda, cuda:N, gpu, mps
    if runtime == ONNX:
        try:
            import onnxruntime
        except ImportError:
            return CPU
        return GPU if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else CPU
    torch = sys.modules.get("torch")
    if torch is not None and (torch.cuda.is_available()
                              or getattr(getattr(torch.backends, "mps", None), "is_available",
                                         lambda: False)()):
        return GPU
    return CPU


def estimate_caption_time(tiles: int, runtime: str = AUTO, device: str = AUTO
                          ) -> CaptionTimeEstimate:
    """How long captioning ``tiles`` tiles takes on ``runtime`` and ``device``, from the measured
    speeds (:data:`MEASURED_TILES_PER_S`)."""
    chosen = resolve_runtime(runtime)
    kind = device_kind(chosen, device)
    speed = MEASURED_TILES_PER_S.get((chosen, kind))
    seconds = None if speed is None else max(0, int(tiles)) / speed
    return CaptionTimeEstimate(int(tiles), chosen, kind, speed, seconds, MEASURED_ON)


__all__ = ["CaptionTimeEstimate", "MEASURED_TILES_PER_S", "estimate_caption_time",
           "device_kind"]
