"""Exports of a captioned grid GeoPackage: GeoJSON, CSV and an accessible HTML report.

* **GeoJSON** (RFC 7946): WGS 84 longitude/latitude, no ``crs`` member, counter-clockwise
  exterior rings; written by GDAL's GeoJSON driver (``RFC7946=YES``), which also splits
  geometries at the antimeridian.
* **CSV**: one row per tile, ``tile_id,row,col,caption,score,status,longitude,latitude,wkt``;
  the centre and the polygon (``wkt``) are in WGS 84 longitude/latitude, so the file opens on a
  map (QGIS: Delimited Text, geometry from WKT, EPSG:4326) as well as in a spreadsheet.
* **HTML**: a report a screen reader can navigate — one ``h1``, ``h2`` sections, landmarks
  (header, main, footer), a summary of the whole area (tile counts, the subjects that recur most,
  the commonest captions, the model and the raster) and a table of every tile in reading order
  (rows from north to south, west to east in each row) with row and column headers.

Every export is written atomically: readers see the old file or the new one, never half.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from ..atomic import write_bytes_atomic, write_text_atomic
from ..geo.gdal_errors import quiet_gdal
from .geopackage import open_geopackage, quote_identifier, read_caption_layer_info
from .report import captions_html
from .rows import COORDINATE_DECIMALS, CaptionRow, read_caption_rows
from .schema import CaptionLayerInfo, ExportError, GridFileError

log = logging.getLogger(__name__)


EXPORT_FORMATS = ("geojson", "csv", "html")


CSV_COLUMNS = ("tile_id", "row", "col", "caption", "score", "status", "longitude", "latitude",
               "wkt")


_SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".csv": "csv", ".html": "html",
             ".htm": "html"}




@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    tiles: int


def format_from_suffix(path: Union[str, Path]) -> Optional[str]:
    """'geojson', 'csv' or 'html' from a file name's suffix; None when it says nothing."""
    return _SUFFIXES.get(Path(path).suffix.lower())


def export_captions(gpkg_path: Union[str, Path], format: str, out_path: Union[str, Path],
                    layer: Optional[str] = None) -> ExportResult:
    """Export the captions layer of ``gpkg_path`` to ``out_path`` as ``format``.

    ``layer`` None takes the GeoPackage's only MapScribe captions layer. An existing
    ``out_path`` is replaced atomically.
    """
    format = (format or "").lower()
    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}: use one of "
                          f"{', '.join(EXPORT_FORMATS)}.")
    gpkg_path, out_path = Path(gpkg_path), Path(out_path)
    try:
        info = read_caption_layer_info(gpkg_path, layer)
    except GridFileError as error:
        raise ExportError(str(error)) from None
    if out_path.exists() and out_path.resolve() == gpkg_path.resolve():
        raise ExportError(f"the export {out_path} would replace the GeoPackage it is made from: "
                          "choose another output file.")
    if out_path.is_dir():
        raise ExportError(f"output {out_path} is a folder: give a file name, e.g. "
                          f"captions.{format}.")
    try:
        if format == "geojson":
            tiles = _write_geojson(info, out_path)
        else:
            rows = read_caption_rows(info)
            if format == "csv":
                write_text_atomic(out_path, captions_csv(rows))
            else:
                write_text_atomic(out_path, captions_html(info, rows))
            tiles = len(rows)
    except OSError as error:
        raise ExportError(f"cannot write {out_path}: {error.strerror or error}. Choose an output "
                          "in a folder you can write to.") from None
    log.info("%s: %d tiles exported as %s to %s", gpkg_path, tiles, format, out_path)
    return ExportResult(out_path, format, tiles)


# --------------------------------------------------------------------------------------------
# GeoJSON
# --------------------------------------------------------------------------------------------
def _write_geojson(info: CaptionLayerInfo, out_path: Path) -> int:
    from osgeo import gdal

    memory_path = f"/vsimem/mapscribe-export-{id(info)}.geojson"
    source = open_geopackage(info.path, update=False)
    if source is None:
        raise ExportError(f"{info.path} cannot be opened.")
    try:
        with quiet_gdal() as last_error:
            try:
                # RFC7946=YES: reproject to WGS 84 lon/lat, no crs member, CCW exterior rings,
                # 7 decimals, antimeridian cut.
                options = gdal.VectorTranslateOptions(
                    format="GeoJSON", SQLStatement=(f"SELECT * FROM {quote_identifier(info.layer)} "
                                                    "ORDER BY tile_id"),
                    SQLDialect="SQLite", layerName=info.layer,
                    layerCreationOptions=["RFC7946=YES", "WRITE_NAME=NO"])
                result = gdal.VectorTranslate(memory_path, source, options=options)
            except RuntimeError:
                result = None
            if result is None:
                raise ExportError(f"GDAL could not write GeoJSON from {info.path}: "
                                  f"{last_error()}")
            result = None  # closing the dataset finishes the file
            data = _read_vsimem(memory_path)
        write_bytes_atomic(out_path, data)
        return info.feature_count
    finally:
        source = None
        gdal.Unlink(memory_path)


def _read_vsimem(path: str) -> bytes:
    from osgeo import gdal

    handle = gdal.VSIFOpenL(path, "rb")
    if handle is None:
        raise ExportError("GDAL wrote no GeoJSON.")
    try:
        gdal.VSIFSeekL(handle, 0, 2)
        size = gdal.VSIFTellL(handle)
        gdal.VSIFSeekL(handle, 0, 0)
        return bytes(gdal.VSIFReadL(1, size, handle))
    finally:
        gdal.VSIFCloseL(handle)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------
def captions_csv(rows: Sequence[CaptionRow]) -> str:
    """The CSV text (RFC 4180: comma-separated, CRLF line ends, quotes where needed)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.tile_id, row.row, row.col, row.caption or "",
                         "" if row.score is None else f"{row.score:.4f}", row.status,
                         f"{row.longitude:.{COORDINATE_DECIMALS}f}",
                         f"{row.latitude:.{COORDINATE_DECIMALS}f}", row.wkt])
    return out.getvalue()
