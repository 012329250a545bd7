"""The training job: dataset folder in, model file out. The command line, the QGIS training
dialog, the Processing algorithm and the Python API's users all run this one function.

Order of work, and what a cancel keeps: the dataset is read and checked, the network built
(or rebuilt from a checkpoint to resume), trained with a checkpoint after every epoch; the
model file is written *before* the final scoring, so a cancel during scoring keeps the trained
model (without the scores not yet computed) as well as the checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..data.themes import themes_for
from ..errors import OutputExistsError, ParameterError
from ..modelfile.header import MODEL_SUFFIX
from ..nn.config import CaptionerConfig, DecodingParams
from ..progress import (
    CANCELLED,
    Cancelled,
    EpochEnded,
    JobPlan,
    ProgressCallback,
    Stage,
    never_cancelled,
)
from ..training.config import FitConfig, FitResult
from ..training.paths import checkpoint_path_for
from ..training.prepared import DEFAULT_MIN_WORD_COUNT, DEFAULT_VAL_SPLIT_PCT
from .distributed import (
    RankInfo,
    distributed_rank,
    divide_cpu_threads,
    rank_0_speaks,
    rank_device,
)

log = logging.getLogger(__name__)

# Below this many labelled val images a calibration would say little.
MIN_CALIBRATION_IMAGES = 30
# Rough seconds per image of the final scoring (encoding + beam search), for the job's progress.
SCORE_COST = 1.5
SCORED_SPLITS = ("val", "test")


@dataclass
class TrainCaptionerParams:
    dataset: str                                  # folder with images/ + annotations.json
    out: str                                      # the model file to write (.mscap)
    backbone: str = "auto"
    grid_size: int = CaptionerConfig.grid_size
    chip_size: int = CaptionerConfig.input_size
    epochs: int = FitConfig.epochs
    lr: Optional[float] = None                    # None: the learning-rate finder picks one
    batch_size: int = FitConfig.batch_size
    val_split_pct: float = DEFAULT_VAL_SPLIT_PCT
    min_word_count: int = DEFAULT_MIN_WORD_COUNT
    decoder_params: Dict[str, Any] = field(default_factory=dict)  # nn.config.DecoderParams
    freeze_encoder: bool = True
    encoder_lr: float = FitConfig.encoder_lr
    weights_path: Optional[str] = None            # encoder weights file (state_dict)
    feature_variants: int = FitConfig.feature_variants
    resolution_augmentation: bool = FitConfig.resolution_augmentation
    theme_head: bool = True                       # when the data has scene classes (data.themes)
    attention_regularisation: float = FitConfig.attention_regularisation
    feature_cache_dir: Optional[str] = None
    checkpoint: Optional[str] = None              # default: checkpoint_path_for(out)
    resume: Optional[str] = None                  # a checkpoint to continue from
    early_stopping_patience: int = FitConfig.early_stopping_patience
    validation_beam: int = FitConfig.validation_beam
    evaluation_beam: int = DecodingParams.beam_size
    device: str = FitConfig.device
    seed: int = FitConfig.seed
    half: bool = False                            # float16 weights in the model file
    ground_resolution_m: Optional[float] = None   # metres per pixel of the training images
    evaluate_test: bool = True                    # score the test split into the header
    meteor: bool = True                           # METEOR in the final scores (needs Java)
    overwrite: bool = False
    distributed: bool = False                     # one of the processes torchrun starts

    @property
    def checkpoint_path(self) -> str:
        return self.checkpoint or str(checkpoint_path_for(self.out))

    def fit_config(self, lr: float, device: str) -> FitConfig:
        return FitConfig(epochs=self.epochs, lr=lr, batch_size=self.batch_size,
                         freeze_encoder=self.freeze_encoder, encoder_lr=self.encoder_lr,
                         attention_regularisation=self.attention_regularisation,
                         feature_variants=self.feature_variants,
                         resolution_augmentation=self.resolution_augmentation,
                         feature_cache_dir=self.feature_cache_dir,
                         early_stopping_patience=self.early_stopping_patience,
                         validation_beam=self.validation_beam,
                         checkpoint_path=self.checkpoint_path, seed=self.seed, device=device)


@dataclass
class TrainCaptionerResult:
    stopped: str                                  # 'completed', 'early_stopping', 'cancelled'
    model_path: Optional[str]                     # None when stopped before the model existed
    checkpoint_path: str
    fit: FitResult
    metrics: Dict[str, Dict[str, float]]          # per split: what was scored before the end


def _check_out_is_no_input(out: Path, params: TrainCaptionerParams) -> None:
    """The model file may not be one of the training's inputs (links followed)."""
    from ..data.records import ANNOTATIONS
    from ..paths import check_not_an_input

    check_not_an_input(out, {
        "the dataset's annotations": Path(params.dataset) / ANNOTATIONS,
        "the encoder weights file": params.weights_path,
        "the checkpoint to resume from": params.resume,
        "the word vectors file": (params.decoder_params or {}).get("pretrained_emb")},
        what="the model file")


def train_captioner(params: TrainCaptionerParams, progress: Optional[ProgressCallback] = None,
                    cancelled: Callable[[], bool] = never_cancelled) -> TrainCaptionerResult:
    """Train a captioner on ``params.dataset`` and write it to ``params.out``.

    Started by torchrun (``params.distributed``, or more than one process), this process is
    one rank of several training one model with DistributedDataParallel (:func:`_as_rank`)."""
    rank = distributed_rank(params.distributed)
    if rank is None:
        return _train(params, progress, cancelled, None)
    return _as_rank(params, progress, cancelled, rank)


def _as_rank(params: TrainCaptionerParams, progress: Optional[ProgressCallback],
             cancelled: Callable[[], bool], info: RankInfo) -> TrainCaptionerResult:
    """The job as one rank: every rank reads the data and trains its share; rank 0 alone
    speaks, writes the checkpoints and the model file, and scores the model at the end."""
    from ..nn.device import resolve_device
    from ..training.distributed import TrainingGroup

    # Rank 0 says what one process would (the data check's warnings included); the others
    # only raise what goes wrong.
    with rank_0_speaks(info, others_from=logging.ERROR):
        threads = divide_cpu_threads(info)
        params = replace(params, device=rank_device(params.device, info), distributed=False)
        device = resolve_device(params.device)
        log.info("rank %d of %d (local rank %d): device %s, %s CPU threads", info.rank,
                 info.world_size, info.local_rank, device, threads or "default")
        with TrainingGroup(info, device) as group:
            result = _train(params, progress if info.is_main else None, cancelled, group)
            # Every rank leaves together, after rank 0 has written and scored the model.
            group.barrier("finish together")
        return result


def _train(params: TrainCaptionerParams, progress: Optional[ProgressCallback],
           cancelled: Callable[[], bool], group) -> TrainCaptionerResult:
    import torch

    from ..evaluation.evaluate import evaluate_records
    from ..modelfile.header import record_metrics
    from ..modelfile.weights import save_model
    from ..nn.device import resolve_device
    from ..training.fit import fit
    from ..training.loop import training_weights
    from ..training.lr_finder import find_learning_rate

    def everywhere(what: str, action: Callable[[], Any]) -> Any:
        return group.together(what, action) if group is not None else action()

    def on_main(what: str, action: Callable[[], Any]) -> Any:
        return group.on_main(what, action) if group is not None else action()

    main = group is None or group.is_main
    out, data = everywhere("read the dataset", lambda: _checked_input(params))
    device = resolve_device(params.device)
    torch.manual_seed(params.seed)
    captioner, encoder_source, lr = everywhere("build the network",
                                               lambda: _network(params, data, device))
    if group is not None:
        group.agree("read the dataset", _data_fingerprint(data))
    config = params.fit_config(lr or 1e-3, str(device))
    if lr is None:
        lr = on_main("choose the learning rate", lambda: find_learning_rate(
            captioner, data.train, config, device).suggested_lr)
        log.info("learning rate %.2e chosen by the learning-rate finder", lr)
        config = params.fit_config(lr, str(device))

    scored = _scored_splits(params, data) if main else []
    plan = JobPlan(progress, training_weights(len(data.train), len(data.valid), config)
                   + [(f"score {split}", len(records) * SCORE_COST) for split, records in scored])
    result = fit(captioner, data.train, data.valid, config, progress=progress,
                 cancelled=cancelled, resume_from=params.resume, plan=plan, group=group)
    metrics: Dict[str, Dict[str, float]] = {}
    if result.best_metrics:
        metrics["val"] = dict(result.best_metrics)
    if result.stopped == CANCELLED:
        return TrainCaptionerResult(CANCELLED, None, params.checkpoint_path, result, metrics)

    training = {**data.summary(), "epochs": len(result.history), "best_epoch": result.best_epoch,
                "stopped": result.stopped, "encoder_weights": encoder_source,
                "frozen_encoder": params.freeze_encoder, "lr": lr,
                "evaluation": {"beam": params.evaluation_beam,
                               "tokeniser": "mapscribe.model.data.text.tokenize",
                               "metrics": "MapScribe's COCO-caption-evaluation implementation "
                                          "(BLEU, ROUGE-L, CIDEr-D; METEOR 1.5 jar when Java "
                                          "is present)"},
                "params": {k: v for k, v in asdict(params).items()
                           if k not in ("out", "checkpoint", "resume", "overwrite",
                                        "feature_cache_dir", "distributed")}}
    if group is not None:
        training["distributed"] = _distributed_summary(group, config, result)
    # The model is written before it is scored: a cancel while scoring keeps it.
    on_main("write the model file", lambda: save_model(
        captioner, out, half=params.half, ground_resolution_m=params.ground_resolution_m,
        training=training, metrics=metrics))
    log.info("model saved to %s", out)
    stopped = result.stopped
    decoding = DecodingParams(beam_size=params.evaluation_beam)
    for split, records in scored:
        reporter = plan.reporter(f"score {split}", Stage.SCORING, len(records), "images",
                                 split=split)
        try:
            evaluation = evaluate_records(captioner, records, decoding, meteor=params.meteor,
                                          batch_size=params.batch_size, cancelled=cancelled,
                                          reporter=reporter)
        except Cancelled:
            stopped = CANCELLED
            break
        metrics[split] = evaluation.metrics()
        record_metrics(out, split, metrics[split])
        if split == "val" and captioner.theme_head is not None:
            _calibrate(out, evaluation)
    if main and stopped != CANCELLED and not params.checkpoint:
        # The default checkpoint only serves to resume an interrupted run; this one finished.
        Path(params.checkpoint_path).unlink(missing_ok=True)
    return TrainCaptionerResult(stopped, str(out),
                                params.checkpoint_path, result, metrics)


def _checked_input(params: TrainCaptionerParams) -> Tuple[Path, Any]:
    """The model file's path and the dataset, once the numbers, the output and the data are
    checked (the numbers first, before the slow steps)."""
    from ..training.prepared import prepare_data

    params.fit_config(params.lr or 1e-3, params.device)
    out = Path(params.out)
    if out.suffix == "":
        out = out.with_suffix(MODEL_SUFFIX)
    if out.exists() and not params.overwrite and not params.resume:
        raise OutputExistsError(f"{out} already exists; choose another output file or allow "
                                "overwriting (--overwrite)")
    _check_out_is_no_input(out, params)
    return out, prepare_data(params.dataset, batch_size=params.batch_size,
                             chip_size=params.chip_size, val_split_pct=params.val_split_pct,
                             min_word_count=params.min_word_count)


def _data_fingerprint(data) -> Tuple:
    """What every rank must have read alike: the images of each split and the vocabulary."""
    return (tuple(r.filename for r in data.train), tuple(r.filename for r in data.valid),
            len(data.vocabulary))


def _distributed_summary(group, config: FitConfig, result: FitResult) -> Dict[str, Any]:
    """What the model file says about the ranks that trained it."""
    from ..training.shares import LR_RULE, scaled_learning_rates

    rates = scaled_learning_rates(config.lr, config.encoder_lr, config.batch_size,
                                  group.world_size)
    return {"world_size": group.world_size, "backend": group.backend, "launcher": "torchrun",
            "batch_per_rank": config.batch_size, "effective_batch": rates.effective_batch,
            "lr_rule": LR_RULE, "lr_applied": rates.decoder, "encoder_lr_applied": rates.encoder,
            "replica_checks": result.replica_checks}


def _network(params: TrainCaptionerParams, data, device) -> Tuple[Any, Optional[str],
                                                                  Optional[float]]:
    """The captioner to train, the source of its encoder weights, and the learning rate (None:
    to be found)."""
    from ..nn.captioner import new_captioner
    from ..training.checkpoints import captioner_from_checkpoint, load_checkpoint

    if params.resume:
        payload = load_checkpoint(params.resume)
        captioner = captioner_from_checkpoint(payload)
        if captioner.vocabulary != data.vocabulary:
            raise ParameterError(
                f"{params.resume} was trained with another vocabulary than {params.dataset} "
                f"gives (min word count {params.min_word_count}); resume with the same dataset "
                "and settings")
        # The weights now, not only when the epoch loop resumes: the cached features are
        # encoded before it, and an encoder without its weights gives features of noise.
        captioner.load_state_dict(payload["model"])
        lr = params.lr or float(json.loads(payload["fit_config"])["lr"])
        return captioner.to(device), None, lr
    built = new_captioner(data.vocabulary, backbone=params.backbone, chip_size=data.chip_size,
                          grid_size=params.grid_size, decoder_params=params.decoder_params,
                          weights_path=params.weights_path,
                          themes=themes_for(data.train) if params.theme_head else ())
    return built.captioner.to(device), built.encoder_weights.source, params.lr


def _calibrate(model: Path, evaluation) -> None:
    """Fit the tiles' confidence on the scored val images that have a theme, and keep it in the
    model file's header."""
    from ..evaluation.calibration import calibrate
    from ..modelfile.header import record_calibration

    rows = [(evaluation.predictions[name], theme) for name, theme in evaluation.themes.items()
            if theme is not None and evaluation.predictions[name].theme is not None]
    if len(rows) < MIN_CALIBRATION_IMAGES:
        log.warning("%s: only %d labelled val images; the confidence is left uncalibrated",
                    model, len(rows))
        return
    calibration = calibrate([caption.theme_probability for caption, _ in rows],
                            [caption.score for caption, _ in rows],
                            [caption.theme == theme for caption, theme in rows])
    record_calibration(model, calibration.to_dict())
    log.info("%s: confidence calibrated on %d val images: uncertain below %.3f (%.0f%% of them "
             "confident, %.1f%% theme accuracy there)", model, calibration.images,
             calibration.threshold, 100 * calibration.confident_share,
             100 * calibration.confident_accuracy)


def _scored_splits(params: TrainCaptionerParams, data) -> List[Tuple[str, list]]:
    splits = [("val", data.valid)]
    if params.evaluate_test:
        splits.append(("test", data.test))
    return [(split, records) for split, records in splits if records and split in SCORED_SPLITS]


def training_history(checkpoint: "str | Path") -> List[EpochEnded]:
    """The epochs a checkpoint has trained so far (front doors replay them on resume)."""
    from ..training.checkpoints import load_checkpoint

    payload = load_checkpoint(checkpoint)
    epochs = json.loads(payload["fit_config"]).get("epochs", 0)
    return [EpochEnded(**{**entry, "epochs": entry.get("epochs") or epochs})
            for entry in payload["history"]]
