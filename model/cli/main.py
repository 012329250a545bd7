"""The ``mapscribe`` command line.

Each sub-command is a thin front door: it turns arguments into the engine's parameter object,
calls the one engine function for the job with a progress bar and a Ctrl-C check, and prints the
result. Exit codes: 0 success, 1 the job could not be done (bad input: the message says why),
2 wrong usage, 70 a bug (the traceback is written to a log file, whose path is printed),
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, List, NoReturn, Optional

from ..errors import MapScribeError
from .caption import add_caption_commands
from .common import (
    EXIT_BUG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    configure_logging,
    write_bug_report,
)
from .data import add_data_commands
from .describe import add_describe_commands
from .model import add_model_commands
from .runtime import add_runtime_commands

log = logging.getLogger("mapscribe")

# Each entry adds a group of sub-commands to the parser.
COMMAND_GROUPS: List[Callable[[argparse._SubParsersAction], None]] = [
    add_data_commands, add_model_commands, add_caption_commands, add_describe_commands,
    add_runtime_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mapscribe",
        description="MapScribe: train a remote-sensing image captioner and caption rasters "
                    "tile by tile.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log messages (-vv for debugging)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMAND_GROUPS:
        add(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    name = f"mapscribe {args.command}"
    try:
        return int(args.handler(args) or EXIT_OK)
    except (CommandError, MapScribeError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        # The machine said no (disk full, permission denied, a file vanished): not a bug.
        where = f" ({error.filename})" if error.filename else ""
        print(f"{name}: error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:
        path = write_bug_report(args.command, error)
        log.debug("unexpected error", exc_info=True)
        print(f"{name}: internal error ({type(error).__name__}: {error}). This is a bug in "
              f"MapScribe; the details are in {path}. Please report it with that file.",
              file=sys.stderr)
        return EXIT_BUG


def exit_with(code: int) -> NoReturn:
    """End the process with ``code``. A process of a torchrun job that used torch.distributed
    ends without Python's finalisation: gloo's worker threads may still be releasing the
    tensors of the last collective call, and one that needs the interpreter while it shuts
    down aborts the process (SIGABRT, "terminate called without an active exception") after
    the job is done, which torchrun reports as a failure. Everything is written and closed by
    now; only the output streams and log handlers are flushed."""
    if "torch.distributed" in sys.modules and os.environ.get("WORLD_SIZE", "1") != "1":
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    exit_with(main())
