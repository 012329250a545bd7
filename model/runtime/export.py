"""``mapscribe export-onnx``: write a model file's captioner as ONNX graphs into the file, so
that it can caption without torch (:mod:`.onnx_captioner`). Needs torch and the ``onnx``
package (1.16.2 with numpy 1.24: later versions need numpy ≥ 1.25).

Three graphs (see :mod:`..modelfile.onnx_section` for their inputs and outputs): the encoder,
exported for images of the model's input size S and any batch; the decoder's start (features →
memory and first state); and ONE decoder step. The beam search around the step is numpy's
(:mod:`.numpy_beam`), not a graph, so both runtimes share its rules line for line.

The encoder's adaptive pooling does not export for a variable input size; with S fixed the
trunk's map size is known, so the pooling is exported as what it is there: nothing when the map
is already the attention grid (EfficientNet-Lite0 at 224 px: 7 × 7), else a constant averaging
matrix. Extra per-image outputs computed from the features (the scene-theme head's logits) are
listed in :func:`encoder_heads`: one line per head. Each graph is checked against torch on
random input before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, cast

import numpy as np
import torch
from torch import nn

from ..errors import MapScribeError
from ..modelfile.onnx_section import OnnxGraph, OnnxSection, write_onnx_section
from ..modelfile.weights import load_model
from ..nn.captioner import Captioner
from ..nn.decoder import DecoderState, ImageMemory
from ..version import __version__
from .onnx_sessions import OnnxGraphs

log = logging.getLogger(__name__)

OPSET = 17
FIXED_BATCH = 8          # the encoder's batch when a dynamic batch does not export
TOLERANCE = 1e-3         # largest difference to torch allowed, relative to the output's scale


class OnnxExportError(MapScribeError, RuntimeError):
    """The graphs cannot be exported, or they do not compute what the network does."""


@dataclass
class OnnxExportResult:
    path: Path
    graph_bytes: Dict[str, int]
    shared_weights: int                 # initializers read from the model file's tensors
    embedded_bytes: int                 # initializer bytes kept inside the graphs
    encoder_batch: Optional[int]        # None: any batch
    max_difference: Dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def encoder_heads(captioner: Captioner) -> Dict[str, nn.Module]:
    """Extra outputs of the encoder graph: name → module taking the features (B, P, C)."""
    heads: Dict[str, nn.Module] = {}
    theme_head = getattr(captioner, "theme_head", None)
    if theme_head is not None:
        heads["theme_logits"] = theme_head   # (B, T); its dropout is off in eval
    return heads


def _pooling_matrix(size: Tuple[int, int], grid: int) -> Optional[torch.Tensor]:
    """adaptive_avg_pool2d from ``size`` to grid × grid as a (grid², H·W) matrix; None when it
    is the identity."""
    height, width = size
    if (height, width) == (grid, grid):
        return None

    def bins(length: int) -> List[Tuple[int, int]]:
        return [(math.floor(i * length / grid), math.ceil((i + 1) * length / grid))
                for i in range(grid)]

    matrix = torch.zeros(grid * grid, height * width)
    for row, (top, bottom) in enumerate(bins(height)):
        for col, (left, right) in enumerate(bins(width)):
            cells = [y * width + x for y in range(top, bottom) for x in range(left, right)]
            matrix[row * grid + col, cells] = 1.0 / len(cells)
    return matrix


class EncoderGraph(nn.Module):
    """uint8 images (B, 3, S, S) → features (B, P, C) float32, then each head's output."""

    def __init__(self, captioner: Captioner, map_size: Tuple[int, int]):
        super().__init__()
        self.encoder = captioner.encoder
        self.heads = nn.ModuleDict(encoder_heads(captioner))
        pooling = _pooling_matrix(map_size, captioner.config.grid_size)
        self.pooled = pooling is not None
        self.register_buffer("pooling", pooling if pooling is not None else torch.zeros(0))

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        cells = self.encoder.feature_map(images).flatten(2)                  # (B, C, H·W)
        if self.pooled:
            pooling = cast(torch.Tensor, self.pooling)
            cells = torch.matmul(cells, pooling.t())                         # (B, C, P)
        features = cells.transpose(1, 2).float()                             # (B, P, C)
        return (features, *(head(features) for head in self.heads.values()))


class DecoderStartGraph(nn.Module):
    """features (B, P, C) → memory features, memory keys, hidden, cell."""

    def __init__(self, captioner: Captioner):
        super().__init__()
        self.decoder = captioner.decoder

    def forward(self, features: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        memory, state = self.decoder.start(features)
        return memory.features, memory.keys, state.hidden, state.cell


class DecoderStepGraph(nn.Module):
    """One word for N rows: the decoder's ``step``."""

    def __init__(self, captioner: Captioner):
        super().__init__()
        self.decoder = captioner.decoder

    def forward(self, words, memory_features, memory_keys, hidden, cell):
        logits, state, weights = self.decoder.step(
            words, ImageMemory(memory_features, memory_keys), DecoderState(hidden, cell))
        return logits, state.hidden, state.cell, weights


ENCODER_INPUTS = ["images"]
START_OUTPUTS = ["memory_features", "memory_keys", "hidden", "cell"]
STEP_INPUTS = ["words", "memory_features", "memory_keys", "hidden", "cell"]
STEP_OUTPUTS = ["logits", "hidden_out", "cell_out", "weights"]


def _onnx():
    try:
        import onnx
    except ImportError:
        raise OnnxExportError("exporting ONNX graphs needs the 'onnx' package: pip install "
                              "onnx==1.16.2 (later versions need numpy 1.25 or newer)") from None
    return onnx


def _export(module: nn.Module, args: Tuple, inputs: Sequence[str], outputs: Sequence[str],
            dynamic: bool) -> bytes:
    axes = {name: {0: "batch"} for name in [*inputs, *outputs]} if dynamic else None
    with tempfile.TemporaryDirectory(prefix="mapscribe-export-") as folder:
        target = Path(folder) / "graph.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python values it fixes
            torch.onnx.export(module, args, str(target), dynamo=False, external_data=False,
                              do_constant_folding=False, opset_version=OPSET,
                              input_names=list(inputs), output_names=list(outputs),
                              dynamic_axes=axes)
        return target.read_bytes()


def _key(array: np.ndarray) -> Tuple:
    return array.shape, hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _share_weights(model: bytes, tensors: Dict[str, np.ndarray]) -> Tuple[bytes, Dict[str, str],
                                                                            int]:
    """Turn each initializer equal to a model tensor into an external one that names it.
    Returns the graph, {initializer: tensor}, and the initializer bytes left inside."""
    onnx = _onnx()
    from onnx import numpy_helper

    by_content = {_key(array): name for name, array in tensors.items()}
    proto = onnx.load_from_string(model)
    shared: Dict[str, str] = {}
    embedded = 0
    for initializer in proto.graph.initializer:
        array = numpy_helper.to_array(initializer)
        name = by_content.get(_key(array)) if array.dtype == np.float32 else None
        if name is None:
            embedded += array.nbytes
            continue
        initializer.ClearField("raw_data")
        initializer.ClearField("float_data")
        initializer.data_location = onnx.TensorProto.EXTERNAL
        del initializer.external_data[:]
        entry = initializer.external_data.add()
        entry.key, entry.value = "location", "mapscribe-model-tensor"
        shared[initializer.name] = name
    return proto.SerializeToString(), shared, embedded


def _difference(got: np.ndarray, want: torch.Tensor) -> float:
    want_array = want.detach().float().numpy()
    return float(np.abs(got - want_array).max() / (1.0 + np.abs(want_array).max()))


@torch.no_grad()
def _check(graphs: Dict[str, OnnxGraph], weights: Dict[str, np.ndarray],
           captioner: Captioner, source: str) -> Dict[str, float]:
    """Run the graphs in ONNX Runtime and torch on the same random input; the largest
    relative difference of each output."""
    section = OnnxSection(graphs, weights, {})
    runtime = OnnxGraphs(section, "cpu", source)
    generator = torch.Generator().manual_seed(0)
    size = captioner.config.input_size
    differences: Dict[str, float] = {}
    for batch in (3, 1):
        images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8,
                               generator=generator)
        outputs = runtime.encode(images.numpy())
        features = captioner.encode(images)
        wanted = {"features": features, **{name: head(features) for name, head
                                           in encoder_heads(captioner).items()}}
        for name, tensor in wanted.items():
            differences[name] = max(differences.get(name, 0.0),
                                    _difference(outputs[name], tensor))
    memory, state = runtime.start(features.numpy())
    torch_memory, torch_state = captioner.decoder.start(features)
    for got, want, name in zip((*memory, *state), (torch_memory.features, torch_memory.keys,
                                                    torch_state.hidden, torch_state.cell),
                               START_OUTPUTS):
        differences[name] = _difference(got, want)
    words = torch.tensor([5 % len(captioner.vocabulary)], dtype=torch.long)
    logits, new_state, attention = runtime.step(words.numpy(), memory, state)
    torch_logits, torch_new_state, torch_attention = captioner.decoder.step(
        words, torch_memory, torch_state)
    for got, want, name in zip((logits, *new_state, attention),
                               (torch_logits, torch_new_state.hidden, torch_new_state.cell,
                                torch_attention), STEP_OUTPUTS):
        differences[name] = _difference(got, want)
    return differences


@torch.no_grad()
def export_onnx(model: "str | os.PathLike", out: "str | os.PathLike | None" = None
                ) -> OnnxExportResult:
    """Add the ONNX graphs to ``model`` (or to a copy of it at ``out``), replacing any there."""
    onnx = _onnx()
    started = time.monotonic()
    source = Path(model)
    captioner = load_model(source, "cpu")
    tensors = {name: tensor.detach().float().numpy()
               for name, tensor in captioner.state_dict().items() if tensor.is_floating_point()}
    size = captioner.config.input_size
    example = torch.zeros((2, 3, size, size), dtype=torch.uint8)
    height, width = captioner.encoder.feature_map(example).shape[-2:]
    features = captioner.encode(example)
    memory, state = captioner.decoder.start(features)
    words = torch.full((2,), 1, dtype=torch.long)
    encoder = EncoderGraph(captioner, (int(height), int(width))).eval()
    encoder_outputs = ["features", *encoder_heads(captioner)]
    plain = {
        "decoder_start": (_export(DecoderStartGraph(captioner).eval(), (features,),
                                  ["features"], START_OUTPUTS, True),
                          ["features"], START_OUTPUTS),
        "decoder_step": (_export(DecoderStepGraph(captioner).eval(),
                                 (words, memory.features, memory.keys, state.hidden,
                                  state.cell), STEP_INPUTS, STEP_OUTPUTS, True),
                         STEP_INPUTS, STEP_OUTPUTS),
    }
    differences: Dict[str, float] = {}
    for batch in (None, FIXED_BATCH):
        try:
            example_batch = torch.zeros((batch or 2, 3, size, size), dtype=torch.uint8)
            raw = {"encoder": (_export(encoder, (example_batch,), ENCODER_INPUTS,
                                       encoder_outputs, batch is None),
                               ENCODER_INPUTS, encoder_outputs), **plain}
        except Exception as error:  # noqa: BLE001 - the exporter's failures have no common base
            if batch is None:
                log.info("the encoder does not export with a dynamic batch (%s); exporting it "
                         "for batches of %d", error, FIXED_BATCH)
                continue
            raise OnnxExportError(f"{source}: the encoder of this model cannot be exported to "
                                  f"ONNX ({type(error).__name__}: {error})") from None
        graphs: Dict[str, OnnxGraph] = {}
        shared_count = embedded = 0
        for name, (blob, inputs, outputs) in raw.items():
            blob, shared, inside = _share_weights(blob, tensors)
            graphs[name] = OnnxGraph(name, blob, inputs, outputs,
                                     batch if name == "encoder" else None, shared)
            shared_count += len(shared)
            embedded += inside
        differences = _check(graphs, tensors, captioner, str(source))
        if max(differences.values()) <= TOLERANCE:
            break
        log.info("the ONNX graphs differ from torch by %s with batch %s", differences, batch)
    else:
        raise OnnxExportError(f"{source}: the exported ONNX graphs do not compute what the "
                              f"network does (largest relative differences {differences}); "
                              "caption with the runtime 'torch'")
    target = Path(out) if out is not None else source
    if target.resolve() != source.resolve():
        shutil.copyfile(source, target)
    write_onnx_section(target, graphs, {
        "opset": OPSET, "exported_with": {"mapscribe": __version__, "torch": torch.__version__,
                                          "onnx": onnx.__version__}})
    return OnnxExportResult(target, {name: len(graph.model) for name, graph in graphs.items()},
                            shared_count, embedded, batch, differences,
                            time.monotonic() - started)
