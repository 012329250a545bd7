"""How a model's captions and themes hold up when tiles come coarser than its training images.

For each test split given: the images as they are, degraded ×2 and ×4 (down-sampled by that
factor and back to their size, as a web basemap at another zoom or a resampled raster gives
them), and "zoomed out": 2 × 2 mosaics of four test images of the same scene class, resampled
to the input size (a tile four times larger on the ground). CIDEr-D and theme accuracy of each,
and their ratio to the undegraded figures. Each variant is written as a dataset folder of PNG
files (lossless) under build/bench-robustness and scored by `mapscribe evaluate`, so the figures
are what the command line gives.

Usage: python tests/bench/bench_robustness.py MODEL DATASET_FOLDER [DATASET_FOLDER …]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

from common import REPO, record
from mapscribe.model import read_caption_folder

MAPSCRIBE = str(Path(sys.executable).with_name("mapscribe"))
FACTORS = (2, 4)
MOSAIC = 2            # images a side


def _write_folder(folder: Path, dataset: str, entries: List[Dict]) -> None:
    (folder / "annotations.json").write_text(json.dumps({"dataset": f"{dataset} (derived)",
                                                         "images": entries}))


def _entry(name: str, captions: List[str], scene) -> Dict:
    return {"filename": name, "split": "test", "scene": scene,
            "sentences": [{"raw": caption} for caption in captions]}


def degraded(source: Path, out: Path, factor: int) -> Path:
    from PIL import Image

    folder = read_caption_folder(source, check_images="none")
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    entries = []
    for item in folder.split("test"):
        image = Image.open(item.image_path).convert("RGB")
        small = image.resize((max(1, image.width // factor), max(1, image.height // factor)),
                             Image.BILINEAR, reducing_gap=None)
        name = Path(item.filename).with_suffix(".png").name
        small.resize(image.size, Image.BILINEAR).save(out / "images" / name)
        entries.append(_entry(name, item.captions, item.scene))
    _write_folder(out, folder.name, entries)
    return out


def mosaics(source: Path, out: Path, size: int = 224) -> Path:
    from PIL import Image

    folder = read_caption_folder(source, check_images="none")
    by_scene = defaultdict(list)
    for item in folder.split("test"):
        if item.scene:
            by_scene[item.scene].append(item)
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    entries = []
    for scene, records in sorted(by_scene.items()):
        for start in range(0, len(records) - MOSAIC * MOSAIC + 1, MOSAIC * MOSAIC):
            group = records[start:start + MOSAIC * MOSAIC]
            canvas = Image.new("RGB", (size * MOSAIC, size * MOSAIC))
            for index, item in enumerate(group):
                tile = Image.open(item.image_path).convert("RGB").resize((size, size),
                                                                            Image.BILINEAR)
                canvas.paste(tile, ((index % MOSAIC) * size, (index // MOSAIC) * size))
            name = f"{scene}-{start // (MOSAIC * MOSAIC)}.png"
            canvas.resize((size, size), Image.BILINEAR, reducing_gap=None).save(
                out / "images" / name)
            entries.append(_entry(name, [c for r in group for c in r.captions], scene))
    _write_folder(out, folder.name, entries)
    return out


def evaluate(model: Path, folder: Path) -> Dict:
    result = subprocess.run([MAPSCRIBE, "evaluate", str(model), str(folder), "--split", "test",
                             "--no-meteor", "--json"], check=True, capture_output=True,
                            text=True)
    report = json.loads(result.stdout)
    return {"images": report["images"], "CIDEr-D": report["metrics"].get("CIDEr-D"),
            "BLEU-4": report["metrics"].get("BLEU-4"),
            "theme accuracy": report["metrics"].get("theme accuracy")}


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    model, folders = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    work = REPO / "build" / "bench-robustness"
    figures: Dict = {"model": model.name, "protocol": {
        "degraded": "each test image down-sampled by the factor (bilinear, Pillow) and back to "
                    "its size, saved as PNG",
        "zoomed_out": f"{MOSAIC}×{MOSAIC} mosaics of test images of the same scene class, "
                      "resampled to 224 px; references: the captions of the four images",
        "decoding": "beam 3", "metrics": "CIDEr-D and theme accuracy of `mapscribe evaluate`"},
        "datasets": {}}
    for folder in folders:
        base = evaluate(model, folder)
        rows = {"undegraded": base}
        for factor in FACTORS:
            rows[f"x{factor}"] = evaluate(model, degraded(folder, work / f"{folder.name}-x{factor}",
                                                          factor))
        rows["zoomed_out"] = evaluate(model, mosaics(folder, work / f"{folder.name}-mosaic"))
        for row in rows.values():
            if base["CIDEr-D"]:
                row["CIDEr-D_ratio"] = row["CIDEr-D"] / base["CIDEr-D"]
        figures["datasets"][folder.name] = rows
    record("robustness", figures)


if __name__ == "__main__":
    main()
