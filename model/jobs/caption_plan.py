"""Caption a raster tile by tile into a GeoPackage grid layer: the one engine job for it.

:func:`caption_raster` is what every front door calls (the command line, the QGIS task, the
Processing algorithm, the Python API). As data flows:

1. the raster's header, the model file's header and the output path are checked, so bad input
   fails in seconds, before the model is loaded;
2. ``tiling.plan_tiles`` covers the area with tiles aligned to the raster's pixels (the tile's
   ground size defaults to the model's input size × the ground resolution it was trained at);
3. a :class:`~.raster_reader.TileReader` thread reads batches ahead of the model;
4. each batch's valid tiles go through the captioner in one tensor (B, 3, S, S) on the device;
   tiles that are mostly nodata are recorded as such without going through it;
5. each batch is committed to the layer in one transaction (:mod:`.grid_writer`), then progress
   is reported and the cancel check asked. A cancel stops after the batch in hand; everything
   committed stays, and ``resume=True`` later captions only the tiles that are missing.

Memory is bounded by ``batch_size × queue_depth`` tiles, never by the raster's size.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..geo.areas import AreaOfInterest, BoundingBox, PolygonArea
from ..geo.raster_info import RasterInfo
from ..geo.read_plan import ReadParams, ReadPlan, prepare_reading
from ..geo.tiling import TileGrid, TileGridParams, grid_placement, plan_tiles
from ..modelfile.header import ModelHeader, read_header
from ..output.geopackage import (
    describe_grid_differences,
    read_caption_layer_info,
    srs_from_user_input,
)
from ..output.plan import OutputPlan, plan_output
from ..output.writer import GridLayerWriter, open_grid_layer
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


# --------------------------------------------------------------------------------------------
# Before the model is loaded: every check that can fail fast
# --------------------------------------------------------------------------------------------
def _prepare(params: CaptionRasterParams) -> _Job:
    raster = RasterInfo.from_path(params.raster)
    header = read_header(params.model)
    output = plan_output(params.output, params.layer, overwrite=params.overwrite,
                         resume=params.resume)
    if output.path == Path(raster.path).resolve():
        raise CaptioningError(f"the output {output.path} is the raster being captioned: choose "
                              "another output file.")
    if params.output_crs:
        srs_from_user_input(params.output_crs)  # an unknown CRS fails now, not after loading
    tile_params = TileGridParams(
        model_input_size=header.config.input_size,
        ground_resolution_hint=header.ground_resolution_m, tile_size=params.tile_size,
        tile_size_unit=params.tile_size_unit, overlap=params.overlap,
        overlap_unit=params.overlap_unit)
    grid = plan_tiles(raster, params.area, tile_params)
    read_params = ReadParams(bands=params.bands, output_size=header.config.input_size,
                             max_invalid_fraction=params.max_invalid_fraction,
                             batch_size=params.batch_size, queue_depth=params.queue_depth)
    read_plan = prepare_reading(raster.path, read_params)
    model_sha256 = _file_sha256(Path(params.model))
    model_label = f"{Path(params.model).name} (sha256 {model_sha256[:12]})"
    grid_description = describe_grid(grid)
    notes = list(read_plan.notes) + _resolution_notes(raster, grid, header)
    for note in notes[len(read_plan.notes):]:
        log.warning("%s", note)
    run = _run_metadata(params, raster, header, grid, read_plan, model_sha256)

    done: set = set()
    if output.action == "resume":
        done = _check_resumable(output, grid_description, model_sha256)
    return _Job(raster, header, grid, read_params, read_plan, output, model_label, model_sha256,
                grid_description, run, done, notes)


def describe_grid(grid: TileGrid) -> Dict[str, Any]:
    """What places the tiles, as stored in the layer (``MAPSCRIBE_GRID``) and compared on
    resume."""
    return {
        "signature": grid.grid_signature,
        **grid_placement(grid),
        "tiles": len(grid.tiles),
        "tile_size_map": [float(v) for v in grid.tile_size_map],
        "area_bounds": [float(v) for v in grid.area_bounds],
    }


def _check_resumable(output: OutputPlan, grid_description: Dict[str, Any], model_sha256: str
                     ) -> set:
    from ..output.geopackage import read_tile_ids

    info = read_caption_layer_info(output.path, output.layer)
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
    done = read_tile_ids(output.path, output.layer)
    log.info("%s: %d of %d tiles already captioned", output.path, len(done),
             grid_description["tiles"])
    return done


def _open_writer(job: _Job, params: CaptionRasterParams) -> GridLayerWriter:
    raster_name = Path(job.raster.path).name
    description = (f"MapScribe captions of {raster_name} by {job.model_label}, "
                   f"{len(job.grid.tiles)} tiles of {job.grid.tile_size[0]}x"
                   f"{job.grid.tile_size[1]} px ({job.grid.grid_signature})")
    return open_grid_layer(job.output, source_crs_wkt=job.grid.crs_wkt,
                           output_crs=params.output_crs, grid=job.grid_description, run=job.run,
                           model_label=job.model_label, description=description)


def _load_captioner(params: CaptionRasterParams):
    from ..modelfile.weights import load_model
    from ..nn.device import resolve_device

    device = resolve_device(params.device)
    return load_model(params.model, device)


def _device_label(device) -> str:
    if device.type == "cuda":
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


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
    from ... import __version__

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
        "tiling": {"tile_size_pixels": list(grid.tile_size),
                   "tile_size_map": [float(v) for v in grid.tile_size_map],
                   "step_pixels": list(grid.step), "overlap_pixels": list(grid.overlap),
                   "requested": {"tile_size": params.tile_size,
                                 "tile_size_unit": params.tile_size_unit,
                                 "overlap": params.overlap, "overlap_unit": params.overlap_unit}},
        "decoding": {"beam_size": params.beam_size, "max_length": params.max_length},
        "max_invalid_fraction": params.max_invalid_fraction,
        "tiles_planned": len(grid.tiles),
    }


def _resolution_notes(raster: RasterInfo, grid: TileGrid, header: ModelHeader) -> List[str]:
    """A note when the model sees the ground much finer or coarser than it was trained to."""
    trained = header.ground_resolution_m
    metres = _metres_per_unit(raster)
    if not trained or metres is None:
        return []
    seen = grid.tile_size_map[0] * metres / header.config.input_size  # metres per model pixel
    ratio = seen / trained
    if 1 / RESOLUTION_WARNING_RATIO <= ratio <= RESOLUTION_WARNING_RATIO:
        return []
    return [f"the model sees these tiles at about {seen:.3g} m per pixel but was trained at "
            f"about {trained:g} m: its captions are likely unreliable. A tile size of about "
            f"{trained * header.config.input_size:g} m fits the model."]


def _metres_per_unit(raster: RasterInfo) -> Optional[float]:
    from rasterio.crs import CRS

    try:
        crs = CRS.from_wkt(raster.crs_wkt)
        if crs.is_geographic:
            left, bottom, right, top = raster.bounds
            return 111_320.0 * math.cos(math.radians((bottom + top) / 2))
        return float(crs.linear_units_factor[1])
    except Exception:  # noqa: BLE001 - only a hint; an exotic CRS just gets no note
        return None
