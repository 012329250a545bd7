"""Training speed: images per second with the cached frozen encoder against end-to-end
training (the encoder run forward and backward on every image), same data, same decoder.

Usage: python tests/bench/bench_training.py [--images 96] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from common import SHARED_DATA, record, require
from mapscribe.model.api import ImageCaptioner, prepare_data

DECODER = dict(embed_size=256, hidden_size=512, attention_size=256, context_size=512,
               dropout=0.5)


def subset(tmp, images: int):
    """The first `images` UCM train images (of all classes), in a folder of their own."""
    source = require(SHARED_DATA / "ucm-captions")
    document = json.loads((source / "annotations.json").read_text())
    train = [item for item in document["images"] if item["split"] == "train"]
    chosen = train[:: max(1, len(train) // images)][:images]
    (tmp / "images").mkdir(parents=True)
    for item in chosen:
        (tmp / "images" / item["filename"]).symlink_to(source / "images" / item["filename"])
    (tmp / "annotations.json").write_text(json.dumps({"images": chosen}))
    return tmp


def epoch_rate(freeze: bool, folder, device: str, epochs: int) -> dict:
    torch.manual_seed(0)
    data = prepare_data(folder, min_word_count=1, batch_size=16, val_split_pct=0.0)
    captioner = ImageCaptioner(data, backbone="efficientnet_lite0", decoder_params=DECODER,
                               freeze_encoder=freeze, device=device)
    started = time.perf_counter()
    result = captioner.fit(epochs=epochs, lr=1e-3, early_stopping=False, feature_variants=1)
    total = time.perf_counter() - started
    epoch_seconds = [h.seconds for h in result.history]
    images = len(data.train)
    return {"images": images, "epochs": epochs, "total_s": total,
            "epoch_s": epoch_seconds,
            "images_per_s_per_epoch": images / (sum(epoch_seconds) / len(epoch_seconds)),
            "images_per_s_overall": images * epochs / total}


def main() -> None:
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = subset(Path(tmp) / "data", args.images)
        cached = epoch_rate(True, folder, args.device, args.epochs)
        end_to_end = epoch_rate(False, folder, args.device, 1)
    record(f"training_{args.device}", {
        "cached_frozen_encoder": cached, "end_to_end": end_to_end,
        "epoch_speed_ratio": cached["images_per_s_per_epoch"]
        / end_to_end["images_per_s_per_epoch"],
        "overall_speed_ratio_for_epochs": cached["images_per_s_overall"]
        / end_to_end["images_per_s_overall"]})


if __name__ == "__main__":
    main()
