"""Reading MapScribe's GeoPackages: which layers are captions layers, their run metadata, the
tiles already captioned, and the GDAL/SQL helpers the writer shares.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Union

from ..geo.gdal_errors import quiet_gdal
from .metadata import check_grid_metadata, check_run_metadata, layer_where
from .schema import (
    FORMAT,
    KEY_FORMAT,
    KEY_GRID,
    KEY_RUN,
    CaptionLayerInfo,
    GridFileError,
    GridWriteError,
)

# Longer than any run metadata MapScribe writes (a few kB): what json.loads is given at most.
MAX_METADATA_CHARS = 1_000_000
# The first 16 bytes of every SQLite database (and so of every GeoPackage).
SQLITE_MAGIC = b"SQLite format 3\x00"

# Labels for the grid description's keys, for messages that say what differs.
_GRID_LABELS = {
    "crs": "raster CRS", "transform": "raster geotransform", "raster_size": "raster size (px)",
    "origin": "first tile's pixel offset", "tile_size": "tile size (px)", "step": "tile step (px)",
    "rows": "grid rows", "cols": "grid columns", "tiles": "number of tiles",
    "tile_ids": "set of tiles (the area or polygons)",
    "levels": "caption pyramid levels (--levels)",
}
# What a key missing from a grid description means (grids of one level do not store it).
_GRID_DEFAULTS = {"levels": 1}


def open_geopackage(path: Path, update: bool):
    """The GDAL/OGR dataset at ``path`` when it is a GeoPackage, else None."""
    return open_geopackage_or_error(path, update)[0]


def open_geopackage_or_error(path: Path, update: bool) -> Tuple[Any, str]:
    """(the GDAL/OGR dataset, "") when ``path`` opens as a GeoPackage, else (None, GDAL's
    error); :func:`why_not_opened` turns the error into words."""
    from osgeo import gdal

    # OF_RASTER too: a GeoPackage holding only raster tiles has no vector layer, and opened as
    # vector only it would look like no GeoPackage at all.
    flags = gdal.OF_VECTOR | gdal.OF_RASTER | (gdal.OF_UPDATE if update else 0)
    if not _is_plain_file(path):
        return None, "not a regular file"
    with quiet_gdal() as last_error:
        try:
            dataset = gdal.OpenEx(str(path), flags, allowed_drivers=["GPKG"])
        except (RuntimeError, UnicodeEncodeError) as error:
            return None, str(error)
        return dataset, ("" if dataset is not None else last_error())


def _is_plain_file(path: Path) -> bool:
    """A regular file (links followed): never a FIFO or a device, which would block or never
    end when read."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def why_not_opened(path: Path, gdal_error: str) -> str:
    """Why GDAL could not open ``path`` as a GeoPackage, in words people can act on (the end of
    a sentence: "… exists and <this>")."""
    if not _is_plain_file(path):
        return ("is not a regular file (a folder, a device or a pipe), so not a GeoPackage"
                if os.path.lexists(path) else "does not exist")
    try:
        with open(path, "rb") as stream:
            magic = stream.read(16)
    except OSError as error:
        return f"cannot be read ({error.strerror}), so it cannot be checked to be a GeoPackage"
    if magic != SQLITE_MAGIC:
        return "is not a GeoPackage (not even an SQLite database)"
    if "locked" in gdal_error.lower() or "busy" in gdal_error.lower():
        return ("is locked by another program (QGIS, when the layer is on its map, or another "
                "run writing to it): close it there, or write to another file")
    return f"is an SQLite database that GDAL cannot open as a GeoPackage ({gdal_error})"


def _layer_names(dataset) -> List[str]:
    return [dataset.GetLayerByIndex(i).GetName() for i in range(dataset.GetLayerCount())]


def _is_caption_layer(layer) -> bool:
    return layer.GetMetadataItem(KEY_FORMAT) == FORMAT


def _execute(dataset, sql: str) -> List[Tuple[Any, ...]]:
    """Run SQL on the GeoPackage (SQLite dialect); the rows of a SELECT, else []."""
    from osgeo import gdal

    with quiet_gdal() as last_error:
        try:
            result = dataset.ExecuteSQL(sql)
        except RuntimeError as error:
            raise GridWriteError(f"SQL on {dataset.GetDescription()} failed: {error}") from None
        if result is None:
            # None is also what a statement without rows gives: only GDAL's error says which.
            if gdal.GetLastErrorType() >= gdal.CE_Failure:
                raise GridWriteError(f"SQL on {dataset.GetDescription()} failed: "
                                     f"{last_error()}")
            return []
        try:
            rows = []
            for feature in result:
                rows.append(tuple(feature.GetField(i) for i in range(feature.GetFieldCount())))
            return rows
        finally:
            dataset.ReleaseResultSet(result)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def srs_from_user_input(value: str, what: str = "the output CRS"):
    """An osr.SpatialReference from "EPSG:4326", WKT or PROJ, with x/y (lon/lat) axis order."""
    from osgeo import osr

    srs = osr.SpatialReference()
    with quiet_gdal():
        try:
            failed = srs.SetFromUserInput(str(value)) != 0
        except RuntimeError:
            failed = True
        if failed:
            raise GridWriteError(f"unknown CRS {value!r} for {what}: give an EPSG code such as "
                                 "'EPSG:4326', a WKT or a PROJ string.")
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def srs_name(srs) -> str:
    """'EPSG:32618' when the CRS has an EPSG code, else its name."""
    if srs is None:
        return "unknown CRS"
    code = srs.GetAuthorityCode(None)
    authority = srs.GetAuthorityName(None)
    if code and authority:
        return f"{authority}:{code}"
    return srs.GetName() or "unnamed CRS"


# --------------------------------------------------------------------------------------------
# Reading what a file holds
# --------------------------------------------------------------------------------------------
def find_caption_layers(path: Union[str, Path]) -> List[str]:
    """Names of the MapScribe captions layers in the GeoPackage at ``path`` ([] when none)."""
    dataset = open_geopackage(Path(path), update=False)
    if dataset is None:
        return []
    try:
        return [dataset.GetLayerByIndex(i).GetName() for i in range(dataset.GetLayerCount())
                if _is_caption_layer(dataset.GetLayerByIndex(i))]
    finally:
        dataset = None


def read_caption_layer_info(path: Union[str, Path], layer: Optional[str] = None
                            ) -> CaptionLayerInfo:
    """Check that ``path`` is a MapScribe captions GeoPackage and describe its layer.

    ``layer`` None takes the only captions layer; with several, the message lists them.
    """
    path = Path(path)
    if not path.exists():
        raise GridFileError(f"{path}: no such file. Give a GeoPackage written by "
                            "`mapscribe caption`.")
    if path.is_dir():
        raise GridFileError(f"{path} is a folder, not a GeoPackage written by "
                            "`mapscribe caption`.")
    dataset = open_geopackage(path, update=False)
    if dataset is None:
        raise GridFileError(f"{path} is not a GeoPackage (GDAL cannot open it as one). Give a "
                            "file written by `mapscribe caption`.")
    try:
        names = _layer_names(dataset)
        ours = [n for n in names if _is_caption_layer(dataset.GetLayerByName(n))]
        if layer is None:
            if not ours:
                raise GridFileError(f"{path} is a GeoPackage but holds no MapScribe captions "
                                    f"layer (its layers: {names or 'none'}). Give a file "
                                    "written by `mapscribe caption`.")
            if len(ours) > 1:
                raise GridFileError(f"{path} holds several MapScribe captions layers {ours}: "
                                    "choose one (--layer NAME).")
            layer = ours[0]
        elif layer not in ours:
            what = ("is not a MapScribe captions layer" if layer in names
                    else "does not exist")
            raise GridFileError(f"layer {layer!r} of {path} {what}; its MapScribe captions "
                                f"layers: {ours or 'none'}.")
        chosen = dataset.GetLayerByName(layer)
        grid = _json_item(chosen, KEY_GRID, path)
        run = _json_item(chosen, KEY_RUN, path)
        check_grid_metadata(grid, layer_where(path, layer))
        check_run_metadata(run, layer_where(path, layer))
        srs = chosen.GetSpatialRef()
        if srs is None:
            raise GridFileError(f"layer {layer!r} of {path} has no CRS; the file was edited or "
                                "damaged.")
        return CaptionLayerInfo(path=path, layer=layer, srs_wkt=srs.ExportToWkt(),
                                srs_name=srs_name(srs),
                                feature_count=int(chosen.GetFeatureCount()), grid=grid, run=run)
    finally:
        dataset = None


def _json_item(layer, key: str, path: Path) -> Dict[str, Any]:
    text = layer.GetMetadataItem(key)
    try:
        value = json.loads(text) if text and len(text) <= MAX_METADATA_CHARS else None
    except (json.JSONDecodeError, RecursionError):  # RecursionError: [[[[… nested too deep
        value = None
    if not isinstance(value, dict):
        raise GridFileError(f"layer {layer.GetName()!r} of {path}: its metadata item {key} is "
                            "missing or damaged; the file was edited by hand or by an older "
                            "tool.")
    return value


def check_intact(path: Union[str, Path], what: str = "read") -> None:
    """Raise :class:`GridFileError` when SQLite finds the file damaged (pages that cannot be
    read): such a file would give some of its tiles and silently drop the others, and a resume
    would trust an index that names tiles whose rows are gone."""
    dataset = open_geopackage(Path(path), update=False)
    if dataset is None:
        raise GridFileError(f"{path} is not a GeoPackage GDAL can open.")
    try:
        try:
            rows = _execute(dataset, "PRAGMA quick_check")
        except GridWriteError as error:
            rows = [(str(error),)]
    finally:
        dataset = None
    if rows != [("ok",)]:
        found = "; ".join(str(row[0]).replace("\n", " ") for row in rows[:3])[:300]
        raise GridFileError(f"{path} is damaged (SQLite finds: {found}): some of its tiles "
                            f"cannot be read, so it cannot be {what} safely. Use a good copy, "
                            "or caption the raster again into a new file.")


def read_tile_ids(path: Union[str, Path], layer: str, skip_failed: bool = False) -> Set[int]:
    """The tile_ids already in ``layer`` (``skip_failed``: leaving out the tiles whose imagery
    could not be read, which a resumed run tries again)."""
    dataset = open_geopackage(Path(path), update=False)
    if dataset is None:
        raise GridFileError(f"{path} is not a GeoPackage GDAL can open.")
    where = " WHERE status IS NOT 'failed'" if skip_failed else ""
    try:
        rows = _execute(dataset, f"SELECT tile_id FROM {quote_identifier(layer)}{where}")
        return {int(row[0]) for row in rows if row[0] is not None}
    except (TypeError, ValueError):  # text where a tile id belongs
        raise GridFileError(f"layer {layer!r} of {path} holds a tile_id that is not a number; "
                            "the file was edited or damaged: start again with --overwrite, "
                            "or into a new file.") from None
    finally:
        dataset = None


def describe_grid_differences(stored: Mapping[str, Any], current: Mapping[str, Any]
                              ) -> List[str]:
    """What differs between two grid descriptions, in words: '"tile size (px)": [64, 64] in the
    file, [32, 32] now'."""
    differences = []
    for key, label in _GRID_LABELS.items():
        old = stored.get(key, _GRID_DEFAULTS.get(key))
        new = current.get(key, _GRID_DEFAULTS.get(key))
        if key == "transform" and old is not None and new is not None:
            same = len(old) == len(new) and all(abs(a - b) <= 1e-9 * max(1.0, abs(a))
                                                for a, b in zip(old, new))
        else:
            same = old == new
        if not same:
            if key == "tile_ids":
                differences.append(f"{label} differs")
            else:
                differences.append(f"{label}: {old} in the file, {new} now")
    return differences


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
