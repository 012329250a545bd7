"""The learning-rate finder of arcgis.learn / fastai: train briefly with a growing learning rate
and suggest the rate where the loss falls fastest.

The decoder's weights and the random state are restored afterwards, so ``lr_find()`` changes
nothing about the model that ``fit()`` will train.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import torch
from torch import nn

from ..data.features import FeatureStore, encode_records
from ..data.records import CaptionRecord
from .batches import CaptionBatchPlan, _autocast, _feature_batch, decoder_loss
from .config import FitConfig


@dataclass
class LrFindResult:
    learning_rates: List[float]
    losses: List[float]            # smoothed training loss at each rate
    suggested_lr: float

    def plot(self):
        """A matplotlib figure of loss against learning rate (log scale), suggestion marked."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 4))
        axes = figure.add_subplot(1, 1, 1)
        axes.plot(self.learning_rates, self.losses)
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("loss (smoothed)")
        axes.axvline(self.suggested_lr, color="tab:red", linestyle="--",
                     label=f"suggested {self.suggested_lr:.1e}")
        axes.legend()
        figure.tight_layout()
        return figure


def lr_find(captioner, store: FeatureStore, plan: CaptionBatchPlan, config: FitConfig,
            device, start_lr: float = 1e-6, end_lr: float = 1.0, steps: int = 100,
            smoothing: float = 0.9, divergence: float = 4.0) -> LrFindResult:
    """Sweep the learning rate exponentially from ``start_lr`` to ``end_lr`` over ``steps``
    batches (stopping early when the loss exceeds ``divergence`` × its best)."""
    heads = captioner.heads()
    saved_weights = copy.deepcopy(heads.state_dict())
    saved_rng = (torch.get_rng_state(), random.getstate())
    rng = random.Random(config.seed)
    batches: List[List[int]] = []
    while len(batches) < steps:
        batches += plan.epoch_batches(config.batch_size, rng)
    optimizer = torch.optim.AdamW(heads.parameters(), lr=start_lr,
                                  weight_decay=config.weight_decay)
    ratio = (end_lr / start_lr) ** (1.0 / max(1, steps - 1))
    rates, losses = [], []
    average, best = 0.0, math.inf
    heads.train()
    try:
        for step, batch in enumerate(batches[:steps]):
            lr = start_lr * ratio ** step
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, config):
                loss, _ = decoder_loss(captioner, _feature_batch(store, plan, batch, rng, device),
                                       config)
            loss.backward()
            nn.utils.clip_grad_norm_(heads.parameters(), config.grad_clip)
            optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                break
            average = smoothing * average + (1 - smoothing) * value
            smoothed = average / (1 - smoothing ** (step + 1))
            rates.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            if step > 5 and smoothed > divergence * best:
                break
    finally:
        heads.load_state_dict(saved_weights)
        torch.set_rng_state(saved_rng[0])
        random.setstate(saved_rng[1])
        captioner.eval()
    return LrFindResult(rates, losses, suggest_lr(rates, losses))


def suggest_lr(rates: List[float], losses: List[float], skip_start: int = 10) -> float:
    """The rate where the smoothed loss falls fastest per log step, looked for between the
    first ``skip_start`` points (where the running average is still settling) and the lowest
    loss; a tenth of the lowest loss's rate when the curve is too short for that."""
    if not rates:
        return 1e-3
    lowest = min(range(len(losses)), key=losses.__getitem__)
    first = min(skip_start, max(0, lowest - 3))
    if lowest - first < 3:
        return float(rates[lowest]) / 10
    slopes = {i: (losses[i + 1] - losses[i - 1]) / (math.log(rates[i + 1]) - math.log(rates[i - 1]))
              for i in range(first + 1, lowest)}
    return float(rates[min(slopes, key=slopes.__getitem__)])


def find_learning_rate(captioner, records: Sequence[CaptionRecord], config: FitConfig,
                       device) -> LrFindResult:
    """The learning-rate finder on ``records``' cached features (one version of each image)."""
    plan = CaptionBatchPlan.build(records, captioner.vocabulary, captioner.config.max_words,
                                  captioner.config.themes)
    cache = Path(config.feature_cache_dir) if config.feature_cache_dir else None
    store = encode_records(captioner, records, variants=1, cache_dir=cache)
    return lr_find(captioner, store, plan, config, device)
