"""Resolution augmentation: images seen coarser than they are, as real tiles often are.

Real imagery reaches the model at 0.1–5 m per pixel, often resampled on the way (a web
basemap's zoom level, a tile resized to the input size). A :class:`Degradation` down-samples
an image by a factor and back to its size (bilinear, antialiased), optionally blurs it mildly
and passes it through JPEG, so that the cached training features include such versions.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch.nn import functional

from ..errors import ParameterError


@dataclass(frozen=True)
class Degradation:
    factor: float = 1.0                  # ≥ 1: down-sample by this much, then back up
    blur_sigma: float = 0.0              # Gaussian blur in pixels, after resampling
    jpeg_quality: Optional[int] = None   # 1..95: JPEG-compress at this quality last

    def __post_init__(self) -> None:
        if not self.factor >= 1.0:
            raise ParameterError(f"degradation factor must be ≥ 1, not {self.factor!r}")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 95:
            raise ParameterError(f"JPEG quality must be 1..95, not {self.jpeg_quality!r}")

    @property
    def is_identity(self) -> bool:
        return self.factor == 1.0 and not self.blur_sigma and self.jpeg_quality is None

    def to_dict(self) -> Dict:
        return asdict(self)

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) floats in 0..1 → the same shape, degraded."""
        if self.is_identity:
            return images
        size = images.shape[-2:]
        out = images
        if self.factor > 1.0:
            small = (max(1, round(size[0] / self.factor)), max(1, round(size[1] / self.factor)))
            out = functional.interpolate(out, size=small, mode="bilinear", antialias=True,
                                         align_corners=False)
            out = functional.interpolate(out, size=size, mode="bilinear", align_corners=False)
        if self.blur_sigma:
            out = _gaussian_blur(out, self.blur_sigma)
        out = out.clamp(0.0, 1.0)
        if self.jpeg_quality is not None:
            out = _jpeg(out, self.jpeg_quality)
        return out


NONE = Degradation()
# The degradation of each cached feature variant, in order (the dihedral symmetry of each slot
# is data.features.VARIANT_ORDER's). Half the variants stay sharp; the others are seen ×1.5 to
# ×4 coarser, some blurred or JPEG-compressed; the first four already span ×1 to ×4. Slot 0 is
# always the image as it is (validation and the learning-rate finder use it).
RESOLUTION_VARIANTS: Tuple[Degradation, ...] = (
    NONE, Degradation(2.0, jpeg_quality=60), NONE, Degradation(4.0, blur_sigma=0.6),
    Degradation(3.0, jpeg_quality=40), Degradation(1.5, blur_sigma=0.8), NONE, Degradation(2.0),
)


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = images.size(1)
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    out = functional.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = functional.conv2d(out, horizontal, groups=channels)
    return functional.conv2d(out, vertical, groups=channels)


def _jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    from PIL import Image

    out = torch.empty_like(images)
    pixels = (images * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for index, array in enumerate(pixels):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        out[index] = torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(images) / 255.0
    return out
