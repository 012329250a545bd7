""":func:`fit`, the one training entry point: cached frozen-encoder features by default, the
end-to-end path when the encoder is fine-tuned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from ..data.records import CaptionRecord
from ..errors import ParameterError
from ..nn.captioner import Captioner
from ..progress import JobPlan, ProgressCallback, never_cancelled
from .cached import _fit_cached
from .config import FitConfig, FitResult
from .end_to_end import fit_end_to_end
from .loop import _Trainer


def fit(captioner: Captioner, train: Sequence[CaptionRecord], val: Sequence[CaptionRecord],
        config: FitConfig, *, progress: Optional[ProgressCallback] = None,
        cancelled: Callable[[], bool] = never_cancelled,
        resume_from: Optional["str | Path"] = None, plan: Optional[JobPlan] = None) -> FitResult:
    """Train ``captioner`` on ``train``, validating on ``val`` after each epoch.

    ``plan``: the whole job's progress plan when training is part of a larger job (its stage
    keys are :func:`~.loop.training_weights`'s); by default fit makes its own.
    """
    if not train:
        raise ParameterError("no training images: the dataset's train split is empty")
    trainer = _Trainer(captioner, train, val, config, progress, cancelled, plan)
    if not trainer.frozen:
        return fit_end_to_end(trainer, resume_from)
    return _fit_cached(trainer, resume_from)
