"""``mapscribe data check`` and ``mapscribe data merge``."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from .. import (
    DatasetError,
    TrainCaptionerParams,
    merge_caption_folders,
    read_caption_folder,
    summarise,
)
from ..data.assemble import assemble_caption_folder
from ..data.records import IMAGE_CHECKS
from .common import EXIT_OK, CommandError, default, json_text


# -- data check ---------------------------------------------------------------------------------
def add_data_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="inspect caption datasets",
                               description="Inspect caption datasets (RSICD or COCO format).")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_commands.add_parser(
        "check", help="validate a dataset folder and summarise it",
        description="Read FOLDER (images/ + annotations.json), report every problem with its "
                    "entry and file, and print images and captions per split, the vocabulary "
                    "size and caption lengths. Exits 1 when the folder cannot be used.")
    check.add_argument("folder", metavar="FOLDER")
    check.add_argument("--min-word-count", type=int, metavar="N",
                       default=default(TrainCaptionerParams, "min_word_count"),
                       help="words seen fewer than N times in train become <unk> (default "
                            "%(default)s)")
    check.add_argument("--val-split-pct", type=float, metavar="F",
                       default=default(TrainCaptionerParams, "val_split_pct"),
                       help="fraction of images put in val when the annotations give no split "
                            "(default %(default)s)")
    check.add_argument("--check-images", choices=IMAGE_CHECKS, default=IMAGE_CHECKS[0],
                       help="decode every image (full, default), only open it, or only check "
                            "that it exists")
    check.add_argument("--strict", action="store_true",
                       help="fail on the first kind of error instead of skipping bad entries")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.set_defaults(handler=_data_check)
    merge = data_commands.add_parser(
        "merge", help="combine dataset folders into one",
        description="Write OUT, an RSICD-format dataset folder holding every usable image and "
                    "caption of the FOLDERs, each image keeping its split. Images are linked "
                    "(or copied with --copy) under OUT/images/<folder name>/.")
    merge.add_argument("out", metavar="OUT")
    merge.add_argument("folders", metavar="FOLDER", nargs="+")
    merge.add_argument("--copy", action="store_true", help="copy the images instead of linking")
    merge.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    merge.set_defaults(handler=_data_merge)
    assemble = data_commands.add_parser(
        "assemble", help="build a dataset folder from a captions file and an images folder",
        description="Write OUT, an RSICD-format dataset folder, from CAPTIONS (an RSICD-format "
                    "annotations file) and the image files it names in --images DIR (linked, "
                    "else copied). Every named image must be there. With --keep-val FOLDER, "
                    "only the val images of that dataset folder are kept: the rest of the val "
                    "split stays out, reserved for an independent check.")
    assemble.add_argument("out", metavar="OUT")
    assemble.add_argument("captions", metavar="CAPTIONS")
    assemble.add_argument("--images", required=True, metavar="DIR")
    assemble.add_argument("--keep-val", metavar="FOLDER",
                          help="keep only the val images that this dataset folder has")
    assemble.add_argument("--overwrite", action="store_true",
                          help="replace an OUT that MapScribe assembled before")
    assemble.set_defaults(handler=_data_assemble)


def _data_check(args: argparse.Namespace) -> int:
    try:
        folder = read_caption_folder(args.folder, strict=args.strict,
                                     val_split_pct=args.val_split_pct,
                                     check_images=args.check_images)
    except DatasetError as error:
        if args.json:
            print(json_text({"usable": False, "error": str(error).splitlines()[0],
                             "problems": [str(p) for p in error.problems]}))
        raise CommandError(f"the folder cannot be used: {error}") from None
    if args.min_word_count < 1:
        raise CommandError(f"--min-word-count must be at least 1, not {args.min_word_count}")
    summary = summarise(folder, min_word_count=args.min_word_count)
    if args.json:
        report = asdict(summary)
        report["usable"] = True
        report["problems"] = [str(p) for p in folder.problems]
        print(json_text(report))
        return EXIT_OK
    print(f"Dataset   {summary.folder}")
    print(f"Format    {'RSICD/Karpathy' if summary.format == 'rsicd' else 'COCO captions'}; "
          f"splits {_split_source_words(summary.split_source, folder.val_split_pct)}")
    print(f"{'split':<8}{'images':>8}{'captions':>10}")
    for name, (images, captions) in summary.splits.items():
        print(f"{name:<8}{images:>8}{captions:>10}")
    total_images = sum(i for i, _ in summary.splits.values())
    total_captions = sum(c for _, c in summary.splits.values())
    print(f"{'total':<8}{total_images:>8}{total_captions:>10}")
    print(f"Vocabulary {summary.vocabulary_words} words seen at least {summary.min_word_count} "
          "times in train (plus 4 special tokens)")
    length = summary.caption_length
    print(f"Caption length in words: min {length['min']}, mean {length['mean']}, median "
          f"{length['median']}, 95th percentile {length['p95']}, max {length['max']}")
    print(f"Problems  {summary.errors} error(s), {summary.warnings} warning(s)")
    for problem in folder.problems:
        print(f"  {problem}")
    return EXIT_OK


def _data_merge(args: argparse.Namespace) -> int:
    merged = merge_caption_folders(args.out, args.folders, copy=args.copy,
                                   overwrite=args.overwrite)
    counts = ", ".join(f"{name} {images}" for name, (images, _) in merged.split_counts().items())
    print(f"{args.out}: {len(merged.records)} images ({counts})")
    return EXIT_OK


def _data_assemble(args: argparse.Namespace) -> int:
    folder = assemble_caption_folder(args.out, args.captions, args.images,
                                     keep_val_of=args.keep_val, overwrite=args.overwrite)
    counts = ", ".join(f"{name} {images}" for name, (images, _) in folder.split_counts().items())
    print(f"{args.out}: {len(folder.records)} images ({counts})")
    return EXIT_OK


def _split_source_words(source: str, pct: float) -> str:
    return {"annotations": "as given in the annotations",
            "val_split_pct": f"made from file names ({pct:.0%} val, no test)",
            "mixed": f"as given, and made from file names ({pct:.0%} val) where missing"}[source]
