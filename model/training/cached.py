"""Training on cached encoder features: the encoder is frozen, each image is encoded once (in
several flipped/rotated versions) and every epoch only runs the decoder.
"""

from __future__ import annotations

import math
import random
import time
from typing import Dict, Optional

from torch import nn

from ..data.features import FeatureStore
from ..progress import Cancelled, EpochEnded, Stage
from .batches import _autocast, _feature_batch, decoder_loss
from .config import FitResult
from .loop import _seed, _Trainer, run_epochs


def _fit_cached(trainer: _Trainer, resume_from) -> FitResult:
    """Training on cached features of the frozen encoder."""
    config = trainer.config
    _seed(config.seed)
    try:
        train_store = trainer.features(trainer.train_plan.records, config.feature_variants,
                                       "encode train")
        val_store = (trainer.features(trainer.val_plan.records, 1, "encode val")
                     if trainer.val_plan.records else None)
    except Cancelled:
        return FitResult([], None, {}, "cancelled")
    steps_per_epoch = math.ceil(len(trainer.train_plan.records) / config.batch_size)

    def run_epoch(epoch, optimizer, scheduler, loop_rng):
        return _train_epoch(trainer, epoch, train_store, optimizer, scheduler, loop_rng)

    return run_epochs(trainer, steps_per_epoch, run_epoch, lambda: val_store, resume_from)


def _train_epoch(trainer: _Trainer, epoch: int, store: FeatureStore, optimizer, scheduler,
                 loop_rng: Dict[str, random.Random]) -> Optional[EpochEnded]:
    captioner, config, device = trainer.captioner, trainer.config, trainer.device
    heads = captioner.heads()
    heads.train()
    batches = trainer.train_plan.epoch_batches(config.batch_size, loop_rng["batches"])
    reporter = trainer.plan.reporter(f"epoch {epoch}", Stage.TRAINING,
                                     len(trainer.train_plan.records), "images", epoch=epoch,
                                     epochs=config.epochs)
    started = time.monotonic()
    running, seen = 0.0, 0   # cross-entropy summed over captions, captions seen
    for images in batches:
        if trainer.cancelled():
            return None
        batch = _feature_batch(store, trainer.train_plan, images, loop_rng["variants"], device)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, config):
            loss, cross_entropy = decoder_loss(captioner, batch, config)
        loss.backward()
        nn.utils.clip_grad_norm_(heads.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        captions = len(batch.ids)
        running += cross_entropy.item() * captions
        seen += captions
        reporter.advance(len(images), loss=running / seen)
    seconds = time.monotonic() - started
    return EpochEnded(epoch, running / max(1, seen), lr=optimizer.param_groups[0]["lr"],
                      seconds=seconds,
                      images_per_s=len(trainer.train_plan.records) / max(seconds, 1e-9),
                      epochs=config.epochs)
