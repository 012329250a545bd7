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
import datetime
import html
import io
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .atomic import write_bytes_atomic, write_text_atomic
from .grid_writer import (STATUS_CAPTIONED, STATUS_NODATA, STATUS_UNFINISHED, CaptionLayerInfo,
                          GridFileError, ogr_failure, open_geopackage, quiet_gdal,
                          quote_identifier, read_caption_layer_info)

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("geojson", "csv", "html")
CSV_COLUMNS = ("tile_id", "row", "col", "caption", "score", "status", "longitude", "latitude",
               "wkt")
_SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".csv": "csv", ".html": "html",
             ".htm": "html"}
# Decimals of degrees in the CSV and the report: 1e-7° is about a centimetre.
COORDINATE_DECIMALS = 7
TOP_SUBJECTS = 10
TOP_CAPTIONS = 5

# Words that say little about what is on the ground: articles, prepositions, verbs that glue a
# caption together, counts, and nouns every caption uses ("area", "image").
_FUNCTION_WORDS = frozenset("""
a an the and or but of in on at to with by for from into onto over under near next beside
besides around between among along across behind above below through within without beyond
is are was were be been being am has have had do does can could will would may might
there here this that these those it its they their them which who whom whose what where when
while as so very too also both each every either neither other another such than then
one two three four five six seven eight nine ten some many several lots lot few much more most
all any no not only just like side sides part parts kind kinds
area areas image images picture pictures view place places scene
located surrounded seen shown built lined arranged stand stands standing lies lie lying
""".split())
_WORD = re.compile(r"[a-z][a-z'-]*")


class ExportError(ValueError):
    """The export cannot be made as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    tiles: int


@dataclass(frozen=True)
class CaptionRow:
    """One tile as exports see it; coordinates in WGS 84."""

    tile_id: int
    row: int
    col: int
    caption: Optional[str]
    score: Optional[float]
    status: str
    valid_fraction: Optional[float]
    is_edge: bool
    model: str
    created: str  # ISO 8601, e.g. 2024-05-01T12:00:00Z
    longitude: float  # of the tile's centre
    latitude: float
    wkt: str  # the tile polygon, longitude/latitude


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
# Reading the layer
# --------------------------------------------------------------------------------------------
def _wgs84():
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    # GDAL 3 gives EPSG:4326 latitude first; exports want longitude first, as RFC 7946 does.
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def read_caption_rows(info: CaptionLayerInfo) -> List[CaptionRow]:
    """Every tile of the layer, ordered by tile_id, with WGS 84 centres and polygons."""
    from osgeo import osr

    dataset = open_geopackage(info.path, update=False)
    if dataset is None:
        raise ExportError(f"{info.path} cannot be opened.")
    try:
        layer = dataset.GetLayerByName(info.layer)
        source = layer.GetSpatialRef()
        source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        to_wgs84 = osr.CoordinateTransformation(source, _wgs84())
        rows = []
        for feature in layer:
            geometry = feature.GetGeometryRef()
            if geometry is None or geometry.IsEmpty():
                raise ExportError(f"tile {feature.GetField('tile_id')} of {info.path} has no "
                                  "geometry; the file was edited or damaged.")
            centre = geometry.Centroid()
            polygon = geometry.Clone()
            with quiet_gdal() as last_error:
                problem = (ogr_failure(lambda: centre.Transform(to_wgs84), last_error)
                           or ogr_failure(lambda: polygon.Transform(to_wgs84), last_error))
            if problem:
                raise ExportError(f"tile {feature.GetField('tile_id')} of {info.path} cannot "
                                  f"be reprojected from {info.srs_name} to WGS 84: {problem}")
            rows.append(CaptionRow(
                tile_id=int(feature.GetField("tile_id")), row=int(feature.GetField("row")),
                col=int(feature.GetField("col")), caption=_text_or_none(feature, "caption"),
                score=(None if feature.IsFieldNull("score")
                       else float(feature.GetField("score"))),
                status=feature.GetField("status") or "",
                valid_fraction=(None if feature.IsFieldNull("valid_fraction")
                                else float(feature.GetField("valid_fraction"))),
                is_edge=bool(feature.GetField("is_edge")),
                model=feature.GetField("model") or "",
                created=_iso_datetime(feature, "created"),
                longitude=round(centre.GetX(), COORDINATE_DECIMALS),
                latitude=round(centre.GetY(), COORDINATE_DECIMALS),
                wkt=polygon.ExportToIsoWkt()))
    finally:
        dataset = None
    rows.sort(key=lambda r: r.tile_id)
    return rows


def _text_or_none(feature, name: str) -> Optional[str]:
    return None if feature.IsFieldNull(name) else feature.GetField(name)


def _iso_datetime(feature, name: str) -> str:
    if feature.IsFieldNull(name):
        return ""
    year, month, day, hour, minute, second, tz = feature.GetFieldAsDateTime(name)
    text = (f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:"
            f"{int(second):02d}")
    if tz == 100:
        return text + "Z"
    if tz > 100:
        offset = (tz - 100) * 15
    elif tz > 1:
        offset = -(100 - tz) * 15
    else:
        return text  # local or unknown time zone
    sign = "+" if offset >= 0 else "-"
    return text + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


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


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------
def reading_order(rows: Iterable[CaptionRow]) -> List[List[CaptionRow]]:
    """Tiles grouped by grid row, rows from north to south, each row from west to east.

    Grid rows follow the raster's pixel rows; whether row 0 is the north depends on how the
    raster is stored, so the order comes from the tiles' centres, not from the numbers.
    """
    by_row: Dict[int, List[CaptionRow]] = {}
    for row in rows:
        by_row.setdefault(row.row, []).append(row)
    groups = [sorted(group, key=lambda r: r.longitude) for group in by_row.values()]
    groups.sort(key=lambda group: -sum(r.latitude for r in group) / len(group))
    return groups


def recurring_subjects(captions: Iterable[str], top: int = TOP_SUBJECTS
                       ) -> List[Tuple[str, int]]:
    """The content words found in the most captions (each caption counts a word once)."""
    counts: Counter = Counter()
    for caption in captions:
        words = set(_WORD.findall(caption.lower())) - _FUNCTION_WORDS
        counts.update(word for word in words if len(word) > 2)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]


def _latlon_text(latitude: float, longitude: float) -> str:
    return (f"{abs(latitude):.4f}° {'N' if latitude >= 0 else 'S'}, "
            f"{abs(longitude):.4f}° {'E' if longitude >= 0 else 'W'}")


def _plural(count: int, word: str, plural: Optional[str] = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _units(grid: Dict[str, Any]) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    with quiet_gdal():
        try:
            ok = srs.SetFromUserInput(str(grid.get("crs", ""))) == 0
        except RuntimeError:
            ok = False
    if not ok:
        return "map units"
    if srs.IsGeographic():
        return "degrees"
    name = srs.GetLinearUnitsName() or "map units"
    return "m" if name.lower() in ("metre", "meter", "metres", "meters") else name


def captions_html(info: CaptionLayerInfo, rows: Sequence[CaptionRow]) -> str:
    """The report as one HTML5 document."""
    e = lambda value: html.escape(str(value), quote=True)  # noqa: E731 - short local alias
    run, grid = info.run, info.grid
    raster = (run.get("raster") or {}).get("name", "the raster")
    model = run.get("model") or {}
    statuses = Counter(row.status for row in rows)
    captioned = statuses[STATUS_CAPTIONED] + statuses[STATUS_UNFINISHED]
    captions = [row.caption for row in rows if row.caption]
    planned = int(grid.get("tiles", len(rows)) or len(rows))
    missing = max(0, planned - len(rows))
    units = _units(grid)
    size = grid.get("tile_size_map") or [0, 0]
    title = f"Captions of {raster}"
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    from .. import __version__

    out: List[str] = []
    add = out.append
    add("<!DOCTYPE html>")
    add('<html lang="en">')
    add("<head>")
    add('<meta charset="utf-8">')
    add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    add(f'<meta name="generator" content="MapScribe {e(__version__)}">')
    add(f"<title>{e(title)}</title>")
    add("<style>" + _CSS + "</style>")
    add("</head>")
    add("<body>")
    add('<a class="skip" href="#tiles-heading">Skip to the table of tiles</a>')
    add("<header>")
    add(f"<h1>{e(title)}</h1>")
    add(f"<p>What a machine-learning model sees in each tile of {e(raster)}, written by "
        f"MapScribe. Captions are machine-made and can be wrong.</p>")
    add("</header>")
    add("<main>")

    # -- summary ------------------------------------------------------------------------
    add('<section aria-labelledby="summary-heading">')
    add('<h2 id="summary-heading">Summary of the whole area</h2>')
    if rows:
        west = min(r.longitude for r in rows)
        east = max(r.longitude for r in rows)
        south = min(r.latitude for r in rows)
        north = max(r.latitude for r in rows)
        add(f"<p>The area is covered by {_plural(int(grid.get('rows', 0)), 'row')} and "
            f"{_plural(int(grid.get('cols', 0)), 'column')} of tiles, each about "
            f"{size[0]:,.0f} × {size[1]:,.0f} {e(units)}. Tile centres run from "
            f"{e(_latlon_text(north, west))} in the north-west to "
            f"{e(_latlon_text(south, east))} in the south-east.</p>")
    add(f"<p>{_plural(captioned, 'tile')} {'has' if captioned == 1 else 'have'} a caption"
        + (f" ({statuses[STATUS_UNFINISHED]} of them cut short at the maximum length)"
           if statuses[STATUS_UNFINISHED] else "")
        + f"; {_plural(statuses[STATUS_NODATA], 'tile')} "
        f"{'holds' if statuses[STATUS_NODATA] == 1 else 'hold'} too little imagery to caption "
        "(no data).</p>")
    if missing:
        add(f'<p class="note">This grid is not finished: {missing} of {planned} tiles have no '
            "caption yet. Run <code>mapscribe caption</code> again with <code>--resume</code> "
            "to finish it.</p>")
    subjects = recurring_subjects(captions)
    add('<h3 id="subjects-heading">Subjects that recur most</h3>')
    if subjects:
        add('<ol aria-labelledby="subjects-heading">')
        for word, count in subjects:
            share = count / len(captions)
            add(f"<li>{e(word)}: in {_plural(count, 'caption')} ({share:.0%})</li>")
        add("</ol>")
    elif captions:
        add("<p>The captions share no words beyond common ones such as “a” and “the”.</p>")
    else:
        add("<p>No caption yet.</p>")
    common = Counter(captions).most_common(TOP_CAPTIONS)
    add('<h3 id="captions-heading">Commonest captions</h3>')
    if common:
        add('<ol aria-labelledby="captions-heading">')
        for caption, count in common:
            add(f"<li>“{e(caption)}”: {_plural(count, 'tile')}</li>")
        add("</ol>")
    else:
        add("<p>No caption yet.</p>")
    add('<h3 id="about-heading">About these captions</h3>')
    add("<dl>")
    details = [
        ("Raster", (run.get("raster") or {}).get("path", raster)),
        ("Model", f"{model.get('name', '?')} (sha256 {str(model.get('sha256', '?'))[:12]})"),
        ("Model trained on", _training_text(model)),
        ("Tile size", f"{size[0]:,.0f} × {size[1]:,.0f} {units} "
                      f"({'×'.join(str(v) for v in grid.get('tile_size', []))} pixels)"),
        ("Tiles", f"{len(rows)} of {planned}"),
        ("Coordinate reference system of the layer", info.srs_name),
        ("Captioned", _created_range(rows)),
        ("Captions file", f"{info.path.resolve()} (layer {info.layer})"),
    ]
    for term, value in details:
        add(f"<dt>{e(term)}</dt><dd>{e(value)}</dd>")
    add("</dl>")
    add("</section>")

    # -- the table ------------------------------------------------------------------------
    add('<section aria-labelledby="tiles-heading">')
    add('<h2 id="tiles-heading">Tiles in reading order</h2>')
    add("<p>Row by row from north to south, and from west to east within each row. Each row "
        "of the table is one tile; its first cell says where it sits in the grid.</p>")
    add('<table id="tiles">')
    add(f"<caption>{_plural(len(rows), 'tile')} of {e(raster)} with their captions, in "
        "reading order</caption>")
    add("<thead><tr>"
        '<th scope="col">Tile (grid row, column)</th>'
        '<th scope="col">Caption</th>'
        '<th scope="col">Status</th>'
        '<th scope="col">Centre (latitude, longitude)</th>'
        '<th scope="col">Score (mean log-probability)</th>'
        '<th scope="col">Tile ID</th>'
        "</tr></thead>")
    add("<tbody>")
    for group in reading_order(rows):
        for row in group:
            if row.status == STATUS_NODATA:
                caption = "<em>No caption: too little imagery (no data)</em>"
            else:
                caption = e(row.caption) if row.caption else "<em>(empty caption)</em>"
            score = "" if row.score is None else f"{row.score:.2f}"
            add(f'<tr data-row="{row.row}" data-col="{row.col}">'
                f'<th scope="row">Row {row.row + 1}, column {row.col + 1}</th>'
                f"<td>{caption}</td><td>{e(_status_text(row.status))}</td>"
                f"<td>{e(_latlon_text(row.latitude, row.longitude))}</td>"
                f"<td>{score}</td><td>{row.tile_id}</td></tr>")
    add("</tbody>")
    add("</table>")
    add("</section>")
    add("</main>")
    add("<footer>")
    add(f"<p>Generated {e(generated)} by MapScribe {e(__version__)} from "
        f"{e(info.path.name)}.</p>")
    add("</footer>")
    add("</body>")
    add("</html>")
    return "\n".join(out) + "\n"


def _status_text(status: str) -> str:
    return {STATUS_CAPTIONED: "captioned", STATUS_UNFINISHED: "cut short",
            STATUS_NODATA: "no data"}.get(status, status)


def _training_text(model: Dict[str, Any]) -> str:
    data = model.get("trained_on") or "unknown data"
    images = model.get("training_images")
    resolution = model.get("ground_resolution_m")
    text = f"{data}" + (f", {images} images" if images else "")
    if resolution:
        text += f", about {resolution:g} m per pixel"
    return text


def _created_range(rows: Sequence[CaptionRow]) -> str:
    stamps = sorted(r.created for r in rows if r.created)
    if not stamps:
        return "not yet"
    return stamps[0] if stamps[0] == stamps[-1] else f"{stamps[0]} to {stamps[-1]}"


_CSS = """
body{font-family:system-ui,sans-serif;line-height:1.5;margin:0 auto;max-width:70rem;
padding:1rem;color:#111;background:#fff}
a.skip{position:absolute;left:-10000px}
a.skip:focus{position:static}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-weight:bold;padding:.5rem 0}
th,td{border:1px solid #555;padding:.3rem .5rem;text-align:left;vertical-align:top}
thead th{background:#e8e8e8}
tbody th{font-weight:normal;white-space:nowrap}
.note{border-left:4px solid #a60;padding-left:.5rem}
:focus{outline:3px solid #05c}
""".replace("\n", "")
