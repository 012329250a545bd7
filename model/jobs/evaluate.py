"""The evaluation job: a model file and a dataset folder in, the caption metrics of one split
out (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D of decoded captions), optionally recorded in the model
file's header. The command line, Processing and the Python API run this one function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..data.records import SPLITS, DatasetError
from ..errors import ParameterError
from ..nn.config import DecodingParams
from ..progress import (
    CANCELLED,
    COMPLETED,
    Cancelled,
    ProgressCallback,
    ProgressReporter,
    Stage,
    never_cancelled,
)
from ..training.config import FitConfig

log = logging.getLogger(__name__)


@dataclass
class EvaluateModelParams:
    model: str                          # the .mscap file
    dataset: str                        # folder with images/ + annotations.json
    split: str = "test"
    beam_size: int = DecodingParams.beam_size
    max_length: int = DecodingParams.max_length
    batch_size: int = FitConfig.batch_size
    meteor: bool = True                 # needs Java and the METEOR jar; else left out, saying why
    device: str = "auto"
    record: bool = False                # keep the scores in the model file's header

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ParameterError(f"split {self.split!r} is not one of {', '.join(SPLITS)}")
        for name in ("beam_size", "max_length", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"{name} must be a whole number ≥ 1, not {value!r}")

    @property
    def record_key(self) -> str:
        """The header's metrics key: the dataset folder's name and the split."""
        return f"{Path(self.dataset).resolve().name} {self.split}"


@dataclass
class Prediction:
    filename: str
    caption: str
    score: float
    references: List[str]


@dataclass
class EvaluateModelResult:
    stopped: str                                   # 'completed' or 'cancelled'
    images: int                                    # images scored (0 when cancelled)
    metrics: Dict[str, Optional[float]] = field(default_factory=dict)
    meteor_unavailable_reason: Optional[str] = None
    predictions: List[Prediction] = field(default_factory=list)

    def summary(self, params: EvaluateModelParams) -> Dict[str, Any]:
        """Everything as plain JSON values (what `mapscribe evaluate --json` prints)."""
        return {"model": params.model, "dataset": params.dataset, "split": params.split,
                "images": self.images, "beam": params.beam_size, "metrics": self.metrics,
                "meteor_unavailable_reason": self.meteor_unavailable_reason}


def evaluate_model(params: EvaluateModelParams, progress: Optional[ProgressCallback] = None,
                   cancelled: Callable[[], bool] = never_cancelled) -> EvaluateModelResult:
    """Caption every image of ``params.split`` and score the captions against the references."""
    from ..data.folder import read_caption_folder
    from ..evaluation.evaluate import evaluate_records
    from ..modelfile.checks import check_caption_output
    from ..modelfile.header import read_header, record_metrics
    from ..modelfile.weights import load_model
    from ..nn.device import resolve_device
    from ..paths import check_writable

    read_header(params.model)  # a bad model file fails before the dataset is read
    if params.record:  # and a model file that cannot take the scores, before the work
        check_writable(params.model, "the model file (recording writes the scores into it)")
    records = read_caption_folder(params.dataset).split(params.split)
    if not records:
        raise DatasetError(f"{params.dataset} has no images in the {params.split} split: "
                           "choose another split")
    captioner = load_model(params.model, resolve_device(params.device))
    reporter = ProgressReporter(progress, Stage.SCORING, len(records), "images",
                                span=(0.0, 1.0), values={"split": params.split})
    decoding = DecodingParams(beam_size=params.beam_size, max_length=params.max_length)
    try:
        evaluation = evaluate_records(captioner, records, decoding, meteor=params.meteor,
                                      batch_size=params.batch_size, cancelled=cancelled,
                                      reporter=reporter)
    except Cancelled:
        return EvaluateModelResult(CANCELLED, 0)
    # Damaged weights give empty captions scored -inf: an error, never scored or recorded.
    for name, caption in evaluation.predictions.items():
        check_caption_output(params.model, caption.text, caption.score, f"image {name}")
    scores = evaluation.scores
    result = EvaluateModelResult(
        COMPLETED, scores.images, scores.as_dict(), scores.meteor_unavailable_reason,
        [Prediction(name, caption.text, caption.score, evaluation.references[name])
         for name, caption in evaluation.predictions.items()])
    if params.record:
        values: Dict[str, Any] = {k: v for k, v in result.metrics.items() if v is not None}
        values.update(images=scores.images, beam=params.beam_size)
        record_metrics(params.model, params.record_key, values)
        log.info("%s: scores recorded under %r", params.model, params.record_key)
    return result
