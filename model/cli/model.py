"""``mapscribe train``, ``mapscribe evaluate`` and ``mapscribe predict``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import (
    CANCELLED,
    CaptionRasterParams,
    DecoderParams,
    EvaluateModelParams,
    TrainCaptionerParams,
    evaluate_model,
    train_captioner,
)
from ..atomic import write_text_atomic
from ..data.records import SPLITS
from ..jobs.distributed import is_quiet_rank
from ..modelfile.checks import check_caption_output
from ..nn.config import DecodingParams
from ..paths import check_not_an_input, check_writable
from ..runtime.base import RUNTIMES, TORCH, image_pixels
from ..runtime.choice import check_runtime, open_runtime
from ..training.paths import CHECKPOINT_SUFFIX
from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    StopOnCtrlC,
    TerminalProgressBar,
    default,
    json_text,
)
from .quiet_rank import run_quietly

# The engine's defaults, shown as the options' defaults (never restated here).
TRAIN = partial(default, TrainCaptionerParams)
EVALUATE = partial(default, EvaluateModelParams)
DECODER = partial(default, DecoderParams)
DECODING = partial(default, DecodingParams)


def _decoder_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoder parameters (arcgis.learn decoder_params names)")
    group.add_argument("--embed-size", type=int, default=DECODER("embed_size"))
    group.add_argument("--hidden-size", type=int, default=DECODER("hidden_size"))
    group.add_argument("--attention-size", type=int, default=DECODER("attention_size"))
    group.add_argument("--teacher-forcing", type=float, default=DECODER("teacher_forcing"),
                       help="probability of feeding the reference word; below 1, scheduled "
                            "sampling (default %(default)s)")
    group.add_argument("--dropout", type=float, default=DECODER("dropout"))
    group.add_argument("--pretrained-emb", metavar="FILE",
                       help="word vectors (fastText .vec or GloVe .txt) for the embeddings")


def add_model_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train a captioner on a dataset folder",
        description="Train an image captioner (ImageNet encoder + attention LSTM decoder) on "
                    "FOLDER (images/ + annotations.json, RSICD or COCO format) and write a model "
                    "file. Ctrl-C stops after the current batch and leaves a checkpoint that "
                    "--resume continues from.")
    train.add_argument("folder", metavar="FOLDER")
    train.add_argument("--out", required=True, metavar="MODEL", help="model file to write "
                       "(.mscap)")
    train.add_argument("--backbone", default=TRAIN("backbone"),
                       help="encoder: auto (best pretrained available offline), "
                            "efficientnet_lite0, resnet18/34/50/101, mobilenet_v3_large, "
                            "efficientnet_b0, convnext_tiny")
    train.add_argument("--encoder-weights", metavar="FILE", help="a state_dict file of ImageNet "
                       "weights for the backbone")
    train.add_argument("--grid-size", type=int, default=TRAIN("grid_size"),
                       help="attention grid cells a side (default %(default)s)")
    train.add_argument("--chip-size", type=int, default=TRAIN("chip_size"),
                       help="encoder input size in px (default %(default)s)")
    train.add_argument("--epochs", type=int, default=TRAIN("epochs"))
    train.add_argument("--lr", type=float, help="peak learning rate (default: lr_find picks)")
    train.add_argument("--batch-size", type=int, default=TRAIN("batch_size"))
    train.add_argument("--val-split-pct", type=float, default=TRAIN("val_split_pct"))
    train.add_argument("--min-word-count", type=int, default=TRAIN("min_word_count"))
    train.add_argument("--fine-tune", action="store_true",
                       help="train the encoder too (slower; default: frozen, cached features)")
    train.add_argument("--encoder-lr", type=float, default=TRAIN("encoder_lr"))
    train.add_argument("--feature-variants", type=int, default=TRAIN("feature_variants"),
                       help="flipped/rotated versions of each image cached (1..8, default "
                            "%(default)s)")
    train.add_argument("--feature-cache", metavar="DIR", help="keep encoder features on disk")
    train.add_argument("--resolution-augmentation", action="store_true",
                       help="also cache versions of the images seen ×1.5–×4 coarser (blurred, "
                            "JPEG): captions that hold up at other ground resolutions")
    train.add_argument("--no-theme-head", action="store_true",
                       help="no scene-theme head (by default there is one when the dataset's "
                            "images have scene classes)")
    train.add_argument("--attention-regularisation", type=float, metavar="W",
                       default=TRAIN("attention_regularisation"),
                       help="weight of the doubly stochastic attention penalty (default "
                            "%(default)s)")
    train.add_argument("--patience", type=int, default=TRAIN("early_stopping_patience"),
                       help="stop after this many epochs without a better CIDEr-D (0: never)")
    train.add_argument("--checkpoint", metavar="FILE",
                       help=f"checkpoint path (default MODEL{CHECKPOINT_SUFFIX})")
    train.add_argument("--resume", metavar="CHECKPOINT", help="continue an interrupted run")
    train.add_argument("--ground-resolution", type=float, metavar="M",
                       help="metres per pixel of the training images (stored in the model; "
                            "sets the default tile size when captioning)")
    train.add_argument("--half", action="store_true", help="store float16 weights")
    train.add_argument("--seed", type=int, default=TRAIN("seed"))
    train.add_argument("--device", default=TRAIN("device"))
    train.add_argument("--overwrite", action="store_true", help="replace an existing MODEL")
    train.add_argument("--distributed", action="store_true",
                       help="run as one of the processes that torchrun starts (also automatic "
                            "when torchrun starts more than one): DistributedDataParallel, "
                            "--batch-size images per process, so a step takes batch size × "
                            "processes; the learning rates (--lr, --encoder-lr) are multiplied "
                            "by √processes for that bigger batch. Rank 0 writes the checkpoint "
                            "and MODEL; --resume works with any number of processes. "
                            "MAPSCRIBE_CHECK_REPLICAS=1 checks after every step that every "
                            "process holds the same weights")
    _decoder_arguments(train)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate", help="score a model on a dataset split",
        description="Caption every image of a split by beam search and report BLEU-1..4, "
                    "METEOR (when Java is present), ROUGE-L and CIDEr-D.")
    evaluate.add_argument("model", metavar="MODEL")
    evaluate.add_argument("folder", metavar="FOLDER")
    evaluate.add_argument("--split", choices=SPLITS, default=EVALUATE("split"))
    evaluate.add_argument("--beam", type=int, default=EVALUATE("beam_size"))
    evaluate.add_argument("--max-length", type=int, default=EVALUATE("max_length"))
    evaluate.add_argument("--batch-size", type=int, default=EVALUATE("batch_size"))
    evaluate.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--predictions", metavar="FILE",
                          help="also write every predicted caption to FILE (JSON)")
    evaluate.add_argument("--record", action="store_true",
                          help="store the metrics in the model file's header, under "
                               "'<dataset folder name> <split>'")
    evaluate.add_argument("--device", default=EVALUATE("device"))
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="caption image files",
                                  description="Print a caption for each IMAGE.")
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("images", metavar="IMAGE", nargs="+")
    predict.add_argument("--beam", type=int, default=DECODING("beam_size"))
    predict.add_argument("--max-length", type=int, default=DECODING("max_length"))
    predict.add_argument("--attention", metavar="PNG",
                         help="draw where the model looked for each word (one PNG; with "
                              "several images, PNG gets each image's name added)")
    predict.add_argument("--json", action="store_true")
    predict.add_argument("--device", default=EVALUATE("device"))
    predict.add_argument("--runtime", choices=RUNTIMES,
                         default=default(CaptionRasterParams, "runtime"),
                         help="torch, or onnx (ONNX Runtime with the model file's graphs, see "
                              "export-onnx); auto (default): torch when it is installed")
    predict.set_defaults(handler=_predict)


# -- train --------------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    decoder = {"embed_size": args.embed_size, "hidden_size": args.hidden_size,
               "attention_size": args.attention_size, "teacher_forcing": args.teacher_forcing,
               "dropout": args.dropout, "pretrained_emb": args.pretrained_emb}
    params = TrainCaptionerParams(
        dataset=args.folder, out=args.out, backbone=args.backbone,
        grid_size=args.grid_size, chip_size=args.chip_size, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, val_split_pct=args.val_split_pct,
        min_word_count=args.min_word_count, decoder_params=decoder,
        freeze_encoder=not args.fine_tune, encoder_lr=args.encoder_lr,
        weights_path=args.encoder_weights, feature_variants=args.feature_variants,
        resolution_augmentation=args.resolution_augmentation,
        theme_head=not args.no_theme_head,
        feature_cache_dir=args.feature_cache, checkpoint=args.checkpoint,
        attention_regularisation=args.attention_regularisation,
        resume=args.resume, early_stopping_patience=args.patience, device=args.device,
        seed=args.seed, half=args.half, ground_resolution_m=args.ground_resolution,
        overwrite=args.overwrite, distributed=args.distributed)
    if is_quiet_rank():
        return run_quietly("mapscribe train", lambda stop: train_captioner(params, None, stop))
    with StopOnCtrlC("mapscribe train") as stop:
        result = train_captioner(params, progress=TerminalProgressBar(), cancelled=stop)
    if result.stopped == CANCELLED:
        if result.model_path:
            print(f"Interrupted while scoring: the trained model is in {result.model_path} "
                  f"(scores of {', '.join(result.metrics) or 'no split'} only).",
                  file=sys.stderr)
            _print_metric_table(result.metrics)
            return EXIT_INTERRUPTED
        print(f"Interrupted. A checkpoint is in {result.checkpoint_path}; continue with:\n"
              f"  mapscribe train {args.folder} --out {args.out} --epochs {args.epochs} "
              f"--resume {result.checkpoint_path}", file=sys.stderr)
        return EXIT_INTERRUPTED
    best = result.fit.best_epoch
    print(f"Model written to {result.model_path} (best epoch {best}, {result.stopped}).")
    _print_metric_table(result.metrics)
    return EXIT_OK


def _print_metric_table(metrics) -> None:
    names = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"]
    rows = {split: values for split, values in metrics.items()
            if any(name in values for name in names)}
    if not rows:
        return
    print(f"{'split':<8}" + "".join(f"{name:>9}" for name in names))
    for split, values in rows.items():
        cells = "".join(f"{values[name]:>9.3f}" if values.get(name) is not None else
                        f"{'n/a':>9}" for name in names)
        print(f"{split:<8}{cells}")


# -- evaluate -----------------------------------------------------------------------------------
def _evaluate(args: argparse.Namespace) -> int:
    params = EvaluateModelParams(model=args.model, dataset=args.folder, split=args.split,
                                 beam_size=args.beam, max_length=args.max_length,
                                 batch_size=args.batch_size, meteor=not args.no_meteor,
                                 device=args.device, record=args.record)
    # Outputs that cannot be written fail now, not after minutes of captioning.
    if args.predictions:
        check_writable(args.predictions, "--predictions")
        check_not_an_input(args.predictions, {
            "the model file": args.model,
            "the dataset's annotations": Path(args.folder) / "annotations.json"},
            what="--predictions")
    if args.record:
        check_writable(args.model, "the model file (--record writes the scores into it)")
    with StopOnCtrlC("mapscribe evaluate") as stop:
        result = evaluate_model(params, None if args.json else TerminalProgressBar(), stop)
    if result.stopped == CANCELLED:
        print("Interrupted: nothing was scored or recorded.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.predictions:
        write_text_atomic(Path(args.predictions), json_text(
            [asdict(prediction) for prediction in result.predictions]))
    if args.json:
        print(json_text(result.summary(params)))
        return EXIT_OK
    print(f"{args.split} split of {args.folder}: {result.images} images, beam {args.beam}")
    _print_metric_table({args.split: result.metrics})
    if result.metrics.get("METEOR") is None and not args.no_meteor:
        print(f"METEOR unavailable: {result.meteor_unavailable_reason}")
    return EXIT_OK


# -- predict ------------------------------------------------------------------------------------
def _predict(args: argparse.Namespace) -> int:
    from ..data.images import load_rgb_image

    missing = [image for image in args.images if not Path(image).is_file()]
    if missing:
        raise CommandError(f"no such image file: {', '.join(missing)}")
    if args.attention:
        _check_attention_target(Path(args.attention), args)
    figures = []
    captions: Any  # the runtime's captions, or torch's with their attention maps
    if not args.attention:
        runtime = open_runtime(args.model, args.runtime, args.device)
        pixels = np.stack([image_pixels(load_rgb_image(image), runtime.input_size)
                           for image in args.images])
        captions = runtime.caption_batch(pixels, DecodingParams(beam_size=args.beam,
                                                                max_length=args.max_length))
        _check_captions(args, captions)
    else:
        if check_runtime(args.model, args.runtime) != TORCH:
            raise CommandError("--attention draws its maps with the runtime 'torch': use "
                               "--runtime torch (or auto) where torch is installed")
        from ..api import ImageCaptioner
        from ..evaluation.show_results import attention_figure

        captioner = ImageCaptioner.from_model(args.model, device=args.device)
        captions = captioner.predict_batch(args.images, beam_width=args.beam,
                                           max_length=args.max_length, return_attention=True)
        _check_captions(args, captions)
        target = Path(args.attention)
        for image, caption in zip(args.images, captions):
            path = target if len(args.images) == 1 else target.with_name(
                f"{target.stem}-{Path(image).stem}{target.suffix or '.png'}")
            attention_figure(load_rgb_image(image), caption, title=Path(image).name).savefig(path)
            figures.append(str(path))
    if args.json:
        print(json_text([{"image": image, "caption": caption.text, "score": caption.score,
                          "finished": caption.finished}
                         for image, caption in zip(args.images, captions)]))
    else:
        for image, caption in zip(args.images, captions):
            print(f"{image}\t{caption.text}" if len(args.images) > 1 else caption.text)
        for figure in figures:
            print(f"attention maps: {figure}", file=sys.stderr)
    return EXIT_OK


# Formats matplotlib writes attention maps in (by the file's suffix; none: PNG).
ATTENTION_SUFFIXES = ("", ".png", ".jpg", ".jpeg", ".pdf", ".svg")


def _check_attention_target(target: Path, args: argparse.Namespace) -> None:
    if target.suffix.lower() not in ATTENTION_SUFFIXES:
        raise CommandError(f"--attention {target}: cannot draw maps as {target.suffix!r}; give "
                           "a file ending in .png, .jpg, .pdf or .svg")
    # With several images each gets its own file beside the one named.
    several = len(args.images) > 1
    for image in args.images if several else args.images[:1]:
        path = target.with_name(f"{target.stem}-{Path(image).stem}{target.suffix or '.png'}"
                                ) if several else target
        check_writable(path, "--attention")
        check_not_an_input(path, {"the model file": args.model,
                                  **{f"the image {name}": name for name in args.images}},
                           what="--attention")


def _check_captions(args: argparse.Namespace, captions) -> None:
    """Damaged weights give empty captions scored -inf: an error, never printed as one."""
    for image, caption in zip(args.images, captions):
        check_caption_output(args.model, caption.text, caption.score, f"image {image}")
