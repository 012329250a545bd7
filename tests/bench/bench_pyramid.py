"""What the caption pyramid costs: captioning the sample raster with its coarser levels
(``levels='auto'``) against the detail tiles alone (``levels=1``), same model, same
parameters, in one process after a warm-up run.

The issue's expectation is "about a third more tiles"; a coarse tile also reads a larger
window (2^k detail tiles a side, resampled to the model's input), so the time ratio may be
above the tile ratio. Reported: tiles, captioning-loop seconds and their ratios; the detail-only
run is repeated last, so a machine whose speed drifted during the benchmark shows it.

Usage: python tests/bench/bench_pyramid.py [--model M] [--raster R] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import REPO, record

DEFAULT_MODEL = REPO / "resources" / "default.mscap"
SAMPLE = REPO / "resources" / "sample" / "naip_north_dakota_5m.tif"


def run(raster: Path, model: Path, out: Path, levels, device: str) -> dict:
    from mapscribe.model.jobs.caption import CaptionRasterParams, caption_raster

    result = caption_raster(CaptionRasterParams(raster=raster, model=model, output=out,
                                                levels=levels, device=device, overwrite=True))
    loop = result.processed / result.tiles_per_second if result.tiles_per_second else 0.0
    return {"levels": levels, "level_tiles": result.level_tiles, "tiles": result.processed,
            "loop_seconds": round(loop, 2), "tiles_per_second": round(result.tiles_per_second,
                                                                      2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--raster", type=Path, default=SAMPLE)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "grid.gpkg"
        run(args.raster, args.model, out, 1, args.device)  # warm-up: caches, model, threads
        detail = run(args.raster, args.model, out, 1, args.device)
        pyramid = run(args.raster, args.model, out, "auto", args.device)
        again = run(args.raster, args.model, out, 1, args.device)
    baseline = (detail["loop_seconds"] + again["loop_seconds"]) / 2
    record("pyramid", {
        "raster": args.raster.name, "model": args.model.name, "device": args.device,
        "detail_only": detail, "pyramid": pyramid, "detail_only_again": again,
        "tile_ratio": round(pyramid["tiles"] / detail["tiles"], 3),
        "time_ratio": round(pyramid["loop_seconds"] / baseline, 3) if baseline else None,
        "drift": round(again["loop_seconds"] / detail["loop_seconds"], 3)
        if detail["loop_seconds"] else None,
    })


if __name__ == "__main__":
    main()
