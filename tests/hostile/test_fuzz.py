"""Property-based fuzzing (Hypothesis) of the three readers a stranger's file reaches first: the
dataset reader, the model-header parser and the tile planner. Whatever the input (random, or a
valid one mutated), each either succeeds or raises MapScribe's own error, within a time bound
(the profile's deadline, conftest.py) and a memory bound (``memory_ceiling``)."""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from locations import UCM_SAMPLE
from mapscribe.model.errors import MapScribeError

# Extra address space a single example may map (threads of the image checks included).
EXAMPLE_MEMORY_MB = 1024

json_leaves = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
json_values = st.recursive(json_leaves, lambda children: (
    st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)),
    max_leaves=25)


def _mutated(document, data):
    """``document`` with one value somewhere inside it replaced by a random JSON value."""
    path = []
    node = document
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans(), "deeper"):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict)
                                        else list(range(len(node)))), "key")
        path.append(key)
        node = node[key]
    if not path:
        return data.draw(json_values, "whole document")
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(json_values, "replacement")
    return copy


def _dump(value) -> str:
    return json.dumps(value, allow_nan=True)


# -- the dataset reader ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory) -> Path:
    """A dataset folder with two real images; each example writes its own annotations."""
    folder = tmp_path_factory.mktemp("fuzz-dataset")
    (folder / "images").mkdir()
    for image in sorted((UCM_SAMPLE / "images").glob("*.jpg"))[:2]:
        shutil.copy(image, folder / "images" / image.name)
    return folder


def _valid_annotations(folder: Path):
    names = sorted(p.name for p in (folder / "images").iterdir())
    return {"images": [{"filename": name, "split": split,
                        "sentences": [{"raw": "a river beside some trees"}]}
                       for name, split in zip(names, ("train", "val"))]}


def _read_folder(folder: Path, text: str, memory_ceiling) -> None:
    from mapscribe.model.data.folder import read_caption_folder

    (folder / "annotations.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    with memory_ceiling(EXAMPLE_MEMORY_MB):
        try:
            read_caption_folder(folder, check_images="header", workers=1)
        except MapScribeError:
            pass


@given(document=json_values)
def test_dataset_reader_on_random_annotations(fuzz_folder, memory_ceiling, document):
    _read_folder(fuzz_folder, _dump(document), memory_ceiling)


@given(data=st.data())
def test_dataset_reader_on_mutated_annotations(fuzz_folder, memory_ceiling, data):
    document = _mutated(_valid_annotations(fuzz_folder), data)
    _read_folder(fuzz_folder, _dump(document), memory_ceiling)


@given(text=st.text(max_size=200) | st.binary(max_size=200).map(
    lambda b: b.decode("utf-8", "surrogateescape")))
def test_dataset_reader_on_random_text(fuzz_folder, memory_ceiling, text):
    _read_folder(fuzz_folder, text, memory_ceiling)


# -- the model-header parser ------------------------------------------------------------------
# Each example writes a small file (the tiny model's description, one 4-byte tensor) over the
# same path: the header parser never reads the weights, and a fuzz run must not fill the disk.
SMALL_WEIGHTS = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}


@pytest.fixture(scope="module")
def header_parts(tiny_model_path, tmp_path_factory):
    data = tiny_model_path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    index = json.loads(data[8:8 + length])
    return (json.loads(index["__metadata__"]["mapscribe"]),
            tmp_path_factory.mktemp("header") / "fuzzed.mscap")


def _write_model(path: Path, index, data: bytes = b"\0\0\0\0") -> Path:
    header = json.dumps(index, allow_nan=True).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def _parse(path: Path, memory_ceiling) -> None:
    from mapscribe.model.modelfile.header import read_header

    with memory_ceiling(EXAMPLE_MEMORY_MB):
        try:
            header = read_header(path)
        except MapScribeError:
            return
        header.describe()  # what front doors show of a header they accepted
        assert 16 <= header.config.input_size <= 1024


@given(data=st.data())
def test_header_parser_on_mutated_descriptions(header_parts, memory_ceiling, data):
    document, path = header_parts
    index = {"__metadata__": {"mapscribe": _dump(_mutated(document, data))}, **SMALL_WEIGHTS}
    _parse(_write_model(path, index), memory_ceiling)


@given(data=st.data())
def test_header_parser_on_mutated_tensor_index(header_parts, memory_ceiling, data):
    document, path = header_parts
    mutated = _mutated(SMALL_WEIGHTS, data)
    if not isinstance(mutated, dict):
        mutated = {"x": mutated}
    mutated["__metadata__"] = {"mapscribe": _dump(document)}
    _parse(_write_model(path, mutated), memory_ceiling)


@given(prefix=st.binary(min_size=0, max_size=64), flips=st.lists(
    st.integers(min_value=0, max_value=4095), max_size=8))
def test_header_parser_on_random_and_flipped_bytes(header_parts, memory_ceiling, prefix, flips):
    document, path = header_parts
    path.write_bytes(prefix)
    _parse(path, memory_ceiling)
    model = bytearray(_write_model(path, {"__metadata__": {"mapscribe": _dump(document)},
                                          **SMALL_WEIGHTS}).read_bytes())
    for position in flips:
        model[position % len(model)] ^= 0x20
    path.write_bytes(bytes(model))
    _parse(path, memory_ceiling)


# -- the tile planner ------------------------------------------------------------------------------
finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
any_float = st.floats(allow_nan=True, allow_infinity=True) | finite
pixel_size = st.floats(min_value=1e-9, max_value=1e7) | st.sampled_from([0.0, -1.0, 1e-300])


@given(width=st.integers(min_value=1, max_value=10**8),
       height=st.integers(min_value=1, max_value=10**8),
       xres=pixel_size, yres=pixel_size, x0=finite, y0=finite,
       tile_size=st.none() | any_float, unit=st.sampled_from(["map", "pixels"]),
       overlap=any_float, overlap_unit=st.sampled_from(["percent", "pixels"]),
       input_size=st.integers(min_value=-5, max_value=5000),
       hint=st.none() | any_float,
       bbox=st.none() | st.tuples(any_float, any_float, any_float, any_float))
def test_tile_planner_on_random_rasters_and_parameters(memory_ceiling, width, height, xres,
                                                       yres, x0, y0, tile_size, unit, overlap,
                                                       overlap_unit, input_size, hint, bbox):
    from affine import Affine

    from mapscribe.model.geo.areas import BoundingBox, WholeRaster
    from mapscribe.model.geo.raster_info import RasterInfo
    from mapscribe.model.geo.tiling import MAX_TILES, TileGridParams, plan_tiles

    raster = RasterInfo(path="fuzz.tif", crs="EPSG:32618", crs_wkt=_UTM18N,
                        transform=Affine(xres, 0, x0, 0, -yres, y0), width=width, height=height,
                        count=3, dtypes=("uint8",) * 3, nodata=None,
                        colorinterp=("red", "green", "blue"), overview_factors=(),
                        mask_flags=(("all_valid",),) * 3, block_shapes=((256, 256),) * 3)
    area = WholeRaster() if bbox is None else BoundingBox(*bbox, crs="EPSG:32618")
    with memory_ceiling(EXAMPLE_MEMORY_MB):
        try:
            params = TileGridParams(model_input_size=input_size, ground_resolution_hint=hint,
                                    tile_size=tile_size, tile_size_unit=unit, overlap=overlap,
                                    overlap_unit=overlap_unit)
            grid = plan_tiles(raster, area, params)
        except MapScribeError:
            return
        assert 1 <= len(grid.tiles) <= MAX_TILES
        first, last = grid.tiles[0], grid.tiles[-1]
        assert all(math.isfinite(v) for v in first.bounds + last.bounds)
        assert first.window.width == grid.tile_size[0] >= 4


_UTM18N = ('PROJCS["WGS 84 / UTM zone 18N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",'
           '6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
           'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],'
           'PARAMETER["central_meridian",-75],PARAMETER["scale_factor",0.9996],'
           'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],'
           'AUTHORITY["EPSG","32618"]]')
