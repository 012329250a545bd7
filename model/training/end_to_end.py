"""End-to-end training: images go through the encoder every step and the encoder learns too.

Slower than training on cached features (the encoder runs forward and backward on every image
of every epoch) but lets the features adapt to overhead imagery. Uses the same epoch loop,
validation and checkpoints as :mod:`mapscribe.model.training`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Optional

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.datasets import CaptionPairs, collate_pairs
from ..data.features import encode_records
from ..progress import EpochEnded, ProgressReporter, Stage
from .batches import FeatureBatch, _autocast, decoder_loss
from .config import FitResult
from .loop import _seed, _Trainer, run_epochs
from .shares import contiguous_share, rank_share, steps_per_epoch

# Rank r's augmentation stream starts at seed + r × this: streams of no two ranks overlap.
PAIR_SEED_STRIDE = 1_000_003


def fit_end_to_end(trainer: _Trainer, resume_from) -> FitResult:
    captioner, config, device = trainer.captioner, trainer.config, trainer.device
    _seed(config.seed)
    # Each rank's own augmentation stream (rank 0's is one process's).
    pairs = CaptionPairs(trainer.train_plan.records, captioner.vocabulary,
                         captioner.image_input, captioner.config.max_words, augment=True,
                         seed=config.seed + PAIR_SEED_STRIDE * trainer.rank, with_record=True)
    if device.type == "cuda":
        captioner.encoder.to(memory_format=torch.channels_last)
    steps = steps_per_epoch(len(pairs), config.batch_size, trainer.world_size)

    def step_loss(images, batch: FeatureBatch):
        return decoder_loss(captioner, replace(batch, features=captioner.encode(images)), config)

    loss_of = trainer.loss_function(step_loss)

    def run_epoch(epoch, optimizer, scheduler, loop_rng) -> Optional[EpochEnded]:
        generator = torch.Generator().manual_seed(loop_rng["batches"].randrange(2 ** 31))
        # The epoch's order of every caption, alike on every rank; this rank's slices of it
        # (with one rank: what DataLoader(shuffle=True) gives with this generator).
        order = torch.randperm(len(pairs), generator=generator).tolist()
        batches = rank_share(order, config.batch_size, trainer.rank, trainer.world_size)
        loader = DataLoader(pairs, batch_sampler=batches, collate_fn=collate_pairs)
        captioner.train()
        reporter = trainer.plan.reporter(f"epoch {epoch}", Stage.TRAINING,
                                         sum(len(batch) for batch in batches), "captions",
                                         epoch=epoch, epochs=config.epochs)
        started, running, seen = time.monotonic(), 0.0, 0
        for number, (images, ids, lengths, records) in enumerate(loader, 1):
            if trainer.cancelled():
                return None
            images, ids, lengths = images.to(device), ids.to(device), lengths.to(device)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, config):
                # The features are the encoder's, computed inside the step (under DDP's eye).
                batch = FeatureBatch(images, ids, lengths, torch.arange(len(ids), device=device),
                                     trainer.train_plan.themes[records].to(device))
                loss, cross_entropy = loss_of(images, batch)
            loss.backward()
            nn.utils.clip_grad_norm_(captioner.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            trainer.after_step(epoch, number)
            running += cross_entropy.item() * len(ids)
            seen += len(ids)
            reporter.advance(len(ids), loss=running / seen)
        seconds = time.monotonic() - started
        mean, total = trainer.epoch_loss(running, seen)
        return EpochEnded(epoch, mean, lr=optimizer.param_groups[0]["lr"],
                          seconds=seconds, images_per_s=total / max(seconds, 1e-9),
                          epochs=config.epochs)

    def val_features():
        # The encoder changed during the epoch: encode the validation images again (under
        # torchrun each rank its own run of them, which it alone validates).
        records = trainer.val_plan.records
        if trainer.group is not None:
            share = contiguous_share(len(records), trainer.rank, trainer.world_size)
            records = records[share.start:share.stop]
        return encode_records(captioner, records, variants=1,
                              progress=ProgressReporter(trainer.progress, Stage.ENCODING,
                                                        max(1, len(records)), "images"))

    return run_epochs(trainer, steps, run_epoch, val_features, resume_from,
                      store_is_share=trainer.group is not None)
