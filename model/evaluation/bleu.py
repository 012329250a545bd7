"""Corpus BLEU-1..4 as in the COCO caption evaluation (closest reference length, the same
smoothing constants), so figures compare with published ones.
"""

from __future__ import annotations

import math
from typing import Dict, Hashable, List, Mapping, Sequence

from ..errors import ParameterError
from .references import Words, _Image, _images_from_words, _ngram_counts

BLEU_MAX_N = 4


# The COCO BLEU code adds these so that zero counts give (almost) zero, never a division error.
_BLEU_TINY = 1e-15


_BLEU_SMALL = 1e-9


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
        raise ParameterError(f"max_n must be at least 1, not {max_n}")
    return _bleu(_images_from_words(candidates, references), max_n)
