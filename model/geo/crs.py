"""Coordinate reference systems: parsing one from people's text, and the ground scale of a
map unit (metres per unit along x and y) at a place.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Tuple

from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform

from .errors import TilingError
from .gdal_errors import quiet_gdal

log = logging.getLogger(__name__)


# Metres per degree, for turning a ground size in metres into degrees on a geographic raster.
# Latitude: mean length of a degree; longitude: the same on the equator, times cos(latitude).
METRES_PER_DEGREE_LAT = 110_574.0
METRES_PER_DEGREE_LON_EQUATOR = 111_320.0


def ground_scale(crs_wkt: str, centre: Tuple[float, float], what: str = "the raster"
                 ) -> Tuple[float, float]:
    """Ground metres per map unit along x and y at ``centre`` (map coordinates in that CRS).

    * geographic CRSs: a degree of longitude shrinks with cos(latitude);
    * Mercator projections (Web Mercator, EPSG:3857, above all): a map unit is cos(latitude)
      ground metres (at 54°N a 112-unit tile is 65 m on the ground);
    * other projected CRSs: the CRS's linear unit (metre, US survey foot …), whose scale error
      is small by design.
    """
    crs = CRS.from_wkt(crs_wkt)
    if crs.is_geographic:
        latitude = math.radians(centre[1])
        return METRES_PER_DEGREE_LON_EQUATOR * math.cos(latitude), METRES_PER_DEGREE_LAT
    try:
        _, factor = crs.linear_units_factor
    except CRSError:
        log.warning("%s: the CRS's linear unit is unknown; taking it as metres", what)
        factor = 1.0
    if _is_mercator(crs):
        latitude = math.radians(_latitude_of(crs, centre))
        return factor * math.cos(latitude), factor * math.cos(latitude)
    return factor, factor


def _is_mercator(crs: CRS) -> bool:
    """Web Mercator and the other (normal-aspect) Mercator projections, whose scale grows with
    latitude; not Transverse Mercator (UTM), whose scale error is small by design."""
    from osgeo import osr

    srs = osr.SpatialReference()
    if srs.ImportFromWkt(crs.to_wkt()) != 0:
        return False
    method = srs.GetAttrValue("PROJECTION") or ""
    return method.startswith("Mercator") or "Pseudo_Mercator" in method


def _latitude_of(crs: CRS, point: Tuple[float, float]) -> float:
    xs, ys = transform(crs, CRS.from_epsg(4326), [point[0]], [point[1]])
    return max(-89.9, min(89.9, float(ys[0])))


def parse_crs(value: str, what: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except (CRSError, ValueError, TypeError) as exc:
        raise TilingError(f"unknown CRS {value!r} for {what}: give an EPSG code such as "
                          "'EPSG:4326', a WKT or a PROJ string.") from exc


# A CRS written in a file (a GeoPackage's run metadata, anything a stranger may have made) is
# taken only as an authority code or as WKT: GDAL's parser of people's input would also follow
# URLs, open local files and read devices named there.
_AUTHORITY_CODE = re.compile(r"^([A-Za-z][A-Za-z0-9_]{0,31}):([0-9]{1,9})$")
_WKT_KEYWORDS = ("PROJCS", "GEOGCS", "GEOCCS", "COMPD_CS", "VERT_CS", "LOCAL_CS", "FITTED_CS",
                 "PROJCRS", "PROJECTEDCRS", "GEOGCRS", "GEOGRAPHICCRS", "GEODCRS", "GEODETICCRS",
                 "BASEGEODCRS", "COMPOUNDCRS", "VERTCRS", "VERTICALCRS", "ENGCRS",
                 "ENGINEERINGCRS", "BOUNDCRS", "DERIVEDPROJCRS", "PARAMETRICCRS", "TIMECRS")
# Longer than any real WKT (a projected CRS with its full datum and axes is a few kB).
MAX_WKT_CHARS = 65_536


def srs_from_file_text(value: object):
    """An ``osr.SpatialReference`` (x/y axis order) from CRS text read out of a file, or None
    when the text is neither an authority code (``EPSG:32618``) nor WKT. Nothing is fetched,
    opened or read: URLs, paths, PROJ strings and anything else are refused."""
    from osgeo import osr

    if not isinstance(value, str) or not value.strip() or len(value) > MAX_WKT_CHARS:
        return None
    text = value.strip()
    srs = osr.SpatialReference()
    with quiet_gdal():
        try:
            code = _AUTHORITY_CODE.match(text)
            if code:
                if code.group(1).upper() == "EPSG":
                    failed = srs.ImportFromEPSG(int(code.group(2))) != 0
                else:  # looked up in PROJ's own database, nothing else
                    failed = srs.SetFromUserInput(f"{code.group(1)}:{code.group(2)}") != 0
            elif _is_wkt(text):
                failed = srs.ImportFromWkt(text) != 0
            else:
                return None
        except RuntimeError:
            return None
    if failed:
        return None
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _is_wkt(text: str) -> bool:
    # WKT 1's EXTENSION["PROJ4", …] hands a PROJ string (+init=<file>, +nadgrids=…) to PROJ.
    if "EXTENSION" in text.upper():
        return False
    keyword, bracket, _ = text.partition("[")
    if not bracket:
        keyword, bracket, _ = text.partition("(")
    return bool(bracket) and keyword.strip().upper() in _WKT_KEYWORDS
