"""Captioning from a web tile service: is the network latency hidden?

A mosaic GeoTIFF of 64 UCM images (8 × 8, Web Mercator at zoom 19's 0.30 m) is cut into XYZ
tiles by gdal2tiles and served on loopback by the tests' TileServer with ``--latency`` (50 ms
by default) added to every request. The pipeline's tiles are the 64 images (67 m, read at
zoom 19). Runs in this process, same model:

1. the model alone on the 64 images already in memory (the upper bound: batches of 8);
2. the pipeline from the local GeoTIFF;
3. the pipeline from the XYZ service, disk cache off (every tile fetched), then again with
   the cache on and warm.

Reported: tiles/s of each, the ratios web / model alone (the issue asks for ≥ 0.8) and file /
model alone, the requests made and per second, cache hits, the most requests in flight at once,
and the peak resident memory during each run (sampled every 20 ms).

Usage: python tests/bench/bench_web.py [--model M] [--latency 0.05] [--connections 8]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

from common import REPO, SHARED_DATA, TEST_DATA, record

DEFAULT_MODEL = REPO / "resources" / "default.mscap"
CELLS = 64      # images in the mosaic
COLS = 8
ZOOM = 19       # 0.30 m per pixel at the equator: the UCM images' own resolution
BATCH = 8
BEAM = 3


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def peak_memory(into: dict) -> Iterator[None]:
    """Sample the resident memory while the block runs; ``into['peak_rss_mb']`` gets the peak."""
    peak = [_rss_mb()]
    running = [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        running[0] = False
        sampler.join()
        into["peak_rss_mb"] = round(peak[0], 1)


def ucm_images() -> List[Path]:
    shared = sorted((SHARED_DATA / "ucm-captions" / "images").glob("*.tif"))
    if len(shared) >= CELLS:
        return shared[::max(1, len(shared) // CELLS)][:CELLS]
    sample = sorted((TEST_DATA / "ucm-sample" / "images").iterdir())
    return (sample * (CELLS // len(sample) + 1))[:CELLS]


def model_alone(model: Path, cells, runtime: str) -> dict:
    import numpy as np

    from mapscribe.model.nn.config import DecodingParams
    from mapscribe.model.runtime.choice import open_runtime

    captioner = open_runtime(model, runtime, "cpu")
    pixels = np.stack(cells)
    decoding = DecodingParams(beam_size=BEAM)
    captioner.caption_batch(pixels[:BATCH], decoding)  # warm-up
    figures: dict = {}
    with peak_memory(figures):
        started = time.perf_counter()
        for start in range(0, len(pixels), BATCH):
            captioner.caption_batch(pixels[start:start + BATCH], decoding)
        seconds = time.perf_counter() - started
    figures.update(tiles=len(pixels), seconds=round(seconds, 2),
                   tiles_per_s=round(len(pixels) / seconds, 2), runtime=captioner.name)
    return figures


def pipeline(model: Path, raster, out: Path, area, tile_m: float, network, runtime: str
             ) -> dict:
    from mapscribe.model.jobs.caption import caption_raster
    from mapscribe.model.jobs.caption_params import CaptionRasterParams

    figures: dict = {}
    with peak_memory(figures):
        started = time.perf_counter()
        result = caption_raster(CaptionRasterParams(
            raster=raster, model=model, output=out, area=area, tile_size=tile_m,
            tile_size_unit="map", batch_size=BATCH,
            beam_size=BEAM, device="cpu", runtime=runtime, network=network, overwrite=True,
            levels=1))  # the 64 images alone, the tiles the model-alone bound captions
        seconds = time.perf_counter() - started
    # tiles_per_s: the engine's own rate over its captioning loop (reading, fetching, the model
    # and writing), as the model-alone figure leaves out loading the model.
    figures.update(tiles=result.tiles_total, captioned=result.captioned, failed=result.failed,
                   seconds=round(seconds, 2), tiles_per_s=round(result.tiles_per_second, 2),
                   network=result.network)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runtime", default="auto")
    args = parser.parse_args()
    model = Path(args.model)

    import rasterio

    from fixtures.tile_server import TileServer
    from fixtures.web import mercator_mosaic, ucm_cells, xyz_tiles, zoom_resolution
    from mapscribe.model.geo.areas import BoundingBox
    from mapscribe.model.geo.http_fetch import NetworkParams
    from mapscribe.model.geo.sources import ImageSource
    from mapscribe.model.modelfile.header import read_header

    size = read_header(model).config.input_size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cells = ucm_cells(ucm_images(), size)
        tif = mercator_mosaic(folder / "mosaic.tif", cells, cols=COLS, zoom=ZOOM)
        xyz_tiles(tif, folder / "www" / "xyz", f"17-{ZOOM}")
        with rasterio.open(tif) as dataset:
            area = BoundingBox(*dataset.bounds, crs="EPSG:3857")
        tile_m = size * zoom_resolution(ZOOM)  # one image per tile, read at zoom 19

        alone = model_alone(model, cells, args.runtime)
        from_file = pipeline(model, tif, folder / "file.gpkg", area, tile_m, NetworkParams(),
                             args.runtime)
        with TileServer(folder / "www") as server:
            server.latency = args.latency
            source = ImageSource.xyz(server.url + "/xyz/{z}/{x}/{y}.png", zmax=ZOOM)
            cold = NetworkParams(cache=False, max_requests_per_second=0,
                                 connections=args.connections)
            from_web = pipeline(model, source, folder / "web.gpkg", area, tile_m, cold,
                                args.runtime)
            from_web["server_requests"] = server.total
            from_web["server_most_in_flight"] = server.max_in_flight
            from_web["requests_per_s"] = round(server.total / from_web["seconds"], 1)
            warm_params = NetworkParams(cache=True, cache_dir=str(folder / "cache"),
                                        max_requests_per_second=0,
                                        connections=args.connections)
            pipeline(model, source, folder / "fill.gpkg", area, tile_m, warm_params,
                     args.runtime)
            server.reset_counts()
            warm = pipeline(model, source, folder / "warm.gpkg", area, tile_m, warm_params,
                            args.runtime)
            warm["server_requests"] = server.total

    record("web_xyz", {
        "model": str(model), "tiles": CELLS, "latency_s": args.latency,
        "connections": args.connections,
        "model_alone": alone, "from_geotiff": from_file, "from_xyz_cold": from_web,
        "from_xyz_warm_cache": warm,
        "xyz_cold_over_model_alone": round(from_web["tiles_per_s"] / alone["tiles_per_s"], 3),
        "xyz_warm_over_model_alone": round(warm["tiles_per_s"] / alone["tiles_per_s"], 3),
        "geotiff_over_model_alone": round(from_file["tiles_per_s"] / alone["tiles_per_s"], 3),
        "note": "≥ 0.8 for xyz_cold_over_model_alone means the latency is hidden by fetching "
                "tiles while the model works"})


if __name__ == "__main__":
    main()
