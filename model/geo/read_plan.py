"""How a raster's pixels become the model's input: which bands (:class:`BandMapping`), at what
size, with what stretch for 16-bit and float data (one per raster, never per tile), and when a
tile counts as nodata. :func:`prepare_reading` decides all that once per run.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from .errors import RasterReadError
from .raster_info import RasterInfo
from .tiling import TileWindow

log = logging.getLogger(__name__)


DEFAULT_BANDS = (1, 2, 3)


# A decimated read for the stretch is at most this many pixels on its longest side.
STRETCH_SAMPLE_SIZE = 1024


# Above this many pixels without overviews, a decimated read would touch every block of the
# file; a grid of small windows reads a bounded number of blocks instead.
STRETCH_FULL_DECIMATION_LIMIT = 16 * STRETCH_SAMPLE_SIZE ** 2


STRETCH_WINDOW_GRID = 8  # 8 × 8 windows


STRETCH_WINDOW_SIZE = 128  # pixels a side


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BandMapping:
    """Which raster bands become R, G, B.

    ``bands``: three band numbers (1-based) for R, G, B, or one band shown as gray. With the
    default (1, 2, 3) a raster with a single colour band is read as gray (with a warning).
    ``alpha_band``: a band used as a validity mask (0 = invalid); None finds one through the
    bands' colour interpretation ("alpha").
    """

    bands: Tuple[int, ...] = DEFAULT_BANDS
    alpha_band: Optional[int] = None

    @classmethod
    def parse(cls, text: str) -> "BandMapping":
        """From a command-line value such as "1,2,3", "4,3,2" or "1"."""
        try:
            bands = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
        except ValueError:
            raise RasterReadError(f"bands {text!r} are not band numbers: give e.g. 1,2,3 (R,G,B) "
                                  "or 1 (gray).") from None
        return cls(bands=bands)

    def __post_init__(self) -> None:
        if len(self.bands) not in (1, 3):
            raise RasterReadError(f"bands {self.bands} must be three band numbers (R,G,B) or one "
                                  "(gray), e.g. 1,2,3 or 4,3,2 or 1.")
        if any(b < 1 for b in self.bands) or (self.alpha_band is not None
                                              and self.alpha_band < 1):
            raise RasterReadError(f"band numbers start at 1; got bands {self.bands}, alpha "
                                  f"{self.alpha_band}.")


@dataclass(frozen=True)
class ReadParams:
    """How tiles are read, scaled, judged and batched."""

    bands: BandMapping = BandMapping()
    output_size: int = 224  # S: every tile is resampled to S × S pixels
    resampling: str = "bilinear"  # a rasterio Resampling name
    max_invalid_fraction: float = 0.5  # above this the tile is 'nodata'
    stretch_percentiles: Tuple[float, float] = (2.0, 98.0)
    batch_size: int = 8
    queue_depth: int = 2  # batches read ahead of the consumer
    # GDAL's block cache while tiles are read, in MB; None leaves GDAL's own (5% of the RAM by
    # default, which a big raster fills: memory would then grow with the raster, up to it).
    gdal_cache_mb: Optional[int] = 128

    def __post_init__(self) -> None:
        if self.output_size < 1:
            raise RasterReadError(f"output_size must be positive, got {self.output_size}.")
        if self.resampling not in Resampling.__members__:
            raise RasterReadError(f"resampling {self.resampling!r} is not one of "
                                  f"{sorted(Resampling.__members__)}.")
        if not 0 <= self.max_invalid_fraction < 1:
            raise RasterReadError("max_invalid_fraction must be in [0, 1), got "
                                  f"{self.max_invalid_fraction}.")
        low, high = self.stretch_percentiles
        if not 0 <= low < high <= 100:
            raise RasterReadError(f"stretch_percentiles {self.stretch_percentiles} must be "
                                  "0 <= low < high <= 100.")
        if self.gdal_cache_mb is not None and self.gdal_cache_mb < 1:
            raise RasterReadError(f"gdal_cache_mb must be at least 1 (or None), got "
                                  f"{self.gdal_cache_mb}.")
        if self.batch_size < 1 or self.queue_depth < 1:
            raise RasterReadError(f"batch_size ({self.batch_size}) and queue_depth "
                                  f"({self.queue_depth}) must be at least 1.")


@dataclass(frozen=True)
class StretchParams:
    """One linear stretch per band, [low, high] → [0, 255], for a whole raster."""

    bands: Tuple[int, ...]  # the raster bands it was computed on, in read order
    low: Tuple[float, ...]
    high: Tuple[float, ...]
    percentiles: Tuple[float, float]
    sample: str  # how the sample was read, for logs and reports
    sample_pixels: int  # valid pixels the percentiles came from

    def apply(self, data: np.ndarray) -> np.ndarray:
        """``data`` (B, H, W), B = len(bands) → uint8 (B, H, W); NaN becomes 0."""
        low = np.asarray(self.low, dtype=np.float32)[:, None, None]
        high = np.asarray(self.high, dtype=np.float32)[:, None, None]
        scaled = (data.astype(np.float32) - low) * (255.0 / (high - low))
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    def to_dict(self) -> dict:
        return {"bands": list(self.bands), "low": list(self.low), "high": list(self.high),
                "percentiles": list(self.percentiles), "sample": self.sample,
                "sample_pixels": self.sample_pixels}


@dataclass(frozen=True)
class ReadPlan:
    """Everything decided once per raster before the tiles are read."""

    path: str
    read_bands: Tuple[int, ...]  # bands read per tile: three (R, G, B) or one (gray)
    alpha_band: Optional[int]  # read as a mask when it is not GDAL's own mask already
    gdal_alpha: bool  # GDAL's mask of the read bands is the alpha band
    passthrough: bool  # 8-bit: values are used as they are
    all_valid: bool  # no nodata, mask or alpha: masks need not be read inside the raster
    fill_value: float  # for boundless reads: nodata, or 0 (NaN for float without nodata)
    stretch: Optional[StretchParams]  # None when passthrough
    notes: Tuple[str, ...]  # warnings worth showing to the user

    @property
    def gray(self) -> bool:
        return len(self.read_bands) == 1


@dataclass
class TileBatch:
    """Tiles read together, in the order of the tiles given to the reader."""

    tiles: List[TileWindow]
    pixels: np.ndarray  # (N, 3, S, S) uint8, R, G, B; invalid pixels are 0
    valid_fraction: np.ndarray  # (N,) float32 in [0, 1]
    is_nodata: np.ndarray  # (N,) bool: too few valid pixels, record as 'nodata'
    stretch: Optional[StretchParams]  # the raster's one stretch (None for 8-bit data)
    # Per tile: why its imagery could not be read (a web service failed), else None. A failed
    # tile is also is_nodata: it is never shown to the model.
    failures: Optional[List[Optional[str]]] = None

    def failure(self, index: int) -> Optional[str]:
        """Why tile ``index`` of the batch could not be read, or None."""
        return self.failures[index] if self.failures else None


# --------------------------------------------------------------------------------------------
# Once per raster: bands and stretch
# --------------------------------------------------------------------------------------------
def prepare_reading(path: Union[str, Path], params: ReadParams,
                    open_options: Optional[Mapping[str, str]] = None) -> ReadPlan:
    """Resolve the bands and compute the stretch of the raster at ``path`` (opened with
    ``open_options``; one decimated or sampled read; no tile is read)."""
    try:
        with rasterio.open(path, **dict(open_options or {})) as dataset:
            return _plan(dataset, params)
    except RasterioIOError as exc:
        raise RasterReadError(f"cannot open raster {path}: {exc}. Check the path and that it is "
                              "a raster GDAL can read.") from exc


def _plan(dataset: Any, params: ReadParams) -> ReadPlan:
    info = RasterInfo.from_dataset(dataset)
    notes: List[str] = []
    read_bands, alpha_band = _resolve_bands(info, params.bands, notes)
    for note in notes:
        log.warning("%s", note)
    mask_flags = info.mask_flags[read_bands[0] - 1]
    # With an alpha band GDAL's mask of the colour bands is that band; an alpha band named by
    # the user is read separately, since GDAL may not know it is one.
    gdal_alpha = "alpha" in mask_flags and params.bands.alpha_band is None
    dtypes = {info.dtypes[b - 1] for b in read_bands}
    passthrough = dtypes == {"uint8"}
    is_float = any(np.issubdtype(np.dtype(d), np.floating) for d in dtypes)
    if info.nodata is not None:
        fill_value = info.nodata
    else:
        fill_value = math.nan if is_float else 0.0
    all_valid = alpha_band is None and all(info.mask_flags[b - 1] == ("all_valid",)
                                           for b in read_bands)
    plan = ReadPlan(path=info.path, read_bands=read_bands, alpha_band=alpha_band,
                    gdal_alpha=gdal_alpha, passthrough=passthrough, all_valid=all_valid,
                    fill_value=fill_value, stretch=None, notes=tuple(notes))
    if not passthrough:
        stretch = compute_stretch(dataset, plan, params.stretch_percentiles)
        plan = replace(plan, stretch=stretch)
        log.info("%s: %s data stretched to 8 bit with %s", info.path, "/".join(sorted(dtypes)),
                 stretch.to_dict())
    return plan


def _resolve_bands(info: RasterInfo, mapping: BandMapping, notes: List[str]
                   ) -> Tuple[Tuple[int, ...], Optional[int]]:
    def check(band: int, what: str) -> None:
        if not 1 <= band <= info.count:
            raise RasterReadError(f"{what} {band} does not exist in {info.path}: it has "
                                  f"{info.count} band{'s' if info.count != 1 else ''} "
                                  f"(1..{info.count}). Choose bands that exist, e.g. "
                                  f"{'1,2,3' if info.count >= 3 else '1'}.")

    alpha_band = mapping.alpha_band
    if alpha_band is None and info.has_alpha:
        alpha_band = info.colorinterp.index("alpha") + 1
    elif alpha_band is not None:
        check(alpha_band, "alpha band")
    colour_bands = [b for b in range(1, info.count + 1) if b != alpha_band]

    bands = mapping.bands
    if bands == DEFAULT_BANDS and len(colour_bands) < 3:
        if not colour_bands:
            raise RasterReadError(f"{info.path} has no colour band, only an alpha band.")
        bands = (colour_bands[0],)
    for band in bands:
        check(band, "band")
    if len(bands) == 1:
        notes.append(f"{info.path}: one band ({bands[0]}) is shown to the model as gray (the "
                     "same values in R, G and B); captions of gray imagery are less reliable "
                     "than of colour imagery.")
    if alpha_band is not None and alpha_band in bands:
        notes.append(f"{info.path}: the alpha band {alpha_band} is also read as a colour.")
    return tuple(bands), alpha_band


def compute_stretch(dataset: Any, plan: ReadPlan, percentiles: Tuple[float, float]
                    ) -> StretchParams:
    """One [low, high] per band at the given percentiles of the raster's valid pixels.

    The sample is a decimated read of the whole raster (GDAL takes it from overviews when there
    are some) or, for a large raster without overviews, a grid of small full-resolution windows,
    so that no more than a bounded number of blocks is read.
    """
    bands = list(plan.read_bands)
    width, height = dataset.width, dataset.height
    has_overviews = bool(dataset.overviews(bands[0]))
    pieces: List[Tuple[np.ndarray, np.ndarray]] = []
    if width * height <= STRETCH_FULL_DECIMATION_LIMIT or has_overviews:
        scale = min(1.0, STRETCH_SAMPLE_SIZE / max(width, height))
        shape = (max(1, round(height * scale)), max(1, round(width * scale)))
        window = Window(0, 0, width, height)
        pieces.append(_read_raw(dataset, plan, window, shape, Resampling.nearest, False))
        sample = (f"{'full' if scale == 1 else 'decimated'} read {shape[1]}x{shape[0]} of "
                  f"{width}x{height}" + (f" (overviews {dataset.overviews(bands[0])})"
                                         if has_overviews and scale < 1 else ""))
    else:
        size = STRETCH_WINDOW_SIZE
        for i in range(STRETCH_WINDOW_GRID):
            for j in range(STRETCH_WINDOW_GRID):
                # Window centres spread evenly over the raster, away from its very edges.
                col = int((j + 0.5) * width / STRETCH_WINDOW_GRID) - size // 2
                row = int((i + 0.5) * height / STRETCH_WINDOW_GRID) - size // 2
                col, row = min(max(0, col), width - 1), min(max(0, row), height - 1)
                window = Window(col, row, min(size, width - col), min(size, height - row))
                pieces.append(_read_raw(dataset, plan, window, (window.height, window.width),
                                        Resampling.nearest, False))
        sample = (f"{STRETCH_WINDOW_GRID ** 2} windows of {size}x{size} px spread over "
                  f"{width}x{height} (no overviews)")
    low: List[float] = []
    high: List[float] = []
    valid = np.concatenate([v.ravel() for _, v in pieces])
    count = int(valid.sum())
    if count == 0:
        raise RasterReadError(f"no valid pixel in the stretch sample of {plan.path} ({sample}): "
                              "every sampled pixel is nodata or masked. Check the raster's "
                              "nodata value and bands.")
    for index in range(len(bands)):
        values = np.concatenate([d[index][v] for d, v in pieces]).astype(np.float64)
        lo, hi = np.percentile(values, percentiles)
        if not hi > lo:
            # A flat band: any positive width keeps the division finite; its value maps to 0.
            hi = lo + 1.0
        low.append(float(lo))
        high.append(float(hi))
    return StretchParams(bands=tuple(bands), low=tuple(low), high=tuple(high),
                         percentiles=(float(percentiles[0]), float(percentiles[1])), sample=sample,
                         sample_pixels=count)


# --------------------------------------------------------------------------------------------
# One tile
# --------------------------------------------------------------------------------------------
def _read_raw(dataset: Any, plan: ReadPlan, window: Window, shape: Tuple[int, int],
              resampling: Resampling, boundless: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Values (B, H, W) as stored (float32 when stretched) and validity (H, W) bool."""
    bands = list(plan.read_bands)
    out_shape = (len(bands),) + tuple(shape)
    data = dataset.read(bands, window=window, out_shape=out_shape, resampling=resampling,
                        boundless=boundless, fill_value=plan.fill_value,
                        out_dtype=None if plan.passthrough else "float32")
    # GDAL's mask covers nodata, an alpha band and internal masks. A pixel is valid where any
    # read band is (as rasterio's dataset_mask does for nodata): a pure-black pixel in one band
    # of an RGB raster with nodata 0 is still a pixel.
    if plan.all_valid and not boundless:
        valid = np.ones(shape, dtype=bool)  # (H, W)
    else:
        masks = dataset.read_masks(bands, window=window, out_shape=out_shape,
                                   resampling=Resampling.nearest, boundless=boundless)
        valid = (masks > 0).any(axis=0)  # (H, W)
    if plan.alpha_band is not None and not plan.gdal_alpha:
        alpha = dataset.read(plan.alpha_band, window=window, out_shape=tuple(shape),
                             resampling=Resampling.nearest, boundless=boundless, fill_value=0)
        valid &= alpha > 0
    if not plan.passthrough:
        valid &= np.isfinite(data).all(axis=0)
    return data, valid


def _inside_raster(window: Window, width: int, height: int, size: int) -> np.ndarray:
    """(S, S) bool: output pixels whose centre falls on the raster (for boundless reads)."""
    steps = (np.arange(size) + 0.5) / size
    cols = window.col_off + steps * window.width
    rows = window.row_off + steps * window.height
    return ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
