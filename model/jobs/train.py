"""The training job: dataset folder in, model file out. The command line, the QGIS training
dialog and the Processing algorithm all run this one function."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from ..progress import ProgressCallback, never_cancelled
from ..training.config import FitResult

log = logging.getLogger(__name__)


@dataclass
class TrainJobParams:
    dataset: str                                  # folder with images/ + annotations.json
    out: str                                      # the model file to write (.mscap)
    backbone: str = "auto"
    grid_size: int = 7
    chip_size: int = 224
    epochs: int = 10
    lr: Optional[float] = None                    # None: the learning-rate finder picks one
    batch_size: int = 32
    val_split_pct: float = 0.1
    min_word_count: int = 5
    decoder_params: Dict[str, Any] = field(default_factory=dict)
    freeze_encoder: bool = True
    encoder_lr: float = 1e-4
    weights_path: Optional[str] = None            # encoder weights file (state_dict)
    feature_variants: int = 4
    attention_regularisation: float = 0.2
    feature_cache_dir: Optional[str] = None
    checkpoint: Optional[str] = None              # default: <out>.checkpoint.pt
    resume: Optional[str] = None                  # a checkpoint to continue from
    early_stopping_patience: int = 4
    validation_beam: int = 1
    evaluation_beam: int = 3
    device: str = "auto"
    seed: int = 0
    half: bool = False                            # float16 weights in the model file
    ground_resolution_m: Optional[float] = None   # metres per pixel of the training images
    evaluate_test: bool = True                    # score the test split into the header
    meteor: bool = True                           # METEOR in the final scores (needs Java)
    overwrite: bool = False

    @property
    def checkpoint_path(self) -> str:
        return self.checkpoint or str(Path(self.out)) + ".checkpoint.pt"


@dataclass
class TrainJobResult:
    stopped: str                                  # 'completed', 'early_stopping', 'cancelled'
    model_path: Optional[str]
    checkpoint_path: str
    fit: FitResult
    metrics: Dict[str, Dict[str, float]]


def train_captioner(params: TrainJobParams, progress: Optional[ProgressCallback] = None,
                    cancelled: Callable[[], bool] = never_cancelled) -> TrainJobResult:
    from ..api import ImageCaptioner, prepare_data
    from ..training.checkpoints import captioner_from_checkpoint, load_checkpoint
    from ..training.config import FitConfig

    # Check the numbers before the slow steps (reading the images, building the encoder).
    FitConfig(epochs=params.epochs, lr=params.lr or 1e-3, batch_size=params.batch_size,
              feature_variants=params.feature_variants)
    out = Path(params.out)
    if out.exists() and not params.overwrite and not params.resume:
        raise FileExistsError(f"{out} already exists; choose another output file or allow "
                              "overwriting (--overwrite)")
    data = prepare_data(params.dataset, batch_size=params.batch_size, chip_size=params.chip_size,
                        val_split_pct=params.val_split_pct,
                        min_word_count=params.min_word_count)
    fit_options = dict(encoder_lr=params.encoder_lr, feature_variants=params.feature_variants,
                       attention_regularisation=params.attention_regularisation,
                       feature_cache_dir=params.feature_cache_dir, seed=params.seed,
                       early_stopping_patience=params.early_stopping_patience,
                       validation_beam=params.validation_beam)
    if params.resume:
        payload = load_checkpoint(params.resume)
        network = captioner_from_checkpoint(payload)
        if network.vocabulary != data.vocabulary:
            raise ValueError(f"{params.resume} was trained with another vocabulary than "
                             f"{params.dataset} gives (min word count {params.min_word_count}); "
                             "resume with the same dataset and settings")
        captioner = ImageCaptioner(data, device=params.device, freeze_encoder=params.freeze_encoder,
                                   ground_resolution_m=params.ground_resolution_m,
                                   _captioner=network)
        captioner.encoder_info = None
        lr = params.lr or _checkpoint_lr(payload)
    else:
        import torch

        torch.manual_seed(params.seed)
        captioner = ImageCaptioner(data, backbone=params.backbone,
                                   decoder_params=params.decoder_params,
                                   grid_size=params.grid_size, weights_path=params.weights_path,
                                   freeze_encoder=params.freeze_encoder, device=params.device,
                                   ground_resolution_m=params.ground_resolution_m)
        lr = params.lr
        if lr is None:
            lr = captioner.lr_find(**fit_options)
            log.info("learning rate %.2e chosen by the learning-rate finder", lr)
    result = captioner.fit(params.epochs, lr, checkpoint=params.checkpoint_path,
                           resume_from=params.resume, progress=progress, cancelled=cancelled,
                           **fit_options)
    if result.stopped == "cancelled":
        return TrainJobResult("cancelled", None, params.checkpoint_path, result, captioner.metrics)
    if data.valid:
        captioner.evaluate("val", beam_width=params.evaluation_beam, meteor=params.meteor,
                           progress=progress, cancelled=cancelled)
    if params.evaluate_test and data.test:
        captioner.evaluate("test", beam_width=params.evaluation_beam, meteor=params.meteor,
                           progress=progress, cancelled=cancelled)
    captioner.training_summary["evaluation"] = {
        "beam": params.evaluation_beam, "tokeniser": "mapscribe.model.data.text.tokenize",
        "metrics": "MapScribe's COCO-caption-evaluation implementation (BLEU, ROUGE-L, "
                   "CIDEr-D; METEOR 1.5 jar when Java is present)"}
    captioner.training_summary["params"] = {k: v for k, v in asdict(params).items()
                                            if k not in ("out", "checkpoint", "resume",
                                                         "overwrite", "feature_cache_dir")}
    path = captioner.save(out, half=params.half)
    if not params.checkpoint:
        # The default checkpoint only serves to resume an interrupted run; this one finished.
        Path(params.checkpoint_path).unlink(missing_ok=True)
    return TrainJobResult(result.stopped, str(path), params.checkpoint_path, result,
                          captioner.metrics)


def _checkpoint_lr(payload: Dict) -> float:
    import json

    return float(json.loads(payload["fit_config"])["lr"])
