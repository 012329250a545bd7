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
from .distributed import TrainingGroup
from .end_to_end import fit_end_to_end
from .loop import _Trainer


def fit(captioner: Captioner, train: Sequence[CaptionRecord], val: Sequence[CaptionRecord],
        config: FitConfig, *, progress: Optional[ProgressCallback] = None,
        cancelled: Callable[[], bool] = never_cancelled,
        resume_from: Optional["str | Path"] = None, plan: Optional[JobPlan] = None,
        group: Optional[TrainingGroup] = None) -> FitResult:
    """Train ``captioner`` on ``train``, validating on ``val`` after each epoch.

    ``plan``: the whole job's progress plan when training is part of a larger job (its stage
    keys are :func:`~.loop.training_weights`'s); by default fit makes its own.
    ``group``: this process is one rank of a torchrun job (DistributedDataParallel; see
    :mod:`.distributed`); every rank calls fit with the same arguments.
    """
    if not train:
        raise ParameterError("no training images: the dataset's train split is empty")
    if group is not None and len(train) < group.world_size:
        raise ParameterError(f"{len(train)} training images cannot be shared among "
                             f"{group.world_size} ranks: start fewer processes")
    trainer = _Trainer(captioner, train, val, config, progress, cancelled, plan, group)
    if not trainer.frozen:
        return fit_end_to_end(trainer, resume_from)
    return _fit_cached(trainer, resume_from)
