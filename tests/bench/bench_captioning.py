"""Captioning a raster: memory and speed.

1. Peak memory captioning a generated 20,000 × 20,000 px tiled GeoTIFF against a 2,000 ×
   2,000 one, same model, same number of tiles (100 tiles of 2,000 px and of 200 px, both
   resampled to the model's input): the ratio should stay near 1, since memory is bounded by
   the batch, not the raster. Each run is a fresh process that first loads torch and the model
   (the baseline); a thread samples the resident memory during the run. Reported: the peak, and
   what the run added above the baseline (the pipeline's working memory).
2. Pipeline tiles/s against two upper bounds measured in the same run on the same windows:
   the raw rasterio read loop alone, and the model alone on tensors already in memory.

Usage: python tests/bench/bench_captioning.py [--model M] [--device cpu] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, record

DEFAULT_MODEL = REPO / "resources" / "default.mscap"


def make_raster(path: Path, size: int) -> Path:
    """A tiled, compressed 3-band GeoTIFF of `size`² px with a smooth pattern (it compresses
    well, so the 20,000² file stays small on disk), written block by block."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                   crs="EPSG:32633", transform=from_origin(500000, 5000000, 0.5, 0.5),
                   tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    with rasterio.open(path, "w", **profile) as dataset:
        for _, window in dataset.block_windows(1):
            rows = np.arange(window.row_off, window.row_off + window.height)[:, None]
            cols = np.arange(window.col_off, window.col_off + window.width)[None, :]
            base = ((rows // 97 + cols // 131) % 7 * 30 + 20).astype(np.uint8)
            block = np.stack([base, (base * 3) % 251, 255 - base])
            dataset.write(block, window=Window(window.col_off, window.row_off, window.width,
                                               window.height))
    return path


CHILD = r"""
import json, resource, sys, threading, time
from pathlib import Path

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

raster, model, out, tile, device = sys.argv[1:6]
# Warm up: torch, the engine and the model loaded once, so the baseline holds what every run
# needs whatever the raster; what the run adds on top is the pipeline's working memory.
from mapscribe.model.jobs.caption import CaptionRasterParams, caption_raster
from mapscribe.model.modelfile.weights import load_model
load_model(model, device)
baseline = rss_mb()
peak = [baseline]
running = [True]
def sample():
    while running[0]:
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.02)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
started = time.perf_counter()
result = caption_raster(CaptionRasterParams(raster=raster, model=model, output=out,
                                            tile_size=int(tile), tile_size_unit="pixels",
                                            batch_size=8, beam_size=3, device=device,
                                            overwrite=True, levels=1))  # the 100 tiles alone
running[0] = False
sampler.join()
print(json.dumps({"tiles": result.tiles_total, "captioned": result.captioned,
                  "tiles_per_s": result.tiles_per_second,
                  "seconds": time.perf_counter() - started,
                  "baseline_rss_mb": baseline, "peak_rss_mb": peak[0],
                  "run_added_mb": peak[0] - baseline,
                  "process_peak_rss_mb":
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def caption_in_child(raster: Path, model: Path, out: Path, tile: int, device: str) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(raster), str(model), str(out),
                             str(tile), device], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def upper_bounds(raster: Path, model: Path, tile: int, device: str) -> dict:
    """The read loop alone and the model alone, over the same windows as the pipeline."""
    import rasterio
    import torch

    from mapscribe.model.geo.areas import WholeRaster
    from mapscribe.model.geo.raster_info import RasterInfo
    from mapscribe.model.geo.read_plan import ReadParams, prepare_reading
    from mapscribe.model.geo.reader import read_tile
    from mapscribe.model.geo.tiling import TileGridParams, plan_tiles
    from mapscribe.model.modelfile.weights import load_model
    from mapscribe.model.nn.config import DecodingParams

    grid = plan_tiles(RasterInfo.from_path(raster), WholeRaster(),
                      TileGridParams(tile_size=tile, tile_size_unit="pixels"))
    params = ReadParams()
    plan = prepare_reading(raster, params)
    started = time.perf_counter()
    pixels = []
    with rasterio.Env(GDAL_CACHEMAX=128), rasterio.open(raster) as dataset:
        for window in grid.tiles:
            pixels.append(read_tile(dataset, window, plan, params)[0])
    read_rate = len(grid.tiles) / (time.perf_counter() - started)

    captioner = load_model(model, device)
    batch = torch.from_numpy(__import__("numpy").stack(pixels)).to(device)
    decoding = DecodingParams(beam_size=3, max_length=20)
    captioner.caption_images(batch[:8], decoding)  # warm-up
    started = time.perf_counter()
    for start in range(0, len(batch), 8):
        captioner.caption_images(batch[start:start + 8], decoding)
    if batch.is_cuda:
        torch.cuda.synchronize()
    model_rate = len(batch) / (time.perf_counter() - started)
    return {"tiles": len(grid.tiles), "read_loop_tiles_per_s": read_rate,
            "model_alone_tiles_per_s": model_rate}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", help="folder for the generated rasters (default: temporary)")
    args = parser.parse_args()
    model = Path(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        small = folder / "small_2000.tif"
        big = folder / "big_20000.tif"
        for path, size in ((small, 2000), (big, 20000)):
            if not path.exists():
                started = time.perf_counter()
                make_raster(path, size)
                print(f"generated {path} in {time.perf_counter() - started:.0f} s",
                      file=sys.stderr)
        small_run = caption_in_child(small, model, folder / "small.gpkg", 200, args.device)
        big_run = caption_in_child(big, model, folder / "big.gpkg", 2000, args.device)
        bounds = upper_bounds(big, model, 2000, args.device)
    record(f"captioning_{args.device}", {
        "model": str(model),
        "small_2000px": small_run, "big_20000px": big_run,
        "peak_memory_ratio_big_over_small": big_run["peak_rss_mb"] / small_run["peak_rss_mb"],
        "added_memory_ratio_big_over_small": big_run["run_added_mb"]
        / max(1e-9, small_run["run_added_mb"]),
        "upper_bounds_on_big": bounds,
        "pipeline_over_read_loop": big_run["tiles_per_s"] / bounds["read_loop_tiles_per_s"],
        "pipeline_over_model_alone": big_run["tiles_per_s"] / bounds["model_alone_tiles_per_s"],
        "note": "ratios near 1 mean the pipeline runs as fast as its slower part allows"})


if __name__ == "__main__":
    main()
