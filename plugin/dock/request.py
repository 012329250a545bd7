"""What the dock gathers, as plain data, and how it becomes the engine's CaptionRasterParams.

No widget here. When Run is pressed the controller reads its form, the map canvas and the layer
tree once into :class:`CaptionFormValues`; :func:`caption_request` checks them and gives a
frozen :class:`CaptionRequest`, which holds no QGIS object: it can travel to a worker thread, be
kept for a later Resume, and be checked in tests. :func:`engine_params` turns it into the
engine's ``CaptionRasterParams``. A value people must change raises
:class:`~..ui.ParameterError` naming the field.

The dock restates no engine rule: a tile size of None asks for the model's own, which the
engine works out (``preview_tiles`` says what it will be: :func:`tile_preview_text`), and every
other default is a field default of ``CaptionRasterParams``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Tuple

from ...model import (
    CANCELLED,
    AreaOfInterest,
    BandMapping,
    CaptionRasterParams,
    CaptionRasterResult,
    ImageSource,
    TilePreview,
)
from ..ui import ParameterError, field_default, tr

# The layer the engine writes the captions into, inside the output GeoPackage.
CAPTIONS_LAYER = field_default(CaptionRasterParams, "layer")
OUTPUT_SUFFIX = ".gpkg"  # the engine writes GeoPackages


@dataclass(frozen=True)
class CaptionRequest:
    """Everything one run needs, read from the dock at the moment Run was pressed.

    ``tile_size`` is in the raster CRS's map units (metres for UTM), or None for the model's own
    tile, which the engine works out; ``overlap_percent`` is a share of the tile; ``bands`` are
    the raster bands shown on the map as R, G, B (or one gray).
    """

    raster_path: str
    raster_name: str
    model_path: str
    area: AreaOfInterest
    tile_size: Optional[float]
    overlap_percent: float
    batch_size: int
    beam_size: int
    device: str
    output_path: str
    bands: Tuple[int, ...] = (1, 2, 3)
    # The layer's whole source when a path says too little: a web service (XYZ, WMS, WMTS,
    # with credentials in memory), open options, a credit line. None: ``raster_path`` is it.
    source: Optional[ImageSource] = None


@dataclass(frozen=True)
class CaptionFormValues:
    """The dock's fields as plain values. ``model_problem`` says why the chosen model file
    cannot be used (None: its header was read); ``tile_problem`` why the engine cannot tile the
    raster with this tile size (None: it can, or there was nothing to ask yet)."""

    raster_path: str
    raster_name: str
    model_path: str
    model_problem: Optional[str]
    tile_size: Optional[float]
    tile_problem: Optional[str]
    overlap_percent: float
    batch_size: int
    beam_size: int
    device: str
    output_path: str
    bands: Tuple[int, ...]
    source: Optional[ImageSource] = None  # see CaptionRequest.source


def caption_request(values: CaptionFormValues,
                    read_area: Callable[[], AreaOfInterest]) -> CaptionRequest:
    """Check ``values`` and make the request. The area is read last (``read_area``, which may
    raise ParameterError too): polygons take the longest to read, and the form's own problems
    are said first."""
    model = values.model_path
    if not model:
        raise ParameterError("model", tr("choose a model file (.mscap), or train one."))
    if not Path(model).is_file():
        raise ParameterError("model", tr("the model file {path} does not exist.").format(
            path=model))
    if values.model_problem is not None:
        raise ParameterError("model", tr("the model file {path} cannot be used (see its "
                                         "description above).").format(path=model))
    if values.tile_problem is not None:
        raise ParameterError("tile_size", values.tile_problem)
    output = values.output_path
    if not output:
        raise ParameterError("output", tr("choose an output GeoPackage (.gpkg)."))
    if Path(output).suffix.lower() != OUTPUT_SUFFIX:
        raise ParameterError("output", tr("the output {path} must end in .gpkg (a "
                                          "GeoPackage).").format(path=output))
    return CaptionRequest(
        raster_path=values.raster_path, raster_name=values.raster_name, model_path=model,
        area=read_area(), tile_size=values.tile_size,
        overlap_percent=float(values.overlap_percent), batch_size=values.batch_size,
        beam_size=values.beam_size, device=values.device or "auto",
        output_path=str(Path(output).expanduser()), bands=tuple(values.bands),
        source=values.source)


def with_output(request: CaptionRequest, output: str) -> CaptionRequest:
    return replace(request, output_path=output)


def engine_params(request: CaptionRequest, *, overwrite: bool = False,
                  resume: bool = False) -> CaptionRasterParams:
    """The engine's parameters for ``request``; the engine's own checks raise its
    MapScribeError."""
    return CaptionRasterParams(
        raster=request.source or request.raster_path, model=request.model_path,
        output=request.output_path,
        area=request.area, tile_size=request.tile_size, tile_size_unit="map",
        overlap=request.overlap_percent, overlap_unit="percent",
        bands=BandMapping(bands=tuple(request.bands)), batch_size=request.batch_size,
        beam_size=request.beam_size, device=request.device, layer=CAPTIONS_LAYER,
        overwrite=overwrite, resume=resume)


def tile_preview_text(preview: TilePreview, raster_name: str, units: str, *,
                      whole_raster: bool, trained_resolution_m: Optional[float],
                      input_size: int) -> str:
    """What the engine says the tile will be, for the line under the tile size."""
    width, height = preview.tile_size_pixels
    map_w, map_h = preview.tile_size_map
    ground_w, ground_h = preview.tile_size_metres
    text = tr("A tile spans {w} × {h} pixels of {name}: {mw:.6g} × {mh:.6g} {units}, about "
              "{gw:.0f} × {gh:.0f} m on the ground.").format(
                  w=width, h=height, name=raster_name, mw=map_w, mh=map_h, units=units,
                  gw=ground_w, gh=ground_h)
    levels = preview.level_tiles
    if whole_raster and len(levels) > 1:
        text += " " + tr("The whole raster takes {n} tiles, and {coarse} more in {k} coarser "
                         "levels for the overview.").format(n=levels[-1],
                                                            coarse=preview.tiles - levels[-1],
                                                            k=len(levels) - 1)
    elif whole_raster:
        text += " " + tr("The whole raster takes {n} tiles.").format(n=preview.tiles)
    if trained_resolution_m:
        text += " " + tr("The model was trained on {res:g} m per pixel, at tiles of {size:g} "
                         "pixels.").format(res=trained_resolution_m, size=input_size)
    for note in preview.notes:
        text += f" ⚠ {note}"
    return text


def outcome_text(result: CaptionRasterResult) -> str:
    """What a finished run did, for the status line: stopped with what is kept, or done."""
    if result.stopped == CANCELLED:
        return tr("Stopped: {done} of {total} tiles captioned and kept in {output}; the layer is "
                  "partial. Press Resume to caption the rest.").format(
                      done=result.skipped_existing + result.processed, total=result.tiles_total,
                      output=result.output)
    return tr("Done: {total} tiles, {captioned} captioned now, {nodata} without data, in "
              "{seconds:.0f} s. The captions are listed in the Captions tab.").format(
                  total=result.tiles_total, captioned=result.captioned, nodata=result.nodata,
                  seconds=result.seconds)
