"""Validation after each epoch: the teacher-forced loss and BLEU-4 / CIDEr-D of captions
*decoded* from the validation images (never teacher-forced: that would overstate quality).

Several ranks split the images (:func:`.shares.contiguous_share`), each decodes its run, and
the parts are gathered: the metrics are computed from the whole validation set, in the same
order, on every rank, so early stopping and the best epoch agree everywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import torch

from ..data.features import FeatureStore
from ..nn.captioner import Captioner
from ..nn.config import DecodingParams
from ..nn.theme_head import NO_THEME
from .batches import CaptionBatchPlan, _feature_batch, decoder_loss
from .config import FitConfig
from .shares import contiguous_share

if TYPE_CHECKING:
    from .distributed import TrainingGroup

# Images decoded together (beam search batches them).
DECODE_BATCH = 64


@dataclass
class ValidationPart:
    """One rank's sums over its validation images (keys: indices into the plan)."""

    loss: float = 0.0
    words: int = 0
    candidates: Dict[int, str] = field(default_factory=dict)
    references: Dict[int, List[str]] = field(default_factory=dict)
    theme_right: int = 0
    theme_labelled: int = 0


@torch.no_grad()
def validation_part(captioner: Captioner, store: FeatureStore, plan: CaptionBatchPlan,
                    config: FitConfig, device, images: range, store_start: int = 0
                    ) -> ValidationPart:
    """Sums over the plan's ``images``; ``store`` holds their features from index
    ``store_start`` on (the whole set, or just this run)."""
    captioner.eval()
    part = ValidationPart()
    for start in range(images.start, images.stop, config.batch_size):
        chunk = list(range(start, min(images.stop, start + config.batch_size)))
        batch = _feature_batch(store, plan, chunk, random.Random(0), device, augment=False,
                               store_offset=store_start)
        _, cross_entropy = decoder_loss(captioner, batch, config, 1.0)
        n = int((batch.lengths - 1).sum())
        part.loss += float(cross_entropy) * n
        part.words += n
    decoding = DecodingParams(beam_size=config.validation_beam,
                              max_length=captioner.config.max_words)
    for start in range(images.start, images.stop, DECODE_BATCH):
        indices = torch.arange(start, min(images.stop, start + DECODE_BATCH))
        features = store.batch(indices - store_start, device=device)
        captions = captioner.caption_features(features, decoding)
        for index, caption in zip(indices.tolist(), captions):
            part.candidates[index] = caption.text
            part.references[index] = [" ".join(t) for t in plan.records[index].tokens]
        probabilities = captioner.theme_probabilities(features)
        if probabilities is not None:
            labels = plan.themes[indices].to(probabilities.device)
            labelled = labels != NO_THEME
            part.theme_labelled += int(labelled.sum())
            part.theme_right += int((probabilities.argmax(dim=1) == labels)[labelled].sum())
    return part


def validation_metrics(parts: Sequence[ValidationPart]) -> Dict[str, Optional[float]]:
    """The metrics of the whole set from every rank's part, in rank order."""
    from ..evaluation.scores import evaluate_captions

    candidates: Dict[int, str] = {}
    references: Dict[int, List[str]] = {}
    for part in parts:
        candidates.update(part.candidates)
        references.update(part.references)
    words = sum(part.words for part in parts)
    labelled = sum(part.theme_labelled for part in parts)
    scores = evaluate_captions(dict(sorted(candidates.items())),
                               dict(sorted(references.items())), meteor=False)
    return {"val_loss": sum(part.loss for part in parts) / max(1, words),
            "bleu4": scores.bleu4, "cider_d": scores.cider_d,
            "theme_accuracy": (sum(part.theme_right for part in parts) / labelled
                               if labelled else None)}


def validate(captioner: Captioner, store: FeatureStore, plan: CaptionBatchPlan,
             config: FitConfig, device, group: "Optional[TrainingGroup]" = None,
             store_is_share: bool = False) -> Dict[str, Optional[float]]:
    """Teacher-forced loss, and BLEU-4 / CIDEr-D of decoded captions. With ``group`` each rank
    decodes its run of the images and every rank gets the metrics of the whole set.
    ``store_is_share``: ``store`` holds only this rank's run of the images."""
    if group is None:
        return validation_metrics([validation_part(captioner, store, plan, config, device,
                                                   range(len(plan.records)))])
    images = contiguous_share(len(plan.records), group.rank, group.world_size)
    part = validation_part(captioner, store, plan, config, device, images,
                           images.start if store_is_share else 0)
    return validation_metrics(group.gather(part))
