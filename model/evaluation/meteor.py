"""METEOR 1.5 through its Java jar (the reference implementation, as pycocoevalcap runs it).

Optional: without Java or the jar, :func:`find_meteor` says why, and the scores leave METEOR out.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import shutil
import subprocess
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Deque, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

from ..errors import MapScribeError, ParameterError
from .references import _Image, _images_from_words

logger = logging.getLogger(__name__)


METEOR_JAR_ENV = "MAPSCRIBE_METEOR_JAR"


METEOR_JAR_NAME = "meteor-1.5.jar"


# Separates fields in METEOR's stdio protocol; a word containing it would shift the fields.
_METEOR_FIELD_SEPARATOR = "|||"


# -- METEOR -------------------------------------------------------------------------------------
class MeteorUnavailableError(MapScribeError, RuntimeError):
    """METEOR cannot run here (no Java, or no jar); the message says why."""


class MeteorError(MapScribeError, RuntimeError):
    """The METEOR program failed, stopped or did not answer in time."""


@dataclass(frozen=True)
class MeteorSetup:
    """What METEOR needs: the ``java`` command and ``meteor-1.5.jar``, or why one is missing."""

    java: Optional[str]
    jar: Optional[Path]
    unavailable_reason: Optional[str] = None

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None


def _packaged_meteor_jar() -> Optional[Path]:
    """The jar shipped inside the installed ``pycocoevalcap`` package, if there is one."""
    # find_spec finds the package's folder without importing any of its code: only the jar is
    # borrowed, the protocol is spoken here.
    try:
        spec = importlib.util.find_spec("pycocoevalcap")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        jar = Path(folder) / "meteor" / METEOR_JAR_NAME
        if jar.is_file():
            return jar
    return None


def find_meteor() -> MeteorSetup:
    """Locate Java (``java`` on PATH) and the METEOR 1.5 jar.

    The jar is the file named by the environment variable ``MAPSCRIBE_METEOR_JAR`` when it is
    set (a wrong path is reported, not silently replaced), else the one shipped in the installed
    ``pycocoevalcap`` package.
    """
    configured = os.environ.get(METEOR_JAR_ENV)
    if configured:
        configured_jar = Path(configured).expanduser()
        if not configured_jar.is_file():
            return MeteorSetup(None, configured_jar, f"{METEOR_JAR_ENV} names "
                               f"{str(configured_jar)!r}, which is not a file: point it at "
                               f"{METEOR_JAR_NAME} or unset it")
        jar: Optional[Path] = configured_jar
    else:
        jar = _packaged_meteor_jar()
        if jar is None:
            return MeteorSetup(None, None, f"{METEOR_JAR_NAME} was not found: set "
                               f"{METEOR_JAR_ENV} to its path, or install pycocoevalcap, which "
                               "ships it")
    java = shutil.which("java")
    if java is None:
        return MeteorSetup(None, jar, "Java is not installed (no 'java' on PATH); METEOR 1.5 "
                           "is a Java program (install a Java runtime, e.g. Debian's "
                           "default-jre-headless)")
    return MeteorSetup(java, jar)


class MeteorScorer:
    """A running METEOR 1.5 process (``java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm``).

    Starting Java and loading the paraphrase tables takes seconds, so one scorer can serve many
    evaluations (e.g. one per training epoch). Use it as a context manager, or call
    :meth:`close`. Every exchange with the process has a time limit: when METEOR does not answer
    within ``timeout_s`` seconds (the first answer includes Java's start-up), the process is
    stopped and :class:`MeteorError` raised, so a stuck Java never hangs the caller.
    """

    def __init__(self, setup: Optional[MeteorSetup] = None, *, timeout_s: float = 120.0,
                 max_heap: str = "2G"):
        setup = setup if setup is not None else find_meteor()
        if not setup.available:
            raise MeteorUnavailableError(setup.unavailable_reason)
        assert setup.java is not None and setup.jar is not None
        if not timeout_s > 0:
            raise ParameterError(f"timeout_s must be a positive number of seconds, not "
                                 f"{timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self._lock = threading.Lock()
        self._timed_out = False
        # METEOR reads stdin in Java's default charset, which follows the locale (ASCII in the C
        # locale); we always send UTF-8.
        command = [setup.java, "-Dfile.encoding=UTF-8", "-jar", f"-Xmx{max_heap}", str(setup.jar),
                   "-", "-", "-stdio", "-l", "en", "-norm"]
        try:
            # The jar's folder as working directory, as in pycocoevalcap (where its data lies).
            self._process = subprocess.Popen(command, cwd=str(setup.jar.parent),
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE)
        except OSError as error:
            raise MeteorError(f"cannot start METEOR ({' '.join(command)}): {error}") from None
        logger.debug("started METEOR (pid %s): %s", self._process.pid, " ".join(command))
        # Drain stderr in the background: a full pipe would block Java, and its last lines
        # explain a failure. The thread must not hold `self`, or a scorer dropped without
        # close() would never be collected and its Java would live on.
        self._stderr_tail: Deque[str] = collections.deque(maxlen=20)
        self._stderr_reader = threading.Thread(target=_keep_last_lines, daemon=True,
                                               args=(self._process.stderr, self._stderr_tail),
                                               name="meteor-stderr")
        self._stderr_reader.start()
        # Stop Java even when the scorer is dropped without close().
        self._finalizer = weakref.finalize(self, _stop_process, self._process)

    # -- process handling ----------------------------------------------------------------------
    def _on_timeout(self) -> None:
        self._timed_out = True
        self._process.kill()  # unblocks the pending write or read with a broken pipe / EOF

    def _failure(self, doing: str) -> MeteorError:
        # Reap the process (it has stopped, or been killed by the watchdog) to report its code.
        try:
            code: Optional[int] = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if self._timed_out:
            return MeteorError(f"METEOR did not answer within {self.timeout_s:g} s while "
                               f"{doing}; it was stopped")
        self._stderr_reader.join(timeout=5)
        detail = " | ".join(line for line in self._stderr_tail if line.strip())
        state = "is not running" if code is None else f"stopped (exit code {code})"
        return MeteorError(f"METEOR {state} while {doing}"
                           + (f"; it said: {detail}" if detail else ""))

    def _exchange(self, line: str, replies: int, doing: str) -> List[str]:
        """Send one protocol line and read ``replies`` answer lines, within the time limit."""
        if self._process.poll() is not None or self._timed_out:
            raise self._failure(doing)
        watchdog = threading.Timer(self.timeout_s, self._on_timeout)
        watchdog.daemon = True
        answers = []
        watchdog.start()
        assert self._process.stdin is not None and self._process.stdout is not None  # pipes
        try:
            self._process.stdin.write(line.encode("utf-8") + b"\n")
            self._process.stdin.flush()
            for _ in range(replies):
                answer = self._process.stdout.readline()
                if not answer.endswith(b"\n"):
                    break  # end of output: the process has stopped
                answers.append(answer.decode("utf-8", "replace").strip())
        except OSError:  # broken pipe: the process has stopped
            pass
        finally:
            watchdog.cancel()
        if len(answers) < replies or self._timed_out:
            raise self._failure(doing)
        return answers

    def close(self) -> None:
        """Stop the METEOR process (it ends when its input closes; killed if it lingers)."""
        self._finalizer()
        self._stderr_reader.join(timeout=5)

    def __enter__(self) -> "MeteorScorer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- scoring -------------------------------------------------------------------------------
    def _statistics(self, image: _Image) -> str:
        """METEOR's sufficient statistics of one image (a line of numbers)."""
        for words in (image.candidate,) + image.references:
            if any(_METEOR_FIELD_SEPARATOR in word for word in words):
                raise ParameterError(f"image {image.key!r}: a word contains "
                                     f"{_METEOR_FIELD_SEPARATOR!r}, METEOR's field separator")
        # SCORE ||| reference 1 ||| ... ||| reference k ||| candidate. The candidate field is
        # kept even when empty (a trailing " ||| "); without it METEOR would take the last
        # reference for the candidate.
        fields = ["SCORE"] + [" ".join(words) for words in image.references]
        fields.append(" ".join(image.candidate))
        (statistics,) = self._exchange(" ||| ".join(fields), 1, f"scoring image {image.key!r}")
        return statistics

    def _score_images(self, images: Sequence[_Image]) -> Tuple[float, List[float]]:
        with self._lock:
            statistics = [self._statistics(image) for image in images]
            # EVAL ||| stats 1 ||| ... ||| stats n: n per-image scores, then the corpus score.
            answers = self._exchange(" ||| ".join(["EVAL"] + statistics), len(images) + 1,
                                     f"evaluating {len(images)} images")
        try:
            values = [float(answer) for answer in answers]
        except ValueError:
            raise MeteorError(f"METEOR answered something that is not a score: {answers!r:.300}")\
                from None
        return values[-1], values[:-1]

    def corpus_score(self, candidates: Mapping[Hashable, Sequence[str]],
                     references: Mapping[Hashable, Sequence[Sequence[str]]]) -> float:
        """Corpus METEOR of tokenised candidates (COCO's METEOR value)."""
        return self._score_images(_images_from_words(candidates, references))[0]

    def image_scores(self, candidates: Mapping[Hashable, Sequence[str]],
                     references: Mapping[Hashable, Sequence[Sequence[str]]]
                     ) -> Dict[Hashable, float]:
        """METEOR of each image separately."""
        images = _images_from_words(candidates, references)
        _, scores = self._score_images(images)
        return {image.key: score for image, score in zip(images, scores)}


def _keep_last_lines(stream, tail: Deque[str]) -> None:
    """Read ``stream`` to its end, keeping its last lines in ``tail``; then close it."""
    with stream:
        for raw in iter(stream.readline, b""):
            tail.append(raw.decode("utf-8", "replace").rstrip())


def _stop_process(process: subprocess.Popen) -> None:
    """End a METEOR process: close its input (it exits on end of input), kill it if it lingers."""
    if process.poll() is None:
        try:
            if process.stdin is not None:
                process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is None:
            continue
        try:
            stream.close()
        except OSError:
            pass
