"""Fixtures shared by every test: the real datasets, a small trained model, where artifacts go.
(Paths and helpers that tests import by name are in locations.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from locations import REPO, UCM_SAMPLE, require_shared


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: trains a model for tens of seconds or more (left out by make test-fast, "
        "run by make test)")


@pytest.fixture
def ucm_folder() -> Path:
    """The complete UCM-captions dataset (RSICD layout)."""
    return require_shared("ucm-captions")


@pytest.fixture
def rsicd_folder() -> Path:
    """The RSICD subset (complete test split, a sample of train and val)."""
    return require_shared("rsicd-subset")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave screenshots and logs for people to look at (never committed)."""
    path = Path(os.environ.get("MAPSCRIBE_ARTIFACTS", REPO / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small real captioner: the pretrained EfficientNet-Lite0 encoder and a small decoder
    trained for a few seconds on the 8-image UCM sample (it mostly repeats those captions).
    For tests of everything around the network: files, pipelines, front doors."""
    import torch

    from mapscribe.model.api import ImageCaptioner, prepare_data

    torch.manual_seed(0)
    data = prepare_data(UCM_SAMPLE, min_word_count=1, batch_size=2)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0", device="cpu",
                               ground_resolution_m=0.3,
                               decoder_params=dict(embed_size=32, hidden_size=64,
                                                   attention_size=32, context_size=64,
                                                   dropout=0.0))
    # keep_best=False: the sample's one validation image says little about which epoch is best.
    captioner.fit(epochs=30, lr=5e-3, early_stopping=False, keep_best=False, feature_variants=1,
                  attention_regularisation=0.1)
    return captioner.save(tmp_path_factory.mktemp("models") / "tiny.mscap")


# --------------------------------------------------------------------------------------------
# Web image sources on loopback (tests/fixtures/): a mosaic of known images, its XYZ tiles, a
# fault-injecting tile server, QGIS Server's WMS and WMTS
# --------------------------------------------------------------------------------------------
MOSAIC_ZOOM = 19  # 0.30 m per pixel at the equator: the tiny model's training resolution
MOSAIC_CELL = 224  # the model's input size: each image is one tile at --tile-size 224 pixels


@pytest.fixture(scope="session")
def ucm_mosaic(tmp_path_factory):
    """A 4 × 4 mosaic GeoTIFF (EPSG:3857, zoom 19's pixels, on the tile grid) of 16 UCM test
    images (the committed sample's 8, twice, without ../shared/data), its XYZ tiles (zooms
    17–19, by gdal2tiles) and a cloud-optimised copy, in one folder a TileServer can serve.
    Returns a dict: tif, cog, tiles (folder), images (the 224 px PNGs, in mosaic order)."""
    from PIL import Image

    from fixtures.web import cog_copy, mercator_mosaic, ucm_cells, xyz_tiles
    from locations import SHARED_DATA

    folder = tmp_path_factory.mktemp("ucm-mosaic")
    test_images = sorted((SHARED_DATA / "ucm-captions" / "images").glob("*.tif"))
    images = test_images[::13][:16] if len(test_images) >= 16 else (
        sorted((UCM_SAMPLE / "images").iterdir()) * 2)[:16]
    cells = ucm_cells(images, MOSAIC_CELL)
    pngs = []
    for index, cell in enumerate(cells):
        png = folder / "cells" / f"{index:02d}.png"
        png.parent.mkdir(exist_ok=True)
        Image.fromarray(cell.transpose(1, 2, 0)).save(png)
        pngs.append(png)
    tif = mercator_mosaic(folder / "mosaic.tif", cells, cols=4, zoom=MOSAIC_ZOOM)
    www = folder / "www"
    xyz_tiles(tif, www / "xyz", f"17-{MOSAIC_ZOOM}")
    cog_copy(tif, www / "mosaic_cog.tif")
    return {"tif": tif, "cog": www / "mosaic_cog.tif", "www": www, "images": pngs}


@pytest.fixture
def tile_server(ucm_mosaic):
    """A fault-injecting TileServer (tests/fixtures/tile_server.py) over the mosaic's folder:
    XYZ tiles under /xyz/{z}/{x}/{y}.png, the COG at /mosaic_cog.tif."""
    from fixtures.tile_server import TileServer

    with TileServer(ucm_mosaic["www"]) as server:
        yield server


@pytest.fixture(scope="session")
def qgis_server(ucm_mosaic, tmp_path_factory):
    """qgis_mapserver serving the mosaic as layer 'ucm' (WMS and WMTS), for the session."""
    from fixtures.web import QgisServer

    with QgisServer(ucm_mosaic["tif"], tmp_path_factory.mktemp("qgis-server"), "ucm") as server:
        yield server
