"""What the captioning job takes and gives back: plain dataclasses, no torch, no GDAL.

Every default a front door shows (tile size from the model, overlap, beam, batch, maximum
caption length, the layer name) is a field default here, so the command line, the dock and
Processing read it from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..errors import MapScribeError
from ..geo.areas import AreaOfInterest, WholeRaster
from ..geo.errors import TilingError
from ..geo.http_fetch import NetworkParams
from ..geo.pyramid import LEVELS_AUTO, parse_levels
from ..geo.read_plan import BandMapping, ReadParams
from ..geo.sources import ImageSource, as_image_source
from ..geo.tiling import TileGridParams
from ..nn.config import DecodingParams
from ..output.schema import DEFAULT_LAYER
from ..runtime.base import RUNTIMES

EXAMPLE_CAPTIONS = 5


class CaptioningError(MapScribeError, ValueError):
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

    ``raster``: a path, a GDAL string (``GPKG:file.gpkg:table``, ``/vsizip/…``,
    ``/vsicurl/https://…``), ``"xyz:https://…/{z}/{x}/{y}.png"``, or an :class:`ImageSource`
    (XYZ, WMS, WMTS, or a file with open options); :attr:`image_source` is it as a source.
    ``zoom``: for a web service, the zoom level (WMTS: the index of the tile matrix, WMS: of the
    resolution) instead of the one closest to the model's resolution. ``network``: how web
    sources are fetched (cache, rate cap, retries, threads).

    ``levels``: the caption pyramid (:mod:`..geo.pyramid`): 'auto' captions coarser levels up
    to one tile for the whole area or to the coarsest ground resolution the model can read;
    a number asks for that many levels; 1 captions the detail grid alone.
    """

    raster: Union[str, Path, ImageSource]
    model: Union[str, Path]
    output: Union[str, Path]
    area: AreaOfInterest = WholeRaster()
    tile_size: Optional[float] = None
    tile_size_unit: str = TileGridParams.tile_size_unit
    overlap: float = TileGridParams.overlap
    overlap_unit: str = TileGridParams.overlap_unit
    bands: Union[BandMapping, str] = BandMapping()
    batch_size: int = ReadParams.batch_size
    beam_size: int = DecodingParams.beam_size
    max_length: int = DecodingParams.max_length
    device: str = "auto"
    runtime: str = "auto"  # 'torch', 'onnx' (the model file's ONNX graphs), 'auto': torch if any
    layer: str = DEFAULT_LAYER
    output_crs: Optional[str] = None
    overwrite: bool = False
    resume: bool = False
    max_invalid_fraction: float = ReadParams.max_invalid_fraction
    queue_depth: int = ReadParams.queue_depth
    zoom: Optional[int] = None
    network: NetworkParams = NetworkParams()
    levels: Union[int, str] = LEVELS_AUTO
    # One rank of a torchrun job (also when torchrun started several processes): this
    # process captions its share of the tiles (jobs.caption_distributed).
    distributed: bool = False

    @property
    def image_source(self) -> ImageSource:
        """``raster`` as an :class:`ImageSource`."""
        return as_image_source(self.raster)

    def __post_init__(self) -> None:
        as_image_source(self.raster)  # a source that cannot be one fails here
        if self.zoom is not None and (isinstance(self.zoom, bool) or not isinstance(self.zoom, int)
                                      or self.zoom < 0):
            raise CaptioningError(f"zoom must be a whole number ≥ 0, not {self.zoom!r}.")
        if self.runtime not in RUNTIMES:
            raise CaptioningError(f"runtime must be one of {', '.join(RUNTIMES)}, not "
                                  f"{self.runtime!r}.")
        if isinstance(self.bands, str):
            object.__setattr__(self, "bands", BandMapping.parse(self.bands))
        try:
            object.__setattr__(self, "levels", parse_levels(self.levels))
        except TilingError as error:
            raise CaptioningError(str(error)) from None
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
    # e.g. 'cpu', 'cuda:0 (NVIDIA H100 80GB HBM3)', 'cpu (ONNX Runtime 1.32.0)'; '' when the
    # model was not needed
    device: str
    grid_signature: str
    grid_rows: int
    grid_cols: int
    tile_size_pixels: Tuple[int, int]
    tile_size_map: Tuple[float, float]
    crs: str  # the layer's CRS
    model: str  # model file name and hash, as in the layer's 'model' field
    examples: List[TileCaption] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    runtime: str = ""  # 'torch' or 'onnx'; '' when the model was not needed
    uncertain: int = 0  # captioned tiles whose confidence is below the model's threshold
    failed: int = 0  # tiles whose imagery could not be read (a web service failed); resume
    # retries them
    source: str = ""  # the image source, for people (no credential)
    attribution: str = ""  # the imagery's credit line, when the source gives one
    network: Dict[str, float] = field(default_factory=dict)  # requests, cache hits, … (web)
    # A torchrun job: rank 0's result counts every rank's tiles; the others return their own.
    rank: int = 0
    world_size: int = 1
    level_tiles: List[int] = field(default_factory=list)  # tiles planned per level, coarsest
    # first (one number: no pyramid)
    levels_reason: str = ""  # why levels 'auto' stopped before one tile for the whole area

    @property
    def processed(self) -> int:
        return self.captioned + self.nodata + self.failed

    @property
    def remaining(self) -> int:
        """Tiles still missing from the layer."""
        return max(0, self.tiles_total - self.skipped_existing - self.processed)
