"""Choosing where the network runs: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import os
from typing import List

import torch

from .device_choice import DeviceChoice, DeviceError


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_devices() -> List[DeviceChoice]:
    """'auto', every CUDA GPU by name, Apple MPS when present, and the CPU."""
    choices = [DeviceChoice("auto", "Automatic (GPU when there is one)")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            choices.append(DeviceChoice(f"cuda:{index}",
                                        f"GPU {index}: {torch.cuda.get_device_name(index)}"))
    if _mps_available():
        choices.append(DeviceChoice("mps", "Apple GPU (MPS)"))
    choices.append(DeviceChoice("cpu", f"CPU ({os.cpu_count()} cores)"))
    return choices


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → the first CUDA GPU, else MPS, else the CPU; or a named device, checked."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if _mps_available():
            return torch.device("mps")
        configure_cpu_threads()
        return torch.device("cpu")
    if name == "cpu":
        configure_cpu_threads()
        return torch.device("cpu")
    if name == "gpu":
        name = "cuda"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r}: no CUDA GPU is usable here (torch "
                              f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                              "use 'auto' or 'cpu'")
        device = torch.device(name)
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r}: there are only {torch.cuda.device_count()} "
                              "CUDA GPU(s) here (cuda:0 …)")
        return torch.device("cuda", index)
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps': Apple's Metal GPU backend is not available here")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def configure_cpu_threads() -> int:
    """Use MAPSCRIBE_THREADS threads when set, else torch's default (one per physical core),
    capped at 16 where more threads stop helping the small matrices of the decoder."""
    configured = os.environ.get("MAPSCRIBE_THREADS")
    if configured:
        try:
            threads = max(1, int(configured))
        except ValueError:
            raise DeviceError(f"MAPSCRIBE_THREADS={configured!r} is not a whole number") from None
    else:
        threads = min(16, torch.get_num_threads())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
