"""The main job: caption the tiles of a raster with a model into a GeoPackage layer.

:func:`caption_raster` plans (:mod:`.caption_plan`), loads the model, reads tiles ahead of the
model (:class:`~..geo.reader.TileReader`), captions them batch by batch and commits each batch
in a transaction, so that a cancel or a crash keeps every tile already captioned and a rerun
resumes. The command line, the dock's task, Processing and the Python API all call it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional

import numpy as np

from ..geo.errors import RasterReadError, TileReadError, TilingError
from ..geo.read_plan import TileBatch
from ..geo.reader import TileReader
from ..modelfile.header import ModelFileError
from ..nn.device import DeviceError
from ..output.schema import (
    STATUS_CAPTIONED,
    STATUS_NODATA,
    STATUS_UNFINISHED,
    GridFileError,
    GridWriteError,
    TileRecord,
)
from ..output.writer import GridLayerWriter
from ..progress import ProgressCallback, ProgressReporter, never_cancelled
from .caption_params import (
    EXAMPLE_CAPTIONS,
    CaptioningError,
    CaptionRasterParams,
    CaptionRasterResult,
    TileCaption,
)
from .caption_plan import (
    _device_label,
    _Job,
    _load_captioner,
    _now_iso,
    _open_writer,
    _prepare,
)

log = logging.getLogger(__name__)


# Every failure a front door should show as a message rather than a traceback.
CAPTION_RASTER_ERRORS = (CaptioningError, TilingError, RasterReadError, TileReadError,
                         ModelFileError, DeviceError, GridWriteError, GridFileError)


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
    from ..nn.beam_search import DecodingParams

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


__all__ = ["CaptionRasterParams", "CaptionRasterResult", "CaptioningError", "TileCaption",
           "CAPTION_RASTER_ERRORS", "caption_raster", "describe_grid"]
