"""ROUGE-L: the longest common subsequence F-measure (beta 1.2), as in the COCO caption
evaluation."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

from .references import Words, _Image, _images_from_words

ROUGE_L_BETA = 1.2


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
