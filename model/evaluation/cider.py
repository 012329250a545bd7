"""CIDEr-D (Vedantam et al., 2015, as in the COCO caption evaluation): TF-IDF weighted n-gram
similarity with a length penalty and clipped counts, document frequencies from the references.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Counter, Dict, Hashable, List, Mapping, Sequence

from .references import Words, _Image, _images_from_words, _ngram_counts

CIDER_MAX_N = 4


CIDER_SIGMA = 6.0


# CIDEr scores are multiplied by 10 in COCO so that they read like the human consensus scores
# of the CIDEr paper.
CIDER_SCALE = 10.0


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
