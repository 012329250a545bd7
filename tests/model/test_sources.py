"""Image sources without a model: what a source is and records, the zoom chosen for the model's
ground resolution, the HTTP client's politeness, retries and cache against a real loopback
server, a web tile's pixels against the file's, and the reading pool's order and failures."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error

import numpy as np
import pytest
import rasterio

from fixtures.tile_server import TileServer
from mapscribe.model.geo.areas import BoundingBox
from mapscribe.model.geo.http_cache import TileCache
from mapscribe.model.geo.http_fetch import (
    USER_AGENT,
    FetchStats,
    HttpFetcher,
    NetworkParams,
    RateLimiter,
    TileUnavailableError,
    _network_reason,
)
from mapscribe.model.geo.open_source import open_source
from mapscribe.model.geo.read_plan import ReadParams
from mapscribe.model.geo.reader import TileReader
from mapscribe.model.geo.sources import ImageSource, SourceError, redact_url
from mapscribe.model.geo.tiling import TileGridParams, plan_tiles
from mapscribe.model.geo.web_service import choose_level, open_web_service
from mapscribe.model.version import __version__

FAST = NetworkParams(cache=False, max_requests_per_second=0, timeout_s=1.0, retries=2,
                     backoff_s=0.02)


# --- what a source is ------------------------------------------------------------------------
def test_sources_are_built_from_paths_strings_and_services_and_checked():
    assert ImageSource.parse("scene.tif").kind == "file"
    assert ImageSource.parse("GPKG:a.gpkg:table").location == "GPKG:a.gpkg:table"
    xyz = ImageSource.parse("xyz:https://t.example.org/{z}/{x}/{-y}.png")
    assert (xyz.kind, xyz.location, xyz.zmax) == ("xyz", "https://t.example.org/{z}/{x}/{-y}.png",
                                                  19)
    with pytest.raises(SourceError, match=r"needs \{z\}, \{x\} and \{y\}"):
        ImageSource.xyz("https://t.example.org/tiles.png")
    with pytest.raises(SourceError, match="not an http:// or https:// URL"):
        ImageSource.xyz("file:///etc/{z}/{x}/{y}")
    with pytest.raises(SourceError, match="zoom levels 5–3"):
        ImageSource.xyz("https://t/{z}/{x}/{y}", zmin=5, zmax=3)
    with pytest.raises(SourceError, match="needs layers"):
        ImageSource.wms("https://wms.example.org/ows", "")
    assert ImageSource.file("/d/a.gpkg", {"TABLE": "t"}).open_options == (("TABLE", "t"),)


def test_credentials_never_reach_repr_metadata_or_descriptions():
    source = ImageSource.xyz("https://user:hunter2@t.example.org/{z}/{x}/{y}.png?apikey=S3CRET"
                             "&style=sat", headers={"Authorization": "Bearer T0KEN"},
                             referer="https://me.example.org", attribution="© Example")
    shown = " ".join([repr(source), str(source.to_metadata()), source.describe(), source.label])
    for secret in ("hunter2", "S3CRET", "T0KEN", "user:"):
        assert secret not in shown
    assert "style=sat" in source.describe() and "REDACTED" in source.describe()
    assert source.to_metadata()["http_headers"] == ["Authorization"]
    assert source.http_headers() == {"Authorization": "Bearer T0KEN",
                                     "Referer": "https://me.example.org"}
    assert set(source.secrets()) == {"Bearer T0KEN", "hunter2", "S3CRET"}
    assert redact_url("https://a.org/x?token=1&z=2") == "https://a.org/x?token=REDACTED&z=2"


def test_local_files_behind_gdal_strings_are_known(tmp_path):
    assert ImageSource.file("GPKG:/d/two.gpkg:second").local_files()[-1] == "/d/two.gpkg"
    assert "/d/a.zip" in ImageSource.file("/vsizip//d/a.zip/b/scene.tif").local_files()
    assert ImageSource.file("/vsicurl/https://h/cog.tif").local_files() == []


# --- the zoom for the model's resolution -----------------------------------------------------
@pytest.mark.parametrize("latitude, needed, zoom", [
    (0.0, 0.3, 19),    # 0.2986 m at z19
    (0.0, 0.5, 18),    # z18 0.597 m: closer in ratio than z19's 0.299 m
    (0.0, 2.0, 16),
    (60.0, 0.3, 18),   # at 60° a map unit is half a metre: z18 is 0.299 m on the ground
    (0.0, 0.01, 19),   # finer than the service: its finest level, never past zmax
])
def test_the_zoom_closest_to_the_model_and_never_twice_the_pixels(latitude, needed, zoom):
    from rasterio.warp import transform as warp

    source = ImageSource.xyz("https://t.example.org/{z}/{x}/{y}.png", zmin=0, zmax=19)
    service = open_web_service(source, HttpFetcher(FAST))
    xs, ys = warp("EPSG:4326", "EPSG:3857", [10.0], [latitude])
    scale = np.cos(np.radians(latitude))
    level = choose_level(service, needed / scale)
    assert level.zoom == zoom
    ground = level.resolution * scale
    if needed >= service.levels[-1].resolution * scale:
        assert (needed / ground) ** 2 <= 2.0 + 1e-6  # never more than twice the pixels needed
    assert choose_level(service, needed / scale, zoom=12).zoom == 12
    with pytest.raises(SourceError, match="no zoom level 20"):
        choose_level(service, 1.0, zoom=20)


def test_opening_an_xyz_source_chooses_the_zoom_of_the_area_and_says_so(tile_server):
    source = ImageSource.xyz(tile_server.url + "/xyz/{z}/{x}/{y}.png", zmax=19,
                             attribution="UC Merced, USGS")
    with rasterio.open(tile_server.root / "mosaic_cog.tif") as dataset:
        bounds = dataset.bounds
    area = BoundingBox(*bounds, crs="EPSG:3857")
    opened = open_source(source, FAST, area, input_size=224, ground_resolution_hint=0.3)
    assert opened.level.zoom == 19 and opened.info.crs == "EPSG:3857"
    assert "zoom 19" in opened.notes[0] and "0.299 m per pixel" in opened.notes[0]
    assert "UC Merced, USGS" in opened.notes[1] and "terms of use" in opened.notes[1]
    coarse = open_source(source, FAST, area, input_size=224, ground_resolution_hint=1.2)
    assert coarse.level.zoom == 17
    assert open_source(source, FAST, area, input_size=224, ground_resolution_hint=0.3,
                       zoom=18).level.zoom == 18
    assert tile_server.total >= 1  # the first tile was fetched before anything else
    with pytest.raises(SourceError, match="covers the whole world: choose an area"):
        from mapscribe.model.geo.areas import WholeRaster

        open_source(source, FAST, WholeRaster(), input_size=224, ground_resolution_hint=0.3)


# --- the HTTP client ---------------------------------------------------------------------------
def _server(tmp_path) -> TileServer:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "ok.png").write_bytes(_png())
    (tmp_path / "page.png").write_bytes(b"<html>sign in</html>")
    return TileServer(tmp_path).start()


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (7, 7, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_requests_name_mapscribe_and_carry_the_sources_headers(tmp_path):
    server = _server(tmp_path)
    try:
        fetcher = HttpFetcher(FAST, {"X-Api-Key": "k1", "Referer": "https://r.example"})
        assert fetcher.get(server.url + "/ok.png").startswith(b"\x89PNG")
        seen = server.headers_seen[-1]
        assert seen["User-Agent"] == USER_AGENT and f"MapScribe/{__version__}" in USER_AGENT
        assert seen["X-Api-Key"] == "k1" and seen["Referer"] == "https://r.example"
        assert fetcher.get(server.url + "/missing.png") is None  # 404: no tile there
        assert fetcher.stats.counts["missing"] == 1
    finally:
        server.stop()


def test_server_errors_and_timeouts_are_retried_with_back_off(tmp_path):
    server = _server(tmp_path)
    try:
        server.timeout_s = 2.0
        server.fail(lambda path, n: 500 if n == 1 else ("timeout" if n == 2 else None))
        fetcher = HttpFetcher(FAST)
        assert fetcher.get(server.url + "/ok.png").startswith(b"\x89PNG")
        assert server.requests["/ok.png"] == 3 and fetcher.stats.counts["retries"] == 2
        server.clear_faults()
        server.fail(lambda path, n: 503)
        with pytest.raises(TileUnavailableError, match=r"HTTP 503.*after 3 tries"):
            fetcher.get(server.url + "/ok.png", cached=False)
    finally:
        server.stop()


def test_429_with_retry_after_pauses_every_thread_and_is_honoured(tmp_path):
    server = _server(tmp_path)
    try:
        server.fail(lambda path, n: (429, {"Retry-After": "1"}) if n == 1 else None)
        limiter = RateLimiter(0)
        fetcher = HttpFetcher(FAST, limiter=limiter)
        started = time.monotonic()
        assert fetcher.get(server.url + "/ok.png") is not None
        assert time.monotonic() - started >= 0.95  # waited as asked, not the 0.02 s back-off
        assert fetcher.stats.counts["throttled"] == 1
        # Another thread starting now waits too: the pause is shared.
        limiter.pause(0.5)
        started = time.monotonic()
        other = threading.Thread(target=lambda: limiter.wait(threading.Event()))
        other.start()
        other.join()
        assert time.monotonic() - started >= 0.45
    finally:
        server.stop()


def test_refusals_and_answers_that_are_not_images_are_said_plainly(tmp_path):
    server = _server(tmp_path)
    try:
        server.fail(lambda path, n: 401 if path.startswith("/locked") else None)
        fetcher = HttpFetcher(FAST)
        with pytest.raises(SourceError, match=r"refused access \(HTTP 401\).*credentials"):
            fetcher.get(server.url + "/locked/ok.png?api_key=SECRET")
        assert server.requests["/locked/ok.png?api_key=SECRET"] == 1  # never retried
        with pytest.raises(TileUnavailableError, match="not an image.*sign in"):
            fetcher.get(server.url + "/page.png")
        with pytest.raises(TileUnavailableError, match=r"nothing answers at 127\.0\.0\.1:1 "):
            fetcher.get("http://127.0.0.1:1/x.png", retries=0)
    finally:
        server.stop()
    unknown = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    reason, unreachable = _network_reason(unknown, "https://a.invalid/x")
    assert reason == ("the host name of a.invalid cannot be resolved (no network, or a wrong "
                      "address)") and unreachable


def test_the_rate_cap_spaces_requests_across_threads(tmp_path):
    server = _server(tmp_path)
    try:
        params = NetworkParams(cache=False, max_requests_per_second=20)
        limiter, stats = RateLimiter(20), FetchStats()
        fetchers = [HttpFetcher(params, limiter=limiter, stats=stats) for _ in range(4)]
        started = time.monotonic()
        threads = [threading.Thread(target=lambda f=f: [f.get(server.url + "/ok.png")
                                                        for _ in range(5)]) for f in fetchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert stats.counts["requests"] == 20
        assert time.monotonic() - started >= 19 / 20 - 0.05
    finally:
        server.stop()


def test_the_disk_cache_answers_again_stays_capped_and_keeps_no_url(tmp_path):
    server = _server(tmp_path / "www")
    try:
        cache = TileCache(tmp_path / "cache", max_bytes=10_000, max_age_s=3600)
        fetcher = HttpFetcher(FAST, cache=cache)
        url = server.url + "/ok.png?token=SECRET"
        first = fetcher.get(url)
        assert fetcher.get(url) == first and fetcher.get(server.url + "/none.png") is None
        assert fetcher.get(server.url + "/none.png") is None
        assert server.total == 2 and fetcher.stats.counts["cache_hits"] == 2
        stored = b"".join(path.read_bytes() + path.name.encode()
                          for path in (tmp_path / "cache").rglob("*") if path.is_file())
        assert b"SECRET" not in stored and b"127.0.0.1" not in stored
        for index in range(40):
            cache.put(f"https://x/{index}", b"x" * 1000)
        assert sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*.tile")) <= 10_000
    finally:
        server.stop()


# --- a web tile's pixels are the file's ------------------------------------------------------
def test_a_tile_read_from_xyz_tiles_has_the_pixels_of_the_same_window_of_the_file(
        tile_server, ucm_mosaic):
    from mapscribe.model.geo.raster_info import RasterInfo
    from mapscribe.model.geo.read_plan import prepare_reading
    from mapscribe.model.geo.reader import read_tile

    source = ImageSource.xyz(tile_server.url + "/xyz/{z}/{x}/{y}.png", zmax=19)
    info = RasterInfo.from_path(ucm_mosaic["tif"])
    area = BoundingBox(*info.bounds, crs="EPSG:3857")
    opened = open_source(source, FAST, area, input_size=224, ground_resolution_hint=0.3)
    params = ReadParams(output_size=224, batch_size=4)
    web_grid = plan_tiles(opened.info, area, TileGridParams(224, 0.3))
    file_grid = plan_tiles(info, area, TileGridParams(224, 0.3))
    assert web_grid.tile_size == file_grid.tile_size and len(web_grid) == len(file_grid) == 16
    plan = prepare_reading(ucm_mosaic["tif"], params)
    differences = []
    with rasterio.open(ucm_mosaic["tif"]) as dataset, \
            opened.reader(web_grid.tiles, params, opened.read_plan(params)) as reader:
        for batch in reader:
            for index, tile in enumerate(batch.tiles):
                file_tile = file_grid.tiles[tile.tile_id]
                expected, valid = read_tile(dataset, file_tile, plan, params)
                if valid == 1.0:  # inner tiles; edge ones differ in what fills past the edge
                    differences.append(np.abs(batch.pixels[index].astype(int)
                                              - expected.astype(int)).mean())
    assert len(differences) == 9
    assert max(differences) < 1.0  # the same pixels but for rounding in a few


# --- the reading pool ----------------------------------------------------------------------
class _SlowFetcher:
    def __init__(self, failing=(), delay=0.0):
        self.failing, self.delay = set(failing), delay

    def read(self, tile):
        time.sleep(self.delay * ((tile.tile_id * 7) % 5))  # out of order on purpose
        if tile.tile_id in self.failing:
            raise TileUnavailableError(f"tile {tile.tile_id}: HTTP 500 (after 5 tries)")
        return np.full((3, 8, 8), tile.tile_id % 256, np.uint8), 1.0

    def close(self):
        pass


def _grid(tmp_path, count):
    from mapscribe.model.geo.areas import WholeRaster
    from mapscribe.model.geo.raster_info import RasterInfo
    from rasters import write_raster

    path = write_raster(tmp_path / "r.tif", np.zeros((3, 8, 8 * count), np.uint8))
    return path, plan_tiles(RasterInfo.from_path(path), WholeRaster(),
                            TileGridParams(8, tile_size=8, tile_size_unit="pixels")).tiles


def test_several_threads_read_and_batches_keep_the_tiles_order(tmp_path):
    path, tiles = _grid(tmp_path, 40)
    params = ReadParams(output_size=8, batch_size=6, queue_depth=2)
    with TileReader(path, tiles, params, open_fetcher=lambda stop: _SlowFetcher(delay=0.004),
                    workers=6) as reader:
        batches = list(reader)
    ids = [tile.tile_id for batch in batches for tile in batch.tiles]
    assert ids == list(range(40))
    assert all(int(batch.pixels[i, 0, 0, 0]) == tile.tile_id
               for batch in batches for i, tile in enumerate(batch.tiles))


def test_failed_tiles_pass_with_their_reason_and_too_many_in_a_row_stop_the_reader(tmp_path):
    path, tiles = _grid(tmp_path, 30)
    params = ReadParams(output_size=8, batch_size=4)
    with TileReader(path, tiles, params, open_fetcher=lambda stop: _SlowFetcher({3, 4}),
                    workers=3, failure_limit=3) as reader:
        batches = list(reader)
    first = batches[0]
    assert first.failure(3) == "tile 3: HTTP 500 (after 5 tries)" and first.is_nodata[3]
    assert batches[1].failure(0) is not None and reader.failed == 2
    with TileReader(path, tiles, params, open_fetcher=lambda stop: _SlowFetcher(range(10, 30)),
                    workers=3, failure_limit=5) as reader:
        seen = []
        with pytest.raises(SourceError, match="stopped delivering imagery: 5 tiles in a row"):
            for batch in reader:
                seen += [tile.tile_id for tile in batch.tiles]
    assert seen == list(range(12))  # every batch before the fifth failure in a row
    assert not reader.is_alive


def test_the_pool_stays_bounded_ahead_of_a_slow_consumer(tmp_path):
    path, tiles = _grid(tmp_path, 60)
    params = ReadParams(output_size=8, batch_size=4, queue_depth=2)
    reader = TileReader(path, tiles, params, open_fetcher=lambda stop: _SlowFetcher(),
                        workers=4)
    for _batch in reader:
        time.sleep(0.3)
        break
    assert not reader.is_alive
    assert reader.tiles_read <= 4 + (2 + 1) * 4 + 3  # consumed, queued and in flight
