"""Coordinate reference systems: parsing one from people's text, and the ground scale of a
map unit (metres per unit along x and y) at a place.
"""

from __future__ import annotations

import logging
import math
from typing import Tuple

from rasterio.crs import CRS
from rasterio.errors import CRSError

from .errors import TilingError
from .raster_info import RasterInfo

log = logging.getLogger(__name__)


# Metres per degree, for turning a ground-resolution hint into degrees on a geographic raster.
# Latitude: mean length of a degree; longitude: the same on the equator, times cos(latitude).
METRES_PER_DEGREE_LAT = 110_574.0


METRES_PER_DEGREE_LON_EQUATOR = 111_320.0


def _metres_per_map_unit(raster: RasterInfo) -> Tuple[float, float]:
    """Metres per map unit along x and y, for turning a ground size in metres into pixels."""
    crs = CRS.from_wkt(raster.crs_wkt)
    if crs.is_geographic:
        left, bottom, right, top = raster.bounds
        latitude = math.radians((bottom + top) / 2)
        return METRES_PER_DEGREE_LON_EQUATOR * math.cos(latitude), METRES_PER_DEGREE_LAT
    try:
        _, factor = crs.linear_units_factor
    except CRSError:
        log.warning("%s: the CRS's linear unit is unknown; taking it as metres", raster.path)
        factor = 1.0
    return factor, factor


def _parse_crs(value: str, what: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except (CRSError, ValueError, TypeError) as exc:
        raise TilingError(f"unknown CRS {value!r} for {what}: give an EPSG code such as "
                          "'EPSG:4326', a WKT or a PROJ string.") from exc
