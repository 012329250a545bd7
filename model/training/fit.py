""":func:`fit`, the one training entry point: cached frozen-encoder features by default, the
end-to-end path when the encoder is fine-tuned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from ..data.records import CaptionRecord
from ..nn.captioner import Captioner
from ..progress import ProgressCallback, never_cancelled
from .cached import _fit_cached
from .config import FitConfig, FitResult
from .loop import _Trainer


def fit(captioner: Captioner, train: Sequence[CaptionRecord], val: Sequence[CaptionRecord],
        config: FitConfig, *, progress: Optional[ProgressCallback] = None,
        cancelled: Callable[[], bool] = never_cancelled,
        resume_from: Optional["str | Path"] = None) -> FitResult:
    """Train ``captioner`` on ``train``, validating on ``val`` after each epoch."""
    if not train:
        raise ValueError("no training images: the dataset's train split is empty")
    trainer = _Trainer(captioner, train, val, config, progress, cancelled)
    if not trainer.frozen:
        from .end_to_end import fit_end_to_end

        return fit_end_to_end(trainer, resume_from)
    return _fit_cached(trainer, resume_from)
