"""A web map service as a pyramid of tiled levels: what tiling and reading need to know.

* XYZ: Web Mercator levels ``zmin``–``zmax`` of ``tile_pixels`` px tiles (``{-y}``: TMS rows
  counted from the south; ``{q}``: a quadkey);
* WMTS: the tile matrices of the chosen tile matrix set, read from the capabilities
  (``TileMatrixSetLimits`` bound the tiles asked for);
* WMS: levels whose resolutions are powers of two map units, cut into 512 px blocks, each one
  GetMap request, from the top-left corner of the layer's bounding box: neighbouring tiles
  share blocks, and the same area at the same level asks for the same URLs (the cache answers a
  second run).

Each level is seen by tiling as a north-up raster (:meth:`WebService.raster_info`), so the grid,
its signature, resume and every area work as they do for a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

from affine import Affine

from .http_fetch import HttpFetcher
from .ows_capabilities import parse_wms_capabilities, parse_wmts_capabilities
from .raster_info import RasterInfo
from .sources import ImageSource, SourceError, redact_url, with_query

WEB_MERCATOR_HALF = 20037508.342789244   # metres from the centre to the edge of the square
EARTH_CIRCUMFERENCE = 2 * WEB_MERCATOR_HALF
# OGC's standard pixel (0.28 mm) and metres per degree on the WGS 84 sphere, for WMTS scales.
STANDARD_PIXEL_M = 0.28e-3
METRES_PER_DEGREE = EARTH_CIRCUMFERENCE / 360.0
WMS_BLOCK = 512
WMS_LEVELS = 24
FORMAT_PREFERENCE = ("image/png", "image/jpeg", "image/jpg", "image/png8", "image/webp")


@dataclass(frozen=True)
class PyramidLevel:
    """One level: tiles of ``tile_size`` px at ``resolution`` map units per pixel, the first
    one (``first_tile`` in the service's numbering) at ``origin`` (top-left corner)."""

    zoom: int                      # the level's number for people (XYZ z, WMTS index, WMS k)
    identifier: str                # what the service calls it (WMTS TileMatrix)
    resolution: float
    origin: Tuple[float, float]
    tile_size: Tuple[int, int]
    matrix_size: Tuple[int, int]   # (cols, rows) of tiles from first_tile
    first_tile: Tuple[int, int] = (0, 0)
    pixels: Optional[Tuple[int, int]] = None  # (width, height) when not whole tiles (WMS)


@dataclass(frozen=True)
class WebService:
    """A web source with its levels (coarsest first) and how to ask for one tile."""

    source: ImageSource
    crs: str
    crs_wkt: str
    levels: Tuple[PyramidLevel, ...]
    title: str
    attribution: str
    image_format: str
    endpoint: str              # XYZ: the template; WMS: GetMap URL; WMTS: KVP URL or template
    rest: bool = False         # WMTS: endpoint is a ResourceURL template
    axis_swapped: bool = False  # WMS 1.3.0 in a latitude-first CRS: BBOX is y,x
    wms_version: str = ""

    def level(self, zoom: int) -> PyramidLevel:
        for level in self.levels:
            if level.zoom == zoom:
                return level
        zooms = [level.zoom for level in self.levels]
        raise SourceError(f"{self.source.describe()} has no zoom level {zoom}: it offers "
                          f"{min(zooms)}–{max(zooms)}.")

    def raster_info(self, level: PyramidLevel) -> RasterInfo:
        """The level as a north-up RGB raster (what tiling sees)."""
        from rasterio.crs import CRS

        width, height = level.pixels or (level.matrix_size[0] * level.tile_size[0],
                                         level.matrix_size[1] * level.tile_size[1])
        crs = CRS.from_wkt(self.crs_wkt)
        return RasterInfo(
            path=self.source.describe(), crs=crs.to_string(), crs_wkt=self.crs_wkt,
            transform=Affine(level.resolution, 0.0, level.origin[0], 0.0, -level.resolution,
                             level.origin[1]),
            width=width, height=height, count=3, dtypes=("uint8",) * 3, nodata=None,
            colorinterp=("red", "green", "blue"), overview_factors=(),
            mask_flags=(("per_dataset",),) * 3, block_shapes=((level.tile_size[1],
                                                               level.tile_size[0]),) * 3)

    def tile_url(self, level: PyramidLevel, col: int, row: int) -> str:
        """The URL of tile (col, row) of ``level``, counted from its ``first_tile``."""
        col, row = col + level.first_tile[0], row + level.first_tile[1]
        kind = self.source.kind
        if kind == "xyz":
            z = level.zoom
            quadkey = "".join(str(((col >> i) & 1) + 2 * ((row >> i) & 1))
                              for i in range(z, 0, -1)) if "{q}" in self.endpoint else ""
            return (self.endpoint.replace("{z}", str(z)).replace("{x}", str(col))
                    .replace("{-y}", str((1 << z) - 1 - row)).replace("{y}", str(row))
                    .replace("{q}", quadkey))
        if kind == "wms":
            width, height = level.tile_size
            left = level.origin[0] + col * width * level.resolution
            top = level.origin[1] - row * height * level.resolution
            box = (left, top - height * level.resolution, left + width * level.resolution, top)
            if self.axis_swapped:
                box = (box[1], box[0], box[3], box[2])
            crs_key = "CRS" if self.wms_version >= "1.3" else "SRS"
            params = [("SERVICE", "WMS"), ("VERSION", self.wms_version), ("REQUEST", "GetMap"),
                      ("LAYERS", self.source.layers), ("STYLES", self.source.styles),
                      (crs_key, self.crs), ("BBOX", ",".join(f"{v:.10g}" for v in box)),
                      ("WIDTH", str(width)), ("HEIGHT", str(height)),
                      ("FORMAT", self.image_format), ("TRANSPARENT", "TRUE")]
            return with_query(self.endpoint, params)
        style = self.source.styles
        if self.rest:
            return (self.endpoint.replace("{TileMatrixSet}", self.source.tile_matrix_set)
                    .replace("{TileMatrix}", level.identifier).replace("{TileRow}", str(row))
                    .replace("{TileCol}", str(col)).replace("{Style}", style))
        params = [("SERVICE", "WMTS"), ("REQUEST", "GetTile"), ("VERSION", "1.0.0"),
                  ("LAYER", self.source.layers), ("STYLE", style),
                  ("FORMAT", self.image_format),
                  ("TILEMATRIXSET", self.source.tile_matrix_set),
                  ("TILEMATRIX", level.identifier), ("TILEROW", str(row)),
                  ("TILECOL", str(col))]
        return with_query(self.endpoint, params)


# --------------------------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------------------------
def open_web_service(source: ImageSource, fetcher: HttpFetcher) -> WebService:
    """Describe ``source``'s levels (a WMS or WMTS's capabilities are fetched once)."""
    if source.kind == "xyz":
        return _xyz(source)
    if source.kind == "wms":
        return _wms(source, fetcher)
    if source.kind == "wmts":
        return _wmts(source, fetcher)
    raise SourceError(f"{source.describe()} is not a web map service.")


def _crs_wkt(code: str, what: str) -> str:
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(code).to_wkt()
    except (CRSError, ValueError) as error:
        raise SourceError(f"{what} uses the CRS {code!r}, which PROJ does not know "
                          f"({error}).") from None


def _xyz(source: ImageSource) -> WebService:
    levels = []
    for z in range(source.zmin, source.zmax + 1):
        count = 1 << z
        levels.append(PyramidLevel(
            zoom=z, identifier=str(z),
            resolution=EARTH_CIRCUMFERENCE / (source.tile_pixels * count),
            origin=(-WEB_MERCATOR_HALF, WEB_MERCATOR_HALF),
            tile_size=(source.tile_pixels, source.tile_pixels), matrix_size=(count, count)))
    return WebService(source=source, crs="EPSG:3857", crs_wkt=_crs_wkt("EPSG:3857", "XYZ"),
                      levels=tuple(levels), title=source.name or source.label,
                      attribution=source.attribution, image_format="", endpoint=source.location)


def _capabilities(fetcher: HttpFetcher, url: str) -> bytes:
    body = fetcher.get(url, image=False, cached=False, fail_fast=True)
    if body is None:
        raise SourceError(f"{redact_url(url)} answered 'not found' to GetCapabilities: check "
                          "the service's URL.")
    return body


def _choose_format(offered, wanted: str, what: str) -> str:
    if wanted:
        if offered and wanted not in offered:
            raise SourceError(f"{what} does not offer the format {wanted!r}; it offers "
                              f"{', '.join(offered)}.")
        return wanted
    for candidate in FORMAT_PREFERENCE:
        if candidate in offered:
            return candidate
    image = [value for value in offered if value.startswith("image/")]
    if not image:
        raise SourceError(f"{what} offers no image format MapScribe reads (it offers "
                          f"{', '.join(offered) or 'none'}).")
    return image[0]


def _wms(source: ImageSource, fetcher: HttpFetcher) -> WebService:
    from osgeo import osr

    version = [("VERSION", source.version)] if source.version else []
    url = with_query(source.location, [("SERVICE", "WMS"), ("REQUEST", "GetCapabilities")]
                     + version, drop=("VERSION",))
    caps = parse_wms_capabilities(_capabilities(fetcher, url), url)
    shown = f"the WMS at {redact_url(source.location)}"
    names = [name.strip() for name in source.layers.split(",") if name.strip()]
    missing = [name for name in names if name not in caps.layers]
    if missing:
        offered = ", ".join(sorted(caps.layers)[:20]) or "none"
        raise SourceError(f"{shown} has no layer {', '.join(missing)}; it offers {offered}.")
    layer = caps.layers[names[0]]
    crs = source.crs or ("EPSG:3857" if "EPSG:3857" in layer.crs else
                         (layer.crs[0] if layer.crs else "EPSG:4326"))
    if layer.crs and crs not in layer.crs:
        raise SourceError(f"{shown} does not serve layer {names[0]} in {crs}; it offers "
                          f"{', '.join(layer.crs[:12])}.")
    wkt = _crs_wkt(crs, shown)
    image_format = _choose_format(caps.formats, source.image_format, shown)
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    swapped = caps.version >= "1.3" and bool(srs.EPSGTreatsAsLatLong()
                                             or srs.EPSGTreatsAsNorthingEasting())
    bounds = _wms_bounds(layer, crs, wkt, swapped, shown)
    left, bottom, right, top = bounds
    extent = max(right - left, top - bottom)
    coarsest = math.ceil(math.log2(extent / WMS_BLOCK))
    levels = []
    for index in range(WMS_LEVELS):
        resolution = 2.0 ** (coarsest - index)
        width = max(1, math.ceil((right - left) / resolution - 1e-9))
        height = max(1, math.ceil((top - bottom) / resolution - 1e-9))
        levels.append(PyramidLevel(zoom=index, identifier="", resolution=resolution,
                                   origin=(left, top), tile_size=(WMS_BLOCK, WMS_BLOCK),
                                   matrix_size=(math.ceil(width / WMS_BLOCK),
                                                math.ceil(height / WMS_BLOCK)),
                                   pixels=(width, height)))
    endpoint = caps.get_map_url or source.location
    return WebService(source=source, crs=crs, crs_wkt=wkt, levels=tuple(levels),
                      title=layer.title, attribution=source.attribution or layer.attribution,
                      image_format=image_format, endpoint=endpoint, axis_swapped=swapped,
                      wms_version=caps.version)


def _wms_bounds(layer, crs: str, wkt: str, swapped: bool, shown: str
                ) -> Tuple[float, float, float, float]:
    box = layer.bounds.get(crs.upper())
    if box is not None:
        return (box[1], box[0], box[3], box[2]) if swapped else box
    if layer.geographic_bounds is None:
        raise SourceError(f"{shown} gives no bounding box for layer {layer.name}: MapScribe "
                          "cannot place its pixels.")
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    west, south, east, north = layer.geographic_bounds
    south, north = max(south, -85.0), min(north, 85.0)  # Web Mercator ends before the poles
    box = transform_bounds(CRS.from_epsg(4326), CRS.from_wkt(wkt), west, south, east, north,
                           densify_pts=21)
    return box[0], box[1], box[2], box[3]


def _wmts(source: ImageSource, fetcher: HttpFetcher) -> WebService:
    from rasterio.crs import CRS

    url = source.location
    if "getcapabilities" not in url.lower() and not url.lower().split("?")[0].endswith(".xml"):
        url = with_query(url, [("SERVICE", "WMTS"), ("REQUEST", "GetCapabilities")])
    caps = parse_wmts_capabilities(_capabilities(fetcher, url), url)
    shown = f"the WMTS at {redact_url(source.location)}"
    layer = caps.layers.get(source.layers)
    if layer is None:
        raise SourceError(f"{shown} has no layer {source.layers!r}; it offers "
                          f"{', '.join(sorted(caps.layers)[:20]) or 'none'}.")
    usable = [name for name in layer.matrix_sets if name in caps.matrix_sets]
    name = source.tile_matrix_set
    if not name:
        mercator = [n for n in usable if "3857" in caps.matrix_sets[n].crs
                    or "900913" in caps.matrix_sets[n].crs]
        name = (mercator or usable or [""])[0]
    if name not in usable:
        raise SourceError(f"{shown}: layer {layer.identifier} has no tile matrix set "
                          f"{name!r}; it has {', '.join(usable) or 'none'}.")
    matrix_set = caps.matrix_sets[name]
    wkt = _crs_wkt(matrix_set.crs, shown)
    crs = CRS.from_wkt(wkt)
    per_unit = METRES_PER_DEGREE if crs.is_geographic else _linear_factor(crs)
    swapped = _lat_first(wkt)
    limits = layer.matrix_sets[name]
    levels = []
    for index, matrix in enumerate(matrix_set.matrices):
        resolution = matrix.scale_denominator * STANDARD_PIXEL_M / per_unit
        x, y = matrix.top_left[::-1] if swapped else matrix.top_left
        cols, rows = matrix.matrix_size
        first = (0, 0)
        if matrix.identifier in limits:
            min_col, min_row, max_col, max_row = limits[matrix.identifier]
            first, cols, rows = (min_col, min_row), max_col - min_col + 1, max_row - min_row + 1
        width, height = matrix.tile_size
        origin = (x + first[0] * width * resolution, y - first[1] * height * resolution)
        levels.append(PyramidLevel(zoom=index, identifier=matrix.identifier,
                                   resolution=resolution, origin=origin, tile_size=(width, height),
                                   matrix_size=(max(cols, 1), max(rows, 1)), first_tile=first))
    levels.sort(key=lambda level: -level.resolution)
    image_format = _choose_format(layer.formats, source.image_format, shown)
    rest = not caps.get_tile_url
    endpoint = caps.get_tile_url or layer.resource_templates.get(image_format, "")
    if not endpoint:
        raise SourceError(f"{shown} gives no GetTile URL for layer {layer.identifier}.")
    from dataclasses import replace

    resolved = replace(source, tile_matrix_set=name,
                       styles=source.styles or (layer.styles[0] if layer.styles else "default"))
    return WebService(source=resolved, crs=matrix_set.crs, crs_wkt=wkt, levels=tuple(levels),
                      title=layer.title or layer.identifier,
                      attribution=source.attribution or layer.attribution,
                      image_format=image_format, endpoint=endpoint, rest=rest)


def _linear_factor(crs) -> float:
    try:
        return float(crs.linear_units_factor[1])
    except Exception:  # noqa: BLE001 - PROJ raises several types for a CRS without units
        return 1.0


def _lat_first(wkt: str) -> bool:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    return bool(srs.EPSGTreatsAsLatLong() or srs.EPSGTreatsAsNorthingEasting())


def choose_level(service: WebService, needed_resolution: Optional[float],
                 zoom: Optional[int] = None) -> PyramidLevel:
    """The level whose resolution is closest to ``needed_resolution`` (map units per pixel) on
    a log scale, among those that never fetch more than about twice the pixels needed; the
    finest level when the model needs finer still; ``zoom`` overrides."""
    if zoom is not None:
        return service.level(zoom)
    if needed_resolution is None:
        return service.levels[-1]
    limit = needed_resolution / math.sqrt(2.0) * (1 - 1e-9)   # ≤ 2× the pixels needed
    allowed = [level for level in service.levels if level.resolution >= limit]
    if not allowed:
        return service.levels[0]
    return min(allowed, key=lambda level: abs(math.log(level.resolution / needed_resolution)))
