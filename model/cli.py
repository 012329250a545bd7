"""The ``mapscribe`` command line.

Each sub-command is a thin front door: it turns arguments into the engine's parameter object,
calls the one engine function for the job with a progress bar and a Ctrl-C check, and prints the
result. Exit codes: 0 success, 1 the job could not be done (bad input: the message says why),
2 wrong usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from typing import Callable, List, Optional

# cli_caption imports nothing from this module at import time, so it can be imported here.
from .cli_caption import add_caption_commands

log = logging.getLogger("mapscribe")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """A failure already explained in words people can act on; printed without a traceback."""


# -- data check ---------------------------------------------------------------------------------
def _add_data_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="inspect caption datasets",
                               description="Inspect caption datasets (RSICD or COCO format).")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_commands.add_parser(
        "check", help="validate a dataset folder and summarise it",
        description="Read FOLDER (images/ + annotations.json), report every problem with its "
                    "entry and file, and print images and captions per split, the vocabulary "
                    "size and caption lengths. Exits 1 when the folder cannot be used.")
    check.add_argument("folder", metavar="FOLDER")
    check.add_argument("--min-word-count", type=int, default=5, metavar="N",
                       help="words seen fewer than N times in train become <unk> (default 5)")
    check.add_argument("--val-split-pct", type=float, default=0.1, metavar="F",
                       help="fraction of images put in val when the annotations give no split "
                            "(default 0.1)")
    check.add_argument("--check-images", choices=("full", "header", "none"), default="full",
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


def _data_check(args: argparse.Namespace) -> int:
    from .data import DatasetError, read_caption_folder, summarise

    try:
        folder = read_caption_folder(args.folder, strict=args.strict,
                                     val_split_pct=args.val_split_pct,
                                     check_images=args.check_images)
    except DatasetError as error:
        if args.json:
            print(json.dumps({"usable": False, "error": str(error).splitlines()[0],
                              "problems": [str(p) for p in error.problems]}, indent=1))
        raise CommandError(f"the folder cannot be used: {error}") from None
    if args.min_word_count < 1:
        raise CommandError(f"--min-word-count must be at least 1, not {args.min_word_count}")
    summary = summarise(folder, min_word_count=args.min_word_count)
    if args.json:
        report = asdict(summary)
        report["usable"] = True
        report["problems"] = [str(p) for p in folder.problems]
        print(json.dumps(report, indent=1))
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
    from .data import DatasetError, merge_caption_folders

    try:
        merged = merge_caption_folders(args.out, args.folders, copy=args.copy,
                                       overwrite=args.overwrite)
    except (DatasetError, OSError) as error:
        raise CommandError(str(error)) from None
    counts = ", ".join(f"{name} {images}" for name, (images, _) in merged.split_counts().items())
    print(f"{args.out}: {len(merged.records)} images ({counts})")
    return EXIT_OK


def _split_source_words(source: str, pct: float) -> str:
    return {"annotations": "as given in the annotations",
            "val_split_pct": f"made from file names ({pct:.0%} val, no test)",
            "mixed": f"as given, and made from file names ({pct:.0%} val) where missing"}[source]


# -- the parser ---------------------------------------------------------------------------------
def _add_model_commands(commands: argparse._SubParsersAction) -> None:
    # Imported here, not at the top: cli_model imports CommandError from this module.
    from .cli_model import add_model_commands

    add_model_commands(commands)


# Each entry adds a group of sub-commands; modules that import from cli.py are imported lazily
# through a small wrapper like _add_model_commands.
_COMMAND_GROUPS: List[Callable[[argparse._SubParsersAction], None]] = [
    _add_data_commands, _add_model_commands, add_caption_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mapscribe",
        description="MapScribe: train a remote-sensing image captioner and caption rasters "
                    "tile by tile.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log messages (-vv for debugging)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMAND_GROUPS:
        add(commands)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO
                                           if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.handler(args) or EXIT_OK)
    except CommandError as error:
        print(f"mapscribe {args.command}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"mapscribe {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
