"""Describe a captioned area: the engine function every front door calls.

:func:`describe_captions` reads a captions layer (one level, or a caption pyramid with its
``level`` field), tells each tile's theme, builds the regions and the overview, and (unless
``write=False``) stores them in the same GeoPackage: the regions layer and the captions
layer's ``MAPSCRIBE_OVERVIEW`` metadata item (:mod:`.store`). The HTML report calls
:func:`describe_layer` to say the same without writing anything.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from ..errors import ParameterError
from ..output.geopackage import check_intact, read_caption_layer_info
from ..output.schema import CaptionLayerInfo, Status
from ..paths import check_utf8_path
from .geometry import TileShapes
from .overview import overview_sentences
from .regions import RegionsResult, build_regions
from .schema import DescribeError, Description, overview_metadata
from .store import write_description
from .tiles import LayerTiles, read_layer_tiles

log = logging.getLogger(__name__)

# The model names a note lists when tiles were captioned by several models.
SHOWN_MODELS = 3


def describe_captions(gpkg: Union[str, Path], layer: Optional[str] = None, *,
                      write: bool = True) -> Description:
    """Describe the captions layer ``layer`` of ``gpkg`` (None: its only captions layer).

    Returns the :class:`~.schema.Description` (overview sentences, regions, counts, notes);
    with ``write`` the regions layer and the overview are stored in ``gpkg`` too. Raises
    :class:`~.schema.DescribeError` or :class:`~..output.schema.GridFileError` with a message
    that names the file, layer or field and says what to do.
    """
    path = Path(gpkg)
    try:
        check_utf8_path(path, "GeoPackage")
    except ParameterError as error:
        raise DescribeError(str(error)) from None
    info = read_caption_layer_info(path, layer)
    check_intact(path, "described")
    tiles = read_layer_tiles(info)
    if not tiles.tiles:
        raise DescribeError(f"layer {info.layer!r} of {info.path} has no tiles yet: finish "
                            "the run first (the same mapscribe caption command with --resume), "
                            "then describe it.")
    description, result = describe_layer(tiles)
    if write:
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        metadata = overview_metadata(description, created, info.grid_signature)
        name = write_description(info.path, info.layer, description.regions, result.shapes,
                                 metadata)
        description = replace(description, regions_layer=name)
    log.info("%s: layer %r described: %d regions; %s", path, info.layer,
             len(description.regions), description.text)
    return description


def describe_layer(tiles: LayerTiles) -> Tuple[Description, RegionsResult]:
    """The description of a layer already read, without writing anything."""
    info = tiles.info
    with TileShapes(info.path, info.layer) as shapes:
        result = build_regions(tiles, shapes)
    finest = tiles.at_level(tiles.finest)
    only = finest[0] if len(finest) == 1 else None
    overview = overview_sentences(
        result.regions, result.counts, whole_caption=_whole_caption(tiles),
        only_caption=(only.caption if only is not None and only.status in _CONFIDENT
                      else None),
        uncertain_caption=result.uncertain_caption, unthemed_caption=result.unthemed_caption)
    notes = list(result.notes) + _notes(tiles, info, result)
    for note in notes:
        log.info("%s", note)
    description = Description(
        path=info.path, layer=info.layer, overview=overview, regions=result.regions,
        counts=result.counts, theme_source=result.theme_source, levels=tiles.levels,
        notes=tuple(notes), extra=_extra(tiles, result))
    return description, result


_CONFIDENT = (Status.CAPTIONED, Status.UNFINISHED)


def _whole_caption(tiles: LayerTiles) -> Optional[str]:
    """The coarsest level's caption, when the layer is a pyramid whose coarsest level is one
    confident tile."""
    if len(tiles.levels) < 2:
        return None
    coarsest = tiles.at_level(tiles.levels[0])
    if len(coarsest) == 1 and coarsest[0].status in _CONFIDENT and coarsest[0].caption:
        return coarsest[0].caption
    return None


def _notes(tiles: LayerTiles, info: CaptionLayerInfo, result: RegionsResult) -> list:
    notes = []
    where = f"layer {info.layer!r} of {info.path.name}"
    subject = where[:1].upper() + where[1:]
    models = Counter(tile.model for tile in tiles.tiles
                     if tile.model and tile.status in (*_CONFIDENT, Status.UNCERTAIN))
    if len(models) > 1:
        names = ", ".join(name for name, _ in models.most_common(SHOWN_MODELS))
        notes.append(f"The tiles of {where} were captioned by {len(models)} different models "
                     f"({names}{', …' if len(models) > SHOWN_MODELS else ''}): their captions "
                     "and themes may not compare. Caption the area again with one model for a "
                     "consistent description.")
    if result.counts.missing:
        notes.append(f"{subject} is not finished: {result.counts.missing} of "
                     f"{result.counts.planned} tiles have no caption yet. Finish it with the "
                     "same mapscribe caption command and --resume, then describe it again.")
    if len(tiles.levels) > 1:
        notes.append(f"{subject} holds {len(tiles.levels)} levels; regions are made from the "
                     f"finest (level {tiles.finest}).")
    return notes


def _extra(tiles: LayerTiles, result: RegionsResult) -> Dict[str, Any]:
    return {"captioned_area_km2": result.captioned_area_km2,
            "tiles_per_level": {level: len(tiles.at_level(level)) for level in tiles.levels}}
