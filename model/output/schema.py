"""The captions layer's schema: its fields, the statuses a tile can have, the metadata keys, and
the errors of reading and writing such a layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..errors import MapScribeError
from ..geo.tiling import TileWindow

FORMAT = "mapscribe-captions"


FORMAT_VERSION = 1


KEY_FORMAT = "MAPSCRIBE_FORMAT"


KEY_FORMAT_VERSION = "MAPSCRIBE_FORMAT_VERSION"


KEY_SIGNATURE = "MAPSCRIBE_GRID_SIGNATURE"


KEY_GRID = "MAPSCRIBE_GRID"


KEY_RUN = "MAPSCRIBE_RUN"


class Status(str, Enum):
    """What happened to a tile; stored as its value in the layer's ``status`` field."""

    CAPTIONED = "captioned"    # the caption reached <end>
    UNFINISHED = "unfinished"  # the caption was cut at the maximum length
    UNCERTAIN = "uncertain"    # captioned, but its confidence is below the model's threshold
    NODATA = "nodata"          # too few valid pixels: not shown to the model, no caption
    FAILED = "failed"          # its imagery could not be read (e.g. a web service failed)

    def __str__(self) -> str:
        return self.value

    @property
    def has_caption(self) -> bool:
        return self in (Status.CAPTIONED, Status.UNFINISHED, Status.UNCERTAIN)


STATUSES = tuple(status.value for status in Status)


# (name, OGR type name, subtype name, width); widths only where the values are bounded.
FIELDS: Tuple[Tuple[str, str, str, int], ...] = (
    ("tile_id", "OFTInteger64", "OFSTNone", 0),   # unique, stable across runs (geo.pyramid)
    ("row", "OFTInteger", "OFSTNone", 0),          # row in its level's grid, 0 = the north
    ("col", "OFTInteger", "OFSTNone", 0),
    ("caption", "OFTString", "OFSTNone", 0),       # NULL for nodata tiles
    ("score", "OFTReal", "OFSTNone", 0),           # mean token log-probability; NULL for nodata
    ("status", "OFTString", "OFSTNone", 10),       # one of STATUSES
    ("valid_fraction", "OFTReal", "OFSTNone", 0),  # share of the tile's pixels that hold data
    ("is_edge", "OFTInteger", "OFSTBoolean", 0),   # the tile reaches past the raster
    ("model", "OFTString", "OFSTNone", 0),         # model file name and a hash of its bytes
    ("created", "OFTDateTime", "OFSTNone", 0),     # UTC; GeoPackage stores ISO 8601 text
    # Models with a scene-theme head (data.themes); NULL otherwise.
    ("theme", "OFTString", "OFSTNone", 40),        # the kind of place the tile shows
    ("theme_probability", "OFTReal", "OFSTNone", 0),
    ("confidence", "OFTReal", "OFSTNone", 0),      # calibrated: the chance its theme is right
    ("reason", "OFTString", "OFSTNone", 0),        # why a 'failed' tile's imagery was not read
    # The caption pyramid (geo.pyramid): one layer holds every level, 0 = the coarsest; a
    # tile's parent is the tile of the next coarser level that covers it (NULL at level 0).
    ("level", "OFTInteger", "OFSTNone", 0),
    ("parent_id", "OFTInteger64", "OFSTNone", 0),
)
# Fields later versions added: a layer written before them gains them when a run resumes it.
ADDED_FIELDS = ("theme", "theme_probability", "confidence", "reason", "level", "parent_id")


FIELD_NAMES = tuple(name for name, *_ in FIELDS)


GEOPACKAGE_SUFFIX = ".gpkg"
# The layer a run writes unless told otherwise.
DEFAULT_LAYER = "captions"


class GridWriteError(MapScribeError, ValueError):
    """The output GeoPackage cannot be created, opened or written; the message says why and what
    to do."""


class GridFileError(MapScribeError, ValueError):
    """A file that is not a MapScribe captions GeoPackage (or lacks the layer asked for)."""


@dataclass(frozen=True)
class TileRecord:
    """One tile's row in the layer."""

    tile: TileWindow
    status: str
    caption: Optional[str] = None
    score: Optional[float] = None
    valid_fraction: float = 1.0
    theme: Optional[str] = None
    theme_probability: Optional[float] = None
    confidence: Optional[float] = None
    reason: Optional[str] = None  # a 'failed' tile: why its imagery could not be read


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


class ExportError(MapScribeError, ValueError):
    """The export cannot be made as asked; the message says why and what to do."""
