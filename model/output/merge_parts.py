"""Part files of a distributed captioning run, and merging them into the output layer.

Each rank of a ``torchrun`` job writes its tiles to its own GeoPackage beside the output,
``<output>.part-<rank>-of-<world>.gpkg``, a transaction per batch as the ordinary writer does,
so no two processes ever write one SQLite file. At the end rank 0 copies every part's rows into
the output layer (one schema, the unique ``tile_id`` index and the R-tree kept by the layer's
own triggers) and deletes a part only once its rows are committed there. A run that stopped
before that leaves parts behind; the next ``--resume``, with any number of processes, merges
them first, so no tile is captioned twice and none is lost.

Merging is idempotent: a tile already in the output (but for a 'failed' one, which a part's row
replaces) is skipped, so a merge cut short by a crash is simply merged again. Only files that
are MapScribe captions layers of the same grid and model as the output are merged or removed;
anything else at a part's name is left alone and named in the error.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, List, Sequence, Union

from ..geo.gdal_errors import ogr_failure, ogr_transaction, quiet_gdal
from .geopackage import (
    _execute,
    _is_caption_layer,
    check_intact,
    open_geopackage,
    quote_identifier,
    read_caption_layer_info,
)
from .schema import GEOPACKAGE_SUFFIX, KEY_RUN, CaptionLayerInfo, GridFileError, GridWriteError

log = logging.getLogger(__name__)

_PART_NAME = re.compile(r"\.part-(\d{1,6})-of-(\d{1,6})" + re.escape(GEOPACKAGE_SUFFIX) + "$")
# Rows copied per transaction: a crash mid-merge loses nothing (the part is still there and
# merging is idempotent), and the journal stays small.
MERGE_CHUNK = 10_000


@dataclass
class MergeResult:
    """What a merge did."""

    parts: List[Path] = field(default_factory=list)  # merged, then removed
    added: int = 0      # rows copied into the output
    skipped: int = 0    # tiles the output held already
    replaced: int = 0   # 'failed' tiles of the output replaced by a part's row


def part_path(output: Union[str, Path], rank: int, world_size: int) -> Path:
    """Where rank ``rank`` of ``world_size`` writes its tiles: beside the output."""
    output = Path(output)
    return output.with_name(f"{output.name}.part-{rank}-of-{world_size}{GEOPACKAGE_SUFFIX}")


def leftover_parts(output: Union[str, Path]) -> List[Path]:
    """The part files beside ``output`` (of any world size), by world size then rank."""
    output = Path(output).expanduser()
    try:
        names = os.listdir(output.parent if str(output.parent) else ".")
    except OSError:  # no folder yet: no parts either
        return []
    found = []
    for name in names:
        if name.startswith(output.name):
            match = _PART_NAME.fullmatch(name[len(output.name):])
            if match:
                found.append((int(match.group(2)), int(match.group(1)), output.with_name(name)))
    return [path for _, _, path in sorted(found)]


def settle_leftover_parts(output: Union[str, Path], layer: str, *, resume: bool,
                          overwrite: bool) -> MergeResult:
    """Before a run writes ``output``: an earlier distributed run's parts are merged into it
    (``resume``), removed (``overwrite``: start again from nothing), or named in an error (a
    new run would caption their tiles again, and a later resume would find them)."""
    parts = leftover_parts(output)
    if not parts:
        return MergeResult()
    names = ", ".join(path.name for path in parts)
    if overwrite:
        for part in parts:
            _check_ours(part, layer)
        _remove(parts)
        log.info("%s: removed the part files of an earlier run (%s)", output, names)
        return MergeResult()
    if resume:
        return merge_parts(output, layer, parts)
    raise GridWriteError(f"{names} beside {output} hold tiles of an earlier distributed run "
                         "that stopped before merging them: run with --resume to keep them "
                         "(they are merged first), or --overwrite to start again from nothing "
                         "(they are removed).")


def merge_parts(output: Union[str, Path], layer: str, parts: Sequence[Path]) -> MergeResult:
    """Copy the rows of ``parts`` into ``layer`` of ``output``, then delete the parts.

    Every part is checked first (a MapScribe captions layer, intact, same grid, model and CRS
    as the output), so nothing is copied from a file that does not belong."""
    output = Path(output)
    result = MergeResult()
    parts = [Path(part) for part in parts if Path(part).exists()]
    if not parts:
        return result
    if not output.exists():
        raise GridWriteError(
            f"{', '.join(p.name for p in parts)} hold captioned tiles for {output}, which no "
            "longer exists: move them away (or delete them) and run again.")
    target = read_caption_layer_info(output, layer)
    for part in parts:
        _roll_back(part)
        _check_belongs(part, layer, target)
    dataset = open_geopackage(output, update=True)
    if dataset is None:
        raise GridWriteError(f"cannot open {output} for writing to merge the part files into "
                             "it: is another program holding it?")
    try:
        out_layer = dataset.GetLayerByName(layer)
        for part in parts:
            _copy_part(dataset, out_layer, part, layer, output, result)
        _record_merge(out_layer, parts, result)
        dataset.FlushCache()
    finally:
        out_layer = None
        dataset = None
    # Only now, with every row committed in the output, do the parts go.
    _remove(parts)
    result.parts = parts
    log.info("%s: merged %d part files (%d tiles added, %d already there, %d failed tiles "
             "replaced)", output, len(parts), result.added, result.skipped, result.replaced)
    return result


def _roll_back(part: Path) -> None:
    """A rank killed in the middle of a batch leaves that transaction's journal: opening the
    part for writing once rolls it back (a read-only connection could not), leaving exactly
    the batches it committed."""
    # GDAL reads the file's tables on opening: SQLite rolls the journal back then; dropping
    # the dataset at once closes it.
    open_geopackage(part, update=True)


def _check_ours(part: Path, layer: str) -> None:
    dataset = open_geopackage(part, update=False)
    ours = dataset is not None and dataset.GetLayerByName(layer) is not None and \
        _is_caption_layer(dataset.GetLayerByName(layer))
    dataset = None
    if not ours:
        raise GridWriteError(f"{part} has the name of a MapScribe part file but is not one (no "
                             f"captions layer {layer!r}); MapScribe never deletes a file it did "
                             "not write: move it away yourself, then run again.")


def _check_belongs(part: Path, layer: str, target: CaptionLayerInfo) -> None:
    _check_ours(part, layer)
    check_intact(part, "merged")
    info = read_caption_layer_info(part, layer)
    model = (info.run.get("model") or {}).get("sha256")
    target_model = (target.run.get("model") or {}).get("sha256")
    why = ("another tile grid" if info.grid_signature != target.grid_signature
           else "another model's captions" if model != target_model
           else f"another CRS ({info.srs_name}, the output: {target.srs_name})"
           if not _same_crs(info.srs_wkt, target.srs_wkt) else "")
    if why:
        raise GridFileError(f"{part} holds {why} than layer {layer!r} of {target.path}, so it "
                            "is not a part of this run: move it away, or start again with "
                            "--overwrite (which removes it).")


def _same_crs(first: str, second: str) -> bool:
    from osgeo import osr

    one, two = osr.SpatialReference(), osr.SpatialReference()
    one.ImportFromWkt(first)
    two.ImportFromWkt(second)
    return bool(one.IsSame(two))


def _copy_part(dataset, out_layer, part: Path, layer: str, output: Path,
               result: MergeResult) -> None:
    source = open_geopackage(part, update=False)
    try:
        chunk: List[Any] = []
        for feature in source.GetLayerByName(layer):
            chunk.append(feature)
            if len(chunk) >= MERGE_CHUNK:
                _commit_chunk(dataset, out_layer, chunk, layer, output, result)
                chunk = []
        _commit_chunk(dataset, out_layer, chunk, layer, output, result)
    finally:
        source = None


def _commit_chunk(dataset, out_layer, features: List[Any], layer: str, output: Path,
                  result: MergeResult) -> None:
    """One transaction: the chunk's new tiles added, the output's 'failed' rows of the same
    tiles replaced, tiles the output already holds left as they are."""
    from osgeo import ogr

    if not features:
        return
    table = quote_identifier(layer)
    ids = ",".join(str(int(feature.GetField("tile_id"))) for feature in features)
    existing = dict(_execute(dataset, f"SELECT tile_id, status FROM {table} WHERE tile_id IN "
                                      f"({ids})"))
    definition = out_layer.GetLayerDefn()
    with quiet_gdal() as last_error, ogr_transaction(
            dataset, last_error,
            lambda problem: GridWriteError(f"cannot start a transaction in {output}: {problem}"),
            lambda problem: GridWriteError(f"cannot commit the merged tiles to {output}: "
                                           f"{problem}. Is the disk full? The part files are "
                                           "kept.")):
        failed = [tile_id for tile_id, status in existing.items() if status == "failed"]
        if failed:
            _execute(dataset, f"DELETE FROM {table} WHERE status = 'failed' AND tile_id IN "
                              f"({','.join(str(int(i)) for i in failed)})")
        for feature in features:
            tile_id = int(feature.GetField("tile_id"))
            if existing.get(tile_id, "failed") != "failed":
                result.skipped += 1
                continue
            copy = ogr.Feature(definition)
            copy.SetFrom(feature)
            problem = ogr_failure(partial(out_layer.CreateFeature, copy), last_error)
            if problem:
                raise GridWriteError(f"cannot copy tile {tile_id} into {output} (layer "
                                     f"{layer!r}): {problem}")
            result.added += 1
            result.replaced += tile_id in existing
            existing[tile_id] = "added"  # a tile twice among the parts: copied once


def _record_merge(out_layer, parts: Sequence[Path], result: MergeResult) -> None:
    """The run metadata says which parts were merged, and from how many ranks."""
    try:
        run = json.loads(out_layer.GetMetadataItem(KEY_RUN) or "{}")
    except json.JSONDecodeError:
        return  # read_caption_layer_info checked it; a race with an editor is not ours to fix
    worlds = sorted({int(m.group(2)) for m in (_PART_NAME.search(p.name) for p in parts) if m})
    run.setdefault("merged_parts", []).append({
        "merged": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "parts": len(parts), "world_size": worlds[-1] if worlds else None,
        "tiles_added": result.added, "tiles_replaced": result.replaced})
    out_layer.SetMetadataItem(KEY_RUN, json.dumps(run, sort_keys=True))


def _remove(parts: Sequence[Path]) -> None:
    for part in parts:
        for leftover in (part, part.with_name(part.name + "-journal"),
                         part.with_name(part.name + "-wal"), part.with_name(part.name + "-shm")):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass
