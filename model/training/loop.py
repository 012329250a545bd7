"""Training a captioner: the epoch loop, validation by real decoding, checkpoints and resume.

:func:`fit` is the one training loop; the Python API, the command line and the QGIS task all
call it. With a frozen encoder (the default) each image is encoded once and the decoder trains
on cached features; with ``freeze_encoder=False`` images go through the encoder every step and
the encoder learns at its own, smaller rate.

After each epoch: the validation loss (teacher-forced, comparable with the training loss) and
BLEU-4 and CIDEr-D of captions *decoded* from the validation images (never teacher-forced: that
would overstate quality), early stopping on CIDEr-D, and a checkpoint written atomically that
:func:`fit` can resume from (model, optimiser, schedule, epoch, random state, history).
"""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..data.features import FeatureStore, encode_records
from ..data.records import CaptionRecord
from ..nn.captioner import Captioner
from ..nn.config import DecodingParams
from ..nn.theme_head import NO_THEME
from ..progress import EpochEnded, JobPlan, ProgressCallback, Stage
from .batches import CaptionBatchPlan, _feature_batch, decoder_loss
from .checkpoints import _set_rng_state, load_checkpoint, save_checkpoint
from .config import FitConfig, FitResult, warmup_cosine

log = logging.getLogger(__name__)


# -- validation ---------------------------------------------------------------------------------
@torch.no_grad()
def validate(captioner: Captioner, store: FeatureStore, plan: CaptionBatchPlan,
             config: FitConfig, device) -> Dict[str, Optional[float]]:
    """Teacher-forced loss, and BLEU-4 / CIDEr-D of decoded captions."""
    from ..evaluation.scores import evaluate_captions

    captioner.eval()
    total, words = 0.0, 0
    for start in range(0, len(plan.records), config.batch_size):
        images = list(range(start, min(len(plan.records), start + config.batch_size)))
        batch = _feature_batch(store, plan, images, random.Random(0), device, augment=False)
        _, cross_entropy = decoder_loss(captioner, batch, config, 1.0)
        n = int((batch.lengths - 1).sum())
        total += float(cross_entropy) * n
        words += n
    decoding = DecodingParams(beam_size=config.validation_beam,
                              max_length=captioner.config.max_words)
    candidates, references = {}, {}
    theme_right, theme_labelled = 0, 0
    for start in range(0, len(plan.records), 64):
        indices = torch.arange(start, min(len(plan.records), start + 64))
        features = store.batch(indices, device=device)
        captions = captioner.caption_features(features, decoding)
        for index, caption in zip(indices.tolist(), captions):
            candidates[index] = caption.text
            references[index] = [" ".join(t) for t in plan.records[index].tokens]
        probabilities = captioner.theme_probabilities(features)
        if probabilities is not None:
            labels = plan.themes[indices].to(probabilities.device)
            labelled = labels != NO_THEME
            theme_labelled += int(labelled.sum())
            theme_right += int((probabilities.argmax(dim=1) == labels)[labelled].sum())
    scores = evaluate_captions(candidates, references, meteor=False)
    return {"val_loss": total / max(1, words), "bleu4": scores.bleu4, "cider_d": scores.cider_d,
            "theme_accuracy": theme_right / theme_labelled if theme_labelled else None}


# -- progress -----------------------------------------------------------------------------------
# Rough seconds per unit of work on a CPU, to weigh stages against each other in the job's
# progress: encoding an image (per flipped/rotated version), one training step of an image,
# decoding one validation image with a small beam. Only the ratios matter.
ENCODE_COST, TRAIN_COST, VALIDATE_COST = 1.0, 0.6, 0.5


def training_weights(train_images: int, val_images: int, config: FitConfig
                     ) -> List[tuple]:
    """The (key, weight) stages of a fit, in order, for a :class:`~..progress.JobPlan`."""
    weights = []
    if config.freeze_encoder:
        weights += [("encode train", train_images * config.feature_variants * ENCODE_COST),
                    ("encode val", val_images * ENCODE_COST)]
    per_image = TRAIN_COST if config.freeze_encoder else TRAIN_COST + ENCODE_COST
    per_epoch = train_images * per_image + val_images * VALIDATE_COST
    weights += [(f"epoch {epoch}", per_epoch) for epoch in range(1, config.epochs + 1)]
    return weights


# -- the loop -----------------------------------------------------------------------------------
class _Trainer:
    """State of one fit() call; split out of fit() so each part reads on its own."""

    def __init__(self, captioner: Captioner, train: Sequence[CaptionRecord],
                 val: Sequence[CaptionRecord], config: FitConfig,
                 progress: Optional[ProgressCallback], cancelled: Callable[[], bool],
                 plan: Optional[JobPlan] = None):
        from ..nn.device import resolve_device

        self.captioner, self.config = captioner, config
        self.progress, self.cancelled = progress, cancelled
        self.device = resolve_device(config.device)
        self.captioner.to(self.device)
        self.vocabulary = captioner.vocabulary
        max_words = captioner.config.max_words
        if config.validation_images is not None:
            val = list(val)[:config.validation_images]
        themes = captioner.config.themes
        self.train_plan = CaptionBatchPlan.build(train, self.vocabulary, max_words, themes)
        self.val_plan = CaptionBatchPlan.build(val, self.vocabulary, max_words, themes)
        self.frozen = config.freeze_encoder
        self.plan = plan or JobPlan(progress, training_weights(len(self.train_plan.records),
                                                               len(self.val_plan.records),
                                                               config))
        from ..nn.encoder import freeze, unfreeze

        # Unfrozen, the encoder keeps its ImageNet batch-norm statistics: re-estimating them
        # from small caption batches hurts more than it helps.
        (freeze if self.frozen else unfreeze)(self.captioner.encoder)

    def features(self, records, variants, key: str) -> FeatureStore:
        reporter = self.plan.reporter(key, Stage.ENCODING, len(records), "images")
        cache = Path(self.config.feature_cache_dir) if self.config.feature_cache_dir else None
        augment = self.config.resolution_augmentation and variants > 1
        return encode_records(self.captioner, records, variants=variants, cache_dir=cache,
                              resolution_augmentation=augment,
                              progress=reporter, cancelled=self.cancelled)

    def optimizer(self) -> torch.optim.Optimizer:
        groups = [{"params": [p for p in self.captioner.heads().parameters()],
                   "lr": self.config.lr}]
        if not self.frozen:
            groups.append({"params": [p for p in self.captioner.encoder.parameters()],
                           "lr": self.config.encoder_lr})
        fused = self.device.type == "cuda"
        options: Dict[str, Any] = {"fused": True} if fused else {}
        return torch.optim.AdamW(groups, weight_decay=self.config.weight_decay, **options)


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)


def run_epochs(trainer: _Trainer, steps_per_epoch: int, run_epoch, val_features,
               resume_from) -> FitResult:
    """The epoch loop shared by cached-feature and end-to-end training: train, validate, keep
    the best weights, checkpoint, stop early or on cancel, resume."""
    captioner, config, device = trainer.captioner, trainer.config, trainer.device
    loop_rng = {"batches": random.Random(config.seed), "variants": random.Random(config.seed + 1)}
    optimizer = trainer.optimizer()
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(steps_per_epoch * config.epochs, config.warmup_fraction))
    trained = captioner.heads() if trainer.frozen else captioner
    history: List[EpochEnded] = []
    # The best epoch so far, as checkpoints keep it (plain values; "state": the trained weights).
    best: Dict[str, Any] = {"epoch": None, "cider_d": -1.0, "metrics": {}, "state": None}
    first_epoch = 1
    if resume_from is not None:
        payload = load_checkpoint(resume_from)
        captioner.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        history = [EpochEnded(**h) for h in payload["history"]]
        best = payload["best"]
        _set_rng_state(payload["rng"])
        for name, state in payload["loop_rng"].items():
            version, internal, gauss = state
            loop_rng[name].setstate((version, tuple(internal), gauss))
        first_epoch = int(payload["epoch"]) + 1
        log.info("resuming from %s after epoch %d", resume_from, payload["epoch"])

    stopped = "completed"
    checkpoint = Path(config.checkpoint_path) if config.checkpoint_path else None
    if checkpoint is not None and resume_from is None:
        # An "after epoch 0" checkpoint: a cancel during the first epoch can still resume.
        save_checkpoint(checkpoint, captioner, optimizer, scheduler, 0, history, best, config,
                        {k: v.getstate() for k, v in loop_rng.items()})
    for epoch in range(first_epoch, config.epochs + 1):
        record = run_epoch(epoch, optimizer, scheduler, loop_rng)
        if record is None:
            stopped = "cancelled"
            break
        store = val_features() if trainer.val_plan.records else None
        if store is not None:
            metrics = validate(captioner, store, trainer.val_plan, config, device)
            record = replace(record, val_loss=metrics["val_loss"], bleu4=metrics["bleu4"],
                             cider_d=metrics["cider_d"],
                             theme_accuracy=metrics["theme_accuracy"])
        history.append(record)
        _report_epoch(trainer, record)
        if record.cider_d is None or record.cider_d > best["cider_d"]:
            best = {"epoch": epoch, "cider_d": record.cider_d if record.cider_d is not None
                    else -1.0, "metrics": record.metrics,
                    "state": copy.deepcopy(trained.state_dict())}
        if checkpoint is not None:
            save_checkpoint(checkpoint, captioner, optimizer, scheduler, epoch, history, best,
                            config, {k: v.getstate() for k, v in loop_rng.items()})
        patience = config.early_stopping_patience
        if patience and best["epoch"] is not None and epoch - best["epoch"] >= patience:
            log.info("early stopping: no better CIDEr-D for %d epochs", patience)
            stopped = "early_stopping"
            break
        if trainer.cancelled():
            stopped = "cancelled"
            break
    if stopped != "cancelled" and config.keep_best and best["state"] is not None:
        trained.load_state_dict(best["state"])
    captioner.eval()
    return FitResult(history, best["epoch"], best["metrics"], stopped,
                     str(checkpoint) if checkpoint else None)


def _report_epoch(trainer: _Trainer, record: EpochEnded) -> None:
    log.info("%s", record.describe())
    trainer.plan.event(f"epoch {record.epoch}", Stage.TRAINING, record)
