"""Reading tiles: rasterio windows (or a web service's tiles) → 8-bit RGB arrays at the model's
input size, by a pool of threads ahead of the model.

* Each :class:`~.tiling.TileWindow` is read with ``out_shape`` so GDAL resamples it (and uses
  overviews when it decimates); edge tiles are read boundless, filled with nodata.
* Bands: 1, 2, 3 by default; one band is replicated to gray (with a warning); an alpha band is
  used as a mask, never as a colour.
* Valid pixels: GDAL's mask (nodata, alpha, internal mask) and, for float data, finite values.
  A tile whose invalid fraction exceeds ``ReadParams.max_invalid_fraction`` is flagged
  ``is_nodata`` so the caller records it as 'nodata' instead of captioning it.
* 16-bit and float data are scaled to 8 bit by ONE percentile stretch per raster
  (:class:`StretchParams`), computed once from a decimated read (overviews) or a sample of
  windows, never per tile: a dark tile stays dark. 8-bit data passes through unchanged.
* :class:`TileReader` reads ahead of the consumer into a bounded queue, so memory is bounded by
  about ``(queue_depth + 1) × batch_size`` tiles whatever the raster's size. A local file is
  read by one thread; a source on the network by ``workers`` threads at once (each with its own
  dataset or connection), so that waiting for the network overlaps captioning. Batches keep the
  order of the tiles whatever thread read them.
* A tile that a network source could not deliver after its retries (:class:`TileUnavailableError`)
  is passed on as *failed*, with the reason, and reading goes on; after
  ``failure_limit`` failed tiles in a row the source is taken to be down and the reader stops
  with a :class:`SourceError`. Any other error stops the reader and reaches the consumer.

Output layout: channels first, ``(3, S, S)`` uint8 per tile and ``(N, 3, S, S)`` per batch,
channels in R, G, B order — what ``torch.from_numpy`` and torchvision's tensor transforms take.
Invalid pixels are 0.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling

from ..errors import MapScribeError
from .errors import TileReadError
from .http_fetch import TileUnavailableError
from .read_plan import (
    ReadParams,
    ReadPlan,
    StretchParams,
    TileBatch,
    _inside_raster,
    _read_raw,
    prepare_reading,
)
from .sources import SourceError
from .tiling import TileWindow

log = logging.getLogger(__name__)


def read_tile(dataset: Any, tile: TileWindow, plan: ReadPlan, params: ReadParams
              ) -> Tuple[np.ndarray, float]:
    """Read one tile from an open dataset → ((3, S, S) uint8 R, G, B, valid fraction)."""
    size = params.output_size
    data, valid = _read_raw(dataset, plan, tile.window, (size, size),
                            Resampling[params.resampling], tile.is_edge)
    if tile.is_edge:
        # rasterio masks the filled part already; this keeps it so when the fill value is a
        # valid value (no nodata declared).
        valid &= _inside_raster(tile.window, dataset.width, dataset.height, size)
    if plan.passthrough:                           # 8-bit data needs no stretch
        pixels = data
    else:
        assert plan.stretch is not None            # prepare_reading made one
        pixels = plan.stretch.apply(data)          # (B, S, S) uint8
    pixels = np.where(valid[None], pixels, 0).astype(np.uint8)
    if plan.gray:
        pixels = np.repeat(pixels, 3, axis=0)
    return pixels, float(valid.mean())


# --------------------------------------------------------------------------------------------
# What reads tiles in one thread
# --------------------------------------------------------------------------------------------
class FileTileFetcher:
    """Reads tiles from a raster opened with rasterio in the calling thread (rasterio datasets
    must not cross threads). ``retry``: (tries, first wait in seconds) for a source on the
    network, whose reads may fail for a while; None: a failed read is an error."""

    def __init__(self, path: str, plan: ReadPlan, params: ReadParams, *,
                 open_options: Optional[Mapping[str, str]] = None,
                 env: Optional[Mapping[str, Any]] = None,
                 retry: Optional[Tuple[int, float]] = None,
                 stop: Optional[threading.Event] = None,
                 describe_error: Callable[[str], str] = str):
        self.plan, self.params, self.retry = plan, params, retry
        self.stop = stop or threading.Event()
        self.describe_error = describe_error
        self._env = rasterio.Env(**dict(env or {}))
        self._env.__enter__()
        try:
            self.dataset = self._patiently(lambda: rasterio.open(path, **dict(open_options or {})),
                                           f"opening {path}")
        except BaseException:
            self._env.__exit__(None, None, None)
            raise

    def read(self, tile: TileWindow) -> Tuple[np.ndarray, float]:
        return self._patiently(lambda: read_tile(self.dataset, tile, self.plan, self.params),
                               f"tile {tile.tile_id}")

    def _patiently(self, action: Callable[[], Any], what: str) -> Any:
        if self.retry is None:
            return action()
        tries, wait = self.retry
        for attempt in range(tries):
            try:
                return action()
            except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError) as error:
                if attempt == tries - 1 or self.stop.wait(wait * 2 ** attempt):
                    raise TileUnavailableError(f"{what}: {self.describe_error(str(error))} (after "
                                          f"{attempt + 1} tries)") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        try:
            self.dataset.close()
        finally:
            self._env.__exit__(None, None, None)


FetcherFactory = Callable[[threading.Event], Any]  # stop event → an object with read and close


# --------------------------------------------------------------------------------------------
# The read-ahead pool
# --------------------------------------------------------------------------------------------
_END = object()


@dataclass
class _Failure:
    error: BaseException
    tile: Optional[TileWindow]


@dataclass
class _Read:
    tile: TileWindow
    pixels: Optional[np.ndarray]
    valid: float
    failure: Optional[str] = None


class TileReader:
    """Reads tiles in background threads, a bounded number of batches ahead of the consumer.

    Use it once, as a context manager::

        with TileReader(path, grid.tiles, params) as reader:
            for batch in reader:          # TileBatch
                ...

    Leaving the loop early (break, an exception, a cancel) stops the threads; an error in a
    thread is raised in the consumer as :class:`TileReadError` naming the source and the tile
    (an engine error such as :class:`SourceError` is raised as it is). ``open_fetcher`` (called
    in each reading thread with the reader's stop event) makes what reads there; by default a
    :class:`FileTileFetcher` of ``path``.
    """

    def __init__(self, path: Union[str, Path], tiles: Sequence[TileWindow], params: ReadParams,
                 plan: Optional[ReadPlan] = None, *,
                 open_fetcher: Optional[FetcherFactory] = None, workers: int = 1,
                 failure_limit: Optional[int] = None):
        self.path = str(path)
        # A TileSequence makes its tiles as they are read; anything else becomes a list.
        self.tiles = tiles if isinstance(tiles, Sequence) else list(tiles)
        self.params = params
        self.plan = plan if plan is not None else prepare_reading(path, params)
        self.workers = max(1, int(workers))
        self.failure_limit = failure_limit
        self._open_fetcher = open_fetcher or (lambda stop: FileTileFetcher(
            self.path, self.plan, self.params, stop=stop))
        self.tiles_read = 0  # tiles read so far by the threads (for tests and progress)
        self.failed = 0
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=params.queue_depth)
        # Tiles handed to the threads and not yet taken by the consumer.
        self._slots = threading.Semaphore((params.queue_depth + 1) * params.batch_size
                                          + self.workers - 1)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._threads: List[threading.Thread] = []
        self._used = False

    @property
    def stretch(self) -> Optional[StretchParams]:
        return self.plan.stretch

    @property
    def is_alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def __enter__(self) -> "TileReader":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[TileBatch]:
        if self._used:
            raise RuntimeError("a TileReader reads its tiles once; make a new one to read again")
        self._used = True
        self._thread = threading.Thread(target=self._coordinate, name="mapscribe-tile-reader",
                                        daemon=True)
        self._threads.append(self._thread)
        self._thread.start()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.5)
                except queue.Empty:
                    if not self._thread.is_alive() and self._queue.empty():
                        raise TileReadError(f"the tile reader of {self.path} stopped without "
                                            "a reason", self.path, None) from None
                    continue
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    if isinstance(item.error, MapScribeError):
                        raise item.error
                    raise self._error(item) from item.error
                for _ in item.tiles:
                    self._slots.release()
                yield item
        finally:
            self.close()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the threads and wait for them (a read under way finishes first)."""
        self._stop.set()
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            self._drain()
            thread.join(max(0.0, deadline - time.monotonic()))
        self._drain()
        if self.is_alive:
            log.warning("the tile reader of %s did not stop within %.0f s", self.path, timeout)

    def _drain(self) -> None:
        try:
            while True:
                item = self._queue.get_nowait()
                if isinstance(item, TileBatch):
                    for _ in item.tiles:
                        self._slots.release()
        except queue.Empty:
            pass

    def _error(self, failure: _Failure) -> TileReadError:
        tile, error = failure.tile, failure.error
        if tile is None:
            where = f"opening {self.path} for reading"
        else:
            w = tile.window
            where = (f"reading tile {tile.tile_id} (row {tile.row}, col {tile.col}, pixel window "
                     f"col {w.col_off} row {w.row_off} size {w.width}x{w.height}) of {self.path}")
        return TileReadError(f"{where} failed: {type(error).__name__}: {error}", self.path, tile)

    def _put(self, item: Any) -> bool:
        """Queue ``item``, waiting while the queue is full; False once the reader is stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    # -- threads ---------------------------------------------------------------------------
    def _feed(self, tasks: "queue.Queue[Any]") -> None:
        try:
            for index, tile in enumerate(self.tiles):
                while not self._slots.acquire(timeout=0.1):
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
                tasks.put((index, tile))
        finally:
            for _ in range(self.workers):
                tasks.put(None)

    def _work(self, tasks: "queue.Queue[Any]", results: "queue.Queue[Any]") -> None:
        fetcher = None
        try:
            while not self._stop.is_set():
                task = tasks.get()
                if task is None:
                    return
                index, tile = task
                if self._stop.is_set():
                    return
                try:
                    if fetcher is None:
                        fetcher = self._open_fetcher(self._stop)
                    pixels, valid = fetcher.read(tile)
                    results.put((index, _Read(tile, pixels, valid)))
                except TileUnavailableError as unavailable:
                    results.put((index, _Read(tile, None, 0.0, str(unavailable))))
                except BaseException as error:  # noqa: BLE001 - handed to the consumer
                    results.put((index, _Failure(error, tile if fetcher is not None else None)))
                    return
                self.tiles_read += 1
        finally:
            if fetcher is not None:
                fetcher.close()

    def _coordinate(self) -> None:
        params = self.params
        # rasterio sets GDAL_CACHEMAX through GDALSetCacheMax (in bytes): it is process-wide
        # while the reader runs, and restored when it ends.
        options = ({} if params.gdal_cache_mb is None
                   else {"GDAL_CACHEMAX": params.gdal_cache_mb * 1024 * 1024})
        tasks: "queue.Queue[Any]" = queue.Queue()
        results: "queue.Queue[Any]" = queue.Queue()
        try:
            with rasterio.Env(**options):
                threads = [threading.Thread(target=self._feed, args=(tasks,), daemon=True,
                                            name="mapscribe-tile-feeder")]
                threads += [threading.Thread(target=self._work, args=(tasks, results),
                                             daemon=True, name=f"mapscribe-tile-read-{i}")
                            for i in range(self.workers)]
                self._threads.extend(threads)
                for thread in threads:
                    thread.start()
                try:
                    self._assemble(results)
                finally:
                    self._stop.set()
                    for thread in threads:
                        thread.join()
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, not swallowed
            self._put(_Failure(error, None))

    def _assemble(self, results: "queue.Queue[Any]") -> None:
        params = self.params
        threshold = 1.0 - params.max_invalid_fraction
        waiting: Dict[int, Any] = {}
        in_a_row = 0
        for start in range(0, len(self.tiles), params.batch_size):
            count = min(params.batch_size, len(self.tiles) - start)
            reads: List[_Read] = []
            for index in range(start, start + count):
                while index not in waiting:
                    if self._stop.is_set():
                        return
                    try:
                        got, item = results.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    waiting[got] = item
                item = waiting.pop(index)
                if isinstance(item, _Failure):
                    self._put(item)
                    return
                reads.append(item)
                in_a_row = in_a_row + 1 if item.failure else 0
                if self.failure_limit is not None and in_a_row >= self.failure_limit:
                    self._put(_Failure(SourceError(
                        f"{self.path} stopped delivering imagery: {in_a_row} tiles in a row "
                        f"failed (the last one: {item.failure}). The tiles read before are "
                        "kept; run again with resume when the service answers."), item.tile))
                    return
            if not self._put(self._batch(reads, threshold)):
                return
        self._put(_END)

    def _batch(self, reads: List[_Read], threshold: float) -> TileBatch:
        size = self.params.output_size
        pixels = np.zeros((len(reads), 3, size, size), dtype=np.uint8)  # (N, 3, S, S)
        valid = np.zeros(len(reads), dtype=np.float32)  # (N,)
        failures: List[Optional[str]] = []
        for index, read in enumerate(reads):
            if read.pixels is not None:
                pixels[index], valid[index] = read.pixels, read.valid
            failures.append(read.failure)
            self.failed += read.failure is not None
        return TileBatch(tiles=[read.tile for read in reads], pixels=pixels,
                         valid_fraction=valid, is_nodata=valid < threshold,
                         stretch=self.plan.stretch, failures=failures)
