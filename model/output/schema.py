"""The captions layer's schema: its fields, the statuses a tile can have, the metadata keys, and
the errors of reading and writing such a layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..geo.tiling import TileWindow

FORMAT = "mapscribe-captions"


FORMAT_VERSION = 1


KEY_FORMAT = "MAPSCRIBE_FORMAT"


KEY_FORMAT_VERSION = "MAPSCRIBE_FORMAT_VERSION"


KEY_SIGNATURE = "MAPSCRIBE_GRID_SIGNATURE"


KEY_GRID = "MAPSCRIBE_GRID"


KEY_RUN = "MAPSCRIBE_RUN"


STATUS_CAPTIONED = "captioned"  # the caption reached <end>


STATUS_UNFINISHED = "unfinished"  # the caption was cut at the maximum length


STATUS_NODATA = "nodata"  # too few valid pixels: not shown to the model, no caption


STATUSES = (STATUS_CAPTIONED, STATUS_UNFINISHED, STATUS_NODATA)


# (name, OGR type name, subtype name, width); widths only where the values are bounded.
FIELDS: Tuple[Tuple[str, str, str, int], ...] = (
    ("tile_id", "OFTInteger64", "OFSTNone", 0),   # row * grid cols + col, stable across runs
    ("row", "OFTInteger", "OFSTNone", 0),          # grid row, 0 = the raster's first pixel row
    ("col", "OFTInteger", "OFSTNone", 0),
    ("caption", "OFTString", "OFSTNone", 0),       # NULL for nodata tiles
    ("score", "OFTReal", "OFSTNone", 0),           # mean token log-probability; NULL for nodata
    ("status", "OFTString", "OFSTNone", 10),       # one of STATUSES
    ("valid_fraction", "OFTReal", "OFSTNone", 0),  # share of the tile's pixels that hold data
    ("is_edge", "OFTInteger", "OFSTBoolean", 0),   # the tile reaches past the raster
    ("model", "OFTString", "OFSTNone", 0),         # model file name and a hash of its bytes
    ("created", "OFTDateTime", "OFSTNone", 0),     # UTC; GeoPackage stores ISO 8601 text
)


FIELD_NAMES = tuple(name for name, *_ in FIELDS)


GEOPACKAGE_SUFFIX = ".gpkg"


class GridWriteError(ValueError):
    """The output GeoPackage cannot be created, opened or written; the message says why and what
    to do."""


class GridFileError(ValueError):
    """A file that is not a MapScribe captions GeoPackage (or lacks the layer asked for)."""


@dataclass(frozen=True)
class TileRecord:
    """One tile's row in the layer."""

    tile: TileWindow
    status: str
    caption: Optional[str] = None
    score: Optional[float] = None
    valid_fraction: float = 1.0


@dataclass(frozen=True)
class CaptionLayerInfo:
    """What a MapScribe captions layer says about itself."""

    path: Path
    layer: str
    srs_wkt: str
    srs_name: str  # "EPSG:32618" when it has an EPSG code, else the CRS's name
    feature_count: int
    grid: Dict[str, Any]
    run: Dict[str, Any]

    @property
    def grid_signature(self) -> str:
        return str(self.grid.get("signature", ""))

    @property
    def tiles_planned(self) -> int:
        return int(self.grid.get("tiles", 0))


class ExportError(ValueError):
    """The export cannot be made as asked; the message says why and what to do."""
