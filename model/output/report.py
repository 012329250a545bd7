"""The accessible HTML report of a captions layer: a summary, the recurring subjects, and every
tile's caption in reading order, for screen readers and keyboards.
"""

from __future__ import annotations

import datetime
import html
import re
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..geo.gdal_errors import quiet_gdal
from .rows import CaptionRow, reading_order
from .schema import STATUS_CAPTIONED, STATUS_NODATA, STATUS_UNFINISHED, CaptionLayerInfo

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
    from ... import __version__

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
