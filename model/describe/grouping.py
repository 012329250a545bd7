"""Pure logic of describing, no GDAL: each tile's theme, connected tiles of one theme
(8-neighbour, by grid row and column), and where a group of tiles lies, in words.

Positions are read on the grid of the finest level: the area is the box of its rows and
columns, oriented by the tiles' centres (grid row 0 is the north only for rasters stored
north-up), so "north-west" means the same on a map whatever the raster's storage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Dict, Hashable, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..data.themes import THEMES, theme_from_caption
from ..output.schema import Status
from .schema import (
    THEMES_FROM_MODEL,
    THEMES_FROM_WORDS,
    THEMES_MIXED,
    Position,
)
from .tiles import Tile

Cell = Tuple[int, int]  # (row, col)

# Share of the captioned area above which a region is "across the whole area".
WHOLE_SHARE = 0.9
# Share (and extent, both ways) above which it is "across most of the area".
MOST_SHARE = 0.5
MOST_EXTENT = 0.8
# Along an edge: at least this much of the side long, at most this deep.
EDGE_LENGTH = 0.6
EDGE_DEPTH = 1 / 3
# A crossing: thin (filling at most this much of its box, or 3 times longer than wide) and
# with two ends on the area's boundary at least this share of the area's longer side apart.
CROSSING_FILL = 0.4
CROSSING_ASPECT = 3.0
CROSSING_SPAN = 0.6

ZONES = (("north-west", "north", "north-east"), ("west", "centre", "east"),
         ("south-west", "south", "south-east"))


# --------------------------------------------------------------------------------------------
# Themes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileThemes:
    """Each described tile's theme (None: none could be told), where they came from, notes."""

    themes: Dict[int, Optional[str]]   # fid → theme, for tiles with a confident caption
    source: str
    notes: Tuple[str, ...]


def assign_themes(tiles: Sequence[Tile], layer_has_themes: bool, where: str) -> TileThemes:
    """Themes of the tiles that have a confident caption (captioned or cut short): the model's
    (the layer's ``theme`` field) when it names one of :data:`THEMES`, else the caption's
    words (:func:`theme_from_caption`)."""
    themes: Dict[int, Optional[str]] = {}
    from_model = from_words = 0
    unknown: Counter = Counter()
    for tile in tiles:
        if tile.status not in (Status.CAPTIONED, Status.UNFINISHED):
            continue
        if tile.theme in THEMES:
            themes[tile.fid] = tile.theme
            from_model += 1
            continue
        if tile.theme:
            unknown[tile.theme] += 1
        themes[tile.fid] = theme_from_caption(tile.caption)
        from_words += 1
    notes = []
    subject = where[:1].upper() + where[1:]
    if not layer_has_themes:
        notes.append(f"{subject} has no theme field (captioned by an older MapScribe): themes "
                     "were told from the captions' words. Caption again with a model that has "
                     "a theme head for the model's own themes.")
    elif from_words and not from_model and not unknown:
        notes.append(f"{subject} names no theme for any tile (captioned by a model without a "
                     "theme head): themes were told from the captions' words. Caption again "
                     "with a model that has a theme head for the model's own themes.")
    elif from_words and not unknown:
        notes.append(f"{from_words} tiles of {where} have no theme: theirs were told from "
                     "their captions' words.")
    if unknown:
        names = ", ".join(repr(name) for name, _ in unknown.most_common(5))
        notes.append(f"{sum(unknown.values())} tiles of {where} have themes MapScribe does not "
                     f"know ({names}; captioned with another model?): theirs were told from "
                     "their captions' words.")
    source = (THEMES_MIXED if from_model and from_words
              else THEMES_FROM_MODEL if from_model else THEMES_FROM_WORDS)
    return TileThemes(themes, source, tuple(notes))


# --------------------------------------------------------------------------------------------
# Connected tiles
# --------------------------------------------------------------------------------------------
def connected_groups(keys: Mapping[Cell, Hashable]) -> List[List[Cell]]:
    """Cells grouped into 8-connected groups of equal key; each group sorted, groups in the
    order of their first cell."""
    seen = set()
    groups = []
    for start in sorted(keys):
        if start in seen:
            continue
        key = keys[start]
        seen.add(start)
        group, stack = [], [start]
        while stack:
            row, col = stack.pop()
            group.append((row, col))
            for d_row in (-1, 0, 1):
                for d_col in (-1, 0, 1):
                    near = (row + d_row, col + d_col)
                    if near not in seen and keys.get(near, _NOTHING) == key:
                        seen.add(near)
                        stack.append(near)
        groups.append(sorted(group))
    return groups


_NOTHING = object()


# --------------------------------------------------------------------------------------------
# Positions in words
# --------------------------------------------------------------------------------------------
class GridFrame:
    """The finest level's grid as a box on the ground: (u, v) in [0, 1], u to the east and v to
    the north, whatever way the raster's rows and columns run."""

    def __init__(self, tiles: Sequence[Tile]):
        if not tiles:
            raise ValueError("a frame needs tiles")
        rows = [tile.row for tile in tiles]
        cols = [tile.col for tile in tiles]
        self.row_min, self.row_max = min(rows), max(rows)
        self.col_min, self.col_max = min(cols), max(cols)
        # Which way is north: compare the mean latitude of the first and last rows (and the
        # mean longitude of the first and last columns for east).
        self.rows_run_south = _mean(t.latitude for t in tiles if t.row == self.row_min) >= \
            _mean(t.latitude for t in tiles if t.row == self.row_max)
        self.cols_run_east = _mean(t.longitude for t in tiles if t.col == self.col_min) <= \
            _mean(t.longitude for t in tiles if t.col == self.col_max)

    @property
    def rows(self) -> int:
        return self.row_max - self.row_min + 1

    @property
    def cols(self) -> int:
        return self.col_max - self.col_min + 1

    def uv(self, cell: Cell) -> Tuple[float, float]:
        row, col = cell
        u = (col - self.col_min) / (self.cols - 1) if self.cols > 1 else 0.5
        v = (row - self.row_min) / (self.rows - 1) if self.rows > 1 else 0.5
        return (u if self.cols_run_east else 1 - u), (1 - v if self.rows_run_south else v)

    def sides_of(self, cell: Cell) -> Tuple[str, ...]:
        """The sides of the area the cell lies on: 'north', 'east', 'south', 'west'."""
        u, v = self.uv(cell)
        sides = []
        if self.rows > 1 and v >= 1.0:
            sides.append("north")
        if self.cols > 1 and u >= 1.0:
            sides.append("east")
        if self.rows > 1 and v <= 0.0:
            sides.append("south")
        if self.cols > 1 and u <= 0.0:
            sides.append("west")
        return tuple(sides)

    def position(self, cells: Sequence[Cell], share: float) -> Position:
        """Where the cells lie, in words (see :class:`Position`)."""
        if self.rows * self.cols == 1:
            return Position("whole")
        rows = [row for row, _ in cells]
        cols = [col for _, col in cells]
        height = max(rows) - min(rows) + 1
        width = max(cols) - min(cols) + 1
        extent_u, extent_v = width / self.cols, height / self.rows
        if share >= WHOLE_SHARE:
            return Position("whole")
        if share >= MOST_SHARE and extent_u >= MOST_EXTENT and extent_v >= MOST_EXTENT:
            return Position("most")
        edge = self._edge(cells, extent_u, extent_v)
        if edge:
            return Position("edge", (edge,))
        fill = len(cells) / (width * height)
        if fill <= CROSSING_FILL or max(width / height, height / width) >= CROSSING_ASPECT:
            ends = self._ends(cells)
            if ends:
                return Position("crossing", ends)
        us, vs = zip(*(self.uv(cell) for cell in cells))
        return Position("zone", (zone_of(_mean(us), _mean(vs)),))

    def _edge(self, cells: Sequence[Cell], extent_u: float, extent_v: float) -> Optional[str]:
        touching: Counter = Counter(side for cell in cells for side in self.sides_of(cell))
        for side in ("north", "east", "south", "west"):
            along, deep, span = ((extent_u, extent_v, self.rows) if side in ("north", "south")
                                 else (extent_v, extent_u, self.cols))
            if touching[side] and span >= 3 and along >= EDGE_LENGTH and deep <= EDGE_DEPTH:
                return side
        return None

    def _ends(self, cells: Sequence[Cell]) -> Optional[Tuple[str, str]]:
        """The zones of the two ends of a group crossing the area, north (then west) first;
        None when it does not reach the boundary at two places far enough apart."""
        boundary = [cell for cell in cells if self.sides_of(cell)]
        if len(boundary) < 2:
            return None
        points = [self.uv(cell) for cell in boundary]
        # The farthest pair among the extreme points in eight directions.
        directions = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))
        extremes = sorted({max(points, key=partial(_along, d)) for d in directions})
        scale = (self.cols - 1, self.rows - 1)
        best, pair = -1.0, None
        for index, first in enumerate(extremes):
            for second in extremes[index + 1:]:
                distance = (((first[0] - second[0]) * scale[0]) ** 2
                            + ((first[1] - second[1]) * scale[1]) ** 2) ** 0.5
                if distance > best:
                    best, pair = distance, (first, second)
        if pair is None or best < CROSSING_SPAN * (max(self.rows, self.cols) - 1):
            return None
        first, second = sorted(pair, key=lambda p: (-p[1], p[0]))
        start, end = zone_of(*first), zone_of(*second)
        return (start, end) if start != end else None


def _along(direction: Tuple[int, int], point: Tuple[float, float]
           ) -> Tuple[float, Tuple[float, float]]:
    return (direction[0] * point[0] + direction[1] * point[1], point)


def zone_of(u: float, v: float) -> str:
    """One of the nine zones for a point of the area (u east, v north, both 0-1)."""
    column = 0 if u < 1 / 3 else (2 if u > 2 / 3 else 1)
    row = 0 if v > 2 / 3 else (2 if v < 1 / 3 else 1)
    return ZONES[row][column]


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0
