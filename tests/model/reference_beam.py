"""A plain beam search, one image at a time, written for the tests only.

It follows the description in mapscribe.model.nn.beam_search's docstring with Python lists and no
batching, so the batched search can be checked against it: per image, keep the best
``K − finished`` expansions of the live hypotheses, move those ending in <end> to the finished
list, stop when K finished or after ``max_length`` tokens, choose by total / length ** penalty,
fall back to the best unfinished hypothesis when none finished. Like the engine's, it never
puts a word right after itself and never writes a trigram twice.
"""

from __future__ import annotations

from typing import List, Tuple

import torch

from mapscribe.model.data.text import Vocabulary
from mapscribe.model.nn.beam_search import banned_word_ids, word_log_probs
from mapscribe.model.nn.config import DecodingParams


def _repeats(words: List[int], word: int) -> bool:
    """Whether ``word`` after ``words`` repeats the last word or a trigram of ``words``."""
    if words and words[-1] == word:
        return True
    if len(words) < 2:
        return False
    trigram = (words[-2], words[-1], word)
    return any(tuple(words[i:i + 3]) == trigram for i in range(len(words) - 2))


@torch.no_grad()
def reference_beam_search(decoder, features: torch.Tensor, params: DecodingParams
                          ) -> Tuple[List[int], float, bool]:
    """features (1, P, C) → (word ids without <end>, total log-probability, finished)."""
    memory, state = decoder.start(features)
    banned = banned_word_ids(params)
    # Each live hypothesis: (total, word ids so far, decoder state).
    live = [(0.0, [], state)]
    finished: List[Tuple[float, List[int]]] = []
    for _ in range(params.max_length):
        expansions = []
        for total, words, hypothesis_state in live:
            previous = words[-1] if words else Vocabulary.start_id
            logits, new_state, _ = decoder.step(torch.tensor([previous]), memory,
                                                hypothesis_state)
            log_probs = word_log_probs(logits, banned)[0]
            for word in range(log_probs.numel()):
                if _repeats(words, word):
                    continue
                score = total + float(log_probs[word])
                if score != float("-inf"):
                    expansions.append((score, words + [word], new_state))
        expansions.sort(key=lambda e: e[0], reverse=True)
        keep = expansions[:params.beam_size - len(finished)]
        live = []
        for total, words, hypothesis_state in keep:
            if words[-1] == Vocabulary.end_id:
                finished.append((total, words))
            else:
                live.append((total, words, hypothesis_state))
        if not live:
            break
    if finished:
        def normalised(item):
            return item[0] / len(item[1]) ** params.length_penalty
        total, words = max(finished, key=normalised)
        return words[:-1], total, True
    total, words, _ = live[0]
    return words, total, False
