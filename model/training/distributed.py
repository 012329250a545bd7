"""Training as one rank of a ``torchrun`` job: the process group, the few collective calls
training needs, the feature cache shared among the ranks, and the replica check.

torchrun starts the processes (:mod:`..jobs.distributed` reads who this one is); here the ranks
join one group — gloo on the CPU, and on GPUs NCCL for the gradients (``cuda:LOCAL_RANK``)
beside gloo for the small Python objects the ranks exchange — and the model is wrapped in
:class:`torch.nn.parallel.DistributedDataParallel` by the training loops.

The replica check (``MAPSCRIBE_CHECK_REPLICAS=1`` or ``FitConfig.check_replicas``) gathers a
float64 fingerprint of the trained parameters after every optimizer step and stops the run
with the first step and parameter where the ranks differ: DDP's promise (every rank holds the
same weights) checked rather than trusted.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..errors import MapScribeError
from ..jobs.distributed import DistributedError, ProcessGroup, RankInfo, RankStoppedError
from ..progress import Cancelled
from .shares import contiguous_share

log = logging.getLogger(__name__)

CHECK_REPLICAS_ENV = "MAPSCRIBE_CHECK_REPLICAS"
T = TypeVar("T")


class ReplicaMismatchError(DistributedError):
    """The ranks' trained parameters differ after a step: DDP's replicas diverged."""


def check_replicas_requested(configured: bool) -> bool:
    return configured or os.environ.get(CHECK_REPLICAS_ENV, "").strip() not in ("", "0")


def backend_for(device: torch.device) -> str:
    """gloo for CPU tensors always (the ranks' Python objects, the feature cache); NCCL for the
    gradients when the model is on a GPU."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


class TrainingGroup(ProcessGroup):
    """The process group of a training run, on ``device``, and the collective calls of
    training. Every failure of a collective call is a :class:`DistributedError` naming this
    rank."""

    job = "train"
    after_failure = ("The last checkpoint is kept: run the same command with --resume "
                     "CHECKPOINT to continue.")

    def __init__(self, info: RankInfo, device: torch.device):
        super().__init__(info, backend_for(device))
        self.device = device

    def _before_joining(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    # -- collective calls ---------------------------------------------------------------------
    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (a cancel every rank obeys at the
        same step)."""
        tensor = torch.tensor([int(bool(flag))], dtype=torch.int64)
        self._call("agree whether to stop", lambda: dist.all_reduce(tensor))
        return bool(tensor.item())

    def barrier(self, what: str) -> None:
        self._call(what, lambda: dist.barrier())

    def gather_rows(self, rows: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """Every rank's ``rows`` (CPU, same trailing shape), concatenated in rank order;
        ``counts[r]``: how many rank r has. Sent as bytes: gloo sums no float16, and bytes
        travel whatever the type."""
        padded = torch.zeros((max(counts), *rows.shape[1:]), dtype=rows.dtype)
        padded[:len(rows)] = rows
        data = padded.view(torch.uint8)
        parts = [torch.empty_like(data) for _ in range(self.world_size)]
        self._call("share the encoded features", lambda: dist.all_gather(parts, data))
        return torch.cat([part.view(rows.dtype)[:count] for part, count in zip(parts, counts)])

    def together(self, what: str, action: Callable[[], T]) -> T:
        """``action`` on every rank; a failure on any stops every rank. Rank 0 raises its own
        error when it is the cause (bad input reads as one process says it), else one naming
        the rank that failed; the other ranks raise :class:`RankStoppedError`."""
        value: Any = None
        error: Optional[BaseException] = None
        try:
            value = action()
        except MapScribeError as failure:
            error = failure
        self._raise_failures(what, self.gather(None if error is None else str(error)), error)
        return value

    def on_main(self, what: str, action: Callable[[], T]) -> T:
        """``action`` on rank 0 alone (writing the checkpoint or the model, choosing the
        learning rate) while the others wait; every rank gets rank 0's result."""
        value: Any = None
        error: Optional[BaseException] = None
        if self.is_main:
            try:
                value = action()
            except MapScribeError as failure:
                error = failure
        outcome = self.gather((None if error is None else str(error), value)
                              if self.is_main else None)[0]
        self._raise_failures(what, [outcome[0]], error)
        return outcome[1]

    def agree(self, what: str, value: Any) -> None:
        """Stop every rank when the ranks' ``value`` differ (e.g. nodes that see different
        files under the dataset's path)."""
        values = self.gather(value)
        differing = [rank for rank, theirs in enumerate(values) if theirs != values[0]]
        if differing:
            self._raise_failures(what, [None] * len(values), None, f"rank {differing[0]} "
                                 "found other data than rank 0: every rank must see the "
                                 "same dataset folder (a shared filesystem).")

    def _raise_failures(self, what: str, messages: List[Optional[str]],
                        error: Optional[BaseException], cause: str = "") -> None:
        failed = [(rank, message) for rank, message in enumerate(messages) if message]
        if not failed and not cause:
            return
        if not self.is_main:
            raise RankStoppedError(f"rank {self.rank}: training stopped ({what}); rank 0 "
                                   "reports why.")
        if error is not None and failed[0][0] == 0:
            raise error
        causes = cause or "; ".join(f"rank {rank} of {self.world_size}: {message}"
                                    for rank, message in failed[:3])
        raise DistributedError(f"every rank stopped ({what}): {causes}. Check "
                               "that every node sees the same files, then run the same "
                               "command again (--resume CHECKPOINT keeps the epochs done).")


# -- the feature cache, encoded by every rank ---------------------------------------------------
def encode_shared(group: TrainingGroup, captioner, records: Sequence, variants: int,
                  cache: Optional[Path], augment: bool,
                  reporter: Callable[[int], Any], cancelled: Callable[[], bool]):
    """Every rank's FeatureStore of all ``records``: read whole from ``cache`` when every rank
    finds it there; else each rank encodes its contiguous run of the images, the runs are
    gathered (all_gather: no shared filesystem needed), and rank 0 keeps the whole store in
    ``cache`` for the next run, of any world size."""
    from ..data.features import (
        FeatureStore,
        encode_records,
        feature_cache_path,
        save_feature_cache,
    )

    whole = feature_cache_path(captioner, records, variants, augment, cache)
    if whole is not None and not group.any(not whole.is_file()):
        return encode_records(captioner, records, variants=variants, cache_dir=cache,
                              resolution_augmentation=augment)
    share = contiguous_share(len(records), group.rank, group.world_size)
    stopped = False
    try:
        store = encode_records(captioner, list(records)[share.start:share.stop],
                               variants=variants, resolution_augmentation=augment,
                               progress=reporter(len(share)), cancelled=cancelled)
    except Cancelled:
        stopped = True
    # Ranks that stopped and ranks that finished agree before the all_gather.
    if group.any(stopped):
        raise Cancelled("cancelled while encoding images")
    counts = [len(contiguous_share(len(records), rank, group.world_size))
              for rank in range(group.world_size)]
    gathered = FeatureStore(group.gather_rows(store.features, counts), store.variants)
    if whole is not None:
        group.on_main("keep the feature cache", lambda: save_feature_cache(whole, gathered))
    return gathered


# -- the model every rank trains --------------------------------------------------------------
class _Modules(nn.Module):
    """What DistributedDataParallel wraps: the trained modules, with a forward that computes
    the loss (DDP prepares its gradient all-reduce in its own forward)."""

    def __init__(self, trained: nn.Module, loss: Callable[..., Tuple[torch.Tensor, ...]]):
        super().__init__()
        self.trained = trained
        self._loss = loss

    def forward(self, *args: Any) -> Tuple[torch.Tensor, ...]:
        return self._loss(*args)


def data_parallel(trained: nn.Module, loss: Callable[..., Tuple[torch.Tensor, ...]],
                  find_unused: bool) -> nn.Module:
    """``loss`` wrapped so that its backward all-reduces (averages) the gradients of
    ``trained``'s parameters; DDP also copies rank 0's weights to every rank here."""
    from torch.nn.parallel import DistributedDataParallel

    # Buffers never change during training (a frozen or batch-norm-frozen encoder): no
    # broadcast before every step (torch ≥ 2.14 names that forward_sync_buffers and warns
    # about the older name). device_ids=None: the module sits on one device already.
    parameters = inspect.signature(DistributedDataParallel.__init__).parameters
    buffers: Dict[str, Any] = ({"forward_sync_buffers": False}
                               if "forward_sync_buffers" in parameters
                               else {"broadcast_buffers": False})
    return DistributedDataParallel(_Modules(trained, loss), device_ids=None,
                                   find_unused_parameters=find_unused, **buffers)


# -- the replica check ------------------------------------------------------------------------
def fingerprint(parameters: Sequence[Tuple[str, torch.Tensor]]) -> torch.Tensor:
    """Per parameter: its sum and a position-weighted sum, in float64 (a changed, swapped or
    shifted weight changes one of them)."""
    values = []
    for _, tensor in parameters:
        flat = tensor.detach().flatten().double()
        weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
        values += [flat.sum(), (flat * weights.remainder_(1009).add_(1)).sum()]
    return torch.stack(values).cpu() if values else torch.zeros(0, dtype=torch.float64)


class ReplicaCheck:
    """After every optimizer step: gather the ranks' fingerprints and raise at the first
    difference. ``steps`` counts the steps checked (and found identical)."""

    def __init__(self, group: TrainingGroup, parameters: Sequence[Tuple[str, torch.Tensor]]):
        self.group = group
        self.parameters = [(name, p) for name, p in parameters if p.requires_grad]
        self.steps = 0

    def __call__(self, epoch: int, step: int) -> None:
        mine = fingerprint(self.parameters)
        every = [torch.empty_like(mine) for _ in range(self.group.world_size)]
        self.group._call("compare the ranks' parameters", lambda: dist.all_gather(every, mine))
        for rank, theirs in enumerate(every):
            if not torch.equal(theirs, mine):
                index = int((theirs != mine).nonzero()[0]) // 2
                raise ReplicaMismatchError(
                    f"rank {self.group.rank}: after step {step} of epoch {epoch} the trained "
                    f"parameters differ from rank {rank}'s (first: "
                    f"{self.parameters[index][0]}): the DDP replicas diverged. This is a bug "
                    "in MapScribe or a nondeterministic kernel; report it with the command "
                    f"and the torch version ({torch.__version__}).")
        self.steps += 1
