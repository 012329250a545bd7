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
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..data.features import FeatureStore, encode_records
from ..data.records import CaptionRecord
from ..nn.captioner import Captioner
from ..progress import EpochEnded, JobPlan, ProgressCallback, Stage
from .batches import CaptionBatchPlan
from .checkpoints import _set_rng_state, load_checkpoint, save_checkpoint
from .config import FitConfig, FitResult, warmup_cosine
from .distributed import (
    ReplicaCheck,
    TrainingGroup,
    check_replicas_requested,
    data_parallel,
    encode_shared,
)
from .shares import LearningRates, scaled_learning_rates
from .validation import validate

log = logging.getLogger(__name__)


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
    """State of one fit() call; split out of fit() so each part reads on its own. With
    ``group`` this process is one rank of a torchrun job (:mod:`.distributed`)."""

    def __init__(self, captioner: Captioner, train: Sequence[CaptionRecord],
                 val: Sequence[CaptionRecord], config: FitConfig,
                 progress: Optional[ProgressCallback], cancelled: Callable[[], bool],
                 plan: Optional[JobPlan] = None, group: Optional[TrainingGroup] = None):
        from ..nn.device import resolve_device

        self.captioner, self.config = captioner, config
        self.progress, self.group = progress, group
        self.rank, self.world_size = (group.rank, group.world_size) if group else (0, 1)
        # A rank's own Ctrl-C check, and the one every rank obeys at the same step.
        self.local_cancelled = cancelled
        self.cancelled = (lambda: group.any(cancelled())) if group else cancelled
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
        self.rates = scaled_learning_rates(config.lr, config.encoder_lr, config.batch_size,
                                           self.world_size)
        if group is not None:
            log.info("%s", self.rates.describe(config.lr, self.world_size))
        self.replica_check: Optional[ReplicaCheck] = None
        from ..nn.encoder import freeze, unfreeze

        # Unfrozen, the encoder keeps its ImageNet batch-norm statistics: re-estimating them
        # from small caption batches hurts more than it helps.
        (freeze if self.frozen else unfreeze)(self.captioner.encoder)

    @property
    def trained(self) -> torch.nn.Module:
        """The modules that learn: the heads on cached features, else the whole captioner."""
        return self.captioner.heads() if self.frozen else self.captioner

    def features(self, records, variants, key: str) -> FeatureStore:
        cache = Path(self.config.feature_cache_dir) if self.config.feature_cache_dir else None
        augment = self.config.resolution_augmentation and variants > 1
        if self.group is not None:
            return encode_shared(self.group, self.captioner, records, variants, cache, augment,
                                 lambda count: self.plan.reporter(key, Stage.ENCODING, count,
                                                                  "images"),
                                 self.local_cancelled)
        reporter = self.plan.reporter(key, Stage.ENCODING, len(records), "images")
        return encode_records(self.captioner, records, variants=variants, cache_dir=cache,
                              resolution_augmentation=augment,
                              progress=reporter, cancelled=self.cancelled)

    def optimizer(self) -> torch.optim.Optimizer:
        groups = [{"params": [p for p in self.captioner.heads().parameters()],
                   "lr": self.rates.decoder}]
        if not self.frozen:
            groups.append({"params": [p for p in self.captioner.encoder.parameters()],
                           "lr": self.rates.encoder})
        fused = self.device.type == "cuda"
        options: Dict[str, Any] = {"fused": True} if fused else {}
        return torch.optim.AdamW(groups, weight_decay=self.config.weight_decay, **options)

    def loss_function(self, loss: Callable[..., Any]) -> Callable[..., Any]:
        """``loss`` as each step calls it: through DistributedDataParallel under torchrun
        (its backward averages the gradients over the ranks), else as it is."""
        if self.group is None:
            return loss
        # A theme head that no loss reaches gets no gradient: DDP must be told to expect that.
        unused = self.captioner.theme_head is not None and not self.config.theme_loss_weight
        if check_replicas_requested(self.config.check_replicas):
            self.replica_check = ReplicaCheck(self.group,
                                              list(self.trained.named_parameters()))
        return data_parallel(self.trained, loss, unused)

    def after_step(self, epoch: int, step: int) -> None:
        if self.replica_check is not None:
            self.replica_check(epoch, step)

    def epoch_loss(self, running: float, seen: int) -> Tuple[float, int]:
        """The epoch's mean training loss over every rank's captions, and their number."""
        if self.group is None:
            return running / max(1, seen), seen
        sums = self.group.gather((running, seen))
        total = sum(count for _, count in sums)
        return sum(value for value, _ in sums) / max(1, total), total

    def on_main(self, what: str, action: Callable[[], Any]) -> Any:
        """``action`` in this process, or on rank 0 alone while the other ranks wait."""
        return self.group.on_main(what, action) if self.group is not None else action()


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)


def _set_peak_rates(optimizer, scheduler, rates: LearningRates, steps_done: int) -> None:
    """After loading a checkpoint: this run's peak rates (another world size scales them
    otherwise) and the schedule at the step this run's epochs have reached."""
    peaks = [rates.decoder, rates.encoder][:len(optimizer.param_groups)]
    scheduler.base_lrs = list(peaks)
    scheduler.last_epoch = steps_done
    for group, peak, factor in zip(optimizer.param_groups, peaks, scheduler.lr_lambdas):
        group["initial_lr"] = peak
        group["lr"] = peak * factor(steps_done)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def run_epochs(trainer: _Trainer, steps_per_epoch: int, run_epoch, val_features,
               resume_from, store_is_share: bool = False) -> FitResult:
    """The epoch loop shared by cached-feature and end-to-end training: train, validate, keep
    the best weights, checkpoint, stop early or on cancel, resume."""
    captioner, config, device = trainer.captioner, trainer.config, trainer.device
    loop_rng = {"batches": random.Random(config.seed), "variants": random.Random(config.seed + 1)}
    optimizer = trainer.optimizer()
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(steps_per_epoch * config.epochs, config.warmup_fraction))
    trained = trainer.trained
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
        # Every rank's loop streams are alike (the epoch's shuffle and versions are drawn for
        # all ranks), so rank 0's continue a run of any world size.
        for name, state in payload["loop_rng"].items():
            version, internal, gauss = state
            loop_rng[name].setstate((version, tuple(internal), gauss))
        first_epoch = int(payload["epoch"]) + 1
        _set_peak_rates(optimizer, scheduler, trainer.rates, payload["epoch"] * steps_per_epoch)
        log.info("resuming from %s after epoch %d", resume_from, payload["epoch"])

    stopped = "completed"
    checkpoint = Path(config.checkpoint_path) if config.checkpoint_path else None

    def write_checkpoint(epoch: int, checkpoint: Path) -> None:
        trainer.on_main("write the checkpoint", lambda: save_checkpoint(
            checkpoint, captioner, optimizer, scheduler, epoch, history, best, config,
            {k: v.getstate() for k, v in loop_rng.items()}))

    if checkpoint is not None and resume_from is None:
        # An "after epoch 0" checkpoint: a cancel during the first epoch can still resume.
        write_checkpoint(0, checkpoint)
    for epoch in range(first_epoch, config.epochs + 1):
        record = run_epoch(epoch, optimizer, scheduler, loop_rng)
        if record is None:
            stopped = "cancelled"
            break
        store = val_features() if trainer.val_plan.records else None
        if store is not None:
            metrics = validate(captioner, store, trainer.val_plan, config, device, trainer.group,
                               store_is_share)
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
            write_checkpoint(epoch, checkpoint)
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
    checks = trainer.replica_check.steps if trainer.replica_check is not None else 0
    if trainer.replica_check is not None:
        log.info("replica check: the trained parameters were identical on all %d ranks after "
                 "each of %d steps", trainer.world_size, checks)
    return FitResult(history, best["epoch"], best["metrics"], stopped,
                     str(checkpoint) if checkpoint else None, trainer.world_size, checks)


def _report_epoch(trainer: _Trainer, record: EpochEnded) -> None:
    log.info("%s", record.describe())
    trainer.plan.event(f"epoch {record.epoch}", Stage.TRAINING, record)
