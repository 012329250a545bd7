"""The model file: one safetensors file with the weights and a JSON header that describes them.

Layout (the safetensors format): an 8-byte little-endian header length, a JSON header, then the
raw tensor bytes. The JSON header's ``__metadata__`` holds one entry, ``"mapscribe"``, a JSON
document:

    format            "mapscribe-captioner"
    format_version    1
    mapscribe_version the version that wrote the file
    created           ISO 8601 time
    architecture      CaptionerConfig: backbone, grid_size, input_size, mean, std,
                      feature_size, max_words, decoder parameters
    vocabulary        the Vocabulary (words in id order)
    weights_dtype     "float16" or "float32"
    ground_resolution_m   metres per pixel the model was trained at (optional)
    training          dataset, images, captions, epochs, encoder weights source, ...
    metrics           validation/test metrics, per split
    weights_sha256    SHA-256 of the weight tensors (names, dtypes, shapes, bytes), checked on
                      load; absent from files written before it existed (they load unchecked)

Every size in the header is bounded before it is used (:mod:`.checks`), the tensors' shapes are
compared with the architecture before the network is built, and weights holding NaN or infinite
values are refused.

Opening a model file never unpickles anything: the header is read as JSON and the tensors as raw
numbers, so a file from a stranger cannot run code. A pickle, a truncated or corrupted file, a
file from a newer MapScribe or a foreign safetensors file each get their own clear message.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ..atomic import write_bytes_atomic
from ..data.themes import SCENE_THEMES
from ..nn.captioner import Captioner, build_captioner
from .checks import (
    FLOAT_DTYPES,
    check_weight_dtypes,
    join_blob,
    split_blob,
    weight_entries,
    weights_checksum,
)
from .header import ModelFileError, ModelHeader, read_layout
from .onnx_section import ONNX_PREFIX

log = logging.getLogger(__name__)


# -- writing ------------------------------------------------------------------------------------
def save_model(captioner: Captioner, path: "str | os.PathLike", *, half: bool = False,
               ground_resolution_m: Optional[float] = None,
               training: Optional[Dict[str, Any]] = None,
               metrics: Optional[Dict[str, Any]] = None) -> ModelHeader:
    """Write ``captioner`` to ``path`` atomically; ``half`` stores float16 weights."""
    from safetensors.torch import save

    dtype = torch.float16 if half else torch.float32
    header = ModelHeader(captioner.config, captioner.vocabulary,
                         "float16" if half else "float32", ground_resolution_m,
                         dict(training or {}), dict(metrics or {}),
                         scene_themes=dict(SCENE_THEMES) if captioner.config.themes else {})
    tensors = {}
    for name, tensor in captioner.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()
    blob = save(tensors, metadata={"mapscribe": json.dumps(header.to_dict())})
    # The checksum of the weights goes into the header that describes them.
    index, data = split_blob(blob)
    header.weights_sha256 = weights_checksum(index, data)
    index["__metadata__"]["mapscribe"] = json.dumps(header.to_dict())
    write_bytes_atomic(Path(path), join_blob(index, data))
    return header


# -- reading ------------------------------------------------------------------------------------
def load_model(path: "str | os.PathLike", device: "str | torch.device" = "cpu") -> Captioner:
    """Open a model file (safely: no unpickling) and return the captioner in eval mode."""
    path = Path(path)
    header, index = read_layout(path)
    config = header.config
    check_weight_dtypes(path, index, header.weights_dtype)
    _verify_checksum(path, header, index)
    # Shapes checked against the header on a network without memory ("meta" tensors) before
    # the real one is built: a header cannot make MapScribe allocate what the file lacks.
    with torch.device("meta"):
        skeleton, _ = build_captioner(header.vocabulary, config)
    expected = {name: (tuple(tensor.shape), tensor.dtype)
                for name, tensor in skeleton.state_dict().items()}
    del skeleton
    # The ONNX graphs of `mapscribe export-onnx` (onnx_section) are not weights of the network.
    stored = {name: tuple(entry["shape"]) for name, entry in weight_entries(index)}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong_shape = sorted(name for name in set(stored) & set(expected)
                         if stored[name] != expected[name][0])
    # A float weight stored as integers (or the reverse) reads its bytes as other numbers.
    kinds = {name: entry["dtype"] in FLOAT_DTYPES.values() or entry["dtype"] in ("BF16", "F64")
             for name, entry in weight_entries(index)}
    wrong_shape += sorted(name for name in set(stored) & set(expected)
                          if kinds[name] != expected[name][1].is_floating_point
                          and name not in wrong_shape)
    if missing or unexpected or wrong_shape:
        raise ModelFileError(
            f"{path}: the weights do not fit the architecture its header describes "
            f"(backbone {config.backbone}): {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(wrong_shape)} of the "
            f"wrong shape or type (e.g. {wrong_shape[:3]}); the file is damaged or was edited")
    state = {name: tensor for name, tensor in _read_tensors(path).items()
             if not name.startswith(ONNX_PREFIX)}
    _refuse_non_finite(path, state)
    captioner, _ = build_captioner(header.vocabulary, config)
    captioner.load_state_dict({name: tensor.to(expected[name][1])
                               for name, tensor in state.items()})
    captioner.header = header
    return captioner.to(device).eval()


def _verify_checksum(path: Path, header: ModelHeader, index: Dict[str, Any]) -> None:
    if not header.weights_sha256:
        log.info("%s: written before model files carried a checksum of their weights; its "
                 "weights are not verified", path)
        return
    with open(path, "rb") as stream:
        data_start = 8 + int.from_bytes(stream.read(8), "little")
    if weights_checksum(index, path=path, data_start=data_start) != header.weights_sha256:
        raise ModelFileError(f"{path}: its weights do not match the checksum in its header: "
                             "the file is damaged (a bad copy, a failing disk) or was edited. "
                             "Copy or download it again.")


def _refuse_non_finite(path: Path, state: Dict[str, torch.Tensor]) -> None:
    bad = sorted(name for name, tensor in state.items()
                 if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()))
    if bad:
        raise ModelFileError(f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values "
                             f"(e.g. {bad[:3]}): the file is damaged, or the training that made "
                             "it diverged. Copy it again, or train again.")


def _read_tensors(path: Path) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:  # ValueError: a name
        # that is not UTF-8, which safetensors cannot take
        raise ModelFileError(f"{path}: the weights cannot be read ({error}); the file is "
                             "damaged — copy or download it again") from None
