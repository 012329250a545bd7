"""Where a run writes: a new layer, a layer to resume, or one to replace, decided and checked
before anything is written.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Tuple, Union

from ..geo.gdal_errors import ogr_failure, quiet_gdal
from ..paths import MAX_NAME_BYTES, check_utf8_path
from .geopackage import (
    _execute,
    _is_caption_layer,
    _layer_names,
    open_geopackage_or_error,
    why_not_opened,
)
from .schema import DEFAULT_LAYER, GEOPACKAGE_SUFFIX, GridWriteError

log = logging.getLogger(__name__)


_LAYER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$")


@dataclass(frozen=True)
class OutputPlan:
    """What writing to an output path will do, decided before any work starts.

    ``action``: 'create' (a new file), 'add' (a new layer in an existing GeoPackage), 'replace'
    (delete the MapScribe captions layer of that name, never anything else, then create it
    again), 'resume' (append to the existing layer).
    """

    path: Path
    layer: str
    action: str
    other_layers: Tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Deciding what to do with the output path
# --------------------------------------------------------------------------------------------
def plan_output(path: Union[str, Path], layer: str = DEFAULT_LAYER, *, overwrite: bool = False,
                resume: bool = False) -> OutputPlan:
    """Check the output path and decide what writing there will do; changes nothing on disk
    except creating a missing parent folder.

    An existing captions layer is never replaced silently: without ``overwrite`` or ``resume``
    it is an error.
    """
    path = Path(check_utf8_path(Path(path).expanduser(), "output"))
    if overwrite and resume:
        raise GridWriteError("overwrite and resume exclude each other: overwrite starts again "
                             "from nothing, resume continues the layer that is there.")
    if not _LAYER_NAME.match(layer or ""):
        raise GridWriteError(f"layer name {layer!r} cannot be used: give 1 to 63 letters, "
                             "digits, '_' or '-', starting with a letter (e.g. captions).")
    if path.suffix.lower() != GEOPACKAGE_SUFFIX:
        raise GridWriteError(f"output {path} must be a GeoPackage file ending in "
                             f"{GEOPACKAGE_SUFFIX} (e.g. grid.gpkg).")
    parent = path.parent.resolve()
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as error:
        raise GridWriteError(f"cannot create the output folder {parent}: "
                             f"{error.strerror if isinstance(error, OSError) else error}. "
                             "Choose an output in a folder you can write to.") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GridWriteError(f"the output folder {parent} is not writable: choose an output "
                             "in a folder you can write to.")
    path = parent / path.name
    if len(os.fsencode(path.name)) > MAX_NAME_BYTES:
        raise GridWriteError(f"output {path}: file name too long (more than the "
                             f"{MAX_NAME_BYTES} bytes file systems allow); choose a shorter one.")
    try:
        is_dir, exists = path.is_dir(), os.path.lexists(path)
    except OSError as error:  # e.g. a file name longer than the file system allows
        raise GridWriteError(f"output {path} cannot be used: {error.strerror}. Choose a "
                             "shorter or simpler file name.") from None
    if is_dir:
        raise GridWriteError(f"output {path} is a folder: give a file name ending in "
                             f"{GEOPACKAGE_SUFFIX}.")
    if not exists:
        return OutputPlan(path, layer, "create")
    if not path.exists():
        raise GridWriteError(f"output {path} is a symbolic link to {os.readlink(path)}, which "
                             "does not exist: give the real file name, or another output.")
    if not os.access(path, os.W_OK):
        raise GridWriteError(f"output {path} exists and is read-only: choose another output or "
                             "make it writable.")

    dataset, gdal_error = open_geopackage_or_error(path, update=False)
    if dataset is None:
        # Never replaced, even with overwrite: a file MapScribe cannot open and recognise may
        # be anything (a GeoPackage that QGIS holds locked, another program's database).
        raise GridWriteError(f"output {path} exists and {why_not_opened(path, gdal_error)}. "
                             "MapScribe never deletes a file it cannot open and recognise, "
                             "not even with --overwrite: choose another output, or move that "
                             "file away yourself.")
    try:
        names = _layer_names(dataset)
        # Raster tiles in the same GeoPackage are no vector layers but must be kept too.
        try:
            tables = [row[0] for row in _execute(dataset, "SELECT table_name FROM gpkg_contents")]
        except GridWriteError:
            tables = []
        others = tuple(sorted((set(names) | set(tables)) - {layer}))
        if layer not in names:
            if resume:
                log.info("%s has no layer %r yet: resume starts it", path, layer)
            return OutputPlan(path, layer, "add", others)
        if not _is_caption_layer(dataset.GetLayerByName(layer)):
            # Replaced only when MapScribe wrote it: --overwrite does not cover other layers.
            raise GridWriteError(f"output {path} already has a layer {layer!r} that MapScribe "
                                 "did not write, and MapScribe replaces only its own captions "
                                 "layers (not even with --overwrite): choose another layer name "
                                 "(--layer) or output.")
    finally:
        dataset = None
    if overwrite:
        return OutputPlan(path, layer, "replace", others)
    if resume:
        return OutputPlan(path, layer, "resume", others)
    raise GridWriteError(f"output {path} already holds captions (layer {layer!r}). Run again "
                         "with --resume to finish it, or --overwrite to start again from "
                         "nothing (or choose another output).")


def _remove_layer_or_file(plan: OutputPlan) -> None:
    """For 'replace': delete the captions layer that the plan names, and nothing else.

    The file itself is never deleted (another program may hold it open, and it may hold more
    than the layer), and the layer is checked again to be a MapScribe captions layer: between
    planning and writing someone may have changed the file.
    """
    path = plan.path
    dataset, gdal_error = open_geopackage_or_error(path, update=True)
    if dataset is None:
        raise GridWriteError(f"cannot open {path} for writing to replace layer "
                             f"{plan.layer!r}: it {why_not_opened(path, gdal_error)}.")
    try:
        with quiet_gdal() as last_error:
            for index in range(dataset.GetLayerCount()):
                found = dataset.GetLayerByIndex(index)
                if found.GetName() != plan.layer:
                    continue
                if not _is_caption_layer(found):
                    raise GridWriteError(f"layer {plan.layer!r} of {path} is no longer a "
                                         "MapScribe captions layer; it is left as it is. "
                                         "Choose another layer name or output.")
                found = None
                problem = ogr_failure(partial(dataset.DeleteLayer, index), last_error)
                if problem:
                    raise GridWriteError(f"cannot delete layer {plan.layer!r} of {path}: "
                                         f"{_locked_hint(problem)}")
                break
    finally:
        dataset = None
    log.info("%s: layer %r removed, to be written again", path, plan.layer)


def _locked_hint(problem: str) -> str:
    if "locked" in problem.lower():
        return (f"{problem} — another program (QGIS, with the layer on its map, or another "
                "run) has the file open: close it there and run again.")
    return problem
