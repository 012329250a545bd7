"""Exports of a captioned grid GeoPackage: GeoJSON, CSV and an accessible HTML report.

* **GeoJSON** (RFC 7946): WGS 84 longitude/latitude, no ``crs`` member, counter-clockwise
  exterior rings; written by GDAL's GeoJSON driver (``RFC7946=YES``), which also splits
  geometries at the antimeridian.
* **CSV**: one row per tile, ``tile_id,row,col,caption,score,status,longitude,latitude,wkt``;
  the centre and the polygon (``wkt``) are in WGS 84 longitude/latitude, so the file opens on a
  map (QGIS: Delimited Text, geometry from WKT, EPSG:4326) as well as in a spreadsheet. A text
  cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
  apostrophe, so that no spreadsheet runs it as a formula (OWASP's rule against CSV injection).
* **HTML**: a report a screen reader can navigate, read from the overview to the details
  (:mod:`.report`): the overview, the regions (each linking to its tiles), every tile by level in
  reading order (rows from north to south, west to east in each row), a search field, and the
  source, model and counts; it passes axe-core (tests/e2e/test_report_accessibility.py).

The format is the one asked, and a file name whose suffix says another format is refused (no
HTML is ever written into ``captions.csv``); front doors take the format from the suffix.

Every export is written atomically: readers see the old file or the new one, never half. An
existing file is replaced only when it is an earlier export of the same kind, or when asked
(``overwrite``): :mod:`.export_target`.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from ..atomic import write_bytes_atomic, write_text_atomic
from ..describe.schema import DescribeError
from ..errors import ParameterError
from ..geo.gdal_errors import quiet_gdal
from ..paths import check_utf8_path
from .export_target import check_replaceable
from .geopackage import (
    check_intact,
    open_geopackage,
    quote_identifier,
    read_caption_layer_info,
)
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
                    layer: Optional[str] = None, *, overwrite: bool = False) -> ExportResult:
    """Export the captions layer of ``gpkg_path`` to ``out_path`` as ``format``.

    ``layer`` None takes the GeoPackage's only MapScribe captions layer. The export is written
    to a temporary file beside ``out_path`` and renamed when complete. An existing
    ``out_path`` is replaced only when it is an earlier MapScribe export of the same kind (or
    empty), or when ``overwrite`` says so; never when it is the GeoPackage itself.
    """
    format = (format or "").lower()
    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}: use one of "
                          f"{', '.join(EXPORT_FORMATS)}.")
    gpkg_path, out_path = Path(gpkg_path), Path(out_path)
    try:
        check_utf8_path(gpkg_path, "GeoPackage")
        check_utf8_path(out_path, "output")
        info = read_caption_layer_info(gpkg_path, layer)
        check_intact(gpkg_path, "exported")
    except (GridFileError, ParameterError) as error:
        raise ExportError(str(error)) from None
    check_replaceable(out_path, format, gpkg_path, overwrite)
    check_suffix(out_path, format)
    try:
        if format == "geojson":
            tiles = _write_geojson(info, out_path)
        elif format == "csv":
            rows = read_caption_rows(info)
            write_text_atomic(out_path, captions_csv(rows))
            tiles = len(rows)
        else:
            write_text_atomic(out_path, _report(info))
            tiles = info.feature_count
    except OSError as error:
        raise ExportError(f"cannot write {out_path}: {error.strerror or error}. Choose an output "
                          "in a folder you can write to.") from None
    log.info("%s: %d tiles exported as %s to %s", gpkg_path, tiles, format, out_path)
    return ExportResult(out_path, format, tiles)


def check_suffix(out_path: Path, format: str) -> None:
    """Refuse a file name whose suffix says another format than ``format`` (a suffix that says
    none, such as ``.txt``, is the person's choice)."""
    said = format_from_suffix(out_path)
    if said is not None and said != format:
        suffixes = ", ".join(suffix for suffix, name in _SUFFIXES.items() if name == format)
        raise ExportError(f"output {out_path} ends in {out_path.suffix}, which is {said}, not "
                          f"{format}: name it with {suffixes}, or export as {said}.")


def _report(info: CaptionLayerInfo) -> str:
    try:
        return captions_html(info)
    except DescribeError as error:
        raise ExportError(str(error)) from None


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
    """The CSV text (RFC 4180: comma-separated, CRLF line ends, quotes where needed).

    Text cells are neutralised against spreadsheet formulas (:func:`spreadsheet_safe`); the
    numbers are written by MapScribe itself and stay numbers.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.tile_id, row.row, row.col, spreadsheet_safe(row.caption or ""),
                         "" if row.score is None else f"{row.score:.4f}",
                         spreadsheet_safe(row.status),
                         f"{row.longitude:.{COORDINATE_DECIMALS}f}",
                         f"{row.latitude:.{COORDINATE_DECIMALS}f}", spreadsheet_safe(row.wkt)])
    return out.getvalue()


# OWASP's rule against CSV injection: a cell a spreadsheet would read as a formula (or as the
# start of one) gets a leading apostrophe, which spreadsheets show as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text``, with a leading ``'`` when it begins with ``= + - @``, a tab or a carriage
    return (OWASP, "CSV Injection")."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
