"""Batched beam search against one-image-at-a-time beam search: same weights, 64 images,
beam 3. Reports captions per second of each and the ratio (goal: ≥ 10× on a 2-core CPU).

The one-image-at-a-time baseline is the reference tutorial's way: the K beams of one image are
the batch, images go one after another. It runs the very same tensor code with B = 1, so the
ratio measures batching over images alone. The plain Python reference of the tests
(tests/model/reference_beam.py) is timed too, on fewer images, and is much slower still.

Usage: python tests/bench/bench_beam_search.py [--model M] [--images 64] [--beam 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import SHARED_DATA, TEST_DATA, record, require
from mapscribe.model.data.features import encode_records
from mapscribe.model.data.folder import read_caption_folder
from mapscribe.model.modelfile.weights import load_model
from mapscribe.model.nn.beam_search import beam_search
from mapscribe.model.nn.config import DecodingParams
from reference_beam import reference_beam_search


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(TEST_DATA.parent.parent / "resources" /
                                               "default.mscap"))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    captioner = load_model(args.model, args.device)
    records = read_caption_folder(require(SHARED_DATA / "rsicd-subset"),
                                  check_images="none").split("test")[:args.images]
    features = encode_records(captioner, records).batch(torch.arange(len(records)),
                                                        device=args.device)
    params = DecodingParams(beam_size=args.beam, max_length=20)
    decoder = captioner.decoder
    beam_search(decoder, features[:4], params)  # warm-up

    started = time.perf_counter()
    batched = beam_search(decoder, features, params)
    if features.is_cuda:
        torch.cuda.synchronize()
    batched_s = time.perf_counter() - started

    started = time.perf_counter()
    one_by_one = [beam_search(decoder, features[i:i + 1], params) for i in range(len(records))]
    if features.is_cuda:
        torch.cuda.synchronize()
    one_by_one_s = time.perf_counter() - started

    python_images = min(8, len(records))
    started = time.perf_counter()
    python = [reference_beam_search(decoder, features[i:i + 1], params)
              for i in range(python_images)]
    python_s = time.perf_counter() - started

    def words(result, row):
        return result.tokens[row, :int(result.lengths[row])].tolist()

    record(f"beam_search_{args.device}", {
        "images": len(records), "beam": args.beam, "model": args.model,
        "batched_captions_per_s": len(records) / batched_s,
        "one_image_at_a_time_captions_per_s": len(records) / one_by_one_s,
        "speed_ratio": one_by_one_s / batched_s,
        "python_reference_captions_per_s": python_images / python_s,
        "identical_captions_one_by_one": sum(words(batched, i) == words(one_by_one[i], 0)
                                             for i in range(len(records))),
        "identical_captions_python_reference": sum(words(batched, i) == python[i][0]
                                                   for i in range(python_images)),
        "compared_with_python_reference": python_images})


if __name__ == "__main__":
    main()
