"""A dataset folder in numbers: images and captions per split, vocabulary size, caption lengths."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Tuple

from .folder import CaptionFolder


# -- summaries ----------------------------------------------------------------------------------
@dataclass
class FolderSummary:
    """What ``mapscribe data check`` prints: counts, vocabulary and caption lengths."""

    folder: str
    format: str
    split_source: str
    splits: Dict[str, Tuple[int, int]]
    vocabulary_words: int                   # words kept, not counting the special tokens
    min_word_count: int
    caption_length: Dict[str, float]
    errors: int
    warnings: int
    problem_counts: Dict[str, int] = field(default_factory=dict)


def summarise(folder: CaptionFolder, min_word_count: int = 5) -> FolderSummary:
    """Counts per split, the vocabulary built from train (all records when there is no train
    split), caption length statistics and problem counts."""
    from .text import Vocabulary

    train = folder.split("train") or folder.records
    vocabulary = Vocabulary.build((t for r in train for t in r.tokens), min_count=min_word_count)
    lengths = sorted(len(t) for r in folder.records for t in r.tokens)
    n = len(lengths)
    stats = {"min": lengths[0], "mean": round(sum(lengths) / n, 2), "median": lengths[n // 2],
             "p95": lengths[min(n - 1, int(0.95 * n))], "max": lengths[-1]}
    codes = Counter(p.code for p in folder.problems)
    return FolderSummary(str(folder.root), folder.format, folder.split_source,
                         folder.split_counts(), len(vocabulary) - len(Vocabulary.SPECIALS),
                         min_word_count, stats,
                         len(folder.errors), len(folder.warnings), dict(codes))
