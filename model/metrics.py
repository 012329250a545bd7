"""Caption metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D, computed as the COCO caption evaluation.

Published captioning results (COCO, RSICD, UCM-captions) are computed with the COCO caption
evaluation code (``pycocoevalcap``). Figures are only comparable when every detail matches, so
this module reproduces its definitions exactly (a test compares both on real captions):

BLEU-n (Papineni et al. 2002), corpus level
    Clipped n-gram matches and candidate n-gram counts are summed over all images before
    dividing. Each candidate's n-grams are clipped by the largest count of that n-gram in any one
    of its references. BLEU-n is the geometric mean of the modified precisions for orders 1..n.
    The brevity penalty ``exp(1 - r/c)`` applies when the total candidate length ``c`` is below
    the total effective reference length ``r``; an image's effective reference length is the
    reference length *closest* to its candidate's length (ties go to the shorter reference).
    Zero counts are smoothed as COCO does: each precision is ``(matches + 1e-15) /
    (candidate n-grams + 1e-9)`` and the length ratio is ``(c + 1e-15) / (r + 1e-9)``; hence a
    perfect corpus scores 1 - 1e-10 or so, not exactly 1, and a corpus without any match scores
    (almost) 0 instead of raising.

ROUGE-L (Lin 2004), averaged over images
    Per image, with ``LCS`` the longest common subsequence of words: the precision ``P`` is the
    best ``LCS / len(candidate)`` over the references and the recall ``R`` the best
    ``LCS / len(reference)`` (each maximised on its own, possibly over different references);
    the score is ``(1 + beta^2) P R / (R + beta^2 P)`` with ``beta = 1.2``, or 0 when ``P`` or
    ``R`` is 0. The corpus score is the mean over images.

CIDEr-D (Vedantam et al. 2015), averaged over images
    Captions become TF-IDF vectors of their 1..4-grams. The document frequency of an n-gram is
    the number of images with that n-gram in at least one of their references (computed from the
    references being evaluated, not from a fixed corpus), and its weight is
    ``term count * (log(number of images) - log(max(1, document frequency)))``. For each order n
    and each reference, the similarity is ``sum(min(c_g, r_g) * r_g) / (|c| |r|)`` over the
    candidate's n-grams ``g`` (the candidate's weights clipped by the reference's: the "D" in
    CIDEr-D, against gaming by repetition), times the length penalty
    ``exp(-(len(candidate) - len(reference))^2 / (2 * 6^2))``; it is 0 when either vector is
    empty or zero. An image's score is 10 times the mean over orders of the mean over its
    references; the corpus score is the mean over images. A corpus of one image therefore scores
    0 (every weight is log 1 - ...), as in COCO.

METEOR 1.5 (Denkowski & Lavie 2014)
    Computed by the original Java program (``meteor-1.5.jar``, language ``en``, ``-norm``),
    which this module drives through its ``-stdio`` protocol: one ``SCORE`` line per image gives
    that image's sufficient statistics, one ``EVAL`` line with all of them gives the per-image
    scores and then the corpus score, which is the reported value. Without Java or the jar,
    METEOR is *unavailable* (``None`` with a reason), never 0.

Input is captions keyed by image id. :func:`evaluate_captions` takes caption strings and splits
them with :func:`mapscribe.model.text.tokenize` — the tokeniser the vocabulary and the model use
— so that a caption is scored on exactly the words the model produces (the COCO code would use
the PTB tokeniser, which needs Java; the words agree once its punctuation is removed). The
``*_tokenized``/``corpus_*`` functions take word lists directly. In both, the words are what the
COCO code would see after splitting the space-joined caption, so words must be non-empty and
contain no whitespace.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import math
import os
import shutil
import subprocess
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Counter, Deque, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

from .text import tokenize

logger = logging.getLogger(__name__)

Words = Tuple[str, ...]

BLEU_MAX_N = 4
ROUGE_L_BETA = 1.2
CIDER_MAX_N = 4
CIDER_SIGMA = 6.0
# CIDEr scores are multiplied by 10 in COCO so that they read like the human consensus scores
# of the CIDEr paper.
CIDER_SCALE = 10.0

# The COCO BLEU code adds these so that zero counts give (almost) zero, never a division error.
_BLEU_TINY = 1e-15
_BLEU_SMALL = 1e-9

METEOR_JAR_ENV = "MAPSCRIBE_METEOR_JAR"
METEOR_JAR_NAME = "meteor-1.5.jar"
# Separates fields in METEOR's stdio protocol; a word containing it would shift the fields.
_METEOR_FIELD_SEPARATOR = "|||"


# -- input validation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Image:
    """One image to score: its id, its candidate's words and its references' words."""

    key: Hashable
    candidate: Words
    references: Tuple[Words, ...]


def _show_ids(ids: Sequence[Hashable], limit: int = 10) -> str:
    """The ids as a short readable list (the first ``limit`` of them, then how many more)."""
    shown = ", ".join(repr(key) for key in ids[:limit])
    more = f", ... and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"[{shown}{more}]"


def _check_same_images(candidates: Mapping, references: Mapping) -> List[Hashable]:
    """The image ids in candidate order, after checking both mappings cover the same images."""
    if not isinstance(candidates, Mapping) or not isinstance(references, Mapping):
        raise ValueError("candidates and references must be mappings from image id to captions, "
                         f"not {type(candidates).__name__} and {type(references).__name__}")
    if not candidates and not references:
        raise ValueError("no captions to evaluate: candidates and references are both empty")
    only_candidates = [key for key in candidates if key not in references]
    only_references = [key for key in references if key not in candidates]
    if only_candidates or only_references:
        problems = []
        if only_candidates:
            problems.append(f"{len(only_candidates)} image id(s) have a candidate but no "
                            f"references: {_show_ids(only_candidates)}")
        if only_references:
            problems.append(f"{len(only_references)} image id(s) have references but no "
                            f"candidate: {_show_ids(only_references)}")
        raise ValueError("candidates and references must cover the same images; "
                         + "; ".join(problems))
    keys = list(candidates)
    for key in keys:
        if isinstance(references[key], (str, bytes)):
            raise ValueError(f"references of image {key!r} must be a list of captions, not one "
                             "string")
        if not isinstance(references[key], Sequence):
            raise ValueError(f"references of image {key!r} must be a list of captions, not "
                             f"{type(references[key]).__name__}")
    without = [key for key in keys if len(references[key]) == 0]
    if without:
        raise ValueError(f"{len(without)} image(s) have no reference captions: "
                         f"{_show_ids(without)}; every image needs at least one reference")
    return keys


def _check_words(words: object, what: str) -> Words:
    """``words`` as a tuple of words, or a ValueError saying what is wrong with them."""
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
        raise ValueError(f"{what} must be a list of words (use evaluate_captions for caption "
                         f"strings), not {type(words).__name__}")
    for word in words:
        if not isinstance(word, str) or not word or word != "".join(word.split()):
            raise ValueError(f"{what} holds {word!r}: words must be non-empty strings without "
                             "whitespace")
    return tuple(words)


def _images_from_words(candidates: Mapping[Hashable, Sequence[str]],
                       references: Mapping[Hashable, Sequence[Sequence[str]]]) -> List[_Image]:
    """Validated images from word lists (see :func:`evaluate_tokenized`)."""
    images = []
    for key in _check_same_images(candidates, references):
        candidate = _check_words(candidates[key], f"the candidate of image {key!r}")
        refs = []
        for index, reference in enumerate(references[key]):
            words = _check_words(reference, f"reference {index} of image {key!r}")
            if not words:
                raise ValueError(f"reference {index} of image {key!r} has no words; drop empty "
                                 "captions before evaluating (COCO counts them as references "
                                 "that nothing can match, which lowers every score)")
            refs.append(words)
        images.append(_Image(key, candidate, tuple(refs)))
    return images


def _images_from_captions(candidates: Mapping[Hashable, str],
                          references: Mapping[Hashable, Sequence[str]]) -> List[_Image]:
    """Validated, tokenised images from caption strings (see :func:`evaluate_captions`)."""
    images = []
    for key in _check_same_images(candidates, references):
        candidate = candidates[key]
        if not isinstance(candidate, str):
            raise ValueError(f"the candidate of image {key!r} must be a caption string, not "
                             f"{type(candidate).__name__} (use evaluate_tokenized for word lists)")
        refs = []
        for index, reference in enumerate(references[key]):
            if not isinstance(reference, str):
                raise ValueError(f"reference {index} of image {key!r} must be a caption string, "
                                 f"not {type(reference).__name__}")
            words = tuple(tokenize(reference))
            if not words:
                raise ValueError(f"reference {index} of image {key!r} has no words "
                                 f"({reference!r}); drop empty captions before evaluating")
            refs.append(words)
        images.append(_Image(key, tuple(tokenize(candidate)), tuple(refs)))
    return images


# -- n-grams ------------------------------------------------------------------------------------
def _ngram_counts(words: Words, max_n: int) -> Counter[Words]:
    """How often each 1..max_n-gram occurs in ``words`` (n-grams are word tuples)."""
    counts: Counter[Words] = collections.Counter()
    for n in range(1, max_n + 1):
        for start in range(len(words) - n + 1):
            counts[words[start:start + n]] += 1
    return counts


# -- BLEU ---------------------------------------------------------------------------------------
def _closest_reference_length(candidate_length: int, reference_lengths: Sequence[int]) -> int:
    """The reference length nearest the candidate's; on a tie, the shorter one (as COCO)."""
    return min(reference_lengths, key=lambda length: (abs(length - candidate_length), length))


def _bleu(images: Sequence[_Image], max_n: int) -> List[float]:
    matches = [0] * max_n       # clipped n-gram matches per order, summed over images
    possible = [0] * max_n      # candidate n-grams per order, summed over images
    candidate_length = 0
    reference_length = 0
    for image in images:
        # Clip by the largest count of each n-gram in any single reference.
        most_in_a_reference: Dict[Words, int] = {}
        for reference in image.references:
            for gram, count in _ngram_counts(reference, max_n).items():
                most_in_a_reference[gram] = max(most_in_a_reference.get(gram, 0), count)
        for gram, count in _ngram_counts(image.candidate, max_n).items():
            matches[len(gram) - 1] += min(count, most_in_a_reference.get(gram, 0))
        for n in range(1, max_n + 1):
            possible[n - 1] += max(0, len(image.candidate) - n + 1)
        candidate_length += len(image.candidate)
        reference_length += _closest_reference_length(
            len(image.candidate), [len(reference) for reference in image.references])

    scores = []
    precision_product = 1.0
    for n in range(1, max_n + 1):
        precision_product *= (matches[n - 1] + _BLEU_TINY) / (possible[n - 1] + _BLEU_SMALL)
        scores.append(precision_product ** (1.0 / n))
    length_ratio = (candidate_length + _BLEU_TINY) / (reference_length + _BLEU_SMALL)
    if length_ratio < 1:
        brevity_penalty = math.exp(1 - 1 / length_ratio)
        scores = [score * brevity_penalty for score in scores]
    return scores


def corpus_bleu(candidates: Mapping[Hashable, Sequence[str]],
                references: Mapping[Hashable, Sequence[Sequence[str]]],
                max_n: int = BLEU_MAX_N) -> List[float]:
    """Corpus BLEU-1..``max_n`` of tokenised candidates against their references (COCO's BLEU).

    Returns ``[BLEU-1, ..., BLEU-max_n]``. See the module docstring for the exact definition.
    """
    if max_n < 1:
        raise ValueError(f"max_n must be at least 1, not {max_n}")
    return _bleu(_images_from_words(candidates, references), max_n)


# -- ROUGE-L ------------------------------------------------------------------------------------
def _lcs_length(first: Words, second: Words) -> int:
    """Length of the longest common subsequence of two word sequences (dynamic programming)."""
    if len(first) < len(second):
        first, second = second, first
    # previous[j]: LCS of the words of `first` seen so far and second[:j].
    previous = [0] * (len(second) + 1)
    for word in first:
        current = [0]
        for j, other in enumerate(second, start=1):
            if word == other:
                current.append(previous[j - 1] + 1)
            else:
                current.append(max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def sentence_rouge_l(candidate: Sequence[str], references: Sequence[Sequence[str]],
                     beta: float = ROUGE_L_BETA) -> float:
    """ROUGE-L of one tokenised candidate against its references, as COCO computes it."""
    candidate = tuple(candidate)
    if not candidate or not references:
        return 0.0
    best_precision = 0.0
    best_recall = 0.0
    for reference in references:
        reference = tuple(reference)
        common = _lcs_length(reference, candidate)
        best_precision = max(best_precision, common / len(candidate))
        best_recall = max(best_recall, common / len(reference) if reference else 0.0)
    if best_precision == 0 or best_recall == 0:
        return 0.0
    return ((1 + beta ** 2) * best_precision * best_recall) / (
        best_recall + beta ** 2 * best_precision)


def _rouge_l(images: Sequence[_Image]) -> float:
    total = sum(sentence_rouge_l(image.candidate, image.references) for image in images)
    return total / len(images)


def corpus_rouge_l(candidates: Mapping[Hashable, Sequence[str]],
                   references: Mapping[Hashable, Sequence[Sequence[str]]]) -> float:
    """Mean over images of ROUGE-L (beta 1.2) of tokenised candidates (COCO's ROUGE-L)."""
    return _rouge_l(_images_from_words(candidates, references))


# -- CIDEr-D ------------------------------------------------------------------------------------
@dataclass
class _TfIdf:
    """A caption as CIDEr sees it: TF-IDF weights and their norm per n-gram order."""

    weights: List[Dict[Words, float]]   # weights[n - 1]: n-gram -> weight
    norms: List[float]                  # norms[n - 1]: Euclidean norm of weights[n - 1]
    length: int                         # number of words


def _tf_idf(words: Words, document_frequency: Mapping[Words, int], log_images: float,
            max_n: int) -> _TfIdf:
    weights: List[Dict[Words, float]] = [{} for _ in range(max_n)]
    for gram, count in _ngram_counts(words, max_n).items():
        # An n-gram no reference has gets df 1 (log 0 would be undefined): the highest weight.
        inverse_frequency = log_images - math.log(max(1.0, float(document_frequency.get(gram, 0))))
        weights[len(gram) - 1][gram] = float(count) * inverse_frequency
    norms = [math.sqrt(sum(weight ** 2 for weight in order.values())) for order in weights]
    # COCO's code measures length in bigrams; for the non-empty captions whose length matters
    # here (an empty candidate scores 0 whatever its penalty) the difference of two lengths is
    # the same in bigrams and in words.
    return _TfIdf(weights, norms, len(words))


def _cider_similarity(candidate: _TfIdf, reference: _TfIdf, sigma: float) -> List[float]:
    """Per n-gram order: clipped cosine similarity times the length penalty."""
    difference = float(candidate.length - reference.length)
    penalty = math.exp(-(difference ** 2) / (2 * sigma ** 2))
    similarities = []
    for n, candidate_weights in enumerate(candidate.weights):
        reference_weights = reference.weights[n]
        if candidate.norms[n] == 0 or reference.norms[n] == 0:
            # Every product below would be 0 anyway (all weights are >= 0).
            similarities.append(0.0)
            continue
        dot = 0.0
        for gram, weight in candidate_weights.items():
            reference_weight = reference_weights.get(gram, 0.0)
            # Clipping the candidate's weight (CIDEr-D) stops repeated words from paying off.
            dot += min(weight, reference_weight) * reference_weight
        similarities.append(dot / (candidate.norms[n] * reference.norms[n]) * penalty)
    return similarities


def _cider_d(images: Sequence[_Image], max_n: int, sigma: float) -> float:
    reference_counts = [[_ngram_counts(reference, max_n) for reference in image.references]
                        for image in images]
    document_frequency: Counter[Words] = collections.Counter()
    for counts_of_image in reference_counts:
        document_frequency.update(set().union(*counts_of_image))
    log_images = math.log(float(len(images)))

    total = 0.0
    for image in images:
        candidate = _tf_idf(image.candidate, document_frequency, log_images, max_n)
        summed = [0.0] * max_n
        for reference_words in image.references:
            reference = _tf_idf(reference_words, document_frequency, log_images, max_n)
            for n, similarity in enumerate(_cider_similarity(candidate, reference, sigma)):
                summed[n] += similarity
        total += sum(summed) / max_n / len(image.references) * CIDER_SCALE
    return total / len(images)


def corpus_cider_d(candidates: Mapping[Hashable, Sequence[str]],
                   references: Mapping[Hashable, Sequence[Sequence[str]]],
                   max_n: int = CIDER_MAX_N, sigma: float = CIDER_SIGMA) -> float:
    """CIDEr-D of tokenised candidates, document frequencies from these references (COCO's)."""
    return _cider_d(_images_from_words(candidates, references), max_n, sigma)


# -- METEOR -------------------------------------------------------------------------------------
class MeteorUnavailableError(RuntimeError):
    """METEOR cannot run here (no Java, or no jar); the message says why."""


class MeteorError(RuntimeError):
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
        jar: Optional[Path] = Path(configured).expanduser()
        if not jar.is_file():
            return MeteorSetup(None, jar, f"{METEOR_JAR_ENV} names {str(jar)!r}, which is not a "
                               f"file: point it at {METEOR_JAR_NAME} or unset it")
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
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
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
                raise ValueError(f"image {image.key!r}: a word contains "
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
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        try:
            stream.close()
        except OSError:
            pass


# -- all metrics together -----------------------------------------------------------------------
@dataclass(frozen=True)
class CaptionScores:
    """Corpus caption metrics of one evaluation, as the COCO caption evaluation reports them."""

    bleu1: float
    bleu2: float
    bleu3: float
    bleu4: float
    rouge_l: float
    cider_d: float
    meteor: Optional[float]             # None when METEOR could not run (never 0 for that)
    meteor_unavailable_reason: Optional[str] = None
    images: int = 0

    def as_dict(self) -> Dict[str, Optional[float]]:
        """The scores under their usual names; METEOR is None when it was unavailable."""
        return {"BLEU-1": self.bleu1, "BLEU-2": self.bleu2, "BLEU-3": self.bleu3,
                "BLEU-4": self.bleu4, "METEOR": self.meteor, "ROUGE-L": self.rouge_l,
                "CIDEr-D": self.cider_d}


_reasons_logged: set = set()


def _meteor_or_reason(images: Sequence[_Image], meteor: bool,
                      scorer: Optional[MeteorScorer]) -> Tuple[Optional[float], Optional[str]]:
    if not meteor:
        return None, "METEOR was not requested"
    try:
        if scorer is not None:
            return scorer._score_images(images)[0], None
        with MeteorScorer() as own_scorer:
            return own_scorer._score_images(images)[0], None
    except (MeteorUnavailableError, MeteorError) as error:
        reason = f"METEOR unavailable: {error}"
    # Warn once per reason: an evaluation each epoch would repeat it otherwise.
    level = logging.INFO if reason in _reasons_logged else logging.WARNING
    _reasons_logged.add(reason)
    logger.log(level, "%s (the other metrics are computed without it)", reason)
    return None, reason


def _evaluate(images: Sequence[_Image], meteor: bool,
              meteor_scorer: Optional[MeteorScorer]) -> CaptionScores:
    bleu = _bleu(images, BLEU_MAX_N)
    meteor_value, reason = _meteor_or_reason(images, meteor, meteor_scorer)
    return CaptionScores(bleu1=bleu[0], bleu2=bleu[1], bleu3=bleu[2], bleu4=bleu[3],
                         rouge_l=_rouge_l(images),
                         cider_d=_cider_d(images, CIDER_MAX_N, CIDER_SIGMA),
                         meteor=meteor_value, meteor_unavailable_reason=reason,
                         images=len(images))


def evaluate_captions(candidates: Mapping[Hashable, str],
                      references: Mapping[Hashable, Sequence[str]], *, meteor: bool = True,
                      meteor_scorer: Optional[MeteorScorer] = None) -> CaptionScores:
    """All caption metrics of candidate captions against reference captions, keyed by image id.

    Captions are strings; they are split with :func:`mapscribe.model.text.tokenize`. Every
    image needs one candidate (it may be empty: it then scores low) and at least one reference
    with words. With ``meteor`` true, METEOR runs in a Java process started for this call, or in
    ``meteor_scorer`` when one is given (kept open, for repeated evaluations); when Java or the
    jar is missing or METEOR fails, ``meteor`` is None and ``meteor_unavailable_reason`` says why
    (also logged, as a warning the first time). With ``meteor`` false it is not computed.

    Raises ValueError naming the image ids when the two mappings do not cover the same images,
    an image has no references, a reference has no words, or there is nothing to evaluate.
    """
    return _evaluate(_images_from_captions(candidates, references), meteor, meteor_scorer)


def evaluate_tokenized(candidates: Mapping[Hashable, Sequence[str]],
                       references: Mapping[Hashable, Sequence[Sequence[str]]], *,
                       meteor: bool = True,
                       meteor_scorer: Optional[MeteorScorer] = None) -> CaptionScores:
    """:func:`evaluate_captions` for captions already split into words (lists of strings)."""
    return _evaluate(_images_from_words(candidates, references), meteor, meteor_scorer)


__all__ = [
    "CaptionScores", "MeteorError", "MeteorScorer", "MeteorSetup", "MeteorUnavailableError",
    "corpus_bleu", "corpus_cider_d", "corpus_rouge_l", "evaluate_captions", "evaluate_tokenized",
    "find_meteor", "sentence_rouge_l",
]
