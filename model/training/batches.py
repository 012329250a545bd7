"""Batches of captions for the decoder and the loss on one batch.

:class:`CaptionBatchPlan` turns every (image, caption) pair into token ids once; each batch then
gathers features and padded captions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from ..data.datasets import encode_caption, pad_captions
from ..data.features import FeatureStore
from ..data.records import CaptionRecord
from ..data.themes import theme_index
from ..nn.captioner import Captioner
from ..nn.decoder import attention_regulariser, caption_loss
from ..nn.theme_head import NO_THEME, theme_loss
from .config import FitConfig


# -- training data ------------------------------------------------------------------------------
@dataclass
class CaptionBatchPlan:
    """Which images make each batch of an epoch. A batch holds ``batch_size`` images with all
    their captions: the decoder computes each image's memory once for its ~5 captions."""

    records: Sequence[CaptionRecord]
    encoded: List[List[torch.Tensor]]   # per record, per caption: ids with <start>/<end>
    themes: torch.Tensor                # (N,) per record: its theme's index, or NO_THEME

    @classmethod
    def build(cls, records: Sequence[CaptionRecord], vocabulary, max_words: int,
              themes: Tuple[str, ...] = ()) -> "CaptionBatchPlan":
        encoded = [[torch.tensor(encode_caption(vocabulary, words, max_words)) for words in
                    record.tokens] for record in records]
        labels = [theme_index(record.scene, themes) if themes else None for record in records]
        return cls(records, encoded, torch.tensor([NO_THEME if label is None else label
                                                   for label in labels], dtype=torch.long))

    @property
    def caption_count(self) -> int:
        return sum(len(captions) for captions in self.encoded)

    def epoch_batches(self, batch_size: int, rng: random.Random) -> List[List[int]]:
        order = list(range(len(self.encoded)))
        rng.shuffle(order)
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass
class FeatureBatch:
    features: torch.Tensor      # (B, P, C) one variant of each image
    ids: torch.Tensor           # (R, L) every caption of those images, padded
    lengths: torch.Tensor       # (R,)
    image_index: torch.Tensor   # (R,) which image each caption describes
    themes: torch.Tensor        # (B,) theme index of each image, or NO_THEME


def draw_variants(store: FeatureStore, count: int, variant_rng: random.Random) -> List[int]:
    """Which cached version of each of ``count`` images a step uses (0: the image as it is)."""
    if len(store.variants) > 1:
        return [variant_rng.randrange(len(store.variants)) for _ in range(count)]
    return [0] * count


def _feature_batch(store: FeatureStore, plan: CaptionBatchPlan, images: List[int],
                   variant_rng: random.Random, device, augment: bool = True,
                   variants: Optional[List[int]] = None, store_offset: int = 0
                   ) -> FeatureBatch:
    """``variants``: each image's version, drawn beforehand (else from ``variant_rng`` when
    ``augment``); ``store_offset``: the plan index of the store's first image."""
    if variants is None:
        variants = draw_variants(store, len(images), variant_rng) if augment else \
            [0] * len(images)
    features = store.batch(torch.tensor(images) - store_offset, torch.tensor(variants),
                           device)
    captions = [(slot, caption) for slot, image in enumerate(images)
                for caption in plan.encoded[image]]
    ids, lengths = pad_captions([caption for _, caption in captions])
    image_index = torch.tensor([slot for slot, _ in captions])
    themes = plan.themes[torch.tensor(images)]
    return FeatureBatch(features, ids.to(device), lengths.to(device), image_index.to(device),
                        themes.to(device))


def decoder_loss(captioner: Captioner, batch: FeatureBatch, config: FitConfig,
                 teacher_forcing: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, cross-entropy alone) for one batch."""
    ids, lengths = batch.ids, batch.lengths
    logits, weights = captioner.decoder(batch.features, ids, teacher_forcing, batch.image_index)
    cross_entropy = caption_loss(logits, ids[:, 1:], config.label_smoothing)
    loss = cross_entropy
    if config.attention_regularisation:
        loss = loss + config.attention_regularisation * attention_regulariser(weights, lengths - 1)
    if captioner.theme_head is not None and config.theme_loss_weight:
        loss = loss + config.theme_loss_weight * theme_loss(captioner.theme_head(batch.features),
                                                            batch.themes)
    return loss, cross_entropy


def _autocast(device: torch.device, config: FitConfig):
    if device.type == "cuda" and config.mixed_precision:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)
