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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .grid_writer import (STATUS_CAPTIONED, STATUS_NODATA, STATUS_UNFINISHED, GridFileError,
                          GridLayerWriter, GridWriteError, OutputPlan, TileRecord,
                          describe_grid_differences, open_grid_layer, plan_output,
                          read_caption_layer_info, srs_from_user_input)
from .device import DeviceError
from .model_header import ModelFileError, ModelHeader, read_header
from .progress import ProgressCallback, ProgressReporter, never_cancelled
from .raster_reader import (BandMapping, RasterReadError, ReadParams, ReadPlan, TileBatch,
                            TileReader, TileReadError, prepare_reading)
from .tiling import (AreaOfInterest, BoundingBox, PolygonArea, RasterInfo, TileGrid,
                     TileGridParams, TilingError, WholeRaster, grid_placement, plan_tiles)

log = logging.getLogger(__name__)

# Captions of tiles seen at a ground resolution this many times finer or coarser than the
# model's training resolution are mostly guesses: say so.
RESOLUTION_WARNING_RATIO = 4.0
EXAMPLE_CAPTIONS = 5


class CaptioningError(ValueError):
    """The captioning job cannot run as asked; the message says why and what to do."""


# Every failure a front door should show as a message rather than a traceback.
CAPTION_RASTER_ERRORS = (CaptioningError, TilingError, RasterReadError, TileReadError,
                         ModelFileError, DeviceError, GridWriteError, GridFileError)


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
# The job
# --------------------------------------------------------------------------------------------
def caption_raster(params: CaptionRasterParams, progress: Optional[ProgressCallback] = None,
                   cancelled=never_cancelled) -> CaptionRasterResult:
    """Caption the tiles of ``params.raster`` with ``params.model`` into a GeoPackage layer.

    ``progress`` receives :class:`~.progress.ProgressUpdate` (stage 'captioning', unit 'tiles')
    after each batch; ``cancelled()`` is asked once before the model is loaded and then after
    each committed batch, and a True answer stops the run there with ``stopped='cancelled'``.
    Raises one of :data:`CAPTION_RASTER_ERRORS` with a message people can act on.
    """
    started = time.monotonic()
    job = _prepare(params)
    grid = job.grid
    todo = [tile for tile in grid.tiles if tile.tile_id not in job.done_tile_ids]
    result = CaptionRasterResult(
        output=job.output.path, layer=job.output.layer, stopped="completed",
        tiles_total=len(grid.tiles), captioned=0, unfinished=0, nodata=0,
        skipped_existing=len(grid.tiles) - len(todo), seconds=0.0, tiles_per_second=0.0,
        device="", grid_signature=grid.grid_signature, grid_rows=grid.rows,
        grid_cols=grid.cols, tile_size_pixels=grid.tile_size, tile_size_map=grid.tile_size_map,
        crs="", model=job.model_label, notes=list(job.notes))

    captioner = None
    if todo and not cancelled():
        captioner = _load_captioner(params)
        result.device = _device_label(captioner.device)
    with _open_writer(job, params) as writer:
        result.crs = writer.srs_name
        if job.output.action == "resume":
            job.run.setdefault("resumed", []).append(_now_iso())
            writer.update_run(job.run)
        if captioner is not None:
            log.info("%s: captioning %d of %d tiles (%d already in %s) on %s, batch %d, "
                     "beam %d", job.raster.path, len(todo), len(grid.tiles),
                     result.skipped_existing, job.output.path, result.device,
                     params.batch_size, params.beam_size)
            loop_started = time.monotonic()
            _run(job, params, captioner, todo, writer, result, progress, cancelled)
            loop_seconds = time.monotonic() - loop_started
            result.tiles_per_second = result.processed / loop_seconds if loop_seconds else 0.0
        elif todo:
            result.stopped = "cancelled"
    result.seconds = time.monotonic() - started
    log.info("%s: %s, %d captioned, %d nodata, %d already there, in %.1f s (%.2f tiles/s); "
             "%s layer %r", job.raster.path, result.stopped, result.captioned, result.nodata,
             result.skipped_existing, result.seconds, result.tiles_per_second,
             job.output.path, job.output.layer)
    return result


def _run(job: _Job, params: CaptionRasterParams, captioner, todo, writer: GridLayerWriter,
         result: CaptionRasterResult, progress: Optional[ProgressCallback], cancelled) -> None:
    from .decoding import DecodingParams

    decoding = DecodingParams(beam_size=params.beam_size, max_length=params.max_length)
    reporter = ProgressReporter(progress, "captioning", len(todo), "tiles")
    seen_examples = set()
    with TileReader(job.raster.path, todo, job.read_params, job.read_plan) as reader:
        for batch in reader:
            records = _caption_batch(captioner, batch, decoding, params)
            writer.write(records)
            for record in records:
                if record.status == STATUS_NODATA:
                    result.nodata += 1
                    continue
                result.captioned += 1
                result.unfinished += record.status == STATUS_UNFINISHED
                if (len(result.examples) < EXAMPLE_CAPTIONS
                        and record.caption not in seen_examples):
                    seen_examples.add(record.caption)
                    result.examples.append(TileCaption(record.tile.tile_id, record.tile.row,
                                                       record.tile.col, record.caption))
            reporter.advance(len(records), captioned=result.captioned, nodata=result.nodata)
            if cancelled():
                result.stopped = "cancelled"
                break


def _caption_batch(captioner, batch: TileBatch, decoding, params: CaptionRasterParams
                   ) -> List[TileRecord]:
    import torch

    valid_rows = np.flatnonzero(~batch.is_nodata)
    captions: Dict[int, Any] = {}
    if len(valid_rows):
        # (n, 3, S, S) uint8; the encoder scales and normalises on the device.
        images = torch.from_numpy(np.ascontiguousarray(batch.pixels[valid_rows]))
        try:
            images = images.to(captioner.device, non_blocking=True)
            for row, caption in zip(valid_rows, captioner.caption_images(images, decoding)):
                captions[int(row)] = caption
        except RuntimeError as error:
            if "out of memory" in str(error).lower():
                raise CaptioningError(f"the device ran out of memory captioning a batch of "
                                      f"{len(valid_rows)} tiles: use a smaller batch size "
                                      f"(now {params.batch_size}) or beam (now "
                                      f"{params.beam_size}).") from None
            raise
    records = []
    for index, tile in enumerate(batch.tiles):
        valid = float(batch.valid_fraction[index])
        caption = captions.get(index)
        if caption is None:
            records.append(TileRecord(tile, STATUS_NODATA, valid_fraction=valid))
        else:
            status = STATUS_CAPTIONED if caption.finished else STATUS_UNFINISHED
            records.append(TileRecord(tile, status, caption.text, caption.score, valid))
    return records


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
    from .grid_writer import read_tile_ids

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
    from .device import resolve_device
    from .modelfile import load_model

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
    from .. import __version__

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


__all__ = ["CaptionRasterParams", "CaptionRasterResult", "CaptioningError", "TileCaption",
           "CAPTION_RASTER_ERRORS", "caption_raster", "describe_grid"]
