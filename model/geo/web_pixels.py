"""A model tile's pixels from a web service's tiles: fetched, decoded, put together and
resampled with GDAL, as a tile of a file is.

A model tile's window (in pixels of the chosen level) covers a few of the service's tiles;
each is fetched once per run (neighbouring model tiles share them through :class:`SharedTiles`,
which also keeps two threads from asking for the same one at once), decoded by GDAL (PNG, JPEG,
WebP, GIF, palettes and transparency included), pasted into a mosaic with a few pixels of margin
and resampled to the model's input size by GDAL (the same resampling as a file's
``out_shape`` read). Transparent pixels and tiles the service does not have (404) are nodata.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from .http_fetch import FetchStats, HttpFetcher, TileUnavailableError
from .tiling import TileWindow
from .web_service import PyramidLevel, WebService

# Decoded service tiles kept in memory: 256 RGBA tiles of 256 px are 64 MB.
SHARED_TILES = 256
# Pixels of context read around a window, so that resampling sees past its edges as it does in a
# file (GDAL reads such a margin too).
MARGIN = 4

_RESAMPLING = {"nearest": "GRIORA_NearestNeighbour", "bilinear": "GRIORA_Bilinear",
               "cubic": "GRIORA_Cubic", "cubic_spline": "GRIORA_CubicSpline",
               "lanczos": "GRIORA_Lanczos", "average": "GRIORA_Average", "mode": "GRIORA_Mode",
               "gauss": "GRIORA_Gauss"}

Key = Tuple[int, int, int]  # (zoom, col, row)


class SharedTiles:
    """Decoded service tiles by key, shared by a run's threads: a bounded LRU, and one fetch
    at a time per key."""

    def __init__(self, capacity: int = SHARED_TILES, stats: Optional[FetchStats] = None):
        self.capacity = capacity
        self.stats = stats
        self._tiles: "OrderedDict[Key, Optional[np.ndarray]]" = OrderedDict()
        self._pending: Dict[Key, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: Key, fetch: Callable[[], Optional[np.ndarray]]) -> Optional[np.ndarray]:
        while True:
            with self._lock:
                if key in self._tiles:
                    self._tiles.move_to_end(key)
                    if self.stats is not None:
                        self.stats.add("memory_hits")
                    return self._tiles[key]
                event = self._pending.get(key)
                if event is None:
                    event = self._pending[key] = threading.Event()
                    break
            event.wait()  # another thread fetches it; then look again (or fetch if it failed)
        try:
            tile = fetch()
            with self._lock:
                self._tiles[key] = tile
                while len(self._tiles) > self.capacity:
                    self._tiles.popitem(last=False)
            return tile
        finally:
            with self._lock:
                del self._pending[key]
            event.set()


def decode_tile(body: bytes, expected: Tuple[int, int], what: str) -> np.ndarray:
    """An image file's bytes → (4, H, W) uint8 R, G, B, alpha (255 where valid); decoded by
    GDAL from memory (PNG, JPEG, WebP, GIF; palettes and transparency included)."""
    rgba = _decode(body, what)
    if rgba.shape[1:] != (expected[1], expected[0]):
        rgba = _resize(rgba, expected)
    return rgba


def image_size(body: bytes, what: str) -> Tuple[int, int]:
    """(width, height) of an image file's bytes."""
    shape = _decode(body, what).shape
    return shape[2], shape[1]


def _decode(body: bytes, what: str) -> np.ndarray:
    from osgeo import gdal

    from .gdal_errors import quiet_gdal

    name = f"/vsimem/mapscribe-tile-{uuid.uuid4().hex}"
    with quiet_gdal() as last_error:
        try:
            gdal.FileFromMemBuffer(name, body)
            dataset = gdal.Open(name)
            if dataset is None:
                raise TileUnavailableError(f"{what}: the image cannot be decoded "
                                           f"({last_error()})")
            data = dataset.ReadAsArray()
            if data is None:
                raise TileUnavailableError(f"{what}: the image cannot be decoded "
                                           f"({last_error()})")
            data = data.reshape((-1,) + data.shape[-2:]).astype(np.uint8)
            band = dataset.GetRasterBand(1)
            mask = band.GetMaskBand().ReadAsArray()
            table = band.GetColorTable()
            colours = ([table.GetColorEntry(i) for i in range(min(256, table.GetCount()))]
                       if table is not None and dataset.RasterCount == 1 else None)
            dataset = None
        except RuntimeError as error:  # osgeo's exceptions, when someone switched them on
            raise TileUnavailableError(f"{what}: the image cannot be decoded ({error})") from None
        finally:
            gdal.Unlink(name)
    mask = np.asarray(mask, dtype=np.uint8)
    if colours:
        palette = np.zeros((256, 4), dtype=np.uint8)
        palette[:len(colours)] = np.asarray(colours, dtype=np.uint8)[:, :4]
        rgba = np.moveaxis(palette[data[0]], -1, 0)
        rgba[3] = np.minimum(rgba[3], mask)
        return np.ascontiguousarray(rgba)
    count = data.shape[0]
    colour = data[:3] if count >= 3 else np.repeat(data[:1], 3, axis=0)
    alpha = np.minimum(mask, data[-1]) if count in (2, 4) else mask
    return np.concatenate([colour, alpha[None]]).astype(np.uint8)


def _resize(rgba: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """A tile of another size than the level's (a server's quirk) brought to it."""
    rows = (np.arange(size[1]) * rgba.shape[1] // size[1]).clip(0, rgba.shape[1] - 1)
    cols = (np.arange(size[0]) * rgba.shape[2] // size[0]).clip(0, rgba.shape[2] - 1)
    return rgba[:, rows][:, :, cols]


class WebTileFetcher:
    """Reads model tiles from ``service`` at ``level`` (one per reading thread)."""

    def __init__(self, service: WebService, level: PyramidLevel, fetcher: HttpFetcher,
                 shared: SharedTiles, output_size: int, resampling: str = "bilinear"):
        self.service, self.level, self.fetcher, self.shared = service, level, fetcher, shared
        self.size = output_size
        self.resampling = resampling

    def read(self, tile: TileWindow) -> Tuple[np.ndarray, float]:
        window = tile.window
        col0, row0 = int(window.col_off) - MARGIN, int(window.row_off) - MARGIN
        width, height = int(window.width) + 2 * MARGIN, int(window.height) + 2 * MARGIN
        mosaic = self.mosaic(col0, row0, width, height)
        return resample(mosaic, (MARGIN, MARGIN, int(window.width), int(window.height)),
                        self.size, self.resampling)

    def mosaic(self, col0: int, row0: int, width: int, height: int) -> np.ndarray:
        """(4, height, width) RGBA of the level's pixels from (col0, row0); alpha 0 where the
        service has nothing."""
        level = self.level
        tile_w, tile_h = level.tile_size
        cols, rows = level.matrix_size
        out = np.zeros((4, height, width), dtype=np.uint8)
        first_col, last_col = max(0, col0 // tile_w), min(cols - 1, (col0 + width - 1) // tile_w)
        first_row, last_row = max(0, row0 // tile_h), min(rows - 1, (row0 + height - 1) // tile_h)
        for row in range(first_row, last_row + 1):
            for col in range(first_col, last_col + 1):
                pixels = self.service_tile(col, row)
                if pixels is None:
                    continue
                left, top = col * tile_w - col0, row * tile_h - row0
                x0, y0 = max(0, left), max(0, top)
                x1, y1 = min(width, left + tile_w), min(height, top + tile_h)
                if x1 > x0 and y1 > y0:
                    out[:, y0:y1, x0:x1] = pixels[:, y0 - top:y1 - top, x0 - left:x1 - left]
        return out

    def service_tile(self, col: int, row: int) -> Optional[np.ndarray]:
        level = self.level
        url = self.service.tile_url(level, col, row)

        def fetch() -> Optional[np.ndarray]:
            body = self.fetcher.get(url)
            if body is None:
                return None
            return decode_tile(body, level.tile_size, f"tile {col},{row} of zoom {level.zoom}")

        return self.shared.get((level.zoom, col, row), fetch)

    def close(self) -> None:
        pass


def resample(mosaic: np.ndarray, window: Tuple[int, int, int, int], size: int,
             resampling: str = "bilinear") -> Tuple[np.ndarray, float]:
    """The ``window`` (col, row, width, height) of an RGBA mosaic → ((3, S, S) uint8 with
    invalid pixels 0, valid fraction), resampled by GDAL."""
    from osgeo import gdal

    bands, height, width = mosaic.shape
    dataset = gdal.GetDriverByName("MEM").Create("", width, height, bands, gdal.GDT_Byte)
    for index in range(bands):
        dataset.GetRasterBand(index + 1).WriteArray(mosaic[index])
    col, row, w, h = window
    method = getattr(gdal, _RESAMPLING.get(resampling, "GRIORA_Bilinear"))
    rgb = dataset.ReadAsArray(col, row, w, h, buf_xsize=size, buf_ysize=size,
                              band_list=[1, 2, 3], resample_alg=method)
    alpha = dataset.GetRasterBand(4).ReadAsArray(col, row, w, h, buf_xsize=size,
                                                 buf_ysize=size,
                                                 resample_alg=gdal.GRIORA_NearestNeighbour)
    dataset = None
    valid = alpha > 0
    pixels = np.where(valid[None], rgb, 0).astype(np.uint8)
    return pixels, float(valid.mean())
