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

Opening a model file never unpickles anything: the header is read as JSON and the tensors as raw
numbers, so a file from a stranger cannot run code. A pickle, a truncated or corrupted file, a
file from a newer MapScribe or a foreign safetensors file each get their own clear message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ..atomic import write_bytes_atomic
from ..nn.captioner import Captioner
from ..nn.decoder import AttentionDecoder
from .header import ModelFileError, ModelHeader, _read_layout


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
                         dict(training or {}), dict(metrics or {}))
    tensors = {}
    for name, tensor in captioner.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()
    blob = save(tensors, metadata={"mapscribe": json.dumps(header.to_dict())})
    write_bytes_atomic(Path(path), blob)
    return header


# -- reading ------------------------------------------------------------------------------------
def load_model(path: "str | os.PathLike", device: "str | torch.device" = "cpu") -> Captioner:
    """Open a model file (safely: no unpickling) and return the captioner in eval mode."""
    from ..nn.encoder import build_encoder

    path = Path(path)
    header, _ = _read_layout(path)
    config = header.config
    encoder, _ = build_encoder(config.backbone, grid_size=config.grid_size, weights="none",
                               input_size=config.input_size)
    decoder = AttentionDecoder(len(header.vocabulary), config.feature_size, config.decoder)
    captioner = Captioner(encoder, decoder, header.vocabulary, config)
    state = _read_tensors(path)
    expected = captioner.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(name for name in set(state) & set(expected)
                         if tuple(state[name].shape) != tuple(expected[name].shape))
    if missing or unexpected or wrong_shape:
        raise ModelFileError(
            f"{path}: the weights do not fit the architecture its header describes "
            f"(backbone {config.backbone}): {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(wrong_shape)} of the "
            f"wrong shape (e.g. {wrong_shape[:3]}); the file is damaged or was edited")
    captioner.load_state_dict({name: tensor.to(expected[name].dtype)
                               for name, tensor in state.items()})
    captioner.header = header
    return captioner.to(device).eval()


def _read_tensors(path: Path) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise ModelFileError(f"{path}: the weights cannot be read ({error}); the file is "
                             "damaged — copy or download it again") from None
