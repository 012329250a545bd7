"""Encoder features computed once per image, for training with a frozen encoder.

With the encoder frozen, its output for an image never changes, so every epoch after the first
would recompute the same numbers. :class:`FeatureStore` encodes each image once (and a few of its
flipped/rotated versions, the training augmentation) and keeps the grids in float16. On a CPU this
is what makes training in minutes possible: the decoder is far cheaper than the encoder.

Stores can be kept on disk (``cache_dir``): the file name is a hash of everything the features
depend on (encoder, its weights, input size, grid, the image files and their sizes/times).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import torch

from ..atomic import write_stream_atomic
from ..errors import ParameterError
from ..progress import Cancelled, ProgressReporter
from .datasets import dihedral
from .degrade import NONE, RESOLUTION_VARIANTS, Degradation
from .images import load_rgb_image
from .records import CaptionRecord

log = logging.getLogger(__name__)


# Dihedral variants in the order they are added: identity, mirror, quarter turn, quarter turn
# mirrored, then the rest. Two variants double the data with the cheapest symmetry.
VARIANT_ORDER = (0, 4, 1, 5, 2, 6, 3, 7)
# A log line every this many images: encoding a large dataset takes a while.
LOG_EVERY = 1000


@dataclass
class FeatureStore:
    """features (N images, V variants, P cells, C channels) in float16, on the CPU."""

    features: torch.Tensor
    variants: Sequence[int]

    def __len__(self) -> int:
        return self.features.size(0)

    def batch(self, images: torch.Tensor, variants: Optional[torch.Tensor] = None,
              device: "torch.device | str" = "cpu") -> torch.Tensor:
        """Features of images (B,) in variants (B,) (0 = the image as it is) → (B, P, C) float32
        on ``device``."""
        if variants is None:
            variants = torch.zeros_like(images)
        return self.features[images, variants].to(device=device, dtype=torch.float32)


def _fast_inference(device: torch.device):
    """bfloat16 autocast on CUDA (the features are stored in float16 anyway); nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def _memory_format(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """channels_last on CUDA, where convolutions run faster in it."""
    return images.contiguous(memory_format=torch.channels_last) if device.type == "cuda" \
        else images


def feature_key(captioner, records: Sequence[CaptionRecord], variants: Sequence[int],
                degradations: Sequence[Degradation] = ()) -> str:
    """A hash of everything the cached features depend on."""
    config = captioner.config
    digest = hashlib.sha256()
    described = {"backbone": config.backbone, "grid": config.grid_size,
                 "input": config.input_size, "mean": list(config.mean),
                 "std": list(config.std), "variants": list(variants),
                 "encoder": _encoder_fingerprint(captioner)}
    if any(not d.is_identity for d in degradations):
        described["degradations"] = [d.to_dict() for d in degradations]
    digest.update(json.dumps(described).encode())
    for record in records:
        stat = record.image_path.stat()
        digest.update(f"{record.image_path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _encoder_fingerprint(captioner) -> str:
    """A cheap hash of the encoder's weights (a sample of each tensor)."""
    digest = hashlib.sha256()
    for name, tensor in captioner.encoder.state_dict().items():
        flat = tensor.detach().flatten()
        sample = flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy().tobytes()
        digest.update(name.encode() + sample)
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_records(captioner, records: Sequence[CaptionRecord], *, variants: int = 1,
                   batch_size: int = 32, cache_dir: Optional[Path] = None,
                   progress: Optional[ProgressReporter] = None,
                   cancelled: Callable[[], bool] = lambda: False,
                   resolution_augmentation: bool = False) -> FeatureStore:
    """Encode every record's image in ``variants`` dihedral versions (1 ≤ variants ≤ 8); with
    ``resolution_augmentation`` the versions are also seen coarser, each slot as
    :data:`~.degrade.RESOLUTION_VARIANTS` says (slot 0 stays the image as it is)."""
    if not 1 <= variants <= 8:
        raise ParameterError(f"feature variants must be 1..8, not {variants}")
    chosen = VARIANT_ORDER[:variants]
    degradations = _degradations(variants, resolution_augmentation)
    path = feature_cache_path(captioner, records, variants, resolution_augmentation, cache_dir)
    if path is not None:
        if path.is_file():
            try:
                cached = torch.load(path, weights_only=True)
                log.info("features for %d images read from %s", len(records), path)
                return FeatureStore(cached["features"], tuple(cached["variants"]))
            except Exception as error:  # noqa: BLE001 - a damaged cache is recomputed, never trusted
                log.warning("ignoring the damaged feature cache %s (%s)", path, error)

    device = captioner.device
    image_input = captioner.image_input
    was_training = captioner.encoder.training
    captioner.encoder.eval()
    grid = captioner.config.grid_size ** 2
    store = torch.empty((len(records), len(chosen), grid, captioner.config.feature_size),
                        dtype=torch.float16)
    for start in range(0, len(records), batch_size):
        if cancelled():
            raise Cancelled("cancelled while encoding images")
        chunk = records[start:start + batch_size]
        images = torch.stack([image_input.to_tensor(load_rgb_image(r.image_path))
                              for r in chunk]).to(device)
        for slot, k in enumerate(chosen):
            seen = degradations[slot].apply(dihedral(images, k))
            with _fast_inference(device):
                features = captioner.encode(_memory_format(seen, device))
            store[start:start + len(chunk), slot] = features.to("cpu", torch.float16)
        if progress is not None:
            progress.advance(len(chunk))
        done = start + len(chunk)
        if done % LOG_EVERY < batch_size or done == len(records):
            log.info("encoded %d of %d images (%d versions each)", done, len(records),
                     len(chosen))
    captioner.encoder.train(was_training)
    encoded = FeatureStore(store, chosen)
    if path is not None:
        save_feature_cache(path, encoded)
    return encoded


def _degradations(variants: int, resolution_augmentation: bool) -> Tuple[Degradation, ...]:
    return tuple(RESOLUTION_VARIANTS[:variants]) if resolution_augmentation else (
        (NONE,) * variants)


def feature_cache_path(captioner, records: Sequence[CaptionRecord], variants: int,
                       resolution_augmentation: bool, cache_dir: Optional[Path]
                       ) -> Optional[Path]:
    """Where :func:`encode_records` keeps the store of ``records`` under ``cache_dir`` (None
    without one)."""
    if cache_dir is None:
        return None
    key = feature_key(captioner, records, VARIANT_ORDER[:variants],
                      _degradations(variants, resolution_augmentation))
    return Path(cache_dir) / f"features-{key}.pt"


def save_feature_cache(path: Path, store: FeatureStore) -> None:
    """Keep ``store`` at ``path``, atomically; streamed to the file, since a copy in memory
    would double gigabytes of features."""
    payload = {"features": store.features, "variants": list(store.variants)}
    write_stream_atomic(path, lambda stream: torch.save(payload, stream))
