"""Captioning a raster as one rank of a ``torchrun`` job: the ordinary captioning loop over
this rank's share of the tiles, into its own part file, merged by rank 0 at the end.

As data flows, in every rank:

1. rank 0 readies the output (the ordinary job's checks of raster, model and output; on
   ``resume`` an earlier run's parts merged first; the layer created with run metadata naming
   the world size) while the others wait; a failure there stops every rank with rank 0's
   message, as one process would say it;
2. each rank reads which tiles the output already holds, takes its contiguous share of the
   rest (:func:`.distributed.split_evenly`) and runs the captioning loop on its device into
   ``<output>.part-<rank>-of-<world>.gpkg``, a transaction per batch;
3. after each batch the ranks add up their counts (one small all_reduce): rank 0 reports the
   whole job's progress, and a cancel (Ctrl-C reaches every rank) or a rank's failure stops
   every rank after the batch in hand; ranks done early keep answering until all are done;
4. rank 0 merges the parts into the output (:mod:`..output.merge_parts`) and the ranks
   exchange one summary; rank 0 returns the whole run's result, the others theirs, quietly.

Everything committed is kept whatever stops the run; ``resume`` with any number of processes
merges leftover parts first and captions only the missing tiles.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import MapScribeError
from ..output.geopackage import read_caption_layer_info, read_tile_ids
from ..output.merge_parts import merge_parts, part_path
from ..progress import (
    CANCELLED,
    COMPLETED,
    ProgressCallback,
    ProgressReporter,
    ProgressUpdate,
    Stage,
)
from . import caption_plan
from .caption_params import EXAMPLE_CAPTIONS, CaptionRasterParams, CaptionRasterResult, TileCaption
from .distributed import (
    DistributedError,
    ProcessGroup,
    RankInfo,
    RankStoppedError,
    TileShare,
    divide_cpu_threads,
    rank_0_speaks,
    rank_device,
)

log = logging.getLogger(__name__)

CaptionShare = Callable[..., CaptionRasterResult]
# What each rank adds up after a batch.
_DONE, _TOTAL, _CAPTIONED, _NODATA, _STOP, _FINISHED, _FAILED = range(7)
_COUNTS = ("captioned", "unfinished", "uncertain", "nodata", "failed")


def caption_distributed(params: CaptionRasterParams, info: RankInfo,
                        progress: Optional[ProgressCallback], cancelled: Callable[[], bool],
                        caption_share: CaptionShare) -> CaptionRasterResult:
    """Run this rank's part of the job; ``caption_share(params, progress, cancelled, share)``
    is the ordinary captioning loop (:func:`.caption._caption`), handed in so that this module
    does not import the one that dispatches to it."""
    with rank_0_speaks(info, others_from=logging.WARNING):  # the others: what goes wrong
        return _run_rank(params, info, progress if info.is_main else None, cancelled,
                         caption_share)


def _run_rank(params: CaptionRasterParams, info: RankInfo,
              progress: Optional[ProgressCallback], cancelled: Callable[[], bool],
              caption_share: CaptionShare) -> CaptionRasterResult:
    started = time.monotonic()
    threads = divide_cpu_threads(info)
    params = replace(params, device=rank_device(params.device, info), distributed=False)
    log.info("rank %d of %d (local rank %d): device %s, %s CPU threads", info.rank,
             info.world_size, info.local_rank, params.device, threads or "default")
    with ProcessGroup(info) as group:
        ready, error = _ready_output(params, info, cancelled, caption_share)
        _raise_failures(group.gather(_describe_error(error)), info, error)
        local, error, loop_seconds = _caption_part(params, info, group, progress, cancelled,
                                                   caption_share)
        reports = group.gather(_report(local, error, loop_seconds, info))
        merged_error = _merge(params, info) if info.is_main else None
        # Every rank waits for the merge: a rank that exits with an error makes torchrun stop
        # the others, rank 0 among them.
        merged_error = group.gather(_describe_error(merged_error))[0]
        _raise_failures([report["error"] for report in reports], info, error)
    if merged_error:
        raise (DistributedError if info.is_main else RankStoppedError)(merged_error)
    if not info.is_main or ready is None:
        if local is None:
            return _empty_result(params, info)
        return replace(local, rank=info.rank, world_size=info.world_size)
    return _whole_result(ready, reports, info, time.monotonic() - started)


def _ready_output(params: CaptionRasterParams, info: RankInfo, cancelled, caption_share
                  ) -> Tuple[Optional[CaptionRasterResult], Optional[BaseException]]:
    """Rank 0 runs the ordinary job over no tile: every check, earlier parts, the layer."""
    if not info.is_main:
        return None, None
    try:
        share = TileShare(info.rank, info.world_size, part=False)
        return caption_share(params, None, cancelled, share), None
    except MapScribeError as error:
        return None, error


def _caption_part(params: CaptionRasterParams, info: RankInfo, group: ProcessGroup,
                  progress: Optional[ProgressCallback], cancelled, caption_share
                  ) -> Tuple[Optional[CaptionRasterResult], Optional[BaseException], float]:
    """This rank's share into its part file; then it waits for the others (see _Sync)."""
    sync = _Sync(group, info, progress, cancelled)
    local: Optional[CaptionRasterResult] = None
    error: Optional[BaseException] = None
    started = time.monotonic()
    try:
        layer = read_caption_layer_info(params.output, params.layer)
        done = frozenset(read_tile_ids(params.output, params.layer, skip_failed=True))
        share = TileShare(info.rank, info.world_size, part=True, done=done)
        sync.share = share
        # In the output's CRS (a resumed layer keeps the CRS it was started in).
        part = replace(params, output=part_path(params.output, info.rank, info.world_size),
                       output_crs=layer.srs_wkt, overwrite=False, resume=False)
        with _notes_said_once():
            local = caption_share(part, sync.progress, sync.cancelled, share)
    except MapScribeError as failure:
        error = failure
    except Exception as failure:
        error = failure
        log.error("rank %d: unexpected error", info.rank, exc_info=True)
    loop_seconds = time.monotonic() - started
    sync.finish(failed=error is not None)
    return local, error, loop_seconds


@contextmanager
def _notes_said_once() -> Iterator[None]:
    """The run's notes (imagery far from the model's resolution …) are logged by rank 0 while
    it readies the output; each rank's part run would say them again."""
    planner = logging.getLogger(caption_plan.__name__)
    level = planner.level
    planner.setLevel(logging.ERROR)
    try:
        yield
    finally:
        planner.setLevel(level)


class _Sync:
    """The ranks' meeting after each batch: one all_reduce of [done, total, captioned, nodata,
    stop, finished, failed]. It is called as the loop's cancel check, so every rank calls it
    once per batch; a rank with fewer batches keeps calling it (``finish``) until every rank
    has finished, so the calls always pair up."""

    def __init__(self, group: ProcessGroup, info: RankInfo,
                 progress: Optional[ProgressCallback], cancelled: Callable[[], bool]):
        self.group, self.info, self.outer = group, info, cancelled
        self.share: Optional[TileShare] = None
        self.done = self.captioned = self.nodata = 0
        self.reporter: Optional[ProgressReporter] = None
        self.forward = progress

    def progress(self, update: ProgressUpdate) -> None:
        self.done = update.done
        self.captioned = int(update.values.get("captioned", self.captioned))
        self.nodata = int(update.values.get("nodata", self.nodata))

    def cancelled(self) -> bool:
        sums = self._meet(finished=False, failed=False)
        return bool(sums[_STOP] or sums[_FAILED])

    def finish(self, failed: bool) -> None:
        while self._meet(finished=True, failed=failed)[_FINISHED] < self.info.world_size:
            pass

    def _meet(self, finished: bool, failed: bool) -> List[int]:
        total = self.share.size if self.share is not None else 0
        sums = self.group.sum([self.done, total, self.captioned, self.nodata,
                               int(bool(self.outer())), int(finished), int(failed)])
        if self.forward is not None and sums[_TOTAL]:
            if self.reporter is None:
                self.reporter = ProgressReporter(self.forward, Stage.CAPTIONING, sums[_TOTAL],
                                                 "tiles", span=(0.0, 1.0))
            self.reporter.total = sums[_TOTAL]
            if sums[_DONE] != self.reporter.done:  # ranks waiting for the others: no news
                self.reporter.advance(sums[_DONE] - self.reporter.done,
                                      captioned=sums[_CAPTIONED], nodata=sums[_NODATA])
        return sums


def _describe_error(error: Optional[BaseException]) -> Optional[str]:
    if error is None:
        return None
    if isinstance(error, MapScribeError):
        return str(error)
    return f"unexpected error {type(error).__name__}: {error} (a bug in MapScribe)"


def _raise_failures(messages: List[Optional[str]], info: RankInfo,
                    own: Optional[BaseException]) -> None:
    """Stop every rank when any failed. Rank 0 raises its own error when it is the cause (the
    same error one process would give: bad input reads the same under torchrun), else one
    that names the rank and the cause; the other ranks' errors are for the CLI to keep quiet."""
    failed = [(rank, message) for rank, message in enumerate(messages) if message]
    if not failed:
        return
    if not info.is_main:
        raise RankStoppedError(f"rank {info.rank}: the job stopped; rank 0 reports why.")
    if own is not None and all(message == failed[0][1] for _, message in failed):
        raise own
    causes = "; ".join(f"rank {rank} of {info.world_size} failed: {message}"
                       for rank, message in failed[:3])
    raise DistributedError(f"{causes}. Every rank stopped; the tiles committed so far are kept. "
                           "Fix the cause, then run the same command with --resume.")


def _report(local: Optional[CaptionRasterResult], error: Optional[BaseException],
            loop_seconds: float, info: RankInfo) -> Dict[str, Any]:
    report: Dict[str, Any] = {"rank": info.rank, "error": _describe_error(error),
                              "seconds": loop_seconds}
    if local is not None:
        # The captioning loop's own time (model loading and checks left out), as one process
        # reports its speed.
        if local.tiles_per_second:
            report["seconds"] = local.processed / local.tiles_per_second
        report.update({name: getattr(local, name) for name in _COUNTS})
        report.update(stopped=local.stopped, device=local.device, runtime=local.runtime,
                      examples=[(e.tile_id, e.row, e.col, e.caption) for e in local.examples])
    return report


def _merge(params: CaptionRasterParams, info: RankInfo) -> Optional[BaseException]:
    """Rank 0 merges this run's parts (those that exist: a rank that failed early wrote none)."""
    parts = [part_path(params.output, rank, info.world_size) for rank in range(info.world_size)]
    try:
        merge_parts(params.output, params.layer, parts)
    except MapScribeError as error:
        return MapScribeError(f"the captioned tiles are in the part files beside "
                              f"{params.output}, but merging them failed: {error} Run the "
                              "same command with --resume to merge them.")
    return None


def _empty_result(params: CaptionRasterParams, info: RankInfo) -> CaptionRasterResult:
    return CaptionRasterResult(
        output=Path(params.output), layer=params.layer, stopped=COMPLETED, tiles_total=0,
        captioned=0, unfinished=0, nodata=0, skipped_existing=0, seconds=0.0, tiles_per_second=0.0,
        device="", grid_signature="", grid_rows=0, grid_cols=0, tile_size_pixels=(0, 0),
        tile_size_map=(0.0, 0.0), crs="", model="", rank=info.rank,
        world_size=info.world_size)


def _whole_result(ready: CaptionRasterResult, reports: List[Dict[str, Any]], info: RankInfo,
                  seconds: float) -> CaptionRasterResult:
    """Rank 0's result for the whole job: the output as readied, every rank's counts."""
    result = replace(ready, seconds=seconds, rank=info.rank, world_size=info.world_size,
                     examples=[], notes=list(ready.notes))
    for name in _COUNTS:
        setattr(result, name, sum(int(report.get(name, 0)) for report in reports))
    if any(report.get("stopped") == CANCELLED for report in reports):
        result.stopped = CANCELLED
    slowest = max(report["seconds"] for report in reports)
    result.tiles_per_second = result.processed / slowest if slowest else 0.0
    devices = sorted({report["device"] for report in reports if report.get("device")})
    if devices:
        result.device = f"{', '.join(devices)}; {info.world_size} ranks"
        result.runtime = reports[0].get("runtime") or result.runtime
    seen = set()
    for report in reports:
        for tile_id, row, col, caption in report.get("examples", []):
            if caption not in seen and len(result.examples) < EXAMPLE_CAPTIONS:
                seen.add(caption)
                result.examples.append(TileCaption(tile_id, row, col, caption))
    return result
