"""Who trains on what when several processes train one model (DistributedDataParallel), and
the learning rate for the batch they make together. Plain functions, no torch.distributed:
a world of one goes through the same code and gets exactly what one process always got.

The sampler rule (:func:`epoch_steps`): every rank shuffles the epoch's images with the same
random stream (so every rank knows the whole epoch), the order is cut into *steps* of
``batch_size × world_size`` images, and each step into ``world_size`` disjoint slices that
differ by at most one image. Every rank makes the same number of steps (DDP's all-reduces
pair up), the slices of an epoch cover it exactly once, and a rank's share depends only on
the epoch's shuffle, its rank and the world size: a checkpoint needs no sampler state, and a
run resumed with another world size simply shares the next epoch another way.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import List, Sequence

log = logging.getLogger(__name__)

Step = List[List[int]]   # one slice of items per rank


def epoch_steps(order: Sequence[int], batch_size: int, world_size: int) -> List[Step]:
    """The epoch's ``order`` (already shuffled) cut into steps of ``batch_size × world_size``
    items, each split into ``world_size`` slices. A last step too small to give every rank an
    item is folded into the one before it (a slice may then hold up to ``batch_size + 1``
    items): no rank ever has an empty slice. With one rank: plain batches of ``batch_size``."""
    if world_size < 1 or batch_size < 1:
        raise ValueError(f"batch size {batch_size} and world size {world_size} must be ≥ 1")
    if len(order) < world_size:
        raise ValueError(f"{len(order)} training items cannot be shared among {world_size} "
                         "ranks: use fewer processes or more training images")
    step = batch_size * world_size
    starts = list(range(0, len(order), step))
    if len(starts) > 1 and len(order) - starts[-1] < world_size:
        starts.pop()
    bounds = starts[1:] + [len(order)]
    steps = []
    for start, stop in zip(starts, bounds):
        items = list(order[start:stop])
        size = len(items)
        steps.append([items[rank * size // world_size:(rank + 1) * size // world_size]
                      for rank in range(world_size)])
    return steps


def rank_share(order: Sequence[int], batch_size: int, rank: int, world_size: int
               ) -> List[List[int]]:
    """Rank ``rank``'s batches of the epoch: its slice of every step (the DistributedSampler
    of this project, applied to the epoch's whole shuffled order)."""
    return [step[rank] for step in epoch_steps(order, batch_size, world_size)]


def steps_per_epoch(items: int, batch_size: int, world_size: int) -> int:
    """How many optimizer steps an epoch of ``items`` makes on every rank (the steps of
    :func:`epoch_steps`, whatever the order); 1 for fewer items than ranks, which fit()
    refuses before any step (the schedule is still planned over at least one step)."""
    if items < world_size:
        return 1
    return len(epoch_steps(range(items), batch_size, world_size))


def contiguous_share(count: int, rank: int, world_size: int) -> range:
    """Rank ``rank``'s run of ``count`` items (encoding, validation): runs differ by at most
    one item and, in rank order, cover every item once."""
    return range(rank * count // world_size, (rank + 1) * count // world_size)


# -- the learning rate for the effective batch ------------------------------------------------
# AdamW normalises each gradient by its running magnitude, so the linear rule of SGD
# (Goyal et al. 2017) overshoots; the square-root rule keeps the noise of an update the same
# when the batch grows k-fold (Malladi et al. 2022, "On the SDEs and scaling rules for
# adaptive gradient algorithms"). The warm-up (a fraction of all steps) stays as it is.
LR_RULE = "sqrt"


@dataclass(frozen=True)
class LearningRates:
    """The peak rates the optimizer uses: the configured ones scaled for the effective batch."""

    decoder: float
    encoder: float
    factor: float
    effective_batch: int

    def describe(self, configured_lr: float, world_size: int) -> str:
        return (f"learning rate {self.decoder:.3g} (encoder {self.encoder:.3g}) = configured "
                f"{configured_lr:.3g} × √{world_size} for the effective batch of "
                f"{self.effective_batch} images ({world_size} ranks)")


def scaled_learning_rates(lr: float, encoder_lr: float, batch_size: int,
                          world_size: int) -> LearningRates:
    """The one place the learning-rate rule is applied: ``lr`` and ``encoder_lr`` are what one
    process uses with ``batch_size`` images per step; ``world_size`` ranks each taking
    ``batch_size`` make a step of ``batch_size × world_size`` images, trained at √world_size
    times the rates."""
    factor = math.sqrt(world_size)
    return LearningRates(lr * factor, encoder_lr * factor, factor, batch_size * world_size)
