"""Training on cached encoder features: the encoder is frozen, each image is encoded once (in
several flipped/rotated versions) and every epoch only runs the decoder.

Under torchrun each rank encodes its share of the images and gets everyone's features
(:func:`.distributed.encode_shared`); each step, every rank trains on its slice of the step's
images (:func:`.shares.epoch_steps`) and DDP averages the gradients.
"""

from __future__ import annotations

import random
import time
from typing import Dict, Optional

from torch import nn

from ..data.features import FeatureStore
from ..progress import Cancelled, EpochEnded, Stage
from .batches import _autocast, _feature_batch, decoder_loss, draw_variants
from .config import FitResult
from .loop import _seed, _Trainer, run_epochs
from .shares import epoch_steps, steps_per_epoch


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
    steps = steps_per_epoch(len(trainer.train_plan.records), config.batch_size,
                            trainer.world_size)
    loss = trainer.loss_function(lambda batch: decoder_loss(trainer.captioner, batch, config))

    def run_epoch(epoch, optimizer, scheduler, loop_rng):
        return _train_epoch(trainer, epoch, train_store, optimizer, scheduler, loop_rng, loss)

    return run_epochs(trainer, steps, run_epoch, lambda: val_store, resume_from)


def _train_epoch(trainer: _Trainer, epoch: int, store: FeatureStore, optimizer, scheduler,
                 loop_rng: Dict[str, random.Random], loss_of) -> Optional[EpochEnded]:
    captioner, config, device = trainer.captioner, trainer.config, trainer.device
    heads = captioner.heads()
    heads.train()
    # The whole epoch's order, the same on every rank (the same stream), shared out by steps.
    order = list(range(len(trainer.train_plan.records)))
    loop_rng["batches"].shuffle(order)
    steps = epoch_steps(order, config.batch_size, trainer.world_size)
    reporter = trainer.plan.reporter(f"epoch {epoch}", Stage.TRAINING,
                                     sum(len(step[trainer.rank]) for step in steps), "images",
                                     epoch=epoch, epochs=config.epochs)
    started = time.monotonic()
    running, seen = 0.0, 0   # cross-entropy summed over captions, captions seen
    for number, step in enumerate(steps, 1):
        if trainer.cancelled():
            return None
        # Every rank draws the versions of the whole step's images: the streams stay alike.
        variants = draw_variants(store, sum(len(images) for images in step),
                                 loop_rng["variants"])
        offset = sum(len(images) for images in step[:trainer.rank])
        images = step[trainer.rank]
        batch = _feature_batch(store, trainer.train_plan, images, loop_rng["variants"], device,
                               variants=variants[offset:offset + len(images)])
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, config):
            loss, cross_entropy = loss_of(batch)
        loss.backward()
        nn.utils.clip_grad_norm_(heads.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        trainer.after_step(epoch, number)
        captions = len(batch.ids)
        running += cross_entropy.item() * captions
        seen += captions
        reporter.advance(len(images), loss=running / seen)
    seconds = time.monotonic() - started
    mean, _ = trainer.epoch_loss(running, seen)
    return EpochEnded(epoch, mean, lr=optimizer.param_groups[0]["lr"], seconds=seconds,
                      images_per_s=len(trainer.train_plan.records) / max(seconds, 1e-9),
                      epochs=config.epochs)
