"""The ImageNet backbones an encoder can use, each described once (:data:`BACKBONES`): how
to build it, where its feature trunk ends, how many channels it gives and its usual input size.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence, cast

import torchvision.models as tvm
from torch import Tensor, nn

from ..errors import MapScribeError
from . import efficientnet_lite as lite

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)


IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


DEFAULT_INPUT_SIZE = 224


class EncoderError(MapScribeError, ValueError):
    """A backbone or its weights cannot be used; the message says why and what to do."""


class UnknownBackboneError(EncoderError):
    """The backbone name is not one of :data:`BACKBONES`."""


class EncoderWeightsError(EncoderError):
    """Weights are missing, unreadable, refused or do not fit the architecture."""


class _Lite0Trunk(nn.Module):
    """EfficientNet-Lite0 up to its last 1×1 convolution (its classifier dropped)."""

    def __init__(self, model: lite.EfficientNetLite0) -> None:
        super().__init__()
        self.net = model.drop_classifier()

    def forward(self, x: Tensor) -> Tensor:  # [B, 3, H, W] -> [B, 1280, H/32, W/32]
        return self.net.forward_features(x)


def _lite0_trunk(model: nn.Module) -> nn.Module:
    return _Lite0Trunk(cast(lite.EfficientNetLite0, model))


def _resnet_trunk(model: nn.Module) -> nn.Module:
    # Everything before the global pooling; named as in torchvision for readable state_dicts.
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((name, getattr(model, name)) for name in names))


def _features_trunk(model: nn.Module) -> nn.Module:
    return nn.Sequential(OrderedDict(features=cast(nn.Module, model.features)))


def _convnext_trunk(model: nn.Module) -> nn.Module:
    # ConvNeXt normalises its last stage (classifier[0], a channel LayerNorm) before the linear
    # layer; applied per cell it keeps the features at the scale the network was trained with.
    classifier = cast(nn.Sequential, model.classifier)
    return nn.Sequential(OrderedDict(features=cast(nn.Module, model.features),
                                     norm=classifier[0]))


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
                     trunk=_lite0_trunk, out_channels=lite.HEAD_CHANNELS,
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
