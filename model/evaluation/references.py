"""Candidates and references paired per image, checked once for every metric: the same image
ids on both sides, lists of word tokens, n-gram counting.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Counter, Hashable, List, Mapping, Sequence, Tuple

from ..data.text import tokenize
from ..errors import ParameterError

Words = Tuple[str, ...]


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
        raise ParameterError("candidates and references must be mappings from image id to "
                             f"captions, not {type(candidates).__name__} and "
                             f"{type(references).__name__}")
    if not candidates and not references:
        raise ParameterError("no captions to evaluate: candidates and references are both empty")
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
        raise ParameterError("candidates and references must cover the same images; "
                             + "; ".join(problems))
    keys = list(candidates)
    for key in keys:
        if isinstance(references[key], (str, bytes)):
            raise ParameterError(f"references of image {key!r} must be a list of captions, not one "
                                 "string")
        if not isinstance(references[key], Sequence):
            raise ParameterError(f"references of image {key!r} must be a list of captions, not "
                                 f"{type(references[key]).__name__}")
    without = [key for key in keys if len(references[key]) == 0]
    if without:
        raise ParameterError(f"{len(without)} image(s) have no reference captions: "
                             f"{_show_ids(without)}; every image needs at least one reference")
    return keys


def _check_words(words: object, what: str) -> Words:
    """``words`` as a tuple of words, or a ValueError saying what is wrong with them."""
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
        raise ParameterError(f"{what} must be a list of words (use evaluate_captions for caption "
                             f"strings), not {type(words).__name__}")
    for word in words:
        if not isinstance(word, str) or not word or word != "".join(word.split()):
            raise ParameterError(f"{what} holds {word!r}: words must be non-empty strings without "
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
                raise ParameterError(f"reference {index} of image {key!r} has no words; drop empty "
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
            raise ParameterError(f"the candidate of image {key!r} must be a caption string, not "
                                 f"{type(candidate).__name__} (use evaluate_tokenized for word "
                                 "lists)")
        refs = []
        for index, reference in enumerate(references[key]):
            if not isinstance(reference, str):
                raise ParameterError(f"reference {index} of image {key!r} must be a caption "
                                     f"string, not {type(reference).__name__}")
            words = tuple(tokenize(reference))
            if not words:
                raise ParameterError(f"reference {index} of image {key!r} has no words "
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
