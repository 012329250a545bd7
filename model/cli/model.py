"""``mapscribe train``, ``mapscribe evaluate`` and ``mapscribe predict``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    StopOnCtrlC,
    TerminalProgressBar,
)


def _decoder_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoder parameters (arcgis.learn decoder_params names)")
    group.add_argument("--embed-size", type=int, default=256)
    group.add_argument("--hidden-size", type=int, default=512)
    group.add_argument("--attention-size", type=int, default=256)
    group.add_argument("--teacher-forcing", type=float, default=1.0,
                       help="probability of feeding the reference word; below 1, scheduled "
                            "sampling (default 1)")
    group.add_argument("--dropout", type=float, default=0.5)
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
    train.add_argument("--backbone", default="auto",
                       help="encoder: auto (best pretrained available offline), "
                            "efficientnet_lite0, resnet18/34/50/101, mobilenet_v3_large, "
                            "efficientnet_b0, convnext_tiny")
    train.add_argument("--encoder-weights", metavar="FILE", help="a state_dict file of ImageNet "
                       "weights for the backbone")
    train.add_argument("--grid-size", type=int, default=7, help="attention grid (default 7×7)")
    train.add_argument("--chip-size", type=int, default=224, help="encoder input size in px")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--lr", type=float, help="peak learning rate (default: lr_find picks)")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--val-split-pct", type=float, default=0.1)
    train.add_argument("--min-word-count", type=int, default=5)
    train.add_argument("--fine-tune", action="store_true",
                       help="train the encoder too (slower; default: frozen, cached features)")
    train.add_argument("--encoder-lr", type=float, default=1e-4)
    train.add_argument("--feature-variants", type=int, default=4,
                       help="flipped/rotated versions of each image cached (1..8, default 4)")
    train.add_argument("--feature-cache", metavar="DIR", help="keep encoder features on disk")
    train.add_argument("--attention-regularisation", type=float, default=0.2, metavar="W",
                       help="weight of the doubly stochastic attention penalty (default 0.2)")
    train.add_argument("--patience", type=int, default=4,
                       help="stop after this many epochs without a better CIDEr-D (0: never)")
    train.add_argument("--checkpoint", metavar="FILE",
                       help="checkpoint path (default MODEL.checkpoint.pt)")
    train.add_argument("--resume", metavar="CHECKPOINT", help="continue an interrupted run")
    train.add_argument("--ground-resolution", type=float, metavar="M",
                       help="metres per pixel of the training images (stored in the model; "
                            "sets the default tile size when captioning)")
    train.add_argument("--half", action="store_true", help="store float16 weights")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--overwrite", action="store_true", help="replace an existing MODEL")
    _decoder_arguments(train)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate", help="score a model on a dataset split",
        description="Caption every image of a split by beam search and report BLEU-1..4, "
                    "METEOR (when Java is present), ROUGE-L and CIDEr-D.")
    evaluate.add_argument("model", metavar="MODEL")
    evaluate.add_argument("folder", metavar="FOLDER")
    evaluate.add_argument("--split", choices=("train", "val", "test"), default="test")
    evaluate.add_argument("--beam", type=int, default=3)
    evaluate.add_argument("--max-length", type=int, default=20)
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--predictions", metavar="FILE",
                          help="also write every predicted caption to FILE (JSON)")
    evaluate.add_argument("--record", action="store_true",
                          help="store the metrics in the model file's header, under "
                               "'<dataset folder name> <split>'")
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="caption image files",
                                  description="Print a caption for each IMAGE.")
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("images", metavar="IMAGE", nargs="+")
    predict.add_argument("--beam", type=int, default=3)
    predict.add_argument("--max-length", type=int, default=20)
    predict.add_argument("--attention", metavar="PNG",
                         help="draw where the model looked for each word (one PNG; with "
                              "several images, PNG gets each image's name added)")
    predict.add_argument("--json", action="store_true")
    predict.add_argument("--device", default="auto")
    predict.set_defaults(handler=_predict)


# -- train --------------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    from ..data.records import DatasetError
    from ..jobs.train import TrainJobParams, train_captioner
    from ..nn.backbones import EncoderError

    decoder = {"embed_size": args.embed_size, "hidden_size": args.hidden_size,
               "attention_size": args.attention_size, "teacher_forcing": args.teacher_forcing,
               "dropout": args.dropout, "pretrained_emb": args.pretrained_emb}
    try:
        params = TrainJobParams(
            dataset=args.folder, out=args.out, backbone=args.backbone,
            grid_size=args.grid_size, chip_size=args.chip_size, epochs=args.epochs, lr=args.lr,
            batch_size=args.batch_size, val_split_pct=args.val_split_pct,
            min_word_count=args.min_word_count, decoder_params=decoder,
            freeze_encoder=not args.fine_tune, encoder_lr=args.encoder_lr,
            weights_path=args.encoder_weights, feature_variants=args.feature_variants,
            feature_cache_dir=args.feature_cache, checkpoint=args.checkpoint,
            attention_regularisation=args.attention_regularisation,
            resume=args.resume, early_stopping_patience=args.patience, device=args.device,
            seed=args.seed, half=args.half, ground_resolution_m=args.ground_resolution,
            overwrite=args.overwrite)
        with StopOnCtrlC("mapscribe train") as stop:
            result = train_captioner(params, progress=TerminalProgressBar(), cancelled=stop)
    except (DatasetError, EncoderError, ValueError, FileExistsError, OSError) as error:
        raise CommandError(str(error)) from None
    if result.stopped == "cancelled":
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
    from ..data.folder import read_caption_folder
    from ..data.records import DatasetError
    from ..evaluation.evaluate import evaluate_records
    from ..modelfile.header import ModelFileError
    from ..modelfile.weights import load_model
    from ..nn.beam_search import DecodingParams
    from ..nn.device import DeviceError, resolve_device

    try:
        captioner = load_model(args.model, resolve_device(args.device))
        folder = read_caption_folder(args.folder)
        records = folder.split(args.split)
        if not records:
            raise CommandError(f"{args.folder} has no images in the {args.split} split")
        decoding = DecodingParams(beam_size=args.beam, max_length=args.max_length)
        with StopOnCtrlC("mapscribe evaluate") as stop:
            evaluation = evaluate_records(captioner, records, decoding,
                                          meteor=not args.no_meteor, batch_size=args.batch_size,
                                          progress=None if args.json else TerminalProgressBar(),
                                          cancelled=stop)
    except (ModelFileError, DatasetError, DeviceError, ValueError) as error:
        raise CommandError(str(error)) from None
    scores = evaluation.scores
    if args.record:
        from ..modelfile.header import record_metrics

        key = f"{Path(args.folder).resolve().name} {args.split}"
        values = {k: v for k, v in scores.as_dict().items() if v is not None}
        values.update(images=scores.images, beam=args.beam)
        record_metrics(args.model, key, values)
    if args.predictions:
        from ..atomic import write_text_atomic

        write_text_atomic(Path(args.predictions), json.dumps(
            [{"filename": name, "caption": caption.text, "score": caption.score,
              "references": evaluation.references[name]}
             for name, caption in evaluation.predictions.items()], indent=1))
    if args.json:
        print(json.dumps({"model": args.model, "dataset": args.folder, "split": args.split,
                          "images": scores.images, "beam": args.beam,
                          "metrics": scores.as_dict(),
                          "meteor_unavailable_reason": scores.meteor_unavailable_reason},
                         indent=1))
        return EXIT_OK
    print(f"{args.split} split of {args.folder}: {scores.images} images, beam {args.beam}")
    _print_metric_table({args.split: scores.as_dict()})
    if scores.meteor is None and not args.no_meteor:
        print(f"METEOR unavailable: {scores.meteor_unavailable_reason}")
    return EXIT_OK


# -- predict ------------------------------------------------------------------------------------
def _predict(args: argparse.Namespace) -> int:
    from ..api import ImageCaptioner
    from ..data.records import DatasetError
    from ..modelfile.header import ModelFileError
    from ..nn.device import DeviceError

    try:
        captioner = ImageCaptioner.from_model(args.model, device=args.device)
        missing = [image for image in args.images if not Path(image).is_file()]
        if missing:
            raise CommandError(f"no such image file: {', '.join(missing)}")
        captions = captioner.predict_batch(args.images, beam_width=args.beam,
                                           max_length=args.max_length,
                                           return_attention=bool(args.attention))
    except (ModelFileError, DatasetError, DeviceError, ValueError) as error:
        raise CommandError(str(error)) from None
    figures = []
    if args.attention:
        from ..data.images import load_rgb_image
        from ..evaluation.show_results import attention_figure

        target = Path(args.attention)
        for image, caption in zip(args.images, captions):
            path = target if len(args.images) == 1 else target.with_name(
                f"{target.stem}-{Path(image).stem}{target.suffix or '.png'}")
            attention_figure(load_rgb_image(image), caption, title=Path(image).name).savefig(path)
            figures.append(str(path))
    if args.json:
        print(json.dumps([{"image": image, "caption": caption.text, "score": caption.score,
                           "finished": caption.finished}
                          for image, caption in zip(args.images, captions)], indent=1))
    else:
        for image, caption in zip(args.images, captions):
            print(f"{image}\t{caption.text}" if len(args.images) > 1 else caption.text)
        for path in figures:
            print(f"attention maps: {path}", file=sys.stderr)
    return EXIT_OK
