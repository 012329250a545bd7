"""A process of a torchrun job other than rank 0, at the command line: it runs the same job
without a word. Rank 0 speaks for the job: it meets the same bad input, names any other rank
that fails, and its exit status is the job's."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import MapScribeError
from ..jobs.distributed import RankStoppedError
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CommandError, StopOnCtrlC


class QuietStop(StopOnCtrlC):
    """Ctrl-C in a rank but 0: the same stop after the batch in hand, without a word (torchrun
    passes the signal to every rank; rank 0 says it once)."""

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def run_quietly(command: str, job: Callable[[Callable[[], bool]], Any]) -> int:
    """Run ``job(cancelled)`` as a quiet rank of ``command`` ('mapscribe caption'); its exit
    status."""
    try:
        with QuietStop(command) as stop:
            job(stop)
    except RankStoppedError:
        return EXIT_OK
    except (CommandError, MapScribeError):
        return EXIT_FAILED  # before the ranks met: torchrun stops the others
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK
