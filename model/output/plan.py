"""Where a run writes: a new layer, a layer to resume, or one to replace, decided and checked
before anything is written.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple, Union

from ..geo.gdal_errors import ogr_failure, quiet_gdal
from .geopackage import _execute, _is_caption_layer, _layer_names, open_geopackage
from .schema import GEOPACKAGE_SUFFIX, GridWriteError

log = logging.getLogger(__name__)


_LAYER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$")


@dataclass(frozen=True)
class OutputPlan:
    """What writing to an output path will do, decided before any work starts.

    ``action``: 'create' (a new file), 'add' (a new layer in an existing GeoPackage), 'replace'
    (delete the layer, or the whole file when it holds nothing else, then create), 'resume'
    (append to the existing layer).
    """

    path: Path
    layer: str
    action: str
    other_layers: Tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Deciding what to do with the output path
# --------------------------------------------------------------------------------------------
def plan_output(path: Union[str, Path], layer: str = "captions", *, overwrite: bool = False,
                resume: bool = False) -> OutputPlan:
    """Check the output path and decide what writing there will do; changes nothing on disk
    except creating a missing parent folder.

    An existing captions layer is never replaced silently: without ``overwrite`` or ``resume``
    it is an error.
    """
    path = Path(path).expanduser()
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
    if path.is_dir():
        raise GridWriteError(f"output {path} is a folder: give a file name ending in "
                             f"{GEOPACKAGE_SUFFIX}.")
    if not path.exists():
        return OutputPlan(path, layer, "create")
    if not os.access(path, os.W_OK):
        raise GridWriteError(f"output {path} exists and is read-only: choose another output or "
                             "make it writable.")

    dataset = open_geopackage(path, update=False)
    if dataset is None:
        if overwrite:
            return OutputPlan(path, layer, "replace")
        raise GridWriteError(f"output {path} exists and is not a GeoPackage: choose another "
                             "output, or overwrite it (--overwrite).")
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
            if overwrite:
                return OutputPlan(path, layer, "replace", others)
            raise GridWriteError(f"output {path} already has a layer {layer!r} that MapScribe "
                                 "did not write: choose another layer name (--layer) or "
                                 "output, or replace it (--overwrite).")
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
    """For 'replace': delete the layer, or the whole file when it holds nothing else."""
    path = plan.path
    if not plan.other_layers:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                Path(str(path) + suffix).unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                raise GridWriteError(f"cannot replace {path}: {error.strerror}") from None
        log.info("%s: removed, to be written again", path)
        return
    dataset = open_geopackage(path, update=True)
    if dataset is None:
        raise GridWriteError(f"cannot open {path} for writing to replace layer {plan.layer!r}.")
    with quiet_gdal() as last_error:
        for index in range(dataset.GetLayerCount()):
            if dataset.GetLayerByIndex(index).GetName() == plan.layer:
                problem = ogr_failure(lambda: dataset.DeleteLayer(index), last_error)
                if problem:
                    raise GridWriteError(f"cannot delete layer {plan.layer!r} of {path}: "
                                         f"{problem}")
                break
    dataset = None
    log.info("%s: layer %r removed, to be written again", path, plan.layer)
