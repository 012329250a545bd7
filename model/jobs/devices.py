"""The devices and the runtime a captioning job can use, for front doors to offer.

With torch installed the devices come from torch (imported only when this is called: front doors
call it off their main thread). Without torch, captioning runs on ONNX Runtime, and the devices
come from its execution providers: nothing here imports torch then, so a QGIS whose Python has
only onnxruntime still gets its device list.
"""

from __future__ import annotations

import os
from typing import List

from ..nn.device_choice import DeviceChoice
from ..runtime.base import AUTO, ONNX, RuntimeChoiceError, resolve_runtime

AUTO_LABEL = "Automatic (GPU when there is one)"
CUDA_PROVIDER = "CUDAExecutionProvider"


def caption_runtime(runtime: str = AUTO) -> str:
    """The runtime captioning will use, 'torch' or 'onnx' ('auto': torch when installed, else
    ONNX Runtime), found without importing either. Raises :class:`RuntimeChoiceError` saying
    what to install when neither is there."""
    return resolve_runtime(runtime)


def available_devices(runtime: str = AUTO) -> List[DeviceChoice]:
    """'auto' first, then the GPUs, then the CPU, for the runtime captioning will use: every
    CUDA GPU by name and Apple MPS with torch; the CUDA GPU of onnxruntime-gpu with ONNX
    Runtime (torch is not imported then)."""
    if caption_runtime(runtime) == ONNX:
        return onnx_devices()
    from ..nn.device import available_devices as listed

    return listed()


def onnx_devices() -> List[DeviceChoice]:
    """The devices ONNX Runtime offers here: its CUDA execution provider (onnxruntime-gpu) and
    the CPU."""
    import onnxruntime

    choices = [DeviceChoice("auto", AUTO_LABEL)]
    if CUDA_PROVIDER in onnxruntime.get_available_providers():
        choices.append(DeviceChoice("cuda:0", "NVIDIA GPU 0 (ONNX Runtime CUDA)"))
    choices.append(DeviceChoice("cpu", f"CPU ({os.cpu_count()} cores)"))
    return choices


__all__ = ["DeviceChoice", "RuntimeChoiceError", "available_devices", "caption_runtime",
           "onnx_devices"]
