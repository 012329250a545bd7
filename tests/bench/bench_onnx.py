"""Captioning with ONNX Runtime against captioning with torch, on this CPU: same tiles, same
beam, same model (the bundled default model, which carries its ONNX graphs).

1. The model alone: the same tiles of the sample raster (uint8, in memory), batches of 8, beam
   3, through each runtime's ``caption_batch``. Runs alternate torch, ONNX, torch, ONNX… and the
   best run of each is kept (the machine is shared, so the slowest runs measure the neighbours).
   The parts too: the encoder alone, and the beam search alone on the encoder's features
   (torch's search with the torch decoder; the numpy search with the ONNX decoder step). All
   of it twice: with each runtime's default threads (one per core), and with one thread each
   (on a machine shared with other work, threads waiting for a core distort the first).
2. The pipeline: ``caption_raster`` over the whole sample raster with the runtime torch and with
   the runtime onnx, each in a fresh process (the ONNX one with torch made unimportable), twice,
   alternating, the best run kept: tiles/s and the process's peak resident memory.
3. What each runtime installs: the size on disk of onnxruntime (and the two small packages it
   adds), of torch + torchvision, and of the CUDA libraries the default torch wheel brings.

The baseline of every ratio is torch, measured in the same run. Captions are compared too.

Usage: python tests/bench/bench_onnx.py [--model M] [--tiles 96] [--beam 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from common import REPO, record

DEFAULT_MODEL = REPO / "resources" / "default.mscap"
SAMPLE_RASTER = REPO / "resources" / "sample" / "naip_north_dakota_5m.tif"
TILE_PIXELS = 64   # 15 × 12 tiles of the sample raster, each resampled to the model's 224 px
BATCH = 8


def read_tiles(raster: Path, count: int) -> np.ndarray:
    """The first ``count`` tiles of the raster as the captioning job reads them."""
    import rasterio

    from mapscribe.model.geo.areas import WholeRaster
    from mapscribe.model.geo.raster_info import RasterInfo
    from mapscribe.model.geo.read_plan import ReadParams, prepare_reading
    from mapscribe.model.geo.reader import read_tile
    from mapscribe.model.geo.tiling import TileGridParams, plan_tiles

    grid = plan_tiles(RasterInfo.from_path(raster), WholeRaster(),
                      TileGridParams(tile_size=TILE_PIXELS, tile_size_unit="pixels"))
    params = ReadParams()
    plan = prepare_reading(raster, params)
    with rasterio.open(raster) as dataset:
        tiles = [read_tile(dataset, window, plan, params)[0] for window in grid.tiles[:count]]
    return np.stack(tiles)


def _rate(function, tiles: np.ndarray) -> float:
    started = time.perf_counter()
    for begin in range(0, len(tiles), BATCH):
        function(tiles[begin:begin + BATCH])
    return len(tiles) / (time.perf_counter() - started)


def model_alone(model: Path, tiles: np.ndarray, beam: int, rounds: int,
                threads: Optional[int] = None) -> dict:
    """``threads``: MAPSCRIBE_THREADS for both runtimes (None: each runtime's default, one
    thread per core)."""
    import torch

    if threads is not None:
        os.environ["MAPSCRIBE_THREADS"] = str(threads)

    from mapscribe.model.nn.beam_search import beam_search
    from mapscribe.model.nn.config import DecodingParams
    from mapscribe.model.runtime import numpy_beam
    from mapscribe.model.runtime.choice import open_runtime

    decoding = DecodingParams(beam_size=beam, max_length=20)
    runtimes = {"torch": open_runtime(model, "torch", "cpu"),
                "onnx": open_runtime(model, "onnx", "cpu")}
    torch_captioner, graphs = runtimes["torch"].captioner, runtimes["onnx"].graphs

    def torch_encode(batch):
        with torch.no_grad():
            return torch_captioner.encode(torch.from_numpy(batch))

    torch_features = torch.cat([torch_encode(tiles[i:i + BATCH])
                                for i in range(0, len(tiles), BATCH)])
    onnx_features = np.concatenate([graphs.encode(tiles[i:i + BATCH])["features"]
                                    for i in range(0, len(tiles), BATCH)])
    index = {"i": 0}

    def torch_search(batch):
        begin = index["i"]
        index["i"] = (begin + len(batch)) % len(tiles)
        beam_search(torch_captioner.decoder, torch_features[begin:begin + len(batch)], decoding)

    def numpy_search(batch):
        begin = index["i"]
        index["i"] = (begin + len(batch)) % len(tiles)
        numpy_beam.beam_search(graphs.start, graphs.step, onnx_features[begin:begin + len(batch)],
                               decoding)

    parts = {
        "caption": {name: (lambda batch, r=runtime: r.caption_batch(batch, decoding))
                    for name, runtime in runtimes.items()},
        "encoder": {"torch": torch_encode, "onnx": graphs.encode},
        "beam_search": {"torch": torch_search, "onnx": numpy_search},
    }
    for functions in parts.values():  # warm-up
        for function in functions.values():
            function(tiles[:BATCH])
    rates: dict = {part: {"torch": [], "onnx": []} for part in parts}
    for _ in range(rounds):
        for part, functions in parts.items():
            for name, function in functions.items():
                index["i"] = 0
                rates[part][name].append(_rate(function, tiles))
    captions = {name: [c.text for i in range(0, len(tiles), BATCH)
                       for c in runtime.caption_batch(tiles[i:i + BATCH], decoding)]
                for name, runtime in runtimes.items()}
    figures = {"tiles": len(tiles), "batch": BATCH, "beam": beam, "rounds": rounds,
               "threads": threads or torch.get_num_threads(),
               "identical_captions": sum(a == b for a, b in zip(captions["torch"],
                                                                 captions["onnx"]))}
    for part, by_runtime in rates.items():
        best = {name: max(values) for name, values in by_runtime.items()}
        figures[part] = {"torch_tiles_per_s": best["torch"], "onnx_tiles_per_s": best["onnx"],
                         "onnx_over_torch": best["onnx"] / best["torch"],
                         "all_runs": by_runtime}
    return figures


CHILD = r"""
import json, sys, time
from pathlib import Path
runtime, raster, model, out, tile, beam = sys.argv[1:7]
if runtime == "onnx":
    sys.modules["torch"] = None   # as where torch is not installed
from mapscribe.model.jobs.caption import CaptionRasterParams, caption_raster
started = time.perf_counter()
result = caption_raster(CaptionRasterParams(
    raster=raster, model=model, output=out, tile_size=int(tile), tile_size_unit="pixels",
    batch_size=8, beam_size=int(beam), device="cpu", runtime=runtime, overwrite=True,
    levels=1))  # the detail tiles alone, as the runtime comparison counts them
print(json.dumps({"tiles": result.processed, "captioned": result.captioned,
                  "tiles_per_s": result.tiles_per_second,
                  "seconds_with_start_up": time.perf_counter() - started,
                  "device": result.device,
                  # VmHWM, not ru_maxrss: that one keeps the parent's peak across fork + exec
                  "peak_rss_mb": [int(line.split()[1]) / 1024 for line in
                                  Path("/proc/self/status").read_text().splitlines()
                                  if line.startswith("VmHWM:")][0],
                  "torch_imported": bool(sys.modules.get("torch"))}))
"""


def pipeline(model: Path, beam: int, rounds: int) -> dict:
    """Each runtime's best of ``rounds`` runs, alternating."""
    import sqlite3

    runs: dict = {}
    layers = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for runtime in ("torch", "onnx"):
                out = Path(folder) / f"{runtime}.gpkg"
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", CHILD, runtime,
                                       str(SAMPLE_RASTER), str(model), str(out),
                                       str(TILE_PIXELS), str(beam)],
                                      capture_output=True, text=True, check=True)
                run = json.loads(done.stdout.strip().splitlines()[-1])
                run["process_seconds"] = time.perf_counter() - started
                if run["tiles_per_s"] > runs.get(runtime, {}).get("tiles_per_s", 0.0):
                    runs[runtime] = run
                with sqlite3.connect(out) as connection:
                    layers[runtime] = dict(connection.execute(
                        "SELECT tile_id, caption FROM captions").fetchall())
    return {**runs, "onnx_over_torch_tiles_per_s":
            runs["onnx"]["tiles_per_s"] / runs["torch"]["tiles_per_s"],
            "onnx_over_torch_peak_memory": runs["onnx"]["peak_rss_mb"]
            / runs["torch"]["peak_rss_mb"],
            "identical_captions": sum(layers["onnx"].get(tile) == caption
                                      for tile, caption in layers["torch"].items()),
            "tiles_compared": len(layers["torch"])}


def _installed_mb(names) -> float:
    total = 0
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        total += sum(file.size or 0 for file in files)
    return total / 1e6


def install_sizes() -> dict:
    cuda = sorted({dist.metadata["Name"] for dist in metadata.distributions()
                   if dist.metadata["Name"]
                   and dist.metadata["Name"].lower().startswith(("nvidia-", "cuda-", "triton"))})
    return {
        "onnxruntime_with_flatbuffers_protobuf_mb": _installed_mb(
            ["onnxruntime", "flatbuffers", "protobuf"]),
        "torch_torchvision_mb": _installed_mb(["torch", "torchvision"]),
        "torch_cuda_libraries_mb": _installed_mb(cuda),
        "cuda_libraries": cuda,
        "versions": {name: metadata.version(name) for name in ("onnxruntime", "torch",
                                                                "torchvision")},
        "note": "installed sizes on disk; the wheels are smaller (compressed)",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--tiles", type=int, default=96)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = Path(args.model)
    tiles = read_tiles(SAMPLE_RASTER, args.tiles)
    load_before = os.getloadavg()[0]
    figures = {"model_alone": model_alone(model, tiles, args.beam, args.rounds),
               # One thread each: less at the mercy of other work on a shared machine.
               "model_alone_one_thread": model_alone(model, tiles, args.beam, args.rounds,
                                                     threads=1),
               "pipeline": pipeline(model, args.beam, min(2, args.rounds)),
               "install": install_sizes()}
    record("onnx_cpu", {"model": str(model), "raster": str(SAMPLE_RASTER),
                        "tile_pixels": TILE_PIXELS,
                        # other work on the machine: 1-minute load average before and after
                        "load_average": [load_before, os.getloadavg()[0]], **figures})


if __name__ == "__main__":
    main()
