"""Caption quality of the training recipe: train on a dataset's train split (model selection on
its val split), report BLEU-1..4, METEOR, ROUGE-L and CIDEr-D on its test split with beams 1, 3
and 5, and the training time. Runs the real command line, so the figures are what
`mapscribe train` gives.

Usage: python tests/bench/bench_quality.py DATASET_FOLDER [DATASET_FOLDER …] -- RECIPE FLAGS
       (`make bench-quality` passes the recipe of the default model; see the Makefile)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, record

MAPSCRIBE = str(Path(sys.executable).with_name("mapscribe"))
PROTOCOL = {
    "splits": "train on the dataset's train split, choose the epoch on val (CIDEr-D of greedy "
              "captions), report on test",
    "tokeniser": "mapscribe.model.data.text.tokenize (lower-case words, punctuation dropped) for "
                 "the vocabulary, training and metrics alike; no PTB tokeniser",
    "metrics": "MapScribe's implementation of the COCO caption evaluation (BLEU-1..4, ROUGE-L, "
               "CIDEr-D equal to pycocoevalcap's to 1e-6; METEOR 1.5 jar)",
    "decoding": "beam search, length penalty 1 (mean log-probability), at most 20 tokens",
}


def main() -> None:
    if "--" not in sys.argv:
        raise SystemExit(__doc__)
    split = sys.argv.index("--")
    folders, recipe = sys.argv[1:split], sys.argv[split + 1:]
    out_dir = REPO / "build" / "bench-quality"
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {"protocol": PROTOCOL, "recipe": " ".join(recipe), "datasets": {}}
    for folder in map(Path, folders):
        model = out_dir / f"{folder.name}.mscap"
        started = time.perf_counter()
        subprocess.run([MAPSCRIBE, "train", str(folder), "--out", str(model), "--overwrite",
                        "--feature-cache", str(REPO / "build" / "feature-cache"), *recipe],
                       check=True)
        train_s = time.perf_counter() - started
        results = {"train_seconds": train_s}
        for beam in (1, 3, 5):
            evaluation = subprocess.run(
                [MAPSCRIBE, "evaluate", str(model), str(folder), "--split", "test", "--beam",
                 str(beam), "--json"] + ([] if beam == 3 else ["--no-meteor"]),
                check=True, capture_output=True, text=True)
            report = json.loads(evaluation.stdout)
            results[f"test_beam{beam}"] = report["metrics"]
            results["test_images"] = report["images"]
        header = subprocess.run([sys.executable, "-c", (
            "import json, sys; from mapscribe.model.modelfile.header import read_header; "
            "h = read_header(sys.argv[1]); print(json.dumps(h.training))"), str(model)],
            check=True, capture_output=True, text=True)
        results["training"] = json.loads(header.stdout)
        figures["datasets"][folder.name] = results
    record("quality", figures)


if __name__ == "__main__":
    main()
