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

import logging
from dataclasses import dataclass
from typing import Any, Dict, Hashable, Mapping, Optional, Sequence, Tuple

from .bleu import BLEU_MAX_N, _bleu
from .cider import CIDER_MAX_N, CIDER_SIGMA, _cider_d
from .meteor import MeteorError, MeteorScorer, MeteorUnavailableError
from .references import _Image, _images_from_captions, _images_from_words
from .rouge import _rouge_l

logger = logging.getLogger(__name__)


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


def evaluate_captions(candidates: Mapping[Any, str],
                      references: Mapping[Any, Sequence[str]], *, meteor: bool = True,
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


__all__ = ["CaptionScores", "evaluate_captions", "evaluate_tokenized"]
