"""Writing a description into the GeoPackage beside its captions layer, and reading the
overview back.

The regions layer is replaced whole in one SQLite transaction (the old layer deleted, the new
one created and filled): a crash or an error leaves the old regions as they were. Only a regions
layer MapScribe wrote (``MAPSCRIBE_FORMAT`` = :data:`~.schema.REGIONS_FORMAT`) is ever replaced;
any other layer of that name is left alone and reported. The overview goes into the captions
layer's metadata item ``MAPSCRIBE_OVERVIEW`` (:func:`~.schema.overview_metadata`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ..geo.gdal_errors import ogr_failure, ogr_transaction, quiet_gdal
from ..output.geopackage import (
    MAX_METADATA_CHARS,
    open_geopackage_or_error,
    read_caption_layer_info,
    why_not_opened,
)
from ..output.schema import KEY_FORMAT, KEY_FORMAT_VERSION, GridFileError
from .schema import (
    KEY_OVERVIEW,
    KEY_REGIONS_OF,
    MAX_OVERVIEW_SENTENCES,
    REGION_FIELDS,
    REGIONS_FORMAT,
    REGIONS_FORMAT_VERSION,
    DescribeError,
    Region,
    regions_layer_name,
)

log = logging.getLogger(__name__)

# A sentence of the overview read back from a file: longer is not one MapScribe wrote.
MAX_SENTENCE_CHARS = 2000


@dataclass(frozen=True)
class StoredOverview:
    """What ``MAPSCRIBE_OVERVIEW`` of a captions layer says, checked as data."""

    sentences: Tuple[str, ...]
    theme_source: str
    regions_layer: Optional[str]
    notes: Tuple[str, ...]
    created: str
    grid_signature: str

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def write_description(path: Path, captions_layer: str, regions: Tuple[Region, ...],
                      geometries: Mapping[int, Any], metadata: Dict[str, Any]) -> str:
    """Replace the regions layer of ``captions_layer`` and store the overview ``metadata`` on
    ``captions_layer``; returns the regions layer's name."""
    name = regions_layer_name(captions_layer)
    dataset, gdal_error = open_geopackage_or_error(path, update=True)
    if dataset is None:
        raise DescribeError(f"cannot open {path} for writing the regions: it "
                            f"{why_not_opened(path, gdal_error)}.")
    try:
        captions = dataset.GetLayerByName(captions_layer)
        if captions is None:
            raise DescribeError(f"{path} has no layer {captions_layer!r} any more.")
        srs = captions.GetSpatialRef()
        index = _our_layer_index(dataset, name, path)
        with quiet_gdal() as last_error:
            with ogr_transaction(
                    dataset, last_error,
                    lambda problem: _error(f"cannot start a transaction in {path}", problem),
                    lambda problem: _error(f"cannot commit the regions to {path} (is the disk "
                                           "full?)", problem)):
                if index is not None:
                    _check(partial(dataset.DeleteLayer, index), last_error,
                           f"cannot replace layer {name!r} of {path}")
                _create_regions_layer(dataset, name, srs, captions_layer, regions, geometries,
                                      path, last_error)
            metadata = dict(metadata, regions_layer=name)
            captions = dataset.GetLayerByName(captions_layer)
            _check(partial(captions.SetMetadataItem, KEY_OVERVIEW,
                           json.dumps(metadata, sort_keys=True, ensure_ascii=False)),
                   last_error, f"cannot store the overview in layer {captions_layer!r} of {path}")
        dataset.FlushCache()
    finally:
        captions = None
        dataset = None
    log.info("%s: %d regions written to layer %r", path, len(regions), name)
    return name


def _our_layer_index(dataset, name: str, path: Path) -> Optional[int]:
    """The index of the layer ``name`` when MapScribe wrote it as a regions layer; None when
    there is none; an error when a layer of that name is someone else's."""
    for index in range(dataset.GetLayerCount()):
        layer = dataset.GetLayerByIndex(index)
        if layer.GetName() != name:
            continue
        if layer.GetMetadataItem(KEY_FORMAT) != REGIONS_FORMAT:
            raise DescribeError(f"{path} already has a layer {name!r} that MapScribe did not "
                                "write as regions, and MapScribe replaces only its own: it is "
                                "left as it is. Rename or remove that layer (e.g. in QGIS's "
                                "DB Manager), or describe a copy of the GeoPackage.")
        return index
    return None


def _create_regions_layer(dataset, name: str, srs, captions_layer: str,
                          regions: Tuple[Region, ...], geometries: Mapping[int, Any],
                          path: Path, last_error) -> None:
    from osgeo import ogr

    options = ["FID=fid", "GEOMETRY_NAME=geom",
               f"DESCRIPTION=MapScribe regions of layer {captions_layer}"]
    try:
        layer = dataset.CreateLayer(name, srs, ogr.wkbMultiPolygon, options=options)
    except RuntimeError:
        layer = None
    if layer is None:
        raise DescribeError(f"cannot create layer {name!r} in {path}: {last_error()}")
    for field_name, type_name, width in REGION_FIELDS:
        definition = ogr.FieldDefn(field_name, getattr(ogr, type_name))
        if width:
            definition.SetWidth(width)
        _check(partial(layer.CreateField, definition), last_error,
               f"cannot create field {field_name!r} in layer {name!r} of {path}")
    definition = layer.GetLayerDefn()
    for region in regions:
        feature = ogr.Feature(definition)
        values = {"region_id": region.region_id, "theme": region.theme,
                  "tile_count": region.tile_count, "area_km2": round(region.area_km2, 6),
                  "share_percent": round(100 * region.share, 3),
                  "position": region.position.words, "typical_caption": region.typical_caption,
                  "sentence": region.sentence, "level": region.level,
                  "theme_source": region.theme_source}
        for key, value in values.items():
            feature.SetField(key, value)
        feature.SetGeometry(geometries[region.region_id])
        _check(partial(layer.CreateFeature, feature), last_error,
               f"cannot write region {region.region_id} to layer {name!r} of {path}")
    layer.SetMetadataItem(KEY_FORMAT, REGIONS_FORMAT)
    layer.SetMetadataItem(KEY_FORMAT_VERSION, str(REGIONS_FORMAT_VERSION))
    layer.SetMetadataItem(KEY_REGIONS_OF, captions_layer)


def _check(call, last_error, what: str) -> None:
    problem = ogr_failure(call, last_error)
    if problem:
        raise _error(what, problem)


def _error(what: str, problem: str) -> DescribeError:
    if "locked" in problem.lower():
        problem += (" — another program (QGIS, with the layer on its map, or a run) has the "
                    "file open: close it there and run again")
    return DescribeError(f"{what}: {problem}")


# --------------------------------------------------------------------------------------------
# Reading the overview back
# --------------------------------------------------------------------------------------------
def read_overview(path: Union[str, Path], layer: Optional[str] = None
                  ) -> Optional[StoredOverview]:
    """The overview stored with the captions layer (None when it was never described).

    Raises :class:`GridFileError` when the file is not a MapScribe captions GeoPackage, or when
    the stored item is not what MapScribe writes (edited or damaged).
    """
    info = read_caption_layer_info(path, layer)
    dataset, _ = open_geopackage_or_error(info.path, update=False)
    if dataset is None:
        raise GridFileError(f"{path} cannot be opened as a GeoPackage.")
    try:
        text = dataset.GetLayerByName(info.layer).GetMetadataItem(KEY_OVERVIEW)
    finally:
        dataset = None
    if not text:
        return None
    where = f"layer {info.layer!r} of {info.path}"
    try:
        value = json.loads(text) if len(text) <= MAX_METADATA_CHARS else None
    except (json.JSONDecodeError, RecursionError):
        value = None
    return _checked_overview(value, where)


def _checked_overview(value: Any, where: str) -> StoredOverview:
    def damaged(what: str) -> GridFileError:
        return GridFileError(f"{where}: its metadata item {KEY_OVERVIEW} {what}; the file was "
                             "edited or damaged. Run `mapscribe describe` on it again.")

    if not isinstance(value, dict):
        raise damaged("is not a JSON object")
    sentences = value.get("sentences")
    if (not isinstance(sentences, list) or len(sentences) > MAX_OVERVIEW_SENTENCES
            or not all(isinstance(s, str) and len(s) <= MAX_SENTENCE_CHARS for s in sentences)):
        raise damaged(f"has no list of at most {MAX_OVERVIEW_SENTENCES} sentences")
    notes = value.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise damaged("has notes that are not text")
    texts = {}
    for key in ("theme_source", "created", "grid_signature"):
        item = value.get(key, "")
        if not isinstance(item, str):
            raise damaged(f"has {key} that is not text")
        texts[key] = item
    regions_layer = value.get("regions_layer")
    if regions_layer is not None and not isinstance(regions_layer, str):
        raise damaged("has a regions_layer that is not text")
    return StoredOverview(tuple(sentences), texts["theme_source"], regions_layer, tuple(notes),
                          texts["created"], texts["grid_signature"])
