"""The tiles of a grid, made one at a time when asked for.

A grid over a large raster can hold hundreds of thousands of tiles; a :class:`TileSequence`
holds only what places them (origin, size, step, the raster's transform) and, for a polygon
area, the ids of the tiles kept (8 bytes each). Each :class:`TileWindow` is made when it is
indexed or iterated, so planning and reading a grid take memory for a batch, not for the grid.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import (
    AbstractSet,
    Iterable,
    Iterator,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Union,
    overload,
)

from affine import Affine
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds


@dataclass(frozen=True)
class TileWindow:
    """One tile: its place in the grid, its pixel window and its bounds in the raster's CRS."""

    row: int
    col: int
    tile_id: int  # row * grid.cols + col: stable whichever tiles a polygon area leaves out
    window: Window  # in raster pixels; may extend past the raster when is_edge
    bounds: Tuple[float, float, float, float]  # (left, bottom, right, top), raster CRS
    is_edge: bool  # the window sticks out of the raster: read boundless, filled with nodata
    # In a caption pyramid (geo.pyramid): 0 = the coarsest level, and the tile of the next
    # coarser level that covers this one (None at level 0). A grid of one level: 0 and None.
    level: int = 0
    parent_id: Optional[int] = None


@dataclass(frozen=True)
class GridLayout:
    """What places every tile of a grid (all in raster pixels but the transform)."""

    rows: int
    cols: int
    origin: Tuple[int, int]       # (col_off, row_off) of tile (0, 0)
    tile_size: Tuple[int, int]    # (width, height)
    step: Tuple[int, int]         # (x, y)
    transform: Affine             # the raster's
    raster_width: int
    raster_height: int

    @property
    def tile_count(self) -> int:
        return self.rows * self.cols

    def tile_id_at(self, index: int) -> int:
        """The id of the ``index``-th tile in reading order (rows, then columns)."""
        return index

    def tile(self, tile_id: int) -> TileWindow:
        row, col = divmod(int(tile_id), self.cols)
        width, height = self.tile_size
        col_off = self.origin[0] + col * self.step[0]
        row_off = self.origin[1] + row * self.step[1]
        window = Window(col_off, row_off, width, height)
        return TileWindow(row=row, col=col, tile_id=int(tile_id), window=window,
                          bounds=window_bounds(window, self.transform),
                          is_edge=(col_off + width > self.raster_width
                                   or row_off + height > self.raster_height))


class TileLayout(Protocol):
    """What places the tiles of a sequence: one grid (:class:`GridLayout`) or a caption
    pyramid (:class:`~.pyramid.PyramidLayout`)."""

    @property
    def tile_count(self) -> int: ...

    def tile_id_at(self, index: int) -> int: ...

    def tile(self, tile_id: int) -> TileWindow: ...


class TileSequence(Sequence[TileWindow]):
    """The tiles of a grid in reading order (for one grid, tile_id order: rows north to south
    as stored, west to east), made when asked for: ``len()``, indexing, slicing (a list) and
    iteration work as on a list. ``ids`` None: every tile of the layout; else the ids kept,
    in reading order."""

    def __init__(self, layout: TileLayout, ids: Optional[Iterable[int]] = None):
        self.layout = layout
        self._ids: Optional[array] = None if ids is None else array("q", ids)

    def __len__(self) -> int:
        if self._ids is None:
            return self.layout.tile_count
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> TileWindow: ...

    @overload
    def __getitem__(self, index: slice) -> List[TileWindow]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[TileWindow, List[TileWindow]]:
        if isinstance(index, slice):
            return [self.layout.tile(self.tile_id_at(i)) for i in range(*index.indices(len(self)))]
        return self.layout.tile(self.tile_id_at(index))

    def tile_id_at(self, index: int) -> int:
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"tile index {index} out of range (0–{count - 1})")
        return self.layout.tile_id_at(index) if self._ids is None else int(self._ids[index])

    def tile_ids(self) -> Iterator[int]:
        """The tile ids, in order, without making the tiles."""
        if self._ids is None:
            return map(self.layout.tile_id_at, range(len(self)))
        return iter(self._ids)

    def __iter__(self) -> Iterator[TileWindow]:
        tile = self.layout.tile
        return (tile(tile_id) for tile_id in self.tile_ids())

    def without(self, done: AbstractSet[int]) -> "TileSequence":
        """The tiles whose ids are not in ``done`` (e.g. those already captioned)."""
        if not done:
            return self
        return TileSequence(self.layout, (i for i in self.tile_ids() if i not in done))

    def __repr__(self) -> str:
        return f"TileSequence({len(self)} tiles of {self.layout!r})"
