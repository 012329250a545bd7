"""End-to-end training: images go through the encoder every step and the encoder learns too.

Slower than training on cached features (the encoder runs forward and backward on every image
of every epoch) but lets the features adapt to overhead imagery. Uses the same epoch loop,
validation and checkpoints as :mod:`mapscribe.model.training`.
"""

from __future__ import annotations

import math
import time
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


def fit_end_to_end(trainer: _Trainer, resume_from) -> FitResult:
    captioner, config, device = trainer.captioner, trainer.config, trainer.device
    _seed(config.seed)
    pairs = CaptionPairs(trainer.train_plan.records, captioner.vocabulary,
                         captioner.image_input, captioner.config.max_words, augment=True,
                         seed=config.seed, with_record=True)
    if device.type == "cuda":
        captioner.encoder.to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(pairs) / config.batch_size)

    def run_epoch(epoch, optimizer, scheduler, loop_rng) -> Optional[EpochEnded]:
        generator = torch.Generator().manual_seed(loop_rng["batches"].randrange(2 ** 31))
        loader = DataLoader(pairs, batch_size=config.batch_size, shuffle=True,
                            collate_fn=collate_pairs, generator=generator)
        captioner.train()
        reporter = trainer.plan.reporter(f"epoch {epoch}", Stage.TRAINING, len(pairs),
                                         "captions", epoch=epoch, epochs=config.epochs)
        started, running, seen = time.monotonic(), 0.0, 0
        for images, ids, lengths, records in loader:
            if trainer.cancelled():
                return None
            images, ids, lengths = images.to(device), ids.to(device), lengths.to(device)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, config):
                batch = FeatureBatch(captioner.encode(images), ids, lengths,
                                     torch.arange(len(ids), device=device),
                                     trainer.train_plan.themes[records].to(device))
                loss, cross_entropy = decoder_loss(captioner, batch, config)
            loss.backward()
            nn.utils.clip_grad_norm_(captioner.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            running += cross_entropy.item() * len(ids)
            seen += len(ids)
            reporter.advance(len(ids), loss=running / seen)
        seconds = time.monotonic() - started
        return EpochEnded(epoch, running / max(1, seen), lr=optimizer.param_groups[0]["lr"],
                          seconds=seconds, images_per_s=seen / max(seconds, 1e-9),
                          epochs=config.epochs)

    def val_features():
        # The encoder changed during the epoch: encode the validation images again.
        return encode_records(captioner, trainer.val_plan.records, variants=1,
                              progress=ProgressReporter(trainer.progress, Stage.ENCODING,
                                                        len(trainer.val_plan.records), "images"))

    return run_epochs(trainer, steps_per_epoch, run_epoch, val_features, resume_from)
