"""Writing the captioned grid: one GeoPackage layer through GDAL/OGR, one transaction per batch.

The layer is written with the same GDAL as QGIS and rasterio. Every batch of tiles is committed
in its own SQLite transaction, so a cancel, a crash or a power cut keeps every tile committed
before it, and a later run with ``resume`` skips them.

What the file holds:

* one polygon per tile (its footprint, in the raster's CRS or in the CRS the user named, the
  edges densified before reprojection) with the fields of :data:`FIELDS`;
* a unique index on ``tile_id``, so a tile can never be written twice;
* an R-tree spatial index, created before the first feature (GDAL would otherwise defer it to
  the end of the run, and a crash would leave the layer without one);
* layer metadata items that GDAL stores in the ``gpkg_metadata`` table: ``MAPSCRIBE_FORMAT``,
  ``MAPSCRIBE_FORMAT_VERSION``, ``MAPSCRIBE_GRID_SIGNATURE``, ``MAPSCRIBE_GRID`` (JSON: what
  places the tiles) and ``MAPSCRIBE_RUN`` (JSON: raster, model, parameters, stretch); GDAL reads
  them with ``GetMetadata()``;
* a one-line description in ``gpkg_contents`` that QGIS shows as the layer's abstract.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from .tiling import TileWindow

log = logging.getLogger(__name__)

FORMAT = "mapscribe-captions"
FORMAT_VERSION = 1
KEY_FORMAT = "MAPSCRIBE_FORMAT"
KEY_FORMAT_VERSION = "MAPSCRIBE_FORMAT_VERSION"
KEY_SIGNATURE = "MAPSCRIBE_GRID_SIGNATURE"
KEY_GRID = "MAPSCRIBE_GRID"
KEY_RUN = "MAPSCRIBE_RUN"

STATUS_CAPTIONED = "captioned"  # the caption reached <end>
STATUS_UNFINISHED = "unfinished"  # the caption was cut at the maximum length
STATUS_NODATA = "nodata"  # too few valid pixels: not shown to the model, no caption
STATUSES = (STATUS_CAPTIONED, STATUS_UNFINISHED, STATUS_NODATA)

# (name, OGR type name, subtype name, width); widths only where the values are bounded.
FIELDS: Tuple[Tuple[str, str, str, int], ...] = (
    ("tile_id", "OFTInteger64", "OFSTNone", 0),   # row * grid cols + col, stable across runs
    ("row", "OFTInteger", "OFSTNone", 0),          # grid row, 0 = the raster's first pixel row
    ("col", "OFTInteger", "OFSTNone", 0),
    ("caption", "OFTString", "OFSTNone", 0),       # NULL for nodata tiles
    ("score", "OFTReal", "OFSTNone", 0),           # mean token log-probability; NULL for nodata
    ("status", "OFTString", "OFSTNone", 10),       # one of STATUSES
    ("valid_fraction", "OFTReal", "OFSTNone", 0),  # share of the tile's pixels that hold data
    ("is_edge", "OFTInteger", "OFSTBoolean", 0),   # the tile reaches past the raster
    ("model", "OFTString", "OFSTNone", 0),         # model file name and a hash of its bytes
    ("created", "OFTDateTime", "OFSTNone", 0),     # UTC; GeoPackage stores ISO 8601 text
)
FIELD_NAMES = tuple(name for name, *_ in FIELDS)

GEOPACKAGE_SUFFIX = ".gpkg"
# Points added along each tile edge before reprojecting it to another CRS, so that edges that
# curve there follow the curve.
EDGE_SEGMENTS = 16
_LAYER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$")

# Labels for the grid description's keys, for messages that say what differs.
_GRID_LABELS = {
    "crs": "raster CRS", "transform": "raster geotransform", "raster_size": "raster size (px)",
    "origin": "first tile's pixel offset", "tile_size": "tile size (px)", "step": "tile step (px)",
    "rows": "grid rows", "cols": "grid columns", "tiles": "number of tiles",
    "tile_ids": "set of tiles (the area or polygons)",
}


class GridWriteError(ValueError):
    """The output GeoPackage cannot be created, opened or written; the message says why and what
    to do."""


class GridFileError(ValueError):
    """A file that is not a MapScribe captions GeoPackage (or lacks the layer asked for)."""


@dataclass(frozen=True)
class TileRecord:
    """One tile's row in the layer."""

    tile: TileWindow
    status: str
    caption: Optional[str] = None
    score: Optional[float] = None
    valid_fraction: float = 1.0


@dataclass(frozen=True)
class CaptionLayerInfo:
    """What a MapScribe captions layer says about itself."""

    path: Path
    layer: str
    srs_wkt: str
    srs_name: str  # "EPSG:32618" when it has an EPSG code, else the CRS's name
    feature_count: int
    grid: Dict[str, Any]
    run: Dict[str, Any]

    @property
    def grid_signature(self) -> str:
        return str(self.grid.get("signature", ""))

    @property
    def tiles_planned(self) -> int:
        return int(self.grid.get("tiles", 0))


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
# GDAL plumbing
# --------------------------------------------------------------------------------------------
@contextmanager
def quiet_gdal() -> Iterator[Any]:
    """Silence GDAL's printed errors in the block and yield a function giving the last one.

    Works whether or not someone in the process switched on osgeo's exceptions (QGIS plugins
    may): callers check for None results and catch RuntimeError alike.
    """
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")
    gdal.ErrorReset()
    try:
        yield lambda: gdal.GetLastErrorMsg() or "unknown GDAL error"
    finally:
        gdal.PopErrorHandler()


def open_geopackage(path: Path, update: bool):
    """The GDAL/OGR dataset at ``path`` when it is a GeoPackage, else None."""
    from osgeo import gdal

    # OF_RASTER too: a GeoPackage holding only raster tiles has no vector layer, and opened as
    # vector only it would look like no GeoPackage at all (and be replaced whole).
    flags = gdal.OF_VECTOR | gdal.OF_RASTER | (gdal.OF_UPDATE if update else 0)
    with quiet_gdal():
        try:
            dataset = gdal.OpenEx(str(path), flags, allowed_drivers=["GPKG"])
        except RuntimeError:
            return None
    return dataset


def ogr_failure(call, last_error) -> Optional[str]:
    """Run an OGR call returning an error code; the error's text, or None when it worked.

    Handles both conventions of the bindings: error codes, and RuntimeError when someone in
    the process switched osgeo's exceptions on.
    """
    try:
        code = call()
    except RuntimeError as error:
        return str(error) or last_error()
    return last_error() if code != 0 else None


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
        value = json.loads(text) if text else None
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise GridFileError(f"layer {layer.GetName()!r} of {path}: its metadata item {key} is "
                            "missing or damaged; the file was edited by hand or by an older "
                            "tool.")
    return value


def read_tile_ids(path: Union[str, Path], layer: str) -> Set[int]:
    """The tile_ids already in ``layer``."""
    dataset = open_geopackage(Path(path), update=False)
    if dataset is None:
        raise GridFileError(f"{path} is not a GeoPackage GDAL can open.")
    try:
        rows = _execute(dataset, f"SELECT tile_id FROM {quote_identifier(layer)}")
        return {int(row[0]) for row in rows if row[0] is not None}
    finally:
        dataset = None


def describe_grid_differences(stored: Mapping[str, Any], current: Mapping[str, Any]
                              ) -> List[str]:
    """What differs between two grid descriptions, in words: '"tile size (px)": [64, 64] in the
    file, [32, 32] now'."""
    differences = []
    for key, label in _GRID_LABELS.items():
        old, new = stored.get(key), current.get(key)
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


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
class GridLayerWriter:
    """Writes :class:`TileRecord` batches into one captions layer, a transaction per batch.

    Make one with :func:`open_grid_layer`; use it as a context manager so the file is closed
    (an error inside a batch rolls that batch back; the batches before it stay).
    """

    def __init__(self, dataset, layer, path: Path, source_srs, output_srs, model_label: str):
        from osgeo import osr

        self._dataset = dataset
        self._layer = layer
        self.path = path
        self.layer_name = layer.GetName()
        self.model_label = model_label
        self.output_srs = output_srs
        self._transform = None
        if not output_srs.IsSame(source_srs):
            self._transform = osr.CoordinateTransformation(source_srs, output_srs)
        self._definition = layer.GetLayerDefn()
        self.written = 0

    def __enter__(self) -> "GridLayerWriter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def srs_name(self) -> str:
        return srs_name(self.output_srs)

    def tile_ids(self) -> Set[int]:
        rows = _execute(self._dataset, f"SELECT tile_id FROM {quote_identifier(self.layer_name)}")
        return {int(row[0]) for row in rows if row[0] is not None}

    def write(self, records: Sequence[TileRecord]) -> None:
        """Write ``records`` in one transaction: all of them are in the file, or none."""
        if not records:
            return
        from osgeo import ogr

        now = datetime.datetime.now(datetime.timezone.utc)
        with quiet_gdal() as last_error:
            problem = ogr_failure(self._dataset.StartTransaction, last_error)
            if problem:
                raise GridWriteError(f"cannot start a transaction in {self.path}: {problem}")
            try:
                for record in records:
                    feature = ogr.Feature(self._definition)
                    self._fill(feature, record, now)
                    problem = ogr_failure(lambda: self._layer.CreateFeature(feature), last_error)
                    if problem:
                        raise GridWriteError(f"cannot write tile {record.tile.tile_id} to "
                                             f"{self.path} (layer {self.layer_name!r}): "
                                             f"{problem}")
                problem = ogr_failure(self._dataset.CommitTransaction, last_error)
                if problem:
                    raise GridWriteError(f"cannot commit tiles to {self.path}: {problem}. Is "
                                         "the disk full?")
            except BaseException:
                # Ctrl-C or an error half-way through a batch: the batch is left out whole.
                ogr_failure(self._dataset.RollbackTransaction, last_error)
                raise
        self.written += len(records)

    def _fill(self, feature, record: TileRecord, now: datetime.datetime) -> None:
        tile = record.tile
        if record.status not in STATUSES:
            raise GridWriteError(f"tile {tile.tile_id}: unknown status {record.status!r}")
        feature.SetField("tile_id", int(tile.tile_id))
        feature.SetField("row", int(tile.row))
        feature.SetField("col", int(tile.col))
        if record.caption is None:
            feature.SetFieldNull("caption")
        else:
            feature.SetField("caption", record.caption)
        if record.score is None:
            feature.SetFieldNull("score")
        else:
            feature.SetField("score", float(record.score))
        feature.SetField("status", record.status)
        feature.SetField("valid_fraction", float(record.valid_fraction))
        feature.SetField("is_edge", int(bool(tile.is_edge)))
        feature.SetField("model", self.model_label)
        feature.SetField("created", now.year, now.month, now.day, now.hour, now.minute,
                         float(now.second), 100)  # 100: UTC
        feature.SetGeometryDirectly(self.tile_polygon(tile.bounds))

    def tile_polygon(self, bounds: Sequence[float]):
        """The tile's footprint as an OGR polygon in the output CRS."""
        from osgeo import ogr

        left, bottom, right, top = bounds
        # Bounds of a raster stored south-up come with bottom > top; the ring is the same.
        minx, maxx = min(left, right), max(left, right)
        miny, maxy = min(bottom, top), max(bottom, top)
        ring = ogr.Geometry(ogr.wkbLinearRing)
        # Counter-clockwise exterior ring, as OGC and RFC 7946 expect.
        for x, y in ((minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy), (minx, miny)):
            ring.AddPoint_2D(x, y)
        polygon = ogr.Geometry(ogr.wkbPolygon)
        polygon.AddGeometryDirectly(ring)
        if self._transform is not None:
            polygon.Segmentize(max(maxx - minx, maxy - miny) / EDGE_SEGMENTS)
            with quiet_gdal() as last_error:
                problem = ogr_failure(lambda: polygon.Transform(self._transform), last_error)
            if problem:
                raise GridWriteError(f"cannot reproject the tile at {tuple(bounds)} to "
                                     f"{self.srs_name} ({problem}): is the area inside that "
                                     "CRS's area of use?")
        return polygon

    def update_run(self, run: Mapping[str, Any]) -> None:
        """Replace the run metadata (e.g. to record a resume)."""
        self._layer.SetMetadataItem(KEY_RUN, json.dumps(run, sort_keys=True))
        self._dataset.FlushCache()

    def close(self) -> None:
        if self._dataset is not None:
            self._layer = None
            self._dataset.FlushCache()
            self._dataset = None


def open_grid_layer(plan: OutputPlan, *, source_crs_wkt: str, output_crs: Optional[str],
                    grid: Mapping[str, Any], run: Mapping[str, Any], model_label: str,
                    description: str) -> GridLayerWriter:
    """Create (or, for 'resume', reopen) the captions layer that ``plan`` names.

    ``source_crs_wkt`` is the CRS of the tiles' bounds (the raster's); ``output_crs`` the CRS of
    the layer (None: the raster's, or the existing layer's when resuming). ``grid`` and ``run``
    are stored as the layer's metadata (``grid['signature']`` is the grid signature).
    """
    from osgeo import ogr, osr

    source_srs = osr.SpatialReference()
    with quiet_gdal() as last_error:
        problem = ogr_failure(lambda: source_srs.ImportFromWkt(source_crs_wkt), last_error)
    if problem:
        raise GridWriteError(f"the raster's CRS cannot be read by OSR: {problem}")
    source_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    wanted_srs = (srs_from_user_input(output_crs) if output_crs else None)

    if plan.action == "resume":
        return _reopen(plan, source_srs, wanted_srs, model_label)
    if plan.action == "replace":
        _remove_layer_or_file(plan)

    output_srs = wanted_srs or source_srs
    path = plan.path
    with quiet_gdal() as last_error:
        try:
            if path.exists():
                dataset = open_geopackage(path, update=True)
            else:
                driver = ogr.GetDriverByName("GPKG")
                dataset = driver.CreateDataSource(str(path)) if driver else None
        except RuntimeError:
            dataset = None
        if dataset is None:
            raise GridWriteError(f"cannot create the GeoPackage {path}: {last_error()}")
        options = ["SPATIAL_INDEX=NO", "FID=fid", "GEOMETRY_NAME=geom",
                   f"DESCRIPTION={description}"]
        try:
            layer = dataset.CreateLayer(plan.layer, output_srs, ogr.wkbPolygon, options=options)
        except RuntimeError:
            layer = None
        if layer is None:
            raise GridWriteError(f"cannot create layer {plan.layer!r} in {path}: {last_error()}")
        for name, type_name, subtype_name, width in FIELDS:
            definition = ogr.FieldDefn(name, getattr(ogr, type_name))
            definition.SetSubType(getattr(ogr, subtype_name))
            if width:
                definition.SetWidth(width)
            problem = ogr_failure(lambda: layer.CreateField(definition), last_error)
            if problem:
                raise GridWriteError(f"cannot create field {name!r} in {path}: {problem}")
        layer.SetMetadataItem(KEY_FORMAT, FORMAT)
        layer.SetMetadataItem(KEY_FORMAT_VERSION, str(FORMAT_VERSION))
        layer.SetMetadataItem(KEY_SIGNATURE, str(grid.get("signature", "")))
        layer.SetMetadataItem(KEY_GRID, json.dumps(grid, sort_keys=True))
        layer.SetMetadataItem(KEY_RUN, json.dumps(run, sort_keys=True))
    table = quote_identifier(plan.layer)
    # The spatial index now (not GDAL's default, at the end): a crash keeps a usable index.
    _execute(dataset, f"SELECT CreateSpatialIndex({_sql_text(plan.layer)}, 'geom')")
    _execute(dataset, f"CREATE UNIQUE INDEX {quote_identifier(plan.layer + '_tile_id')} ON {table} "
                      "(tile_id)")
    # Layer, fields and metadata reach the disk before the first tile does.
    dataset.FlushCache()
    layer = dataset.GetLayerByName(plan.layer)
    log.info("%s: created layer %r in %s", path, plan.layer, srs_name(output_srs))
    return GridLayerWriter(dataset, layer, path, source_srs, output_srs, model_label)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _reopen(plan: OutputPlan, source_srs, wanted_srs, model_label: str) -> GridLayerWriter:
    from osgeo import osr

    dataset = open_geopackage(plan.path, update=True)
    if dataset is None:
        raise GridWriteError(f"cannot open {plan.path} for writing to resume it.")
    layer = dataset.GetLayerByName(plan.layer)
    existing_srs = layer.GetSpatialRef() if layer is not None else None
    if existing_srs is None:
        raise GridWriteError(f"layer {plan.layer!r} of {plan.path} has no CRS; it cannot be "
                             "resumed: start again with --overwrite.")
    existing_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    if wanted_srs is not None and not wanted_srs.IsSame(existing_srs):
        raise GridWriteError(f"layer {plan.layer!r} of {plan.path} is in "
                             f"{srs_name(existing_srs)}, not {srs_name(wanted_srs)}: resume "
                             "with the layer's CRS, or start again with --overwrite.")
    # A run that crashed before this version created its index early would lack one.
    has_index = _execute(dataset, f"SELECT HasSpatialIndex({_sql_text(plan.layer)}, 'geom')")
    if not (has_index and has_index[0][0]):
        _execute(dataset, f"SELECT CreateSpatialIndex({_sql_text(plan.layer)}, 'geom')")
    return GridLayerWriter(dataset, layer, plan.path, source_srs, existing_srs, model_label)


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
