"""Small generated GeoTIFFs for edge cases the real rasters do not have (written to tmp_path)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from locations import TEST_DATA

RGB_BYTE = TEST_DATA / "RGB.byte.tif"  # EPSG:32618, 791x718, 300 m, nodata 0
NAIP = TEST_DATA / "naip_m_4709963_se_14_1_20200831_5m.tif"  # EPSG:26914, 4 bands

# A UTM 18N origin and 10 m pixels: a plausible place for generated rasters.
DEFAULT_TRANSFORM = from_origin(500_000.0, 4_000_000.0, 10.0, 10.0)


def write_raster(path: Path, data: np.ndarray, *, crs: Optional[str] = "EPSG:32618",
                 transform: Affine = DEFAULT_TRANSFORM, nodata: Optional[float] = None,
                 colorinterp: Optional[Sequence[ColorInterp]] = None, tiled: bool = False,
                 compress: Optional[str] = None, overviews: Sequence[int] = ()) -> Path:
    """Write ``data`` (B, H, W) or (H, W) as a GeoTIFF; ``crs=None`` writes none."""
    if data.ndim == 2:
        data = data[None]
    count, height, width = data.shape
    profile = dict(driver="GTiff", width=width, height=height, count=count,
                   dtype=data.dtype.name, transform=transform)
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if compress:
        profile["compress"] = compress
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(data)
        if colorinterp is not None:
            dataset.colorinterp = list(colorinterp)
        if overviews:
            dataset.build_overviews(list(overviews))
    return Path(path)
