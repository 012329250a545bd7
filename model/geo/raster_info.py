"""What tiling and reading need to know about a raster, read once from its header (no pixels)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple, Union

import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from ..paths import check_utf8_path
from .errors import TilingError


def _is_pipe_or_device(path: str) -> bool:
    """A FIFO, socket or device (``/dev/stdin``, ``/dev/zero``): GDAL would wait on it for
    ever. Folders and GDAL strings (``/vsicurl/…``, ``GPKG:…``) are left to GDAL."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


# --------------------------------------------------------------------------------------------
# The raster, as far as tiling and reading need it
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RasterInfo:
    """What tiling and reading need to know about a raster, read once from its header."""

    path: str
    crs: Optional[str]  # "EPSG:32618" when an EPSG code is known, else WKT; None: no CRS
    crs_wkt: Optional[str]
    transform: Affine  # pixel (col, row) → map (x, y) of the pixel's top-left corner
    width: int
    height: int
    count: int
    dtypes: Tuple[str, ...]  # one per band, e.g. ("uint8", "uint8", "uint8")
    nodata: Optional[float]
    colorinterp: Tuple[str, ...]  # one per band, e.g. ("red", "green", "blue", "alpha")
    overview_factors: Tuple[int, ...]  # of band 1, e.g. (2, 4, 8); empty when none
    mask_flags: Tuple[Tuple[str, ...], ...]  # per band, e.g. (("nodata",), ...)
    block_shapes: Tuple[Tuple[int, int], ...]  # per band, (rows, cols)

    @classmethod
    def from_path(cls, path: Union[str, Path],
                  open_options: Optional[Mapping[str, str]] = None) -> "RasterInfo":
        """Read the header of the raster at ``path`` (a file or a GDAL string, opened with
        ``open_options``; no pixels)."""
        text = check_utf8_path(path, "raster")
        if _is_pipe_or_device(text):
            raise TilingError(f"raster {text} is a pipe or a device, not a file: reading it "
                              "could block for ever. Give a raster file.")
        try:
            with rasterio.open(text, **dict(open_options or {})) as dataset:
                return cls.from_dataset(dataset)
        except RasterioIOError as exc:
            raise TilingError(f"cannot open raster {path}: {exc}. Check the path and that it is "
                              "a raster GDAL can read (GeoTIFF, VRT, JPEG2000, ...).") from exc

    @classmethod
    def from_dataset(cls, dataset: Any) -> "RasterInfo":
        """Read the header of an open rasterio dataset."""
        crs = dataset.crs
        has_crs = crs is not None and bool(crs.to_wkt())
        return cls(
            path=str(dataset.name),
            crs=crs.to_string() if has_crs else None,
            crs_wkt=crs.to_wkt() if has_crs else None,
            transform=dataset.transform,
            width=dataset.width,
            height=dataset.height,
            count=dataset.count,
            dtypes=tuple(dataset.dtypes),
            nodata=dataset.nodata,
            colorinterp=tuple(ci.name for ci in dataset.colorinterp),
            overview_factors=tuple(dataset.overviews(1)) if dataset.count else (),
            mask_flags=tuple(tuple(flag.name for flag in flags)
                             for flags in dataset.mask_flag_enums),
            block_shapes=tuple(tuple(shape) for shape in dataset.block_shapes),
        )

    @property
    def has_overviews(self) -> bool:
        return bool(self.overview_factors)

    @property
    def has_alpha(self) -> bool:
        return "alpha" in self.colorinterp

    @property
    def has_internal_mask(self) -> bool:
        """A per-dataset mask band that is not an alpha band (e.g. a GeoTIFF internal mask)."""
        return any("per_dataset" in flags and "alpha" not in flags for flags in self.mask_flags)

    @property
    def bounds(self) -> Tuple[float, float, float, float]:
        """(left, bottom, right, top) in the raster's CRS."""
        return window_bounds(Window(0, 0, self.width, self.height), self.transform)

    @property
    def resolution(self) -> Tuple[float, float]:
        """Pixel size (x, y) in map units, both positive."""
        return abs(self.transform.a), abs(self.transform.e)
