"""The run metadata stored in a captions layer (``MAPSCRIBE_GRID``, ``MAPSCRIBE_RUN``), checked
as data before anything uses it.

A GeoPackage may come from anyone: every value the engine reads from these items (for resuming,
exports, the report) must have the type it expects, or the file is reported as edited or
damaged — never a crash half-way through an export. Values are only read, never run or handed
to a parser that could fetch or open something (a CRS among them: see
:func:`..geo.crs.srs_from_file_text`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Tuple

from .schema import GridFileError

# Counts and sizes stored in a grid: far above any real run, far below what would overflow.
MAX_STORED_COUNT = 10 ** 12


def _whole(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= MAX_STORED_COUNT)


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _numbers(count: int) -> Callable[[Any], bool]:
    return lambda value: (isinstance(value, list) and len(value) == count
                          and all(_number(v) for v in value))


def _wholes(count: int) -> Callable[[Any], bool]:
    return lambda value: (isinstance(value, list) and len(value) == count
                          and all(_whole(v) for v in value))


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


# key → (what it must be, in words; the check)
GRID_FIELDS: Dict[str, Tuple[str, Callable[[Any], bool]]] = {
    "signature": ("text", _text),
    "crs": ("text", _optional(_text)),
    "tiles": ("a whole number", _whole),
    "rows": ("a whole number", _whole),
    "cols": ("a whole number", _whole),
    "tile_size": ("two whole numbers", _wholes(2)),
    "step": ("two whole numbers", _wholes(2)),
    "origin": ("two whole numbers", _wholes(2)),
    "raster_size": ("two whole numbers", _wholes(2)),
    "tile_size_map": ("two numbers", _numbers(2)),
    "area_bounds": ("four numbers", _numbers(4)),
    "transform": ("six numbers", _numbers(6)),
    "tile_ids": ("text", _text),
    "levels": ("a whole number", _optional(_whole)),
}

RUN_SECTIONS = ("raster", "model", "area", "tiling", "decoding", "source")

RUN_FIELDS: Dict[str, Dict[str, Tuple[str, Callable[[Any], bool]]]] = {
    "raster": {"name": ("text", _text), "path": ("text", _text)},
    "model": {"name": ("text", _text), "sha256": ("text", _optional(_text)),
              "trained_on": ("text", _optional(_text)),
              "training_images": ("a whole number", _optional(_whole)),
              "ground_resolution_m": ("a number", _optional(_number))},
    # Where the imagery came from (geo.sources): shown in the report, never fetched.
    "source": {"kind": ("text", _text), "location": ("text", _text),
               "attribution": ("text", _optional(_text)), "name": ("text", _optional(_text)),
               "zoom": ("a whole number", _optional(_whole)),
               "ground_resolution_m": ("a number", _optional(_number))},
}


def check_grid_metadata(grid: Mapping[str, Any], where: str) -> None:
    """Raise :class:`GridFileError` naming the first field of ``MAPSCRIBE_GRID`` that is not
    what MapScribe writes there."""
    for key, (kind, check) in GRID_FIELDS.items():
        if key in grid and not check(grid[key]):
            raise _damaged(where, "MAPSCRIBE_GRID", key, grid[key], kind)


def check_run_metadata(run: Mapping[str, Any], where: str) -> None:
    """The same for ``MAPSCRIBE_RUN``: each section an object, its fields of the right type."""
    for section in RUN_SECTIONS:
        value = run.get(section)
        if value is not None and not isinstance(value, dict):
            raise _damaged(where, "MAPSCRIBE_RUN", section, value, "an object")
    for section, fields in RUN_FIELDS.items():
        values = run.get(section) or {}
        for key, (kind, check) in fields.items():
            if key in values and not check(values[key]):
                raise _damaged(where, "MAPSCRIBE_RUN", f"{section}.{key}", values[key], kind)


def _damaged(where: str, item: str, key: str, value: Any, kind: str) -> GridFileError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return GridFileError(f"{where}: its metadata item {item} has {key} = {shown}, not {kind}; "
                         "the file was edited or damaged. Caption the raster again into a new "
                         "file (mapscribe caption … --out NEW.gpkg).")


def layer_where(path: Path, layer: str) -> str:
    return f"layer {layer!r} of {path}"
