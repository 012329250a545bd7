"""The accessible HTML report of a captions layer, read from the overview to the details: the
overview (the same sentences ``mapscribe describe`` gives), the regions (each linking to its
tiles), the tiles of each region, then every tile by level in reading order, and what the
captions come from.

The page is ``resources/report/report.html`` (with ``report.css`` and ``report.js`` inlined)
filled by :mod:`.template`, which HTML-escapes every value; this module only gathers plain
values. It names files by their names, never by local paths. The search field is added by the
script: without scripts the page reads the same, with no control that does nothing.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..describe.describe import describe_layer
from ..describe.grouping import GridFrame
from ..describe.regions import tiles_text
from ..describe.schema import (
    THEMES_FROM_MODEL,
    THEMES_FROM_WORDS,
    Description,
    Region,
    TileCounts,
)
from ..describe.tiles import LayerTiles, Tile, read_layer_tiles, reading_rows
from ..version import __version__
from .geopackage import _execute, open_geopackage, quote_identifier
from .report_text import (
    file_name,
    latlon_text,
    map_units,
    plural,
    recurring_subjects,
    training_text,
)
from .schema import CaptionLayerInfo, GridWriteError, Status
from .template import render

REPORT_DIR = Path(__file__).resolve().parents[2] / "resources" / "report"
TEMPLATE = "report.html"
PARTIALS = ("report.css", "report.js")

STATUS_TEXT: Dict[str, str] = {
    Status.UNFINISHED: "cut short at the maximum length",
    Status.UNCERTAIN: "uncertain",
}
NO_CAPTION_TEXT: Dict[str, str] = {
    Status.NODATA: "No caption: too little imagery (no data)",
    Status.FAILED: "No caption: its imagery could not be read",
}
THEME_SOURCE_TEXT = {
    THEMES_FROM_MODEL: "the model's theme head",
    THEMES_FROM_WORDS: "the captions' words (the model names no themes)",
}

__all__ = ["captions_html", "recurring_subjects", "report_context"]


def captions_html(info: CaptionLayerInfo) -> str:
    """The report of the captions layer ``info`` as one HTML5 document."""
    tiles = read_layer_tiles(info)
    description, _ = describe_layer(tiles)
    return render(_read(TEMPLATE), report_context(tiles, description, _created_range(info)),
                  {name: _read(name) for name in PARTIALS})


def _read(name: str) -> str:
    text = (REPORT_DIR / name).read_text(encoding="utf-8")
    if name.endswith((".css", ".js")) and ("</style" in text.lower()
                                             or "</script" in text.lower()):
        raise ValueError(f"{REPORT_DIR / name} would end its own <style> or <script>")
    return text


def report_context(tiles: LayerTiles, description: Description, created: str = "") -> Dict:
    """The plain values the report's template is filled with."""
    info = tiles.info
    raster = file_name((info.run.get("raster") or {}).get("name"), "the raster")
    counts = description.counts
    finest = tiles.at_level(tiles.finest)
    frames = {level: GridFrame(tiles.at_level(level)) for level in tiles.levels
              if tiles.at_level(level)}
    captions = [tile.caption for tile in finest if tile.caption]
    subjects = recurring_subjects(captions)
    pyramid = len(tiles.levels) > 1
    # The run's own notes first (e.g. imagery coarser than the model was trained on), then
    # what describing found.
    run_notes = info.run.get("notes")
    notes = [str(note)[:500] for note in run_notes[:20]] if isinstance(run_notes, list) else []
    notes += [note for note in description.notes if note not in notes]
    return {
        "version": __version__,
        "title": f"Captions of {raster}",
        "raster": raster,
        "gpkg": info.path.name,
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "overview": description.text,
        "counts": _counts_text(counts, pyramid),
        "unfinished": counts.missing > 0,
        "missing": counts.missing,
        "planned": counts.planned,
        "notes": notes,
        "has_notes": bool(notes),
        "theme_source": THEME_SOURCE_TEXT.get(
            description.theme_source,
            "the model's theme head, and the captions' words where it names none"),
        "regions": [_region(region, tiles, frames) for region in description.regions],
        "has_regions": bool(description.regions),
        "no_regions": _no_regions(counts),
        "pyramid": pyramid,
        "levels": [_level(level, tiles, frames) for level in tiles.levels if level in frames],
        "extent": _extent(finest),
        "subjects": [{"word": word, "captions": plural(count, "caption"),
                      "share": f"{count / len(captions):.0%}"} for word, count in subjects],
        "has_subjects": bool(subjects),
        "no_subjects": ("The captions share no words beyond common ones such as “a” and "
                        "“the”." if captions else "No caption yet."),
        "details": [{"term": term, "value": value}
                    for term, value in _details(info, description, raster, created)],
    }


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------
def _counts_text(counts: TileCounts, pyramid: bool) -> str:
    captioned = counts.with_caption
    parts = [f"{plural(captioned, 'tile')} {'has' if captioned == 1 else 'have'} a caption"]
    inner = []
    if counts.unfinished:
        inner.append(f"{counts.unfinished} of them cut short at the maximum length")
    if counts.uncertain:
        inner.append(f"{counts.uncertain} of them uncertain: the model is not confident "
                     "about them")
    if inner:
        parts[0] += f" ({'; '.join(inner)})"
    parts.append(f"{plural(counts.nodata, 'tile')} {'holds' if counts.nodata == 1 else 'hold'} "
                 "too little imagery to caption (no data)")
    if counts.failed:
        parts.append(f"{plural(counts.failed, 'tile')} could not be read")
    where = "At the finest level, " if pyramid else ""
    text = "; ".join(parts)
    return (where + text if where else text[:1].upper() + text[1:]) + "."


def _no_regions(counts: TileCounts) -> str:
    if counts.with_caption == 0:
        return "No region: no tile has a caption."
    if counts.captioned == 0:
        return "No region: every captioned tile is uncertain."
    return "No region: no theme could be told from the captions."


def _place(tile: Tile, frame: Optional[GridFrame]) -> Dict[str, int]:
    """Row and column numbers as people read them: row 1 is the northernmost, column 1 the
    westernmost, whichever way the raster's grid runs."""
    if frame is None:
        return {"row": tile.row + 1, "column": tile.col + 1}
    row = (tile.row - frame.row_min if frame.rows_run_south else frame.row_max - tile.row)
    col = (tile.col - frame.col_min if frame.cols_run_east else frame.col_max - tile.col)
    return {"row": row + 1, "column": col + 1}


def _tile_text(tile: Tile) -> str:
    if tile.status in NO_CAPTION_TEXT:
        return NO_CAPTION_TEXT[tile.status]
    text = " ".join((tile.caption or "").split()) or "(empty caption)"
    if tile.status in STATUS_TEXT:
        text += f" ({STATUS_TEXT[tile.status]})"
    return text


def _region(region: Region, tiles: LayerTiles, frames: Dict[int, GridFrame]) -> Dict:
    by_id = {tile.tile_id: tile for tile in tiles.at_level(region.level)}
    frame = frames.get(region.level)
    items = []
    for tile_id in region.tile_ids:
        tile = by_id[tile_id]
        place = _place(tile, frame)
        items.append({"tile_id": tile_id, "text": _tile_text(tile),
                      "place": f"Row {place['row']}, column {place['column']}"})
    return {"region_id": region.region_id, "theme": region.theme,
            "phrase": region.position.phrase, "sentence": region.sentence,
            "tile_count": tiles_text(region.tile_count),
            "tiles_id": f"region-{region.region_id}-tiles", "tiles": items}


def _level(level: int, tiles: LayerTiles, frames: Dict[int, GridFrame]) -> Dict:
    members = tiles.at_level(level)
    frame = frames[level]
    rows = []
    for group in reading_rows(members):
        number = _place(group[0], frame)["row"]
        rows.append({"level": level, "number": number, "count": frame.rows, "tiles": [
            {"anchor": f"tile-{level}-{tile.tile_id}", "level": level, "row": tile.row,
             "col": tile.col, "tile_id": tile.tile_id,
             "column": _place(tile, frame)["column"], "text": _tile_text(tile)}
            for tile in group]})
    if len(tiles.levels) == 1:
        heading = f"All {tiles_text(len(members))}" if len(members) > 1 else "The only tile"
    else:
        what = []
        if len(members) == 1:
            what.append("the whole area")
        if level == tiles.finest:
            what.append("the finest")
        heading = (f"Level {level}{' (' + ', '.join(what) + ')' if what else ''}: "
                   f"{tiles_text(len(members))}")
    return {"level": level, "heading": heading, "rows": rows}


def _extent(tiles: Sequence[Tile]) -> str:
    if not tiles:
        return ""
    west, east = min(t.longitude for t in tiles), max(t.longitude for t in tiles)
    south, north = min(t.latitude for t in tiles), max(t.latitude for t in tiles)
    return (f"Tile centres run from {latlon_text(north, west)} in the north-west to "
            f"{latlon_text(south, east)} in the south-east.")


def _details(info: CaptionLayerInfo, description: Description, raster: str, created: str
             ) -> List[tuple]:
    run, grid = info.run, info.grid
    model = run.get("model") or {}
    units = map_units(grid)
    size = grid.get("tile_size_map") or [0, 0]
    pixels = "×".join(str(v) for v in grid.get("tile_size", []))
    details = [
        ("Raster", raster),
        ("Model", f"{file_name(model.get('name'), '?')} "
                  f"(sha256 {str(model.get('sha256') or '?')[:12]})"),
        ("Model trained on", training_text(model)),
        ("Themes from", THEME_SOURCE_TEXT.get(description.theme_source,
                                              description.theme_source)),
        ("Tile size", f"{size[0]:,.0f} × {size[1]:,.0f} {units}"
                      + (f" ({pixels} pixels)" if pixels else "")),
        ("Tiles", f"{description.counts.total} of {description.counts.planned}"
                  if description.counts.planned else str(description.counts.total)),
        ("Uncertain tiles", str(description.counts.uncertain)),
        ("Coordinate reference system of the layer", info.srs_name),
        ("Captioned", created or "not yet"),
        ("Captions file", f"{info.path.name} (layer {info.layer})"),
    ]
    if len(description.levels) > 1:
        details.insert(5, ("Levels", f"{len(description.levels)}, from 0 (the coarsest) to "
                                     f"{description.levels[-1]} (the finest)"))
    return details + _imagery_details(run.get("source") or {})


def _imagery_details(source: Dict[str, Any]) -> List[tuple]:
    """Where the imagery came from (a web service: which, at what zoom) and its credit line,
    which the provider's terms usually ask to be shown wherever the imagery is used."""
    details = []
    kind = str(source.get("kind") or "file")
    if kind != "file":
        text = f"{kind.upper()} {source.get('location', '')}"
        if isinstance(source.get("zoom"), int):
            text += f", zoom {source['zoom']}"
        if isinstance(source.get("ground_resolution_m"), (int, float)):
            text += f", about {source['ground_resolution_m']:.2g} m per pixel"
        details.append(("Imagery", text))
    if source.get("attribution"):
        details.append(("Imagery credit", str(source["attribution"])))
    return details


def _created_range(info: CaptionLayerInfo) -> str:
    dataset = open_geopackage(info.path, update=False)
    if dataset is None:
        return ""
    try:
        table = quote_identifier(info.layer)
        rows = _execute(dataset, f"SELECT min(created), max(created) FROM {table}")
    except GridWriteError:  # a date is a detail: a layer without one still gets its report
        return ""
    finally:
        dataset = None
    if not rows or not rows[0][0]:
        return ""
    first, last = (str(value) for value in rows[0])
    return first if first == last else f"{first} to {last}"
