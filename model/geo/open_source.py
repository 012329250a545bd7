"""An image source made ready for one run: the raster that tiling sees, how its pixels will be
read, the notes for people and the run's record of it.

* a **file** (or GDAL string) is opened with rasterio, with its open options; one on the network
  (``/vsicurl/``, ``WMS:`` …) gets GDAL's HTTP settings (User-Agent, the source's headers — kept
  in GDAL's thread-local configuration, never written anywhere —, timeout, retries) and is read
  by several threads, each retrying a failed read before the tile is recorded as failed;
* a **web service** (XYZ, WMS, WMTS) is described level by level (:mod:`.web_service`), the level
  whose ground resolution is closest to what the model needs is chosen (never fetching more than
  about twice the pixels needed, never past the finest; ``zoom`` overrides), and a first tile is
  fetched before anything else happens, so that a wrong address, a refusal, an answer that is
  not an image or an area without imagery are said at once, in one message each.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .areas import AreaOfInterest, BoundingBox, PolygonArea, WholeRaster
from .crs import ground_scale
from .errors import RasterReadError, TilingError
from .http_fetch import FetchStats, HttpFetcher, NetworkParams, RateLimiter, TileUnavailableError
from .raster_info import RasterInfo
from .read_plan import DEFAULT_BANDS, ReadParams, ReadPlan, prepare_reading
from .reader import FileTileFetcher, TileReader
from .sources import ImageSource, SourceError, redact_text
from .tiling import TileWindow
from .web_pixels import SharedTiles, WebTileFetcher
from .web_service import PyramidLevel, WebService, choose_level, open_web_service

log = logging.getLogger(__name__)

# Tiles tried before a web source is said to have no imagery over the area.
PROBE_TILES = 5


@dataclass
class OpenedSource:
    """A source ready to be read for one run (see the module documentation)."""

    source: ImageSource
    network: NetworkParams
    info: RasterInfo
    notes: List[str] = field(default_factory=list)
    service: Optional[WebService] = None
    level: Optional[PyramidLevel] = None
    ground_resolution_m: Optional[float] = None  # of the level, at the area's centre
    stats: FetchStats = field(default_factory=FetchStats)
    limiter: Optional[RateLimiter] = None
    shared: Optional[SharedTiles] = None
    cache: Any = None

    @property
    def attribution(self) -> str:
        return (self.service.attribution if self.service is not None
                else self.source.attribution)

    def read_plan(self, params: ReadParams) -> ReadPlan:
        """Bands and stretch: a file's from its header and a sample; a web service's images are
        8-bit RGB (transparency is their mask)."""
        if self.service is None:
            with _gdal_env(self.source, self.network):
                return _redacted(self.source, lambda: prepare_reading(
                    self.source.location, params, dict(self.source.open_options)))
        if params.bands.bands != DEFAULT_BANDS or params.bands.alpha_band is not None:
            raise RasterReadError(f"{self.source.describe()} sends RGB images: bands "
                                  f"{params.bands.bands} cannot be chosen for it (leave the "
                                  "bands at 1,2,3).")
        return ReadPlan(path=self.info.path, read_bands=DEFAULT_BANDS, alpha_band=None,
                        gdal_alpha=False, passthrough=True, all_valid=False, fill_value=0.0,
                        stretch=None, notes=())

    def reader(self, tiles: Sequence[TileWindow], params: ReadParams, plan: ReadPlan
               ) -> TileReader:
        """A :class:`TileReader` of this source's tiles."""
        network = self.network
        if self.service is not None:
            service, level, shared = self.service, self.level, self.shared
            assert level is not None and shared is not None

            def web(stop):
                fetcher = HttpFetcher(network, self.source.http_headers(), cache=self.cache,
                                      limiter=self.limiter, stats=self.stats, stop=stop)
                return WebTileFetcher(service, level, fetcher, shared, params.output_size,
                                      params.resampling)

            return TileReader(self.info.path, tiles, params, plan, open_fetcher=web,
                              workers=network.connections,
                              failure_limit=network.max_consecutive_failures)
        source, remote = self.source, self.source.is_remote
        env = gdal_http_options(source, network) if remote else {}

        def gdal(stop):
            return FileTileFetcher(source.location, plan, params,
                                   open_options=dict(source.open_options), env=env,
                                   retry=(network.retries + 1, network.backoff_s)
                                   if remote else None,
                                   stop=stop, describe_error=lambda text: redact_text(text,
                                                                                     source))

        return TileReader(source.describe(), tiles, params, plan, open_fetcher=gdal,
                          workers=network.connections if remote else 1,
                          failure_limit=network.max_consecutive_failures if remote else None)

    def to_metadata(self) -> Dict[str, Any]:
        """What the run records about the source (no credential)."""
        record = self.source.to_metadata()
        record["attribution"] = self.attribution
        if self.level is not None and self.service is not None:
            record.update(zoom=self.level.zoom, tile_matrix=self.level.identifier,
                          resolution=self.level.resolution, crs=self.service.crs,
                          image_format=self.service.image_format, title=self.service.title,
                          ground_resolution_m=self.ground_resolution_m)
        return record

    def statistics(self) -> Dict[str, float]:
        return self.stats.to_dict()


# --------------------------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------------------------
def gdal_http_options(source: ImageSource, network: NetworkParams) -> Dict[str, Any]:
    """GDAL's HTTP settings for a GDAL source on the network (thread-local, in memory)."""
    from .http_fetch import USER_AGENT

    options: Dict[str, Any] = {
        "GDAL_HTTP_USERAGENT": USER_AGENT,
        "GDAL_HTTP_TIMEOUT": str(int(math.ceil(network.timeout_s))),
        "GDAL_HTTP_MAX_RETRY": str(network.retries),
        "GDAL_HTTP_RETRY_DELAY": str(network.backoff_s),
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    }
    headers = source.http_headers()
    if headers:
        options["GDAL_HTTP_HEADERS"] = "\r\n".join(f"{k}: {v}" for k, v in headers.items())
    return options


def _gdal_env(source: ImageSource, network: NetworkParams):
    import rasterio

    return rasterio.Env(**(gdal_http_options(source, network) if source.is_remote else {}))


def _redacted(source: ImageSource, action):
    try:
        return action()
    except (TilingError, RasterReadError) as error:
        raise type(error)(redact_text(str(error), source)) from None


def open_source(source: ImageSource, network: NetworkParams, area: AreaOfInterest, *,
                input_size: int, ground_resolution_hint: Optional[float],
                tile_size: Optional[float] = None, tile_size_unit: str = "map",
                zoom: Optional[int] = None, probe: bool = True) -> OpenedSource:
    """Make ``source`` ready for a run over ``area`` (see the module documentation)."""
    if not source.is_web:
        if zoom is not None:
            raise SourceError(f"a zoom level applies to web map services, not to "
                              f"{source.describe()}: leave it out.")
        with _gdal_env(source, network):
            info = _redacted(source, lambda: RasterInfo.from_path(
                source.location, dict(source.open_options)))
        return OpenedSource(source, network, info)
    stats = FetchStats()
    opened = OpenedSource(source, network, info=None,  # type: ignore[arg-type]  # set below
                          stats=stats,
                          limiter=RateLimiter(network.max_requests_per_second),
                          shared=SharedTiles(stats=stats), cache=network.tile_cache())
    first = HttpFetcher(network, source.http_headers(), cache=opened.cache,
                        limiter=opened.limiter, stats=stats)
    service = open_web_service(source, first)
    for _ in range(2):  # a second time only when the tiles are not of the size announced
        finest = service.raster_info(service.levels[-1])
        centre = _area_centre(finest, area, source)
        scale = ground_scale(service.crs_wkt, centre, finest.path)[0]
        needed = _needed_resolution(scale, input_size, ground_resolution_hint, tile_size,
                                    tile_size_unit)
        level = choose_level(service, needed, zoom)
        opened.service, opened.level, opened.info = service, level, service.raster_info(level)
        opened.ground_resolution_m = level.resolution * scale
        if not probe:
            break
        size = _probe(opened, first, centre)
        if size is None or size == level.tile_size or source.kind != "xyz":
            break
        log.info("%s: tiles of %s px, not %s: zoom chosen again", source.describe(), size,
                 level.tile_size)
        source = replace(source, tile_pixels=size[0])
        service = open_web_service(source, first)  # XYZ: no request
        opened.source = source
    opened.notes.append(_level_note(opened, ground_resolution_hint, zoom))
    if opened.attribution:
        opened.notes.append(f"Imagery: {opened.attribution}. Respect the provider's terms of "
                            "use and rate limits.")
    return opened


def _area_centre(info: RasterInfo, area: AreaOfInterest, source: ImageSource
                 ) -> Tuple[float, float]:
    """The centre of the area in the service's CRS, clipped to what the service covers."""
    from .tiling import _bbox_in_raster_crs, _clip_to_raster
    from .vector import _polygons_in_raster_crs

    if isinstance(area, WholeRaster):
        if source.kind == "xyz":
            raise SourceError(f"{source.describe()} covers the whole world: choose an area to "
                              "caption (the visible extent, --bbox or --polygons).")
        bounds = info.bounds
    elif isinstance(area, BoundingBox):
        bounds = _bbox_in_raster_crs(area, info)
    elif isinstance(area, PolygonArea):
        minx, maxx, miny, maxy = _polygons_in_raster_crs(area, info).GetEnvelope()
        bounds = (minx, miny, maxx, maxy)
    else:
        raise TilingError(f"unknown area of interest {area!r}.")
    left, bottom, right, top = _clip_to_raster(bounds, info, area)
    return (left + right) / 2, (bottom + top) / 2


def _needed_resolution(metres_per_unit: float, input_size: int, hint: Optional[float],
                       tile_size: Optional[float], unit: str) -> Optional[float]:
    """Map units per pixel that show the model a tile as it expects; None: the finest."""
    if tile_size is not None and unit == "map":
        return tile_size / input_size
    if hint:
        return hint / metres_per_unit
    return None


def _probe(opened: OpenedSource, fetcher: HttpFetcher, centre: Tuple[float, float]
           ) -> Optional[Tuple[int, int]]:
    """Fetch the service tile under the area's centre (and a few around it when there is none
    there) before anything else; the size of the first image found."""
    service, level = opened.service, opened.level
    assert service is not None and level is not None
    inverse = ~opened.info.transform
    col, row = (int(v) for v in inverse * centre)
    tile_col, tile_row = col // level.tile_size[0], row // level.tile_size[1]
    tried = []
    for d_col, d_row in ((0, 0), (-1, -1), (1, 1), (-1, 1), (1, -1))[:PROBE_TILES]:
        c, r = tile_col + d_col, tile_row + d_row
        if not (0 <= c < level.matrix_size[0] and 0 <= r < level.matrix_size[1]):
            continue
        url = service.tile_url(level, c, r)
        try:
            body = fetcher.get(url, fail_fast=True)
        except TileUnavailableError as error:
            raise SourceError(f"{opened.source.describe()} cannot be read: {error}. Check the "
                              "address, the network and that the service is up.") from None
        tried.append(url)
        if body is not None:
            return _decoded_size(body, url, opened.source)
    from .sources import redact_url

    raise SourceError(f"{opened.source.describe()} has no imagery at zoom {level.zoom} over the "
                      f"area: the service answered 'no tile' (HTTP 404) for every tile tried "
                      f"({', '.join(redact_url(u) for u in tried[:2])}, …). Check the area, the "
                      "URL template and the zoom levels the service offers.")


def _decoded_size(body: bytes, url: str, source: ImageSource) -> Tuple[int, int]:
    from .sources import redact_url
    from .web_pixels import image_size

    try:
        return image_size(body, f"the image at {redact_url(url)}")
    except TileUnavailableError as error:
        raise SourceError(f"{source.describe()}: {error}.") from None


def _level_note(opened: OpenedSource, hint: Optional[float], zoom: Optional[int]) -> str:
    service, level = opened.service, opened.level
    assert service is not None and level is not None
    kind = opened.source.kind.upper()
    name = f"zoom {level.zoom}" if kind != "WMTS" else f"tile matrix {level.identifier}"
    if kind == "WMS":
        name = f"GetMap at {level.resolution:.6g} map units per pixel"
    how = "as asked" if zoom is not None else (
        f"the closest to the model's {hint:g} m per pixel" if hint else "the finest offered")
    return (f"{kind} {name} ({how}): about {opened.ground_resolution_m:.3g} m per pixel on the "
            f"ground at the area's centre, tiles of {level.tile_size[0]} px.")
