"""The ``mapscribe`` command line.

Each sub-command is a thin front door: it turns arguments into the engine's parameter object,
calls the one engine function for the job with a progress bar and a Ctrl-C check, and prints the
result. Exit codes: 0 success, 1 the job could not be done (bad input: the message says why),
2 wrong usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Optional

from .caption import add_caption_commands
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    _configure_logging,
)
from .data import _add_data_commands


# -- the parser ---------------------------------------------------------------------------------
def _add_model_commands(commands: argparse._SubParsersAction) -> None:
    # Imported here, not at the top: cli_model imports CommandError from this module.
    from .model import add_model_commands

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
