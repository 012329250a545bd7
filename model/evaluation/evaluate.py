"""Evaluating a captioner on a split: caption every image by real decoding, then score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch.utils.data import DataLoader

from ..data.datasets import CaptionImages
from ..data.records import CaptionRecord
from ..data.themes import SCENE_THEMES
from ..errors import ParameterError
from ..nn.captioner import Caption, Captioner
from ..nn.config import DecodingParams
from ..progress import (
    Cancelled,
    ProgressCallback,
    ProgressReporter,
    Stage,
    never_cancelled,
)
from .scores import CaptionScores, evaluate_captions


@dataclass
class Evaluation:
    scores: CaptionScores
    predictions: Dict[str, Caption]           # file name → caption
    references: Dict[str, List[str]]          # file name → reference captions (tokenised text)
    decoding: DecodingParams
    themes: Dict[str, Optional[str]] = field(default_factory=dict)  # file name → true theme

    @property
    def theme_accuracy(self) -> Optional[float]:
        """Share of the images with a known theme whose predicted theme is it."""
        known = [(self.predictions[name].theme, theme) for name, theme in self.themes.items()
                 if theme is not None and self.predictions[name].theme is not None]
        return sum(p == t for p, t in known) / len(known) if known else None

    def metrics(self) -> Dict[str, float]:
        """The caption scores that exist, and the theme accuracy when there is one."""
        values = {k: v for k, v in self.scores.as_dict().items() if v is not None}
        if self.theme_accuracy is not None:
            values["theme accuracy"] = self.theme_accuracy
        return values


@torch.no_grad()
def caption_records(captioner: Captioner, records: Sequence[CaptionRecord],
                    decoding: DecodingParams, batch_size: int = 32,
                    progress: Optional[ProgressCallback] = None,
                    cancelled: Callable[[], bool] = never_cancelled,
                    reporter: Optional[ProgressReporter] = None) -> List[Caption]:
    """Caption the images of ``records`` in order; ``reporter`` (else one made on
    ``progress``) counts the images. Raises :class:`~..progress.Cancelled` when asked to stop."""
    images = CaptionImages(records, captioner.image_input)
    loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    if reporter is None:
        reporter = ProgressReporter(progress, Stage.SCORING, len(records), "images")
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
                     cancelled: Callable[[], bool] = never_cancelled,
                     reporter: Optional[ProgressReporter] = None) -> Evaluation:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of decoded captions against the references."""
    if not records:
        raise ParameterError("nothing to evaluate: the split has no images")
    captions = caption_records(captioner, records, decoding, batch_size, progress, cancelled,
                               reporter)
    predictions = {r.filename: c for r, c in zip(records, captions)}
    references = {r.filename: [" ".join(t) for t in r.tokens] for r in records}
    scores = evaluate_captions({k: c.text for k, c in predictions.items()}, references,
                               meteor=meteor)
    themes = {r.filename: SCENE_THEMES.get(r.scene or "") for r in records}
    return Evaluation(scores, predictions, references, decoding, themes)
