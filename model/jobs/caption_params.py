"""What the captioning job takes and gives back: plain dataclasses, no torch, no GDAL.

Every default a front door shows (tile size from the model, overlap, beam, batch, maximum
caption length, the layer name) is a field default here, so the command line, the dock and
Processing read it from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

from ..geo.areas import AreaOfInterest, WholeRaster
from ..geo.read_plan import BandMapping

EXAMPLE_CAPTIONS = 5


class CaptioningError(ValueError):
    """The captioning job cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class CaptionRasterParams:
    """Everything one captioning run needs.

    Tile size: ``tile_size`` in map units (``tile_size_unit='map'``) or raster pixels
    (``'pixels'``); None uses the model's input size × the ground resolution it was trained at
    (from its header), else the model's input size in raster pixels. ``overlap`` is a
    percentage of the tile or whole pixels. ``bands``: a :class:`BandMapping`, or text such as
    "1,2,3". ``output_crs`` None writes the layer in the raster's CRS (when resuming: in the
    existing layer's). ``max_invalid_fraction``: above this share of nodata pixels a tile is
    recorded as 'nodata' and not captioned.
    """

    raster: Union[str, Path]
    model: Union[str, Path]
    output: Union[str, Path]
    area: AreaOfInterest = WholeRaster()
    tile_size: Optional[float] = None
    tile_size_unit: str = "map"
    overlap: float = 0.0
    overlap_unit: str = "percent"
    bands: Union[BandMapping, str] = BandMapping()
    batch_size: int = 8
    beam_size: int = 3
    max_length: int = 20
    device: str = "auto"
    layer: str = "captions"
    output_crs: Optional[str] = None
    overwrite: bool = False
    resume: bool = False
    max_invalid_fraction: float = 0.5
    queue_depth: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.bands, str):
            object.__setattr__(self, "bands", BandMapping.parse(self.bands))
        if self.overwrite and self.resume:
            raise CaptioningError("overwrite and resume exclude each other: overwrite starts "
                                  "again from nothing, resume continues the layer that is "
                                  "there.")
        for name, minimum in (("batch_size", 1), ("beam_size", 1), ("max_length", 2),
                              ("queue_depth", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise CaptioningError(f"{name} must be a whole number ≥ {minimum}, not "
                                      f"{value!r}.")
        if not 0 <= self.max_invalid_fraction < 1:
            raise CaptioningError("the nodata threshold (max_invalid_fraction) must be in "
                                  f"[0, 1), not {self.max_invalid_fraction!r}.")


@dataclass(frozen=True)
class TileCaption:
    """A caption to show people as an example."""

    tile_id: int
    row: int
    col: int
    caption: str


@dataclass
class CaptionRasterResult:
    """What a run did. Counts are of this run; ``skipped_existing`` were in the layer already."""

    output: Path
    layer: str
    stopped: str  # 'completed' or 'cancelled'
    tiles_total: int  # tiles in the grid
    captioned: int  # tiles given a caption in this run ('unfinished' ones included)
    unfinished: int  # of those, captions cut at the maximum length
    nodata: int  # tiles recorded as 'nodata'
    skipped_existing: int  # tiles already in the layer (resume)
    seconds: float  # the whole run, checks and model loading included
    tiles_per_second: float  # tiles processed per second of the captioning loop (the pipeline)
    device: str  # e.g. 'cpu', 'cuda:0 (NVIDIA H100 80GB HBM3)'; '' when the model was not needed
    grid_signature: str
    grid_rows: int
    grid_cols: int
    tile_size_pixels: Tuple[int, int]
    tile_size_map: Tuple[float, float]
    crs: str  # the layer's CRS
    model: str  # model file name and hash, as in the layer's 'model' field
    examples: List[TileCaption] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.captioned + self.nodata

    @property
    def remaining(self) -> int:
        """Tiles still missing from the layer."""
        return max(0, self.tiles_total - self.skipped_existing - self.processed)
