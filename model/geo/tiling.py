"""Tiling: an area of a raster → a grid of tile windows aligned to the raster's pixels.

Pure geometry: nothing here reads a pixel. The steps are

1. the area (a bounding box with its CRS, the whole raster, or polygons in any CRS) is
   reprojected to the raster's CRS with a densified transform, so that edges that curve in the
   raster's CRS still fall inside the result;
2. it is clipped to the raster;
3. it is covered by tiles of whole pixels, starting on the first pixel the area touches, with
   ``step = size - overlap``, until the area is covered without a gap. Tiles that stick out of the
   raster are flagged ``is_edge`` (the reader reads them boundless, filled with nodata). With a
   polygon area, tiles that miss every polygon are left out.

The tile size is in whole raster pixels on each axis; the reader resamples each window to the
model's input size. :class:`TileGrid` carries a ``grid_signature`` so a resumed run can check it
is continuing the same grid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from array import array
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, Iterator, Optional, Sequence, Tuple

from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from .areas import AreaOfInterest, BoundingBox, PolygonArea, WholeRaster
from .crs import ground_scale, parse_crs
from .errors import TilingError
from .raster_info import RasterInfo
from .tile_sequence import GridLayout, TileSequence, TileWindow
from .vector import _polygons_in_raster_crs, _tiles_meeting

__all__ = ["TileGrid", "TileGridParams", "TileSequence", "TileWindow", "plan_tiles",
           "grid_placement", "grid_signature", "MAX_TILES", "MAX_TILE_PIXELS",
           "TILE_SIZE_UNITS", "OVERLAP_UNITS"]

log = logging.getLogger(__name__)


# Below this many pixels a side a tile is mostly resampling artefacts, and such a size is almost
# always a unit mistake (metres given where pixels were meant, or the reverse).
MIN_TILE_PIXELS = 4
# Above this many pixels a side a tile is almost always a unit mistake too, and reading it
# would take the source's full resolution for one model input.
MAX_TILE_PIXELS = 16_384
# The most tiles one run plans (rows × columns before polygons leave any out): about 9 hours
# at 30 tiles a second on a laptop's CPU. Larger areas are captioned a part at a time.
MAX_TILES = 1_000_000
# Points added along each edge of a bounding box before reprojecting it (rasterio's default).
DENSIFY_POINTS = 21


# Pixel coordinates closer than this to a whole pixel are taken as on it, so that an area whose
# edge is exactly on a pixel edge does not pull in one more row or column through float error.
PIXEL_EPSILON = 1e-6


TILE_SIZE_UNITS = ("map", "pixels")


OVERLAP_UNITS = ("percent", "pixels")


# --------------------------------------------------------------------------------------------
# Grid parameters and the grid
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileGridParams:
    """How big tiles are and how much they overlap.

    ``tile_size`` is in the raster's map units (``tile_size_unit="map"``) or in raster pixels
    (``"pixels"``); None uses the default: ``model_input_size × ground_resolution_hint`` metres
    when the model gives a hint, else ``model_input_size`` raster pixels (the model then sees the
    raster at its own resolution). ``overlap`` is a percentage of the tile size or whole pixels.
    """

    model_input_size: int = 224
    ground_resolution_hint: Optional[float] = None  # metres per pixel the model was trained at
    tile_size: Optional[float] = None
    tile_size_unit: str = "map"
    overlap: float = 0.0
    overlap_unit: str = "percent"

    def __post_init__(self) -> None:
        if self.tile_size_unit not in TILE_SIZE_UNITS:
            raise TilingError(f"tile_size_unit {self.tile_size_unit!r} is not one of "
                              f"{TILE_SIZE_UNITS}.")
        if self.overlap_unit not in OVERLAP_UNITS:
            raise TilingError(f"overlap_unit {self.overlap_unit!r} is not one of "
                              f"{OVERLAP_UNITS}.")
        if self.model_input_size <= 0:
            raise TilingError(f"model_input_size must be positive, got {self.model_input_size}.")
        if self.ground_resolution_hint is not None and not self.ground_resolution_hint > 0:
            raise TilingError("ground_resolution_hint must be a positive number of metres per "
                              f"pixel, got {self.ground_resolution_hint}.")
        if self.tile_size is not None and not self.tile_size > 0:
            raise TilingError(f"tile size must be positive, got {self.tile_size} "
                              f"({self.tile_size_unit}).")
        if self.tile_size is not None and not math.isfinite(self.tile_size):
            raise TilingError(f"tile size must be a finite number, got {self.tile_size} "
                              f"({self.tile_size_unit}).")
        if not self.overlap >= 0:
            raise TilingError(f"overlap must be zero or positive, got {self.overlap} "
                              f"({self.overlap_unit}).")
        if not math.isfinite(self.overlap):
            raise TilingError(f"overlap must be a finite number, got {self.overlap} "
                              f"({self.overlap_unit}).")
        if self.overlap_unit == "percent" and self.overlap >= 100:
            raise TilingError(f"overlap {self.overlap}% must be below 100% of the tile size.")
        if self.overlap_unit == "pixels" and self.overlap != int(self.overlap):
            raise TilingError(f"overlap in pixels must be a whole number, got {self.overlap}.")


@dataclass(frozen=True)
class TileGrid:
    """The tiles that cover an area of a raster, row by row, west to east.

    ``tiles`` is a :class:`TileSequence`: a list to its users, whose tiles are made one at a
    time when asked for (a grid never holds all of its tiles in memory)."""

    tiles: TileSequence
    rows: int
    cols: int
    crs: str  # the raster's CRS ("EPSG:…" or WKT), the CRS of every bounds here
    crs_wkt: str
    transform: Affine  # the raster's
    raster_width: int
    raster_height: int
    origin: Tuple[int, int]  # (col_off, row_off) of tile (0, 0), in raster pixels
    tile_size: Tuple[int, int]  # (width, height) in raster pixels
    step: Tuple[int, int]  # (x, y) in raster pixels; overlap = tile_size - step
    tile_size_map: Tuple[float, float]  # (width, height) in map units
    tile_size_metres: Tuple[float, float]  # (width, height) on the ground at the area's centre
    area_bounds: Tuple[float, float, float, float]  # the clipped area, raster CRS
    skipped: int  # tiles of the rows × cols grid left out because they miss every polygon
    grid_signature: str = field(default="")
    levels: int = 1  # a caption pyramid (geo.pyramid): tiles holds every level's

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[TileWindow]:
        return iter(self.tiles)

    @property
    def overlap(self) -> Tuple[int, int]:
        """(x, y) overlap between neighbouring tiles, in raster pixels."""
        return self.tile_size[0] - self.step[0], self.tile_size[1] - self.step[1]


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------
def plan_tiles(raster: RasterInfo, area: AreaOfInterest, params: TileGridParams) -> TileGrid:
    """Cover ``area`` of ``raster`` with tiles aligned to its pixel grid (see the module doc)."""
    crs, crs_wkt = _check_georeferencing(raster)
    polygons = None
    if isinstance(area, WholeRaster):
        area_bounds = raster.bounds
    elif isinstance(area, BoundingBox):
        area_bounds = _bbox_in_raster_crs(area, raster)
    elif isinstance(area, PolygonArea):
        polygons = _polygons_in_raster_crs(area, raster)
        minx, maxx, miny, maxy = polygons.GetEnvelope()
        area_bounds = (minx, miny, maxx, maxy)
    else:
        raise TilingError(f"unknown area of interest {area!r}: use WholeRaster, BoundingBox or "
                          "PolygonArea.")
    clipped = _clip_to_raster(area_bounds, raster, area)
    centre = ((clipped[0] + clipped[2]) / 2, (clipped[1] + clipped[3]) / 2)
    metres_x, metres_y = ground_scale(crs_wkt, centre, raster.path)
    tile_w, tile_h = _tile_size_pixels(raster, params, (metres_x, metres_y))
    overlap_x, overlap_y = _overlap_pixels(params, tile_w, tile_h, raster.path)
    step_x, step_y = tile_w - overlap_x, tile_h - overlap_y

    col_start, row_start, col_end, row_end = _pixel_span(clipped, raster)
    cols = _tiles_needed(col_end - col_start, tile_w, step_x)
    rows = _tiles_needed(row_end - row_start, tile_h, step_y)
    _check_tile_count(rows, cols, (tile_w, tile_h), raster, area)

    layout = GridLayout(rows=rows, cols=cols, origin=(col_start, row_start),
                        tile_size=(tile_w, tile_h), step=(step_x, step_y),
                        transform=raster.transform, raster_width=raster.width,
                        raster_height=raster.height)
    if polygons is None:
        tiles, skipped = TileSequence(layout), 0
    else:
        kept = array("q", _tiles_meeting(layout, polygons))
        tiles, skipped = TileSequence(layout, kept), rows * cols - len(kept)
    if not len(tiles):
        raise TilingError(f"no tile of {raster.path} meets the polygons of {_area_name(area)}: "
                          "check that the polygons lie over the raster.")

    xres, yres = raster.resolution
    grid = TileGrid(
        tiles=tiles, rows=rows, cols=cols, crs=crs, crs_wkt=crs_wkt,
        transform=raster.transform, raster_width=raster.width, raster_height=raster.height,
        origin=(col_start, row_start), tile_size=(tile_w, tile_h), step=(step_x, step_y),
        tile_size_map=(tile_w * xres, tile_h * yres),
        tile_size_metres=(tile_w * xres * metres_x, tile_h * yres * metres_y),
        area_bounds=clipped, skipped=skipped)
    grid = _with_signature(grid)
    log.debug("%s: %d tiles (%d rows × %d cols, %d skipped outside the polygons), tile %dx%d px "
              "(%.6g × %.6g map units), step %dx%d px", raster.path, len(tiles), rows, cols,
             skipped, tile_w, tile_h, grid.tile_size_map[0], grid.tile_size_map[1], step_x,
             step_y)
    return grid


def grid_placement(grid: TileGrid) -> Dict[str, Any]:
    """Everything that places the tiles, as plain JSON values (the raster's path is left out
    on purpose, so a moved raster still resumes)."""
    placement: Dict[str, Any] = {
        "crs": grid.crs,
        "transform": [float(v) for v in list(grid.transform)[:6]],
        "raster_size": [grid.raster_width, grid.raster_height],
        "origin": list(grid.origin),
        "tile_size": list(grid.tile_size),
        "step": list(grid.step),
        "rows": grid.rows,
        "cols": grid.cols,
        "tile_ids": _ids_digest(grid.tiles.tile_ids()),
    }
    if grid.levels > 1:  # one level places its tiles as versions before pyramids did
        placement["levels"] = grid.levels
    return placement


def _ids_digest(ids: Iterable[int]) -> str:
    """SHA-256 of the ids joined by commas, computed as they come (the same digest as
    ``sha256(",".join(...))``, which resumed layers already store)."""
    digest = hashlib.sha256()
    separator = b""
    for tile_id in ids:
        digest.update(separator + str(tile_id).encode("ascii"))
        separator = b","
    return digest.hexdigest()


def grid_signature(grid: TileGrid) -> str:
    """A stable hash of :func:`grid_placement`: the same grid gives the same string."""
    text = json.dumps(grid_placement(grid), sort_keys=True, separators=(",", ":"))
    return "grid-v1:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _with_signature(grid: TileGrid) -> TileGrid:
    return replace(grid, grid_signature=grid_signature(grid))


def _check_georeferencing(raster: RasterInfo) -> Tuple[str, str]:
    """Raise unless ``raster`` can be tiled north-up; return its CRS (name, WKT)."""
    if raster.crs is None or raster.crs_wkt is None:
        raise TilingError(f"raster {raster.path} has no CRS, so its tiles cannot be placed on a "
                          "map: assign its CRS (e.g. gdal_edit.py -a_srs EPSG:32633 FILE, or "
                          "Layer Properties in QGIS) and try again.")
    t = raster.transform
    if t.b != 0 or t.d != 0:
        raise TilingError(f"raster {raster.path} has a rotated or sheared geotransform "
                          f"{tuple(t)[:6]}: tiles aligned to its pixels would not be north-up "
                          "rectangles. Warp it to a north-up grid first (e.g. gdalwarp FILE "
                          "out.tif).")
    if t.a == 0 or t.e == 0:
        raise TilingError(f"raster {raster.path} has a zero pixel size in its geotransform "
                          f"{tuple(t)[:6]}: fix its georeferencing.")
    if t.a < 0 or t.e > 0:
        raise TilingError(f"raster {raster.path} is stored mirrored (south-up or east-left: "
                          f"geotransform {tuple(t)[:6]}); MapScribe tiles north-up rasters. "
                          "Warp it to a north-up grid first (e.g. gdalwarp FILE out.tif).")
    return raster.crs, raster.crs_wkt


def _check_tile_count(rows: int, cols: int, size: Tuple[int, int], raster: RasterInfo,
                      area: AreaOfInterest) -> None:
    if rows * cols > MAX_TILES:
        raise TilingError(f"{_area_name(area)} of {raster.path} ({raster.width:,} × "
                          f"{raster.height:,} px) needs {rows:,} rows × {cols:,} columns = "
                          f"{rows * cols:,} tiles of {size[0]} × {size[1]} px, more than the "
                          f"{MAX_TILES:,} one run plans. Caption a part at a time (--bbox or "
                          "--polygons), or use larger tiles (--tile-size).")


def _area_name(area: AreaOfInterest) -> str:
    if isinstance(area, BoundingBox):
        return f"bounding box ({area.minx}, {area.miny}, {area.maxx}, {area.maxy}) in {area.crs}"
    if isinstance(area, PolygonArea):
        return area.source
    return "the whole raster"


def _tile_size_pixels(raster: RasterInfo, params: TileGridParams,
                      metres_per_unit: Tuple[float, float]) -> Tuple[int, int]:
    xres, yres = raster.resolution
    if params.tile_size is None:
        if params.ground_resolution_hint is None:
            how = f"model input size {params.model_input_size} px at the raster's resolution"
            width = height = float(params.model_input_size)
        else:
            ground = params.model_input_size * params.ground_resolution_hint
            per_x, per_y = metres_per_unit
            how = (f"model input size {params.model_input_size} px × ground resolution "
                   f"{params.ground_resolution_hint} m = {ground:g} m")
            width, height = ground / (xres * per_x), ground / (yres * per_y)
    elif params.tile_size_unit == "map":
        how = f"tile size {params.tile_size} map units"
        width, height = params.tile_size / xres, params.tile_size / yres
    else:
        how = f"tile size {params.tile_size} pixels"
        width = height = float(params.tile_size)
    if not (math.isfinite(width) and math.isfinite(height)) or max(width, height) > MAX_TILE_PIXELS:
        raise TilingError(f"{how} gives tiles of {width:.6g} × {height:.6g} pixels of "
                          f"{raster.path} (pixel size {xres:g} × {yres:g} map units), more than "
                          f"the {MAX_TILE_PIXELS:,} pixels a side MapScribe reads as one tile. "
                          "Give a smaller tile size (check its unit: map units or pixels).")
    tile_w, tile_h = int(round(width)), int(round(height))
    if min(tile_w, tile_h) < MIN_TILE_PIXELS:
        raise TilingError(f"{how} gives tiles of {width:.3g} × {height:.3g} pixels of "
                          f"{raster.path} (pixel size {xres:g} × {yres:g} map units); tiles need "
                          f"at least {MIN_TILE_PIXELS} pixels a side. Give a larger tile size "
                          "(check its unit: map units or pixels).")
    return tile_w, tile_h


def _overlap_pixels(params: TileGridParams, tile_w: int, tile_h: int, path: str
                    ) -> Tuple[int, int]:
    if params.overlap_unit == "percent":
        overlap_x = int(round(tile_w * params.overlap / 100))
        overlap_y = int(round(tile_h * params.overlap / 100))
    else:
        overlap_x = overlap_y = int(params.overlap)
    if overlap_x >= tile_w or overlap_y >= tile_h:
        raise TilingError(f"overlap {params.overlap} {params.overlap_unit} is {overlap_x} × "
                          f"{overlap_y} pixels, not less than the tile size {tile_w} × {tile_h} "
                          f"pixels of {path}: give a smaller overlap.")
    return overlap_x, overlap_y


def _bbox_in_raster_crs(area: BoundingBox, raster: RasterInfo) -> Tuple[float, float, float, float]:
    if not (area.minx < area.maxx and area.miny < area.maxy):
        raise TilingError(f"bounding box ({area.minx}, {area.miny}, {area.maxx}, {area.maxy}) is "
                          "empty or inverted: give MINX MINY MAXX MAXY with MINX < MAXX and "
                          "MINY < MAXY.")
    source = parse_crs(area.crs, "the bounding box")
    target = CRS.from_wkt(raster.crs_wkt)
    try:
        bounds = transform_bounds(source, target, area.minx, area.miny, area.maxx, area.maxy,
                                  densify_pts=DENSIFY_POINTS)
    except Exception as exc:  # PROJ errors come as several rasterio/GDAL types
        raise TilingError(f"cannot reproject {_area_name(area)} to the CRS of {raster.path} "
                          f"({raster.crs}): {exc}") from exc
    if not all(math.isfinite(v) for v in bounds):
        raise TilingError(f"{_area_name(area)} does not reproject to the CRS of {raster.path} "
                          f"({raster.crs}): it lies outside that CRS's area of use.")
    return tuple(bounds)


def _clip_to_raster(bounds: Sequence[float], raster: RasterInfo, area: AreaOfInterest
                    ) -> Tuple[float, float, float, float]:
    left, bottom, right, top = raster.bounds
    minx, miny = max(bounds[0], left), max(bounds[1], bottom)
    maxx, maxy = min(bounds[2], right), min(bounds[3], top)
    if not (minx < maxx and miny < maxy):
        raise TilingError(
            f"{_area_name(area)} does not overlap raster {raster.path}: in the raster's CRS "
            f"({raster.crs}) the area is {tuple(round(v, 3) for v in bounds)} and the raster "
            f"{tuple(round(v, 3) for v in raster.bounds)}. Check the area's CRS and coordinates "
            "(x before y, longitude before latitude).")
    return minx, miny, maxx, maxy


def _pixel_span(bounds: Sequence[float], raster: RasterInfo) -> Tuple[int, int, int, int]:
    """The whole pixels (col_start, row_start, col_end, row_end), end exclusive, that an area in
    the raster's CRS touches."""
    inverse = ~raster.transform
    corners = [inverse * (x, y) for x in (bounds[0], bounds[2]) for y in (bounds[1], bounds[3])]
    cols = [c for c, _ in corners]
    rows = [r for _, r in corners]
    col_start = max(0, math.floor(min(cols) + PIXEL_EPSILON))
    row_start = max(0, math.floor(min(rows) + PIXEL_EPSILON))
    col_end = min(raster.width, math.ceil(max(cols) - PIXEL_EPSILON))
    row_end = min(raster.height, math.ceil(max(rows) - PIXEL_EPSILON))
    # An area thinner than a pixel still gets the pixel it lies in.
    return col_start, row_start, max(col_end, col_start + 1), max(row_end, row_start + 1)


def _tiles_needed(span: int, size: int, step: int) -> int:
    """How many tiles of ``size`` at ``step`` cover ``span`` pixels from the first one's start."""
    if span <= size:
        return 1
    return 1 + math.ceil((span - size) / step)
