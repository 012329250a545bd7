"""The errors of geometry and pixel reading: bad rasters, areas and tile parameters."""

from __future__ import annotations

from typing import Any, Optional

from ..errors import MapScribeError


class TilingError(MapScribeError, ValueError):
    """The raster, the area or the tile parameters cannot give a tile grid; the message says why
    and what to do."""


class RasterReadError(MapScribeError, ValueError):
    """The raster or the reading parameters cannot be used; the message says what to do."""


class TileReadError(MapScribeError, RuntimeError):
    """Reading a tile failed; ``path`` and ``tile`` (its TileWindow, None when opening failed)
    say where."""

    def __init__(self, message: str, path: str, tile: Optional[Any]):
        super().__init__(message)
        self.path = path
        self.tile = tile
