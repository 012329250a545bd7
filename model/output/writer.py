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
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Set, Tuple

from ..geo.gdal_errors import ogr_failure, ogr_transaction, quiet_gdal
from .geopackage import (
    _execute,
    _sql_text,
    open_geopackage,
    quote_identifier,
    srs_from_user_input,
    srs_name,
)
from .plan import OutputPlan, _remove_layer_or_file
from .schema import (
    ADDED_FIELDS,
    FIELDS,
    FORMAT,
    FORMAT_VERSION,
    KEY_FORMAT,
    KEY_FORMAT_VERSION,
    KEY_GRID,
    KEY_RUN,
    KEY_SIGNATURE,
    STATUSES,
    GridWriteError,
    TileRecord,
)

log = logging.getLogger(__name__)


# Points added along each tile edge before reprojecting it to another CRS, so that edges that
# curve there follow the curve.
EDGE_SEGMENTS = 16


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
        self.replace_failed = False  # resuming: rows of failed tiles are replaced

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
        # Ctrl-C or an error half-way through a batch: the batch is left out whole.
        with quiet_gdal() as last_error, ogr_transaction(
                self._dataset, last_error,
                lambda problem: GridWriteError(f"cannot start a transaction in {self.path}: "
                                               f"{problem}"),
                lambda problem: GridWriteError(f"cannot commit tiles to {self.path}: "
                                               f"{problem}. Is the disk full?")):
            if self.replace_failed:
                self._delete_failed(records)
            for record in records:
                feature = ogr.Feature(self._definition)
                self._fill(feature, record, now)
                problem = ogr_failure(partial(self._layer.CreateFeature, feature), last_error)
                if problem:
                    raise GridWriteError(f"cannot write tile {record.tile.tile_id} to "
                                         f"{self.path} (layer {self.layer_name!r}): {problem}")
        self.written += len(records)

    def _delete_failed(self, records: Sequence[TileRecord]) -> None:
        """A resumed run tries failed tiles again: their old rows go, in the same transaction
        as their new ones (tile_id stays unique)."""
        ids = ",".join(str(int(record.tile.tile_id)) for record in records)
        _execute(self._dataset, f"DELETE FROM {quote_identifier(self.layer_name)} WHERE "
                                f"status = 'failed' AND tile_id IN ({ids})")

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
        feature.SetField("status", str(record.status))
        feature.SetField("valid_fraction", float(record.valid_fraction))
        feature.SetField("is_edge", int(bool(tile.is_edge)))
        feature.SetField("level", int(tile.level))
        if tile.parent_id is None:
            feature.SetFieldNull("parent_id")
        else:
            feature.SetField("parent_id", int(tile.parent_id))
        feature.SetField("model", self.model_label)
        for name in ("theme", "theme_probability", "confidence", "reason"):
            value = getattr(record, name)
            if value is None:
                feature.SetFieldNull(name)
            else:
                feature.SetField(name, value)
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
        _create_fields(layer, FIELDS, path, last_error)
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


def _create_fields(layer, fields: Sequence[Tuple[str, str, str, int]], path: Path,
                   last_error) -> None:
    from osgeo import ogr

    for name, type_name, subtype_name, width in fields:
        definition = ogr.FieldDefn(name, getattr(ogr, type_name))
        definition.SetSubType(getattr(ogr, subtype_name))
        if width:
            definition.SetWidth(width)
        problem = ogr_failure(partial(layer.CreateField, definition), last_error)
        if problem:
            raise GridWriteError(f"cannot create field {name!r} in {path}: {problem}")


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
    # A layer from before some fields existed gains them (NULL in its earlier tiles).
    present = {layer.GetLayerDefn().GetFieldDefn(i).GetName()
               for i in range(layer.GetLayerDefn().GetFieldCount())}
    missing = tuple(field for field in FIELDS if field[0] in ADDED_FIELDS
                    and field[0] not in present)
    if missing:
        with quiet_gdal() as last_error:
            _create_fields(layer, missing, plan.path, last_error)
    # A run that crashed before this version created its index early would lack one.
    has_index = _execute(dataset, f"SELECT HasSpatialIndex({_sql_text(plan.layer)}, 'geom')")
    if not (has_index and has_index[0][0]):
        _execute(dataset, f"SELECT CreateSpatialIndex({_sql_text(plan.layer)}, 'geom')")
    writer = GridLayerWriter(dataset, layer, plan.path, source_srs, existing_srs, model_label)
    writer.replace_failed = True
    return writer
