"""Evaluating a captioner on a split: caption every image by real decoding, then score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch.utils.data import DataLoader

from ..data.datasets import CaptionImages
from ..data.records import CaptionRecord
from ..nn.beam_search import DecodingParams
from ..nn.captioner import Caption, Captioner
from ..progress import Cancelled, ProgressCallback, ProgressReporter, never_cancelled
from .scores import CaptionScores, evaluate_captions


@dataclass
class Evaluation:
    scores: CaptionScores
    predictions: Dict[str, Caption]           # file name → caption
    references: Dict[str, List[str]]          # file name → reference captions (tokenised text)
    decoding: DecodingParams


@torch.no_grad()
def caption_records(captioner: Captioner, records: Sequence[CaptionRecord],
                    decoding: DecodingParams, batch_size: int = 32,
                    progress: Optional[ProgressCallback] = None,
                    cancelled: Callable[[], bool] = never_cancelled) -> List[Caption]:
    """Caption the images of ``records`` in order."""
    images = CaptionImages(records, captioner.image_input)
    loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    reporter = ProgressReporter(progress, "captioning", len(records), "images")
    captions: List[Caption] = []
    captioner.eval()
    for batch, _ in loader:
        if cancelled():
            raise Cancelled("evaluation cancelled")
        captions += captioner.caption_images(batch.to(captioner.device), decoding)
        reporter.advance(len(batch))
    return captions


def evaluate_records(captioner: Captioner, records: Sequence[CaptionRecord],
                     decoding: DecodingParams, *, meteor: bool = True, batch_size: int = 32,
                     progress: Optional[ProgressCallback] = None,
                     cancelled: Callable[[], bool] = never_cancelled) -> Evaluation:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of decoded captions against the references."""
    if not records:
        raise ValueError("nothing to evaluate: the split has no images")
    captions = caption_records(captioner, records, decoding, batch_size, progress, cancelled)
    predictions = {r.filename: c for r, c in zip(records, captions)}
    references = {r.filename: [" ".join(t) for t in r.tokens] for r in records}
    scores = evaluate_captions({k: c.text for k, c in predictions.items()}, references,
                               meteor=meteor)
    return Evaluation(scores, predictions, references, decoding)
