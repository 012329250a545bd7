"""Everything the captioning job decides before the model is loaded, so that bad input fails
in seconds: the raster's and the model file's headers, the output (new, resume or replace), the
tile grid, how pixels will be read, the run's metadata and its notes for people.

:func:`preview_tiles` gives front doors the same tile grid facts (size in pixels, map units and
ground metres; count) without running anything, so the dock shows what the engine will do.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..geo.areas import AreaOfInterest, BoundingBox, PolygonArea
from ..geo.open_source import OpenedSource, open_source
from ..geo.pyramid import LEVELS_AUTO, LevelsRequest, choose_levels, level_counts, with_levels
from ..geo.raster_info import RasterInfo
from ..geo.read_plan import BandMapping, ReadParams, ReadPlan
from ..geo.sources import ImageSource
from ..geo.tiling import TileGrid, TileGridParams, grid_placement, plan_tiles
from ..modelfile.header import ModelHeader, read_header
from ..output.geopackage import (
    describe_grid_differences,
    read_caption_layer_info,
    srs_from_user_input,
)
from ..output.plan import OutputPlan, plan_output
from ..output.writer import GridLayerWriter, open_grid_layer
from ..paths import check_not_an_input
from ..runtime.base import CaptionRuntime
from ..runtime.choice import check_runtime, open_runtime
from ..version import __version__
from .caption_params import CaptioningError, CaptionRasterParams

log = logging.getLogger(__name__)


# Captions of tiles seen at a ground resolution this many times finer or coarser than the
# model's training resolution are mostly guesses: say so.
RESOLUTION_WARNING_RATIO = 4.0


@dataclass
class _Job:
    """Everything decided before the model is loaded."""

    raster: RasterInfo
    header: ModelHeader
    grid: TileGrid
    read_params: ReadParams
    read_plan: ReadPlan
    output: OutputPlan
    model_label: str
    model_sha256: str
    grid_description: Dict[str, Any]
    run: Dict[str, Any]
    done_tile_ids: set
    notes: List[str]
    runtime: str = "torch"   # the runtime that will caption: 'torch' or 'onnx'
    source: Optional[OpenedSource] = None  # how the pixels are read (file or web service)


# --------------------------------------------------------------------------------------------
# Before the model is loaded: every check that can fail fast
# --------------------------------------------------------------------------------------------
def _prepare(params: CaptionRasterParams) -> _Job:
    # A file's header first (a missing raster is said before anything else); a web service is
    # opened once the model says what ground resolution it needs, its first tile fetched.
    early = None if params.image_source.is_web else _open_source(params, None)
    header = read_header(params.model)
    runtime = check_runtime(params.model, params.runtime)  # installed, and the file can run on it
    source = early or _open_source(params, header)
    raster = source.info
    # Before the output is even opened: by identity (links followed), not by the paths' text.
    inputs: Dict[str, Any] = {"the model file": params.model}
    for index, path in enumerate(source.source.local_files()):
        inputs["the raster being captioned" + (f" ({path})" if index else "")] = path
    if isinstance(params.area, PolygonArea):
        inputs["the polygons file"] = params.area.source
    check_not_an_input(params.output, inputs, error=CaptioningError)
    output = plan_output(params.output, params.layer, overwrite=params.overwrite,
                         resume=params.resume)
    if params.output_crs:
        srs_from_user_input(params.output_crs)  # an unknown CRS fails now, not after loading
    grid = plan_tiles(raster, params.area, _tile_params(
        header, params.tile_size, params.tile_size_unit, params.overlap, params.overlap_unit))
    grid, level_notes, level_reason = _with_levels(grid, header, params.levels)
    bands = params.bands if isinstance(params.bands, BandMapping) else BandMapping.parse(
        params.bands)
    read_params = ReadParams(bands=bands, output_size=header.config.input_size,
                             max_invalid_fraction=params.max_invalid_fraction,
                             batch_size=params.batch_size, queue_depth=params.queue_depth)
    read_plan = source.read_plan(read_params)
    model_sha256 = _file_sha256(Path(params.model))
    model_label = f"{Path(params.model).name} (sha256 {model_sha256[:12]})"
    grid_description = describe_grid(grid)
    notes = list(read_plan.notes) + source.notes + _resolution_notes(grid, header) + level_notes
    for note in notes[len(read_plan.notes):]:
        log.warning("%s", note)
    run = _run_metadata(params, raster, header, grid, read_plan, model_sha256)
    run["tiling"]["levels_reason"] = level_reason
    _record_source(run, source)
    run["notes"] = list(notes)  # for the report and the panel, not only the log

    done: set = set()
    if output.action == "resume":
        done = _check_resumable(output, grid_description, model_sha256)
    return _Job(raster, header, grid, read_params, read_plan, output, model_label, model_sha256,
                grid_description, run, done, notes, runtime, source)


def _open_source(params: CaptionRasterParams, header: Optional[ModelHeader],
                 probe: bool = True) -> OpenedSource:
    """The image source ready for this run: a file's header read, or a web service's level
    chosen for the model's ground resolution (and its first tile fetched when ``probe``); a
    file needs no ``header``."""
    return open_source(params.image_source, params.network, params.area,
                       input_size=header.config.input_size if header else 0,
                       ground_resolution_hint=header.ground_resolution_m if header else None,
                       tile_size=params.tile_size, tile_size_unit=params.tile_size_unit,
                       zoom=params.zoom, probe=probe)


def _record_source(run: Dict[str, Any], source: OpenedSource) -> None:
    """The source in the run's metadata: where from (never a credential) and its credit."""
    run["source"] = source.to_metadata()
    if source.source.kind != "file" or source.source.is_remote:
        run["raster"]["path"] = source.source.describe()
    run["raster"]["name"] = source.source.label


@dataclass(frozen=True)
class TilePreview:
    """What a run would tile, as the engine plans it (nothing is read but headers)."""

    tiles: int
    rows: int
    cols: int
    tile_size_pixels: Tuple[int, int]        # (width, height) in raster pixels
    tile_size_map: Tuple[float, float]       # in the raster's map units
    tile_size_metres: Tuple[float, float]    # on the ground, at the area's centre
    crs: str                                 # the raster's CRS, the CRS of tile_size_map
    notes: Tuple[str, ...]                   # e.g. the model sees the ground too coarse
    level_tiles: Tuple[int, ...] = ()        # tiles per pyramid level, coarsest first


def preview_tiles(raster: Union[str, Path, ImageSource], model: Union[str, Path],
                  area: AreaOfInterest, tile_size: Optional[float] = None,
                  tile_size_unit: str = "map", overlap: float = 0.0,
                  overlap_unit: str = "percent", zoom: Optional[int] = None,
                  levels: LevelsRequest = LEVELS_AUTO) -> TilePreview:
    """The tile grid :func:`~.caption.caption_raster` would use for these parameters (None
    tile size: the model's default, its input size × its training ground resolution); ``tiles``
    counts every level of the caption pyramid ``levels`` asks for. A web
    service is planned at the zoom a run would choose, without fetching a tile (a WMS or WMTS's
    capabilities are read)."""
    header = read_header(model)
    params = CaptionRasterParams(raster=raster, model=model, output="preview.gpkg", area=area,
                                 tile_size=tile_size, tile_size_unit=tile_size_unit, zoom=zoom,
                                 levels=levels)
    source = _open_source(params, header, probe=False)
    info = source.info
    grid = plan_tiles(info, area, _tile_params(header, tile_size, tile_size_unit, overlap,
                                               overlap_unit))
    grid, level_notes, _ = _with_levels(grid, header, levels)
    return TilePreview(len(grid.tiles), grid.rows, grid.cols, grid.tile_size,
                       grid.tile_size_map, grid.tile_size_metres, grid.crs,
                       tuple(source.notes + _resolution_notes(grid, header) + level_notes),
                       tuple(level_counts(grid)))


def _with_levels(grid: TileGrid, header: ModelHeader, levels: LevelsRequest
                 ) -> Tuple[TileGrid, List[str], str]:
    """The grid with its caption pyramid's coarser levels (geo.pyramid), the warnings about
    them, and why 'auto' stopped where it did."""
    plan = choose_levels(grid, levels, header.config.input_size, header.ground_resolution_m)
    return with_levels(grid, plan.levels), list(plan.notes), plan.reason


def _tile_params(header: ModelHeader, tile_size: Optional[float], tile_size_unit: str,
                 overlap: float, overlap_unit: str) -> TileGridParams:
    return TileGridParams(model_input_size=header.config.input_size,
                          ground_resolution_hint=header.ground_resolution_m,
                          tile_size=tile_size, tile_size_unit=tile_size_unit, overlap=overlap,
                          overlap_unit=overlap_unit)


def describe_grid(grid: TileGrid) -> Dict[str, Any]:
    """What places the tiles, as stored in the layer (``MAPSCRIBE_GRID``) and compared on
    resume."""
    return {
        "signature": grid.grid_signature,
        **grid_placement(grid),
        "tiles": len(grid.tiles),
        "level_tiles": level_counts(grid),
        "tile_size_map": [float(v) for v in grid.tile_size_map],
        "area_bounds": [float(v) for v in grid.area_bounds],
    }


def _check_resumable(output: OutputPlan, grid_description: Dict[str, Any], model_sha256: str
                     ) -> set:
    from ..output.geopackage import check_intact, read_tile_ids

    info = read_caption_layer_info(output.path, output.layer)
    # A damaged file's index may name tiles whose rows are gone: never trusted for a resume.
    check_intact(output.path, "resumed")
    if info.grid_signature != grid_description["signature"]:
        differences = describe_grid_differences(info.grid, grid_description) or [
            "the grid signature"]
        raise CaptioningError(
            f"cannot resume {output.path} (layer {output.layer!r}): it holds another tile "
            f"grid — {'; '.join(differences)}. Resume with the same raster, area, tile size "
            "and overlap as the first run, or start again with --overwrite.")
    stored_model = (info.run.get("model") or {}).get("sha256")
    if stored_model and stored_model != model_sha256:
        raise CaptioningError(
            f"cannot resume {output.path} (layer {output.layer!r}): its tiles were captioned "
            f"by another model ({(info.run.get('model') or {}).get('name', '?')}, sha256 "
            f"{stored_model[:12]}); mixing two models' captions in one layer would mislead. "
            "Resume with that model, or start again with --overwrite.")
    # Failed tiles (imagery that could not be fetched) are tried again.
    done = read_tile_ids(output.path, output.layer, skip_failed=True)
    log.info("%s: %d of %d tiles already captioned", output.path, len(done),
             grid_description["tiles"])
    return done


def _open_writer(job: _Job, params: CaptionRasterParams) -> GridLayerWriter:
    raster_name = job.source.source.label if job.source else Path(job.raster.path).name
    description = (f"MapScribe captions of {raster_name} by {job.model_label}, "
                   f"{len(job.grid.tiles)} tiles of {job.grid.tile_size[0]}x"
                   f"{job.grid.tile_size[1]} px ({job.grid.grid_signature})")
    if job.source is not None and job.source.attribution:
        description += f". Imagery: {job.source.attribution}"
    return open_grid_layer(job.output, source_crs_wkt=job.grid.crs_wkt,
                           output_crs=params.output_crs, grid=job.grid_description, run=job.run,
                           model_label=job.model_label, description=description)


def _load_captioner(params: CaptionRasterParams, runtime: str) -> CaptionRuntime:
    return open_runtime(params.model, runtime, params.device)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _now_iso() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _area_description(area: AreaOfInterest) -> Dict[str, Any]:
    if isinstance(area, BoundingBox):
        return {"kind": "bbox", "bounds": [area.minx, area.miny, area.maxx, area.maxy],
                "crs": area.crs}
    if isinstance(area, PolygonArea):
        return {"kind": "polygons", "source": area.source, "polygons": len(area.geometries)}
    return {"kind": "whole raster"}


def _run_metadata(params: CaptionRasterParams, raster: RasterInfo, header: ModelHeader,
                  grid: TileGrid, plan: ReadPlan, model_sha256: str) -> Dict[str, Any]:
    training = header.training or {}
    return {
        "mapscribe_version": __version__,
        "created": _now_iso(),
        "raster": {"path": str(Path(raster.path).resolve()), "name": Path(raster.path).name,
                   "size": [raster.width, raster.height], "crs": raster.crs,
                   "resolution": list(raster.resolution), "bands": list(plan.read_bands),
                   "stretch": plan.stretch.to_dict() if plan.stretch else None},
        "model": {"path": str(Path(params.model).resolve()), "name": Path(params.model).name,
                  "sha256": model_sha256, "backbone": header.config.backbone,
                  "input_size": header.config.input_size,
                  "ground_resolution_m": header.ground_resolution_m,
                  "trained_on": training.get("dataset"), "training_images": training.get("images")},
        "area": _area_description(params.area),
        "tiling": {"tile_size_pixels": list(grid.tile_size), "levels": grid.levels,
                   "requested_levels": params.levels,
                   "tile_size_map": [float(v) for v in grid.tile_size_map],
                   "step_pixels": list(grid.step), "overlap_pixels": list(grid.overlap),
                   "requested": {"tile_size": params.tile_size,
                                 "tile_size_unit": params.tile_size_unit,
                                 "overlap": params.overlap, "overlap_unit": params.overlap_unit}},
        "decoding": {"beam_size": params.beam_size, "max_length": params.max_length},
        "max_invalid_fraction": params.max_invalid_fraction,
        "tiles_planned": len(grid.tiles),
    }


def _resolution_notes(grid: TileGrid, header: ModelHeader) -> List[str]:
    """A note when the model sees the ground much finer or coarser than it was trained to."""
    trained = header.ground_resolution_m
    if not trained:
        return []
    seen = grid.tile_size_metres[0] / header.config.input_size  # metres per model pixel
    ratio = seen / trained
    if 1 / RESOLUTION_WARNING_RATIO <= ratio <= RESOLUTION_WARNING_RATIO:
        return []
    how = f"{ratio:.0f}× coarser" if ratio > 1 else f"{1 / ratio:.0f}× finer"
    return [f"imagery {how} than the model was trained on: it sees these tiles at about "
            f"{seen:.3g} m per pixel, it was trained at about {trained:g} m, so its captions are "
            f"likely unreliable. A tile size of about {trained * header.config.input_size:g} m "
            "fits the model."]
