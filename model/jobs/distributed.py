"""One process among several of a ``torchrun`` job: who it is, which tiles it captions, and the
few collective calls the ranks need to agree.

PyTorch's own launcher does the distributing (``torchrun`` on one machine, on several, or
under Slurm); nothing here starts processes. ``torchrun`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and ``MASTER_ADDR``/``MASTER_PORT`` in each process's
environment: :meth:`RankInfo.from_env` reads them without importing torch, so a single
process never pays for ``torch.distributed``. :class:`ProcessGroup` imports it only when a
job really runs on several ranks.

The process group always uses gloo: captioning exchanges a few integers per batch and one
small summary at the end, never tensors worth a GPU link, and NCCL refuses two ranks on one
GPU (which is how a GPU is kept busy while the other rank reads tiles). The model itself runs
on ``cuda:LOCAL_RANK`` when there are GPUs.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, FrozenSet, Iterator, List, Mapping, Optional, TypeVar

from ..errors import MapScribeError
from ..geo.tile_sequence import TileSequence
from ..training.shares import contiguous_share

log = logging.getLogger(__name__)

# Ranks wait for each other at three points: while rank 0 readies the output (merging an
# earlier run's parts), after each batch, and while rank 0 merges the parts at the end. A
# state-wide merge takes minutes: the wait may be long, but a dead rank is noticed at once
# (torchrun stops the others, and gloo fails when a peer's connection closes).
COLLECTIVE_TIMEOUT = timedelta(hours=2)
BACKEND = "gloo"
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


class DistributedError(MapScribeError, RuntimeError):
    """The ranks of a distributed run cannot work together (no torchrun, a rank that failed or
    vanished); the message names the rank and the cause, and says what to do."""


class RankStoppedError(DistributedError):
    """Raised in every rank but 0 when the job fails: rank 0 reports the failure (and its
    exit status is the job's), so the front door of another rank stays quiet."""


@dataclass(frozen=True)
class RankInfo:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str = ""

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> Optional["RankInfo"]:
        """The rank torchrun gave this process, or None when it was not started by torchrun
        (no ``RANK`` and ``WORLD_SIZE`` in the environment)."""
        env = os.environ if environ is None else environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return None
        values = {}
        for name in _ENV:
            text = env.get(name, "1" if name == "LOCAL_WORLD_SIZE" else "0")
            try:
                values[name] = int(text)
            except ValueError:
                raise DistributedError(f"{name}={text!r} in the environment is not a whole "
                                       "number: start the job with torchrun, which sets it."
                                       ) from None
        info = cls(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"],
                   max(1, values["LOCAL_WORLD_SIZE"]), env.get("MASTER_ADDR", ""))
        if info.world_size < 1 or not 0 <= info.rank < info.world_size:
            raise DistributedError(f"RANK={info.rank} and WORLD_SIZE={info.world_size} in the "
                                   "environment do not fit together: start the job with "
                                   "torchrun, which sets them.")
        return info

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_rank(requested: bool, environ: Optional[Mapping[str, str]] = None
                     ) -> Optional[RankInfo]:
    """This process's rank when it should run as one of several (``requested``, or torchrun
    started more than one process); None when it runs alone, as a world of one does."""
    info = RankInfo.from_env(environ)
    if info is None:
        if requested:
            raise DistributedError(
                "--distributed needs the processes that torchrun starts: run e.g. "
                "`torchrun --nproc-per-node 2 -m mapscribe.model.cli.main caption …` (RANK and "
                "WORLD_SIZE are not set here).")
        return None
    return info if info.world_size > 1 else None


def is_quiet_rank(environ: Optional[Mapping[str, str]] = None) -> bool:
    """True in every process of a torchrun job but rank 0, which alone speaks for the job (an
    environment torchrun did not set is never quiet)."""
    try:
        info = RankInfo.from_env(environ)
    except DistributedError:
        return False
    return info is not None and not info.is_main


@contextmanager
def rank_0_speaks(info: RankInfo, others_from: int) -> Iterator[None]:
    """Within the block, the engine's log of every rank but 0 says only records of level
    ``others_from`` and above: rank 0 speaks for the job."""
    engine_log = logging.getLogger("mapscribe")
    level = engine_log.level
    if not info.is_main:
        engine_log.setLevel(others_from)
    try:
        yield
    finally:
        engine_log.setLevel(level)


def divide_cpu_threads(info: RankInfo, cpu_count: Optional[int] = None) -> int:
    """Share this machine's cores among the ranks running on it (MAPSCRIBE_THREADS, read by
    the torch and ONNX Runtime runtimes), unless people set MAPSCRIBE_THREADS themselves.
    torchrun's OMP_NUM_THREADS=1 would otherwise leave cores idle when ranks < cores."""
    configured = os.environ.get("MAPSCRIBE_THREADS")
    if configured:
        return int(configured) if configured.isdigit() else 0
    cores = cpu_count or len(os.sched_getaffinity(0))
    threads = max(1, cores // info.local_world_size)
    os.environ["MAPSCRIBE_THREADS"] = str(threads)
    return threads


def rank_device(device: str, info: RankInfo) -> str:
    """The device this rank captions on: with GPUs, 'auto' and 'cuda' become
    ``cuda:LOCAL_RANK`` (modulo the GPUs there are, so two ranks may share one); any other
    choice ('cpu', 'cuda:1') is kept as people gave it."""
    name = (device or "auto").strip().lower()
    if name not in ("auto", "cuda", "gpu"):
        return device
    try:
        import torch
    except ImportError:
        return device
    if not torch.cuda.is_available():
        return device
    return f"cuda:{info.local_rank % torch.cuda.device_count()}"


def split_evenly(tiles: TileSequence, rank: int, world_size: int) -> TileSequence:
    """Rank ``rank``'s share of ``tiles``: one contiguous run in tile_id order (whole rows but
    at its two ends, so a rank reads neighbouring windows and GDAL's block cache serves them),
    shares differing by at most one tile. The same tiles give every rank the same split."""
    share = contiguous_share(len(tiles), rank, world_size)
    ids = tiles.tile_ids()
    return TileSequence(tiles.layout, (tile_id for index, tile_id in enumerate(ids)
                                       if index in share))


@dataclass
class TileShare:
    """Which tiles of the plan one run of the captioning loop takes on.

    ``part`` False: rank 0 readying the output itself (its checks, earlier parts, the layer and
    its metadata) and captioning nothing. ``part`` True: this rank's share of the tiles
    missing from the output (``done`` holds those already there), written to its part file.
    """

    rank: int
    world_size: int
    part: bool
    done: FrozenSet[int] = frozenset()
    size: int = 0  # how many tiles :meth:`select` chose

    def select(self, tiles: TileSequence) -> TileSequence:
        chosen = (split_evenly(tiles.without(self.done), self.rank, self.world_size)
                  if self.part else TileSequence(tiles.layout, ()))
        self.size = len(chosen)
        return chosen

    def metadata(self) -> dict:
        """What the layer's run metadata says about the ranks (``MAPSCRIBE_RUN``)."""
        return {"world_size": self.world_size, "backend": BACKEND,
                "launcher": "torchrun", "split": "contiguous runs of tiles in tile_id order"}


_Group = TypeVar("_Group", bound="ProcessGroup")


class ProcessGroup:
    """torch.distributed's default group for the life of a ``with`` block (created here unless
    the caller already made one), and the collective calls captioning needs (training adds its
    own: :class:`..training.distributed.TrainingGroup`). Any failure of a collective call is a
    :class:`DistributedError` naming this rank, and saying what to do."""

    job = "caption"  # what the messages say a world of one would do instead
    after_failure = ("The tiles committed so far are kept; run the same command with --resume "
                     "to finish.")

    def __init__(self, info: RankInfo, backend: str = BACKEND):
        self.info, self.backend = info, backend
        self._created = False
        self._dist: Any = None

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def world_size(self) -> int:
        return self.info.world_size

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    def __enter__(self: _Group) -> _Group:
        try:
            import torch.distributed as dist
        except ImportError:
            raise DistributedError("a distributed run needs torch (torch.distributed); install "
                                   f"it, or {self.job} with one process.") from None
        if not dist.is_available():
            raise DistributedError("this build of torch has no torch.distributed: "
                                   f"{self.job} with one process.")
        self._dist = dist
        self._before_joining()
        if not dist.is_initialized():
            self._call("join the process group", lambda: dist.init_process_group(
                self.backend, init_method="env://", rank=self.rank,
                world_size=self.world_size, timeout=COLLECTIVE_TIMEOUT))
            self._created = True
        return self

    def _before_joining(self) -> None:
        """What a rank readies before the group is made (e.g. its GPU for NCCL)."""

    def __exit__(self, *exc_info: Any) -> None:
        if self._created and self._dist.is_initialized():
            self._dist.destroy_process_group()

    def sum(self, values: List[int]) -> List[int]:
        """Every rank's ``values`` added up, element by element (one small all_reduce)."""
        import torch

        tensor = torch.tensor(values, dtype=torch.int64)
        self._call("add up the ranks' counts", lambda: self._dist.all_reduce(tensor))
        return [int(value) for value in tensor.tolist()]

    def gather(self, value: Any) -> List[Any]:
        """Every rank's ``value`` (small, picklable; from our own ranks only), by rank."""
        gathered: List[Any] = [None] * self.world_size
        self._call("gather the ranks' results",
                   lambda: self._dist.all_gather_object(gathered, value))
        return gathered

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (RuntimeError, ValueError) as error:  # gloo/NCCL: a peer closed, a timeout
            raise DistributedError(
                f"rank {self.rank} of {self.world_size} could not {what} "
                f"({first_sentence(error)}): another rank has stopped or cannot be reached "
                f"(torchrun's report names it). {self.after_failure}") from None


def first_sentence(error: BaseException) -> str:
    """gloo's message without its source file, e.g. 'Connection closed by peer [10.0.0.2]:7'."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().split("\n")[0])
    return text.split(". ")[0][:200] or type(error).__name__
