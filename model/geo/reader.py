"""Reading tiles: rasterio windows → 8-bit RGB arrays at the model's input size, in a thread.

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
* :class:`TileReader` reads ahead of the consumer in one background thread, into a bounded
  queue, so memory is bounded by ``queue_depth × batch_size`` tiles whatever the raster's size.

Output layout: channels first, ``(3, S, S)`` uint8 per tile and ``(N, 3, S, S)`` per batch,
channels in R, G, B order — what ``torch.from_numpy`` and torchvision's tensor transforms take.
Invalid pixels are 0.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling

from .errors import TileReadError
from .read_plan import (
    ReadParams,
    ReadPlan,
    StretchParams,
    TileBatch,
    _inside_raster,
    _read_raw,
    prepare_reading,
)
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
    pixels = data if plan.passthrough else plan.stretch.apply(data)  # (B, S, S) uint8
    pixels = np.where(valid[None], pixels, 0).astype(np.uint8)
    if plan.gray:
        pixels = np.repeat(pixels, 3, axis=0)
    return pixels, float(valid.mean())


# --------------------------------------------------------------------------------------------
# The read-ahead thread
# --------------------------------------------------------------------------------------------
_END = object()


@dataclass
class _Failure:
    error: BaseException
    tile: Optional[TileWindow]


class TileReader:
    """Reads tiles in a background thread, a bounded number of batches ahead of the consumer.

    Use it once, as a context manager::

        with TileReader(path, grid.tiles, params) as reader:
            for batch in reader:          # TileBatch
                ...

    Leaving the loop early (break, an exception, a cancel) stops the thread; an error in the
    thread is raised in the consumer as :class:`TileReadError` naming the file and the tile.
    The dataset is opened inside the thread: rasterio datasets must not cross threads.
    """

    def __init__(self, path: Union[str, Path], tiles: Sequence[TileWindow], params: ReadParams,
                 plan: Optional[ReadPlan] = None):
        self.path = str(path)
        self.tiles = list(tiles)
        self.params = params
        self.plan = plan if plan is not None else prepare_reading(path, params)
        self.tiles_read = 0  # tiles read so far by the thread (for tests and progress)
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=params.queue_depth)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._used = False

    @property
    def stretch(self) -> Optional[StretchParams]:
        return self.plan.stretch

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "TileReader":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[TileBatch]:
        if self._used:
            raise RuntimeError("a TileReader reads its tiles once; make a new one to read again")
        self._used = True
        self._thread = threading.Thread(target=self._produce, name="mapscribe-tile-reader",
                                        daemon=True)
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
                    raise self._error(item) from item.error
                yield item
        finally:
            self.close()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread and wait for it (a read under way finishes first)."""
        self._stop.set()
        if self._thread is None:
            return
        self._drain()
        self._thread.join(timeout)
        self._drain()
        if self._thread.is_alive():
            log.warning("the tile reader of %s did not stop within %.0f s", self.path, timeout)

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
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

    def _produce(self) -> None:
        params, plan = self.params, self.plan
        size, batch_size = params.output_size, params.batch_size
        threshold = 1.0 - params.max_invalid_fraction
        tile: Optional[TileWindow] = None
        # rasterio sets GDAL_CACHEMAX through GDALSetCacheMax (in bytes): it is process-wide
        # while the reader runs, and restored when it ends.
        options = ({} if params.gdal_cache_mb is None
                   else {"GDAL_CACHEMAX": params.gdal_cache_mb * 1024 * 1024})
        try:
            with rasterio.Env(**options), rasterio.open(self.path) as dataset:
                for start in range(0, len(self.tiles), batch_size):
                    chunk = self.tiles[start:start + batch_size]
                    pixels = np.empty((len(chunk), 3, size, size), dtype=np.uint8)  # (N,3,S,S)
                    valid = np.empty(len(chunk), dtype=np.float32)  # (N,)
                    for index, tile in enumerate(chunk):
                        if self._stop.is_set():
                            return
                        pixels[index], valid[index] = read_tile(dataset, tile, plan, params)
                        self.tiles_read += 1
                    tile = None
                    batch = TileBatch(tiles=chunk, pixels=pixels, valid_fraction=valid,
                                      is_nodata=valid < threshold, stretch=plan.stretch)
                    if not self._put(batch):
                        return
            self._put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, not swallowed
            self._put(_Failure(error, tile))
