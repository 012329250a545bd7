"""Regions: connected tiles (8-neighbour, at the finest level) of one theme, dissolved into
polygons, each with its area, share, position, typical caption and one sentence.

Tiles that are nodata or failed belong to no region; uncertain tiles (a caption the model is not
confident of) and tiles whose theme cannot be told belong to none either, but their area counts
in the captioned area, so the regions' shares and theirs add up to the whole.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

from ..output.schema import Status
from .geometry import TileShapes
from .grouping import Cell, GridFrame, assign_themes, connected_groups
from .schema import (
    THEMES_FROM_MODEL,
    THEMES_FROM_WORDS,
    Region,
    TileCounts,
)
from .tiles import LayerTiles, Tile, reading_rows

# Groups of tiles that are not a theme's, measured for the captioned area only.
_UNCERTAIN = "\0uncertain"
_UNTHEMED = "\0unthemed"

_WORD = re.compile(r"[a-z][a-z'-]*")


@dataclass(frozen=True)
class RegionsResult:
    regions: Tuple[Region, ...]
    counts: TileCounts
    theme_source: str
    notes: Tuple[str, ...]
    captioned_area_km2: float
    shapes: Dict[int, object]   # region_id → its OGR MultiPolygon (layer CRS)
    uncertain_caption: str = ""  # the typical caption of the uncertain tiles
    unthemed_caption: str = ""   # … and of those whose theme could not be told


def count_tiles(tiles: Sequence[Tile], planned: int, unthemed: int = 0) -> TileCounts:
    statuses = Counter(tile.status for tile in tiles)
    return TileCounts(
        total=len(tiles),
        captioned=statuses[Status.CAPTIONED] + statuses[Status.UNFINISHED],
        unfinished=statuses[Status.UNFINISHED], uncertain=statuses[Status.UNCERTAIN],
        nodata=statuses[Status.NODATA], failed=statuses[Status.FAILED], unthemed=unthemed,
        planned=planned)


def build_regions(layer: LayerTiles, shapes: TileShapes) -> RegionsResult:
    """The regions of the finest level of ``layer``, largest first."""
    info = layer.info
    where = f"layer {info.layer!r} of {info.path.name}"
    finest = layer.at_level(layer.finest)
    themed = assign_themes(finest, layer.has_themes, where)
    keys: Dict[Cell, str] = {}
    tile_at: Dict[Cell, Tile] = {}
    for tile in finest:
        cell = (tile.row, tile.col)
        tile_at[cell] = tile
        if tile.status == Status.UNCERTAIN:
            keys[cell] = _UNCERTAIN
        elif tile.fid in themed.themes:
            keys[cell] = themed.themes[tile.fid] or _UNTHEMED
    unthemed = sum(1 for key in keys.values() if key == _UNTHEMED)
    counts = count_tiles(finest, info.tiles_planned if not _has_levels(layer) else 0, unthemed)

    if not finest:
        return RegionsResult((), counts, themed.source, themed.notes, 0.0, {})
    measured: List[Tuple[str, List[Cell], object, float]] = []
    for cells in connected_groups(keys):
        geometry = shapes.dissolve(tile_at[cell].fid for cell in cells)
        measured.append((keys[cells[0]], cells, geometry, shapes.area_km2(geometry)))
    total = sum(area for _, _, _, area in measured)
    frame = GridFrame(finest)

    candidates = []
    for key, cells, geometry, area in measured:
        if key in (_UNCERTAIN, _UNTHEMED):
            continue
        share = area / total if total > 0 else len(cells) / max(1, len(keys))
        candidates.append((key, cells, geometry, area, share))
    # Largest first (areas to 3 significant digits: equal blocks differ only by the map's
    # distortion), then the most tiles, then in reading order (north first, then west).
    def order(candidate):
        theme, cells, _, area, _ = candidate
        us, vs = zip(*(frame.uv(cell) for cell in cells))
        return (-float(f"{area:.3g}"), -len(cells), -round(sum(vs) / len(vs), 6),
                round(sum(us) / len(us), 6), theme)

    candidates.sort(key=order)
    regions, geometries = [], {}
    for region_id, (theme, cells, geometry, area, share) in enumerate(candidates, start=1):
        members = [tile_at[cell] for cell in cells]
        ordered = [tile for row in reading_rows(members) for tile in row]
        source = (THEMES_FROM_MODEL if all(tile.theme == theme for tile in members)
                  else THEMES_FROM_WORDS)
        position = frame.position(cells, share)
        typical = typical_caption([tile.caption or "" for tile in members])
        region = Region(region_id=region_id, theme=theme,
                        tile_ids=tuple(tile.tile_id for tile in ordered), area_km2=area,
                        share=share, position=position, typical_caption=typical,
                        sentence="", level=layer.finest, theme_source=source)
        regions.append(_with_sentence(region))
        geometries[region_id] = geometry
    return RegionsResult(tuple(regions), counts, themed.source, themed.notes, total,
                         geometries, _typical_of(finest, keys, _UNCERTAIN),
                         _typical_of(finest, keys, _UNTHEMED))


def _typical_of(tiles: Sequence[Tile], keys: Dict[Cell, str], key: str) -> str:
    return typical_caption([tile.caption or "" for tile in tiles
                            if keys.get((tile.row, tile.col)) == key])


def _has_levels(layer: LayerTiles) -> bool:
    return "level" in layer.fields and len(layer.levels) > 1


def _with_sentence(region: Region) -> Region:
    return replace(region, sentence=region_sentence(region))


# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------
def typical_caption(captions: Sequence[str]) -> str:
    """The caption nearest in words to the others: the highest cosine similarity between its
    set of words and the group's mean word vector (linear in the number of captions). Ties go
    to the most frequent caption, then to the first in alphabetical order."""
    counts = Counter(caption.strip() for caption in captions if caption and caption.strip())
    if not counts:
        return ""
    words_of = {caption: frozenset(_WORD.findall(caption.lower())) for caption in counts}
    weight: Counter = Counter()
    for caption, count in counts.items():
        for word in words_of[caption]:
            weight[word] += count

    def closeness(caption: str) -> Tuple[float, int, str]:
        words = words_of[caption]
        score = sum(weight[word] for word in words) / math.sqrt(len(words)) if words else 0.0
        return (-score, -counts[caption], caption)

    return min(counts, key=closeness)


def percent(share: float) -> str:
    """A share as people say it: '62%', 'under 1%', 'all' never (100% is said as 100%)."""
    value = 100 * share
    if 0 < value < 1:
        return "under 1%"
    return f"{value:.0f}%"


def area_text(km2: float) -> str:
    if km2 >= 1000:
        return f"{km2:,.0f} km²"
    if km2 >= 10:
        return f"{km2:.0f} km²"
    if km2 >= 0.1:
        return f"{km2:.1f} km²"
    return f"{km2:.2g} km²"


def theme_subject(theme: str) -> str:
    """A theme at the start of a sentence: 'Farmland', 'Dense residential'."""
    return theme[:1].upper() + theme[1:]


def tiles_text(count: int) -> str:
    return f"{count} tile" if count == 1 else f"{count} tiles"


def region_sentence(region: Region) -> str:
    """One sentence with all a region's facts (the regions layer's ``sentence`` field)."""
    text = (f"{theme_subject(region.theme)} {region.position.phrase}: "
            f"{tiles_text(region.tile_count)}, {area_text(region.area_km2)} "
            f"({percent(region.share)} of the captioned area)")
    if region.typical_caption:
        text += f"; typically “{caption_in_sentence(region.typical_caption)}”"
    return text + "."


def caption_in_sentence(caption: Optional[str]) -> str:
    """A caption as quoted inside a sentence: stripped, without its final full stop."""
    return " ".join((caption or "").split()).rstrip(" .")
