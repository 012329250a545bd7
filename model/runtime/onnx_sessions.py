"""ONNX Runtime sessions of a model file's graphs: where they run and how they are called.
numpy and onnxruntime only (no torch).

The graphs' weights are given to ONNX Runtime from the model file's own tensors (see
:mod:`..modelfile.onnx_section`). ONNX Runtime would read any other "external" weight a graph
names from a file, relative to the working folder. A graph naming one is refused when the file
is read (``read_onnx_section``); and, should one slip through, each session is created with an
empty temporary folder as the only place external data may come from. A graph from a stranger
cannot read a file of this machine.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, List, Tuple

import numpy as np

from ..modelfile.header import ModelFileError
from ..modelfile.onnx_section import OnnxGraph, OnnxSection
from ..nn.device_choice import DeviceError
from .base import RuntimeMemoryError

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"

Arrays = Tuple[np.ndarray, ...]


def _ort():
    import onnxruntime

    return onnxruntime


def choose_providers(device: str) -> Tuple[List, str]:
    """The execution providers for a device name ('auto', 'cpu', 'cuda', 'cuda:N', 'gpu'), and
    the device that is asked for. 'auto' takes the CUDA provider of onnxruntime-gpu when it is
    installed (ONNX Runtime falls back to the CPU when no GPU is usable)."""
    ort = _ort()
    name = (device or "auto").strip().lower()
    has_cuda = CUDA_PROVIDER in ort.get_available_providers()
    if name == "auto":
        if has_cuda:
            return [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER], "cuda:0"
        return [CPU_PROVIDER], "cpu"
    if name == "cpu":
        return [CPU_PROVIDER], "cpu"
    if name == "gpu":
        name = "cuda"
    if name == "cuda" or name.startswith("cuda:"):
        index_text = name.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
        if not has_cuda:
            raise DeviceError(
                f"device {device!r}: this ONNX Runtime ({ort.__version__}) has no CUDA support; "
                "install onnxruntime-gpu in place of onnxruntime, or use the device 'cpu' (or "
                "the runtime 'torch')")
        return [(CUDA_PROVIDER, {"device_id": int(index_text)}), CPU_PROVIDER], \
            f"cuda:{index_text}"
    if name == "mps":
        raise DeviceError("device 'mps': ONNX Runtime runs MapScribe's graphs on the CPU or an "
                          "NVIDIA GPU; use the device 'cpu', or the runtime 'torch' for MPS")
    raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N (or mps with the "
                      "runtime 'torch')")


def _threads() -> int:
    """MAPSCRIBE_THREADS when set (as for torch), else ONNX Runtime's choice (0)."""
    configured = os.environ.get("MAPSCRIBE_THREADS")
    if not configured:
        return 0
    try:
        return max(1, int(configured))
    except ValueError:
        raise DeviceError(f"MAPSCRIBE_THREADS={configured!r} is not a whole number") from None


def open_session(graph: OnnxGraph, weights: Dict[str, np.ndarray], providers: List,
                 source: str) -> Tuple[Any, List]:
    """An InferenceSession of ``graph``, its shared weights given from ``weights``; and the
    OrtValues of those weights, which share the arrays' memory: keep them while the session
    lives."""
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.log_severity_level = 3  # errors only: ONNX Runtime's warnings are not for users
    # Idle threads sleep instead of spinning: between two graph calls the numpy beam search and
    # the tile reader need the cores (2.3× more tiles/s on a 2-core machine).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    names = sorted(graph.shared)
    values = [ort.OrtValue.ortvalue_from_numpy(weights[graph.shared[name]]) for name in names]
    if names:
        options.add_external_initializers(names, values)
    with tempfile.TemporaryDirectory(prefix="mapscribe-onnx-") as nowhere:
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", nowhere)
        try:
            session = ort.InferenceSession(graph.model, options, providers=providers)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime's errors have no common base
            raise ModelFileError(
                f"{source}: ONNX Runtime cannot load its {graph.name} graph "
                f"({type(error).__name__}: {str(error)[:300]}); export the graphs again with "
                f"`mapscribe export-onnx {source}` (needs torch), or caption with the runtime "
                "'torch'") from None
    return session, values


class OnnxGraphs:
    """The three graphs of a model file as sessions, called with numpy arrays."""

    def __init__(self, section: OnnxSection, device: str, source: str):
        providers, self.requested = choose_providers(device)
        self.graphs = section.graphs
        opened = {name: open_session(graph, section.weights, providers, source)
                  for name, graph in section.graphs.items()}
        self.sessions = {name: session for name, (session, _) in opened.items()}
        self._kept_alive = (section.weights, [values for _, values in opened.values()])
        used = self.sessions["encoder"].get_providers()[0]
        if self.requested.startswith("cuda") and used != CUDA_PROVIDER:
            if device.strip().lower() != "auto":
                raise DeviceError(f"device {device!r}: ONNX Runtime found no usable CUDA GPU "
                                  "here; use the device 'cpu' or 'auto'")
            self.requested = "cpu"
        self.on_gpu = used == CUDA_PROVIDER

    def _run(self, name: str, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        try:
            return self.sessions[name].run(None, feeds)
        except Exception as error:
            text = str(error).lower()
            if "allocat" in text or "out of memory" in text:
                raise RuntimeMemoryError(f"ONNX Runtime ran out of memory in the {name} graph "
                                         f"({str(error)[:200]})") from None
            raise

    def encode(self, pixels: np.ndarray) -> Dict[str, np.ndarray]:
        """uint8 (n, 3, S, S) → every output of the encoder graph by name ('features' (n, P, C),
        and whatever else it gives, such as 'theme_logits')."""
        graph = self.graphs["encoder"]
        count = pixels.shape[0]
        batch = graph.batch or count
        parts: Dict[str, List[np.ndarray]] = {name: [] for name in graph.outputs}
        for begin in range(0, count, batch):
            chunk = pixels[begin:begin + batch]
            if chunk.shape[0] < batch:  # a graph of fixed batch: pad, then drop the padding
                padding = np.zeros((batch - chunk.shape[0], *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, padding])
            outputs = self._run("encoder", {graph.inputs[0]: np.ascontiguousarray(chunk)})
            for name, value in zip(graph.outputs, outputs):
                parts[name].append(value[:min(batch, count - begin)])
        return {name: np.concatenate(values) for name, values in parts.items()}

    def start(self, features: np.ndarray) -> Tuple[Arrays, Arrays]:
        """features (B, P, C) → memory (features, keys), state (hidden, cell)."""
        memory_features, memory_keys, hidden, cell = self._run(
            "decoder_start", {self.graphs["decoder_start"].inputs[0]: features})
        return (memory_features, memory_keys), (hidden, cell)

    def step(self, words: np.ndarray, memory: Arrays, state: Arrays
             ) -> Tuple[np.ndarray, Arrays, np.ndarray]:
        """One word for N rows → logits (N, V), new state, attention weights (N, P)."""
        names = self.graphs["decoder_step"].inputs
        feeds = dict(zip(names, (words, *memory, *state)))
        logits, hidden, cell, weights = self._run("decoder_step", feeds)
        return logits, (hidden, cell), weights
