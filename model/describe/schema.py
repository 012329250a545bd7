"""What describing a captioned area gives, and how it is stored.

The GeoPackage that holds a captions layer gets, beside it:

* a **regions layer** (``regions`` for the captions layer ``captions``, else
  ``<layer>_regions``): one (multi)polygon per region, connected tiles (8-neighbour) of one
  theme dissolved, with the fields of :data:`REGION_FIELDS`; its metadata item
  ``MAPSCRIBE_FORMAT`` is :data:`REGIONS_FORMAT`, so that MapScribe replaces only a regions
  layer it wrote, and ``MAPSCRIBE_REGIONS_OF`` names the captions layer it describes;
* a metadata item ``MAPSCRIBE_OVERVIEW`` on the captions layer (beside ``MAPSCRIBE_RUN``): JSON
  with the overview's sentences, where the themes came from, the notes and what was described
  (:func:`overview_metadata`), so that the QGIS panel and the report can read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..errors import MapScribeError
from ..output.schema import DEFAULT_LAYER

REGIONS_FORMAT = "mapscribe-regions"
REGIONS_FORMAT_VERSION = 1
OVERVIEW_FORMAT_VERSION = 1

# Layer metadata items (GDAL stores them in the GeoPackage's gpkg_metadata table).
KEY_OVERVIEW = "MAPSCRIBE_OVERVIEW"        # on the captions layer: JSON, overview_metadata()
KEY_REGIONS_OF = "MAPSCRIBE_REGIONS_OF"    # on the regions layer: the captions layer's name

# The regions layer of the default captions layer (output.schema.DEFAULT_LAYER).
DEFAULT_REGIONS_LAYER = "regions"

# The overview is read first, by ear: never more than this many sentences.
MAX_OVERVIEW_SENTENCES = 5

# Where a tile's theme came from.
THEMES_FROM_MODEL = "model"            # the layer's theme field (a model with a theme head)
THEMES_FROM_WORDS = "caption words"    # data.themes.theme_from_caption
THEMES_MIXED = "model and caption words"

# (name, OGR type name, width); widths only where values are bounded.
REGION_FIELDS: Tuple[Tuple[str, str, int], ...] = (
    ("region_id", "OFTInteger", 0),       # 1, 2, … largest region first
    ("theme", "OFTString", 40),           # one of data.themes.THEMES
    ("tile_count", "OFTInteger", 0),
    ("area_km2", "OFTReal", 0),           # on the WGS 84 ellipsoid (equal-area projection)
    ("share_percent", "OFTReal", 0),      # of the captioned area, 0-100
    ("position", "OFTString", 0),         # "north-west", "centre", "along the east edge", …
    ("typical_caption", "OFTString", 0),  # the caption nearest in words to the region's others
    ("sentence", "OFTString", 0),         # all of the above in one sentence
    ("level", "OFTInteger", 0),           # the pyramid level of its tiles (the finest)
    ("theme_source", "OFTString", 30),    # THEMES_FROM_MODEL or THEMES_FROM_WORDS
)
REGION_FIELD_NAMES = tuple(name for name, *_ in REGION_FIELDS)


class DescribeError(MapScribeError, ValueError):
    """The captions cannot be described as asked; the message names the file, layer or field
    and says what to do."""


@dataclass(frozen=True)
class Position:
    """Where a region lies in the captioned area, in words.

    ``kind``: 'zone' (``places[0]`` one of the nine zones: 'north-west' … 'centre' …
    'south-east'), 'edge' (``places[0]`` a side: 'north', 'east', 'south', 'west'),
    'crossing' (from ``places[0]`` to ``places[1]``, two zones), 'most' (across most of the
    area) or 'whole' (the whole area).
    """

    kind: str
    places: Tuple[str, ...] = ()

    @property
    def words(self) -> str:
        """What the regions layer's ``position`` field holds: 'north-west', 'centre', 'along
        the east edge', 'from the north-west to the south', 'most of the area', …"""
        if self.kind == "zone":
            return self.places[0]
        if self.kind == "most":
            return "most of the area"
        if self.kind == "whole":
            return "the whole area"
        return self.phrase

    @property
    def phrase(self) -> str:
        """The words after a theme in a sentence: 'in the north-west', 'along the east edge'."""
        if self.kind == "zone":
            return f"in the {self.places[0]}"
        if self.kind == "edge":
            return f"along the {self.places[0]} edge"
        if self.kind == "crossing":
            return f"from the {self.places[0]} to the {self.places[1]}"
        if self.kind == "most":
            return "across most of the area"
        return "across the whole area"


@dataclass(frozen=True)
class Region:
    """Connected tiles of one theme (8-neighbour, at the finest level)."""

    region_id: int
    theme: str
    tile_ids: Tuple[int, ...]   # in reading order
    area_km2: float
    share: float                # of the captioned area, 0-1
    position: Position
    typical_caption: str
    sentence: str
    level: int
    theme_source: str

    @property
    def tile_count(self) -> int:
        return len(self.tile_ids)


@dataclass(frozen=True)
class TileCounts:
    """The tiles of the finest level, by what happened to them."""

    total: int = 0
    captioned: int = 0      # captioned or cut short, confident
    unfinished: int = 0     # of those, cut short at the maximum length
    uncertain: int = 0
    nodata: int = 0
    failed: int = 0
    unthemed: int = 0       # captioned, but neither the model nor the words name a theme
    planned: int = 0        # what the run planned (MAPSCRIBE_GRID); more than total: unfinished

    @property
    def with_caption(self) -> int:
        return self.captioned + self.uncertain

    @property
    def missing(self) -> int:
        return max(0, self.planned - self.total)


@dataclass(frozen=True)
class Description:
    """What :func:`~.describe.describe_captions` gives: the overview read first, the regions,
    and what people should know about how they were made (``notes``)."""

    path: Path
    layer: str
    overview: Tuple[str, ...]
    regions: Tuple[Region, ...]
    counts: TileCounts
    theme_source: str
    levels: Tuple[int, ...] = (0,)
    notes: Tuple[str, ...] = ()
    regions_layer: Optional[str] = None   # None until written
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The overview as one paragraph."""
        return " ".join(self.overview)


def regions_layer_name(captions_layer: str) -> str:
    """``regions`` for the default captions layer ``captions``, else ``<layer>_regions``."""
    if captions_layer == DEFAULT_LAYER:
        return DEFAULT_REGIONS_LAYER
    return f"{captions_layer}_regions"


def overview_metadata(description: Description, created: str, grid_signature: str
                      ) -> Dict[str, Any]:
    """What ``MAPSCRIBE_OVERVIEW`` holds (JSON)."""
    counts = description.counts
    return {
        "version": OVERVIEW_FORMAT_VERSION,
        "sentences": list(description.overview),
        "regions_layer": description.regions_layer,
        "regions": len(description.regions),
        "theme_source": description.theme_source,
        "levels": list(description.levels),
        "tiles": {"total": counts.total, "captioned": counts.captioned,
                  "unfinished": counts.unfinished, "uncertain": counts.uncertain,
                  "nodata": counts.nodata, "failed": counts.failed,
                  "unthemed": counts.unthemed},
        "notes": list(description.notes),
        "grid_signature": grid_signature,
        "created": created,
    }
