"""Every raster layer GDAL can serve, in QGIS: the layer's own source taken whole (GeoPackage
raster tables, /vsizip/, open options; XYZ, WMS and WMTS with the credentials QGIS holds for
them), layers MapScribe cannot read said before Run, and the dock and Processing captioning an
XYZ layer, a WMS layer, a two-table GeoPackage raster and a zipped GeoTIFF on loopback."""

from __future__ import annotations

import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest
from pytest_qgis.utils import wait_until
from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from mapscribe.plugin.layer_sources import layer_image_source, layer_problem, run_source
from plugin_helpers import RGB_BYTE, set_canvas


def _xyz_layer(server, name="basemap", extra="") -> QgsRasterLayer:
    url = f"{server.url}/xyz/%7Bz%7D/%7Bx%7D/%7By%7D.png"
    layer = QgsRasterLayer(f"type=xyz&url={url}&zmin=17&zmax=19{extra}", name, "wms")
    assert layer.isValid()
    return layer


def _wms_layer(qgis_server) -> QgsRasterLayer:
    layer = QgsRasterLayer(f"crs=EPSG:3857&format=image/png&layers=ucm&styles=&"
                           f"url={qgis_server.url}", "ucm wms", "wms")
    assert layer.isValid(), layer.error().summary()
    return layer


@pytest.fixture(scope="module")
def two_tables(ucm_mosaic, tmp_path_factory) -> Path:
    """A GeoPackage holding two raster tables: RGB.byte first, the mosaic second."""
    path = tmp_path_factory.mktemp("gpkg") / "two.gpkg"
    subprocess.run(["gdal_translate", "-q", "-of", "GPKG", str(RGB_BYTE), str(path),
                    "-co", "RASTER_TABLE=landsat"], check=True)
    subprocess.run(["gdal_translate", "-q", "-of", "GPKG", str(ucm_mosaic["tif"]), str(path),
                    "-co", "APPEND_SUBDATASET=YES", "-co", "RASTER_TABLE=ucm"], check=True)
    return path


@pytest.fixture(scope="module")
def zipped(ucm_mosaic, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zip") / "scene.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(ucm_mosaic["tif"], "imagery/mosaic.tif")
    return path


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Fetched tiles go to this test's own cache folder (a shared one would answer for the
    server the test watches)."""
    monkeypatch.setenv("MAPSCRIBE_CACHE_DIR", str(tmp_path / "cache"))


# --- the layer's source, whole ---------------------------------------------------------------
def test_gdal_layers_keep_their_table_archive_and_open_options(two_tables, zipped, tmp_path):
    table = QgsRasterLayer(f"GPKG:{two_tables}:ucm", "ucm table", "gdal")
    assert table.isValid()
    assert layer_image_source(table).location == f"GPKG:{two_tables}:ucm"
    inner = QgsRasterLayer(f"/vsizip/{zipped}/imagery/mosaic.tif", "zipped", "gdal")
    assert inner.isValid()
    assert layer_image_source(inner).location == f"/vsizip/{zipped}/imagery/mosaic.tif"
    with_options = QgsRasterLayer(f"{RGB_BYTE}|option:NUM_THREADS=2", "rgb", "gdal")
    source = layer_image_source(with_options)
    assert (source.location, source.open_options) == (str(RGB_BYTE), (("NUM_THREADS", "2"),))
    plain = QgsRasterLayer(str(RGB_BYTE), "rgb", "gdal")
    assert run_source(plain) == (str(RGB_BYTE), None)


def test_xyz_layers_bring_their_zooms_headers_referer_and_login(tile_server):
    layer = _xyz_layer(tile_server, extra="&referer=https://map.example.org"
                                          "&http-header:X-Api-Key=K3Y&tilePixelRatio=2")
    source = layer_image_source(layer)
    assert (source.kind, source.zmin, source.zmax, source.tile_pixels) == ("xyz", 17, 19, 512)
    assert source.location == f"{tile_server.url}/xyz/{{z}}/{{x}}/{{y}}.png"
    assert source.http_headers() == {"X-Api-Key": "K3Y",
                                     "Referer": "https://map.example.org"}
    assert "K3Y" not in repr(source) and "K3Y" not in str(source.to_metadata())

    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        manager.setMasterPassword("test-master", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("tiles login")
    config.setConfig("username", "alice")
    config.setConfig("password", "s3cret")
    stored = manager.storeAuthenticationConfig(config)
    config = stored[1] if isinstance(stored, tuple) else config
    authenticated = _xyz_layer(tile_server, extra=f"&authcfg={config.id()}")
    headers = layer_image_source(authenticated).http_headers()
    assert headers["Authorization"] == "Basic YWxpY2U6czNjcmV0"  # alice:s3cret
    missing = _xyz_layer(tile_server, extra="&authcfg=nosuch1")
    assert "authentication configuration nosuch1" in layer_problem(missing)


def test_wms_and_wmts_layers_are_decoded_from_their_uri(qgis_server):
    wms = layer_image_source(_wms_layer(qgis_server))
    assert (wms.kind, wms.layers, wms.crs, wms.image_format) == ("wms", "ucm", "EPSG:3857",
                                                                "image/png")
    wmts_layer = QgsRasterLayer(
        f"crs=EPSG:3857&format=image/png&layers=ucm&styles=default&tileMatrixSet=EPSG:3857&"
        f"url={qgis_server.url}?SERVICE%3DWMTS%26REQUEST%3DGetCapabilities", "ucm wmts", "wms")
    assert wmts_layer.isValid(), wmts_layer.error().summary()
    wmts = layer_image_source(wmts_layer)
    assert (wmts.kind, wmts.layers, wmts.tile_matrix_set) == ("wmts", "ucm", "EPSG:3857")


def test_layers_mapscribe_cannot_read_say_why_before_run(tmp_path):
    wcs = QgsRasterLayer("url=http://127.0.0.1:1/wcs&identifier=dem", "heights", "wcs")
    assert "WCS layer" in layer_problem(wcs) and "GeoTIFF" in layer_problem(wcs)
    local = QgsRasterLayer(f"type=xyz&url=file://{tmp_path}/%7Bz%7D/%7Bx%7D/%7By%7D.png",
                           "local tiles", "wms")
    assert "not from a web service" in layer_problem(local)
    assert layer_problem(QgsRasterLayer(str(RGB_BYTE), "rgb", "gdal")) is None


# --- the dock --------------------------------------------------------------------------------
def _run_dock(dock, qgis_iface, layer, model, output, area="layer"):
    QgsProject.instance().addMapLayer(layer)
    dock.form.raster_combo.setLayer(layer)
    dock.select_model(str(model))
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData(area))
    dock.set_output_path(str(output))
    task = dock.run()
    assert task is not None, dock.form.status.text()
    assert wait_until(lambda: not dock.is_running(), timeout_milliseconds=180_000)
    assert dock.last_task.result is not None, dock.form.status.text()
    return dock.last_task.result


def _statuses(path: Path):
    with sqlite3.connect(path) as db:
        return dict(db.execute('SELECT status, count(*) FROM "captions" GROUP BY status'))


def test_the_dock_describes_and_captions_what_an_xyz_layer_shows(
        dock, qgis_iface, tiny_model_path, tile_server, ucm_mosaic, tmp_path, private_cache):
    import rasterio

    with rasterio.open(ucm_mosaic["tif"]) as dataset:
        box = dataset.bounds
    set_canvas(qgis_iface.mapCanvas(), "EPSG:3857",
               QgsRectangle(box.left, box.bottom, box.right, box.top))
    layer = _xyz_layer(tile_server, name="UCM basemap")
    layer.setAttribution("UC Merced images, USGS")
    QgsProject.instance().addMapLayer(layer)
    dock.form.raster_combo.setLayer(layer)
    text = dock.form.raster_info.text()
    assert "XYZ tiles from 127.0.0.1, zoom 17–19, Web Mercator" in text
    assert "m per pixel" in text and "Imagery: UC Merced images, USGS." in text
    assert "0 × 0" not in text
    result = _run_dock(dock, qgis_iface, layer, tiny_model_path, tmp_path / "xyz.gpkg",
                       area="extent")
    assert result.captioned >= 12 and result.failed == 0
    assert result.attribution == "UC Merced images, USGS"
    assert any("XYZ zoom 19" in note for note in result.notes)
    assert tile_server.total > 0


def test_the_dock_captions_a_wms_layer(dock, qgis_iface, tiny_model_path, qgis_server,
                                       tmp_path, private_cache):
    result = _run_dock(dock, qgis_iface, _wms_layer(qgis_server), tiny_model_path,
                       tmp_path / "wms.gpkg")
    assert result.failed == 0 and result.captioned >= 12
    assert "WMS" in dock.form.raster_info.text()


def test_the_dock_captions_a_two_table_geopackage_raster_and_a_zipped_geotiff(
        dock, qgis_iface, tiny_model_path, two_tables, zipped, tmp_path):
    table = QgsRasterLayer(f"GPKG:{two_tables}:ucm", "ucm table", "gdal")
    result = _run_dock(dock, qgis_iface, table, tiny_model_path, tmp_path / "table.gpkg")
    # The second table's grid, 16 tiles, under the caption pyramid's 4 + 1 (levels: auto).
    assert result.level_tiles == [1, 4, 16] and result.crs == "EPSG:3857"
    inner = QgsRasterLayer(f"/vsizip/{zipped}/imagery/mosaic.tif", "zipped", "gdal")
    result = _run_dock(dock, qgis_iface, inner, tiny_model_path, tmp_path / "zipped.gpkg")
    assert result.tiles_total == 21 and result.captioned == 21
    assert _statuses(tmp_path / "zipped.gpkg") == {"captioned": 21}


def test_the_dock_refuses_a_layer_it_cannot_read_before_anything_starts(dock, tiny_model_path,
                                                                         tmp_path):
    wcs = QgsRasterLayer("url=http://127.0.0.1:1/wcs&identifier=dem", "heights", "wcs")
    QgsProject.instance().addMapLayer(wcs)
    dock.form.raster_combo.setLayer(wcs)
    assert "cannot be read by MapScribe" in dock.form.raster_info.text()
    dock.select_model(str(tiny_model_path))
    dock.set_output_path(str(tmp_path / "never.gpkg"))
    assert dock.run() is None and "WCS layer" in dock.form.status.text()
    assert not (tmp_path / "never.gpkg").exists()


# --- Processing ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def provider(qgis_app):
    from processing.core.Processing import Processing

    from mapscribe.plugin.processing.provider import MapScribeProvider

    Processing.initialize()
    provider = MapScribeProvider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    yield provider
    QgsApplication.processingRegistry().removeProvider(provider)


def _process(layer, model, out, **extra):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    QgsProject.instance().addMapLayer(layer)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    parameters = {"INPUT": layer.id(), "MODEL": str(model), "DEVICE": "cpu",
                  "OUTPUT": str(out), **extra}
    return processing.run("mapscribe:caption_raster", parameters,
                          feedback=QgsProcessingFeedback(), context=context)


def test_processing_captions_xyz_wms_geopackage_table_and_zipped_layers(
        provider, tiny_model_path, tile_server, qgis_server, ucm_mosaic, two_tables, zipped,
        tmp_path, private_cache):
    import rasterio

    with rasterio.open(ucm_mosaic["tif"]) as dataset:
        box = dataset.bounds
    extent = f"{box.left},{box.right},{box.bottom},{box.top} [EPSG:3857]"
    layers = {
        "xyz": (_xyz_layer(tile_server), {"EXTENT": extent}),
        "wms": (_wms_layer(qgis_server), {}),
        "table": (QgsRasterLayer(f"GPKG:{two_tables}:ucm", "ucm table", "gdal"), {}),
        "zipped": (QgsRasterLayer(f"/vsizip/{zipped}/imagery/mosaic.tif", "zip", "gdal"), {}),
    }
    for name, (layer, extra) in layers.items():
        result = _process(layer, tiny_model_path, tmp_path / f"{name}.gpkg", **extra)
        # 16 tiles and the caption pyramid's 4 + 1 above them (LEVELS 0: auto)
        assert result["TILES"] == 21 and result["CAPTIONED"] >= 16, (name, result)
    from qgis.core import QgsProcessingException

    local = QgsRasterLayer(f"type=xyz&url=file://{tmp_path}/%7Bz%7D/%7Bx%7D/%7By%7D.png",
                           "local tiles", "wms")
    with pytest.raises(QgsProcessingException, match="not from a web service"):
        _process(local, tiny_model_path, tmp_path / "local.gpkg", EXTENT=extent)
    assert not (tmp_path / "local.gpkg").exists()
