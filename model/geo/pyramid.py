"""A caption pyramid: the detail grid and coarser levels over the same area, so that people
can read a map from the whole down to the details.

Pure geometry, like :mod:`.tiling`. Level ``levels - 1`` is the detail grid that
:func:`~.tiling.plan_tiles` made; each tile of level k covers the 2 × 2 tiles of level k + 1
below it, up to level 0, the coarsest. A coarse tile's window is the union of its children's
windows (the same overlap), square, read and resampled to the model's input size by the same
reader, so level k shows the ground 2^(levels-1-k) times coarser than the detail level.

Tile ids: the detail grid keeps ``row * cols + col`` (a one-level layer is what earlier versions
wrote); the coarse levels follow, coarsest first, each row by row. Reading order is the same:
coarsest first, so that a cancelled run has its overview before its details.
"""

from __future__ import annotations

import bisect
import logging
import math
from array import array
from dataclasses import dataclass, field, replace
from typing import Iterable, List, Optional, Set, Tuple, Union

from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from .errors import TilingError
from .tile_sequence import GridLayout, TileSequence, TileWindow
from .tiling import MAX_TILE_PIXELS, TileGrid, grid_signature

log = logging.getLogger(__name__)

# The coarsest level "auto" plans: its tiles seen by the model at most this many times coarser
# than the ground resolution the model was trained at (beyond that its captions are guesses).
MAX_COARSENING = 8.0
# "auto" never plans more levels than this (a 2^12-tile-wide detail grid is 4,096 tiles wide).
MAX_AUTO_LEVELS = 12
LEVELS_AUTO = "auto"
LevelsRequest = Union[int, str]


@dataclass(frozen=True)
class PyramidLayout:
    """What places every tile of every level (see the module doc for ids and order)."""

    detail: GridLayout
    levels: int
    # Per level, coarsest first: (rows, cols) and the id of its first tile.
    shapes: Tuple[Tuple[int, int], ...] = field(init=False)
    bases: Tuple[int, ...] = field(init=False)
    coarse_count: int = field(init=False)  # tiles above the detail level (read per tile)

    def __post_init__(self) -> None:
        shapes, bases = [], []
        base = self.detail.tile_count
        for level in range(self.levels):
            factor = self.factor(level)
            shape = (math.ceil(self.detail.rows / factor), math.ceil(self.detail.cols / factor))
            shapes.append(shape)
            if level < self.levels - 1:
                bases.append(base)
                base += shape[0] * shape[1]
        bases.append(0)  # the detail level
        object.__setattr__(self, "shapes", tuple(shapes))
        object.__setattr__(self, "bases", tuple(bases))
        object.__setattr__(self, "coarse_count", base - self.detail.tile_count)

    def factor(self, level: int) -> int:
        """How many detail tiles a tile of ``level`` spans on each axis."""
        return 2 ** (self.levels - 1 - level)

    @property
    def tile_count(self) -> int:
        return self.coarse_count + self.detail.tile_count

    def tile_id_at(self, index: int) -> int:
        coarse = self.coarse_count
        return self.detail.tile_count + index if index < coarse else index - coarse

    def level_of(self, tile_id: int) -> int:
        if tile_id < self.detail.tile_count:
            return self.levels - 1
        return bisect.bisect_right(self.bases[:-1], tile_id) - 1

    def tile_id(self, level: int, row: int, col: int) -> int:
        return self.bases[level] + row * self.shapes[level][1] + col

    def tile(self, tile_id: int) -> TileWindow:
        level = self.level_of(int(tile_id))
        row, col = divmod(int(tile_id) - self.bases[level], self.shapes[level][1])
        parent = self.tile_id(level - 1, row // 2, col // 2) if level else None
        if level == self.levels - 1:
            return replace(self.detail.tile(tile_id), level=level, parent_id=parent)
        grid, factor = self.detail, self.factor(level)
        col_off = grid.origin[0] + col * factor * grid.step[0]
        row_off = grid.origin[1] + row * factor * grid.step[1]
        width, height = self.window_size(level)
        window = Window(col_off, row_off, width, height)
        return TileWindow(row=row, col=col, tile_id=int(tile_id), window=window,
                          bounds=window_bounds(window, grid.transform),
                          is_edge=(col_off + width > grid.raster_width
                                   or row_off + height > grid.raster_height),
                          level=level, parent_id=parent)

    def window_size(self, level: int) -> Tuple[int, int]:
        """A tile's (width, height) in raster pixels at ``level``: its children's union."""
        factor, grid = self.factor(level), self.detail
        return ((factor - 1) * grid.step[0] + grid.tile_size[0],
                (factor - 1) * grid.step[1] + grid.tile_size[1])

    def level_counts(self, tiles: TileSequence) -> List[int]:
        """How many of ``tiles`` lie at each level, coarsest first."""
        counts = [0] * self.levels
        for tile_id in tiles.tile_ids():
            counts[self.level_of(tile_id)] += 1
        return counts

    def __repr__(self) -> str:
        shapes = ", ".join(f"{rows}×{cols}" for rows, cols in self.shapes)
        return f"PyramidLayout({self.levels} levels: {shapes})"


@dataclass(frozen=True)
class LevelPlan:
    """How many levels a run captions: ``reason`` says why 'auto' stopped before one tile for
    the whole area; ``notes`` are warnings (fewer levels than asked for, levels the model
    cannot read)."""

    levels: int
    notes: Tuple[str, ...] = ()
    reason: str = ""


def parse_levels(value: "LevelsRequest | None") -> LevelsRequest:
    """``--levels``: 'auto' or a whole number ≥ 1 (1: the detail grid alone)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == LEVELS_AUTO):
        return LEVELS_AUTO
    try:
        number = int(str(value).strip())
    except ValueError:
        raise TilingError(f"levels {value!r} is neither 'auto' nor a whole number: give e.g. "
                          "--levels auto, --levels 3, or --levels 1 for the detail grid alone."
                          ) from None
    if number < 1:
        raise TilingError(f"levels {number} must be at least 1 (1: the detail grid alone).")
    return number


def choose_levels(grid: TileGrid, request: LevelsRequest, input_size: int,
                  trained_resolution: Optional[float]) -> LevelPlan:
    """The number of levels for ``grid``: up to one tile over the whole area, never a window
    wider than :data:`~.tiling.MAX_TILE_PIXELS`, and for 'auto' never coarser than
    :data:`MAX_COARSENING` × the model's training resolution."""
    request = parse_levels(request)
    to_one_tile = 1 + math.ceil(math.log2(max(grid.rows, grid.cols)))
    widest = max(grid.tile_size)
    step = max(grid.step)
    by_pixels = 1
    while by_pixels < to_one_tile and (2 ** by_pixels - 1) * step + widest <= MAX_TILE_PIXELS:
        by_pixels += 1
    possible = min(to_one_tile, by_pixels)
    seen = grid.tile_size_metres[0] / input_size  # metres per model pixel at the detail level
    readable = _readable_levels(seen, trained_resolution)
    notes: List[str] = []
    if request == LEVELS_AUTO:
        levels = min(possible, readable, MAX_AUTO_LEVELS)
        reason = ""
        if levels < to_one_tile and levels == readable:
            reason = (f"up to tiles of about "
                      f"{_metres(grid.tile_size_metres[0] * 2 ** (levels - 1))}: a coarser "
                      f"level would show the ground more than {MAX_COARSENING:g}× coarser than "
                      f"the model was trained at ({trained_resolution:g} m per pixel)")
        elif levels < to_one_tile:
            reason = (f"a coarser level's tiles would be wider than {MAX_TILE_PIXELS:,} pixels"
                      if levels == by_pixels else f"at most {MAX_AUTO_LEVELS} levels")
        return LevelPlan(levels, (), reason)
    levels = min(int(request), possible)
    if levels < int(request):
        why = ("one tile covers the whole area" if possible == to_one_tile
               else f"a coarser tile would be wider than {MAX_TILE_PIXELS:,} pixels")
        notes.append(f"{levels} levels rather than the {request} asked for: at level 0 {why}.")
    if levels > readable:
        unreadable = levels - readable
        which = ("level 0, the coarsest," if unreadable == 1
                 else f"levels 0 to {unreadable - 1}, the coarsest,")
        notes.append(
            f"{which} show{'s' if unreadable == 1 else ''} the ground more than "
            f"{MAX_COARSENING:g}× coarser than the model was trained at "
            f"({trained_resolution:g} m per pixel): captions there are likely unreliable.")
    return LevelPlan(levels, tuple(notes))


def _readable_levels(seen: float, trained: Optional[float]) -> int:
    """How many levels keep the model's pixels within MAX_COARSENING × its training
    resolution (each level doubles the size of a pixel); at least the detail level."""
    if not trained or not seen > 0:
        return MAX_AUTO_LEVELS
    ratio = seen / trained
    if ratio >= MAX_COARSENING:
        return 1
    return 1 + int(math.floor(math.log2(MAX_COARSENING / ratio) + 1e-9))


def _metres(value: float) -> str:
    return f"{value / 1000:.3g} km" if value >= 1000 else f"{value:.3g} m"


def with_levels(grid: TileGrid, levels: int) -> TileGrid:
    """``grid`` with ``levels`` levels (its own tiles the finest); 1 returns it unchanged."""
    if levels <= 1:
        return grid
    detail = grid.tiles.layout
    if not isinstance(detail, GridLayout):
        raise TilingError("a caption pyramid is built on one grid, not on another pyramid.")
    layout = PyramidLayout(detail, levels)
    tiles = (TileSequence(layout) if grid.skipped == 0
             else TileSequence(layout, _kept_ids(layout, grid.tiles.tile_ids())))
    pyramid = replace(grid, tiles=tiles, levels=levels)
    return replace(pyramid, grid_signature=grid_signature(pyramid))


def _kept_ids(layout: PyramidLayout, detail_ids: Iterable[int]) -> array:
    """A polygon area's tiles at every level: a coarse tile is kept when a tile it covers is;
    in reading order (coarsest first)."""
    detail = array("q", detail_ids)
    cols = layout.detail.cols
    kept: Set[Tuple[int, int]] = {divmod(tile_id, cols) for tile_id in detail}
    coarse: List[List[int]] = []
    for level in range(layout.levels - 2, -1, -1):
        kept = {(row // 2, col // 2) for row, col in kept}
        coarse.append(sorted(layout.tile_id(level, row, col) for row, col in kept))
    ordered = array("q")
    for ids in reversed(coarse):
        ordered.extend(ids)
    ordered.extend(detail)
    return ordered


def level_counts(grid: TileGrid) -> List[int]:
    """Tiles per level of ``grid``, coarsest first ([len(grid)] for one level)."""
    layout = grid.tiles.layout
    if isinstance(layout, PyramidLayout):
        return layout.level_counts(grid.tiles)
    return [len(grid.tiles)]
