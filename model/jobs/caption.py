"""Caption a raster tile by tile into a GeoPackage grid layer: the one engine job for it.

:func:`caption_raster` is what every front door calls (the command line, the QGIS task, the
Processing algorithm, the Python API). As data flows:

1. the raster's header, the model file's header and the output path are checked, so bad input
   fails in seconds, before the model is loaded;
2. ``geo.tiling.plan_tiles`` covers the area with tiles aligned to the raster's pixels (the tile's
   ground size defaults to the model's input size × the ground resolution it was trained at);
3. a :class:`~..geo.reader.TileReader` thread reads batches ahead of the model;
4. each batch's valid tiles go through the captioner in one array (B, 3, S, S) on the device,
   with torch or with the model file's ONNX graphs (``runtime``, :mod:`..runtime.choice`);
   tiles that are mostly nodata are recorded as such without going through it;
5. each batch is committed to the layer in one transaction (:mod:`..output.writer`), then progress
   is reported and the cancel check asked. A cancel stops after the batch in hand; everything
   committed stays, and ``resume=True`` later captions only the tiles that are missing.

Memory is bounded by ``batch_size × queue_depth`` tiles, never by the raster's size.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional

import numpy as np

from ..evaluation.calibration import Calibration
from ..geo.errors import RasterReadError, TileReadError, TilingError
from ..geo.read_plan import TileBatch
from ..geo.reader import TileReader
from ..geo.sources import SourceError
from ..modelfile.checks import check_caption_output
from ..modelfile.header import ModelFileError
from ..nn.device_choice import DeviceError
from ..output.merge_parts import settle_leftover_parts
from ..output.schema import (
    GridFileError,
    GridWriteError,
    Status,
    TileRecord,
)
from ..output.writer import GridLayerWriter
from ..progress import ProgressCallback, ProgressReporter, Stage, never_cancelled
from ..runtime.base import CaptionRuntime, RuntimeChoiceError, RuntimeMemoryError
from .caption_params import (
    EXAMPLE_CAPTIONS,
    CaptioningError,
    CaptionRasterParams,
    CaptionRasterResult,
    TileCaption,
)
from .caption_plan import (
    _Job,
    _load_captioner,
    _now_iso,
    _open_writer,
    _prepare,
)
from .distributed import DistributedError, TileShare, distributed_rank

log = logging.getLogger(__name__)


# Every failure a front door should show as a message rather than a traceback.
CAPTION_RASTER_ERRORS = (CaptioningError, TilingError, RasterReadError, TileReadError,
                         ModelFileError, DeviceError, GridWriteError, GridFileError,
                         RuntimeChoiceError, SourceError, DistributedError)


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

    Started by torchrun (``params.distributed``, or more than one process), this process is
    one rank of several: :mod:`.caption_distributed`.
    """
    rank = distributed_rank(params.distributed)
    if rank is not None:
        from .caption_distributed import caption_distributed

        return caption_distributed(params, rank, progress, cancelled, _caption)
    return _caption(params, progress, cancelled)


def _caption(params: CaptionRasterParams, progress: Optional[ProgressCallback], cancelled,
             share: Optional[TileShare] = None) -> CaptionRasterResult:
    """The job in one process; with ``share``, over one rank's share of the tiles."""
    started = time.monotonic()
    if share is None or not share.part:
        # An earlier distributed run's part files: merged first on resume (their tiles are
        # done), removed on overwrite.
        settle_leftover_parts(params.output, params.layer, resume=params.resume,
                              overwrite=params.overwrite)
    job = _prepare(params)
    grid = job.grid
    todo = grid.tiles.without(job.done_tile_ids)  # made one at a time as they are read
    skipped = len(grid.tiles) - len(todo)
    if share is not None:
        todo = share.select(todo)
        job.run["distributed"] = share.metadata()
    result = CaptionRasterResult(
        output=job.output.path, layer=job.output.layer, stopped="completed",
        tiles_total=len(grid.tiles), captioned=0, unfinished=0, nodata=0,
        skipped_existing=skipped, seconds=0.0, tiles_per_second=0.0,
        device="", grid_signature=grid.grid_signature, grid_rows=grid.rows,
        grid_cols=grid.cols, tile_size_pixels=grid.tile_size, tile_size_map=grid.tile_size_map,
        crs="", model=job.model_label, notes=list(job.notes),
        level_tiles=list(job.grid_description.get("level_tiles") or [len(grid.tiles)]),
        levels_reason=str(job.run["tiling"].get("levels_reason") or ""))
    if job.source is not None:
        result.source, result.attribution = job.source.source.describe(), job.source.attribution

    captioner = None
    if todo and not cancelled():
        captioner = _load_captioner(params, job.runtime)
        result.device, result.runtime = captioner.device_label, captioner.name
        job.run["runtime"] = {"name": captioner.name, "device": captioner.device_label}
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
    if job.source is not None and job.source.source.is_web:
        result.network = job.source.statistics()
    log.info("%s: %s, %d captioned, %d nodata, %d already there, in %.1f s (%.2f tiles/s); "
             "%s layer %r", job.raster.path, result.stopped, result.captioned, result.nodata,
             result.skipped_existing, result.seconds, result.tiles_per_second,
             job.output.path, job.output.layer)
    return result


def _run(job: _Job, params: CaptionRasterParams, captioner, todo, writer: GridLayerWriter,
         result: CaptionRasterResult, progress: Optional[ProgressCallback], cancelled) -> None:
    from ..nn.config import DecodingParams

    decoding = DecodingParams(beam_size=params.beam_size, max_length=params.max_length)
    calibration = (Calibration.from_dict(job.header.calibration) if job.header.calibration
                   else None)
    reporter = ProgressReporter(progress, Stage.CAPTIONING, len(todo), "tiles", span=(0.0, 1.0))
    seen_examples = set()
    reader = (job.source.reader(todo, job.read_params, job.read_plan) if job.source is not None
              else TileReader(job.raster.path, todo, job.read_params, job.read_plan))
    with reader:
        for batch in reader:
            records = _caption_batch(captioner, batch, decoding, params, calibration)
            writer.write(records)
            for record in records:
                if record.status == Status.FAILED:
                    result.failed += 1
                    continue
                if record.status == Status.NODATA:
                    result.nodata += 1
                    continue
                result.captioned += 1
                result.unfinished += record.status == Status.UNFINISHED
                result.uncertain += record.status == Status.UNCERTAIN
                if (record.caption is not None and len(result.examples) < EXAMPLE_CAPTIONS
                        and record.caption not in seen_examples):
                    seen_examples.add(record.caption)
                    result.examples.append(TileCaption(record.tile.tile_id, record.tile.row,
                                                       record.tile.col, record.caption))
            reporter.advance(len(records), captioned=result.captioned, nodata=result.nodata)
            if cancelled():
                result.stopped = "cancelled"
                break


def _caption_batch(captioner: CaptionRuntime, batch: TileBatch, decoding,
                   params: CaptionRasterParams, calibration: Optional[Calibration] = None
                   ) -> List[TileRecord]:
    valid_rows = np.flatnonzero(~batch.is_nodata)
    captions: Dict[int, Any] = {}
    if len(valid_rows):
        # (n, 3, S, S) uint8; the runtime scales and normalises on its device.
        try:
            pixels = np.ascontiguousarray(batch.pixels[valid_rows])
            for row, found in zip(valid_rows, captioner.caption_batch(pixels, decoding)):
                captions[int(row)] = found
        except RuntimeMemoryError as error:
            raise CaptioningError(f"{error} captioning a batch of {len(valid_rows)} tiles: use "
                                  f"a smaller batch size (now {params.batch_size}) or beam (now "
                                  f"{params.beam_size}).") from None
    records = []
    for index, tile in enumerate(batch.tiles):
        valid = float(batch.valid_fraction[index])
        caption = captions.get(index)
        failure = batch.failure(index)
        if failure is not None:  # its imagery could not be read: resume tries it again
            records.append(TileRecord(tile, Status.FAILED, valid_fraction=0.0, reason=failure))
        elif caption is None:
            records.append(TileRecord(tile, Status.NODATA, valid_fraction=valid))
        else:
            # Damaged weights give empty captions scored -inf: an error, never a caption.
            check_caption_output(params.model, caption.text, caption.score,
                                 f"tile {tile.tile_id} (row {tile.row}, col {tile.col})")
            records.append(_captioned_tile(tile, caption, valid, calibration))
    return records


def _captioned_tile(tile, caption, valid: float, calibration: Optional[Calibration]
                    ) -> TileRecord:
    """A captioned tile's row: its theme and calibrated confidence when the model has them;
    'uncertain' below the model's threshold (trust comes first: an uncertain caption cut at
    the maximum length is 'uncertain')."""
    confidence = None
    if calibration is not None and caption.theme_probability is not None:
        confidence = calibration.confidence(caption.theme_probability, caption.score)
    if confidence is not None and calibration is not None and calibration.is_uncertain(confidence):
        status = Status.UNCERTAIN
    else:
        status = Status.CAPTIONED if caption.finished else Status.UNFINISHED
    return TileRecord(tile, status, caption.text, caption.score, valid, caption.theme,
                      caption.theme_probability, confidence)


__all__ = ["CaptionRasterParams", "CaptionRasterResult", "CaptioningError", "TileCaption",
           "CAPTION_RASTER_ERRORS", "caption_raster"]
