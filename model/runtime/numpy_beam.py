"""The beam search of :mod:`mapscribe.model.nn.beam_search`, in numpy: no torch.

Same algorithm, same rules, same bookkeeping, line for line (read that module's docstring):
all images × beams in one array of N = B·K rows, the best ``K − finished`` expansions kept per
image, hypotheses ending in ``<end>`` moved to the image's finished list, images whose search is
over leaving the working arrays at once, the choice by ``total / length ** length_penalty``, the
best unfinished hypothesis when none finished; ``<start>``, ``<pad>`` and (unless allowed)
``<unk>`` never generated, no word right after itself and no trigram twice. Scores are float32
as in torch. Tests compare both searches, and both with tests/model/reference_beam.py.

The decoder is two callables, so any runtime can drive it: ``start(features)`` → (memory,
state) and ``step(words, memory, state)`` → (logits (N, V), new state, attention (N, P)), where
memory and state are tuples of arrays whose first axis is the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..data.text import Vocabulary
from ..nn.config import DecodingParams, banned_word_ids

Arrays = Tuple[np.ndarray, ...]
StartFn = Callable[[np.ndarray], Tuple[Arrays, Arrays]]
StepFn = Callable[[np.ndarray, Arrays, Arrays], Tuple[np.ndarray, Arrays, np.ndarray]]

NEG_INF = np.float32(-np.inf)


@dataclass
class NumpyBeamResult:
    """The chosen caption of each of B images (the fields of nn.beam_search.BeamResult)."""

    tokens: np.ndarray               # (B, T) word ids, <end> excluded, padded with <pad>
    lengths: np.ndarray              # (B,) words per caption
    total_log_prob: np.ndarray       # (B,) summed over the words and the <end> token
    mean_log_prob: np.ndarray        # (B,) total / tokens (words + <end> when finished)
    finished: np.ndarray             # (B,) bool: the caption reached <end>
    attention: Optional[np.ndarray]  # (B, T, P) attention weights per word, when asked

    def words(self, vocabulary: Vocabulary) -> List[List[str]]:
        return [vocabulary.decode(row[:length].tolist())
                for row, length in zip(self.tokens, self.lengths)]


def word_log_probs(logits: np.ndarray, banned: Sequence[int]) -> np.ndarray:
    """logits (N, V) → log-probabilities (N, V) in float32, banned words at −inf."""
    logits = logits.astype(np.float32, copy=False)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs[:, list(banned)] = NEG_INF
    return log_probs


def ban_repetitions(log_probs: np.ndarray, previous: np.ndarray, sequences: np.ndarray) -> None:
    """In place: no word right after itself, and no trigram twice in one caption (see
    nn.beam_search.ban_repetitions)."""
    rows = np.arange(log_probs.shape[0])
    log_probs[rows, previous] = NEG_INF
    if sequences.shape[1] >= 3:
        first, second = sequences[:, -2:-1], sequences[:, -1:]                # (N, 1) each
        seen = (sequences[:, :-2] == first) & (sequences[:, 1:-1] == second)  # (N, L − 2)
        repeated = np.where(seen, sequences[:, 2:], Vocabulary.pad_id)
        log_probs[rows[:, None], repeated] = NEG_INF


def _select(arrays: Arrays, index: np.ndarray) -> Arrays:
    return tuple(array[index] for array in arrays)


def _topk(values: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The k largest of each row, largest first (ties: the lower index first)."""
    if k < values.shape[1]:
        candidates = np.sort(np.argpartition(-values, k - 1, axis=1)[:, :k], axis=1)
    else:
        candidates = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    picked = np.take_along_axis(values, candidates, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    return (np.take_along_axis(picked, order, axis=1),
            np.take_along_axis(candidates, order, axis=1))


def beam_search(start: StartFn, step_fn: StepFn, features: np.ndarray,
                params: DecodingParams) -> NumpyBeamResult:
    """Caption B images at once. features (B, P, C) float32 from the encoder."""
    batch, cells, _ = features.shape
    beams = params.beam_size
    steps = params.max_length
    banned = banned_word_ids(params)
    rank = np.arange(beams)[None, :]                                          # (1, K)

    active = np.arange(batch)                                                 # (A,)
    memory, state = start(features)
    beam_image = np.repeat(active, beams)                                     # (A·K,)
    memory, state = _select(memory, beam_image), _select(state, beam_image)
    words = np.full(batch * beams, Vocabulary.start_id, dtype=np.int64)
    scores = np.full((batch, beams), NEG_INF, dtype=np.float32)              # (A, K)
    scores[:, 0] = 0.0
    sequences = np.zeros((batch, beams, 0), dtype=np.int64)
    history = (np.zeros((batch, beams, 0, cells), dtype=np.float32)
               if params.return_attention else None)

    done_tokens = np.full((batch, beams, steps), Vocabulary.pad_id, dtype=np.int64)
    done_length = np.ones((batch, beams), dtype=np.int64)
    done_total = np.full((batch, beams), NEG_INF, dtype=np.float32)
    done_attention = (np.zeros((batch, beams, steps, cells), dtype=np.float32)
                      if params.return_attention else None)
    done_count = np.zeros(batch, dtype=np.int64)

    for step in range(steps):
        searched = active.size
        rows = searched * beams
        logits, state, weights = step_fn(words, memory, state)
        log_probs = word_log_probs(logits, banned)                            # (A·K, V)
        if step:
            ban_repetitions(log_probs, words, sequences.reshape(rows, step))
        vocabulary_size = log_probs.shape[1]
        expanded = scores[:, :, None] + log_probs.reshape(searched, beams, vocabulary_size)
        best, flat_index = _topk(expanded.reshape(searched, -1), beams)       # (A, K) sorted
        parent = flat_index // vocabulary_size
        word = flat_index % vocabulary_size

        taken = (rank < (beams - done_count[active])[:, None]) & np.isfinite(best)
        ends = taken & (word == Vocabulary.end_id)
        live = taken & ~ends

        offset = (np.arange(searched) * beams)[:, None]                       # (A, 1)
        rows_kept = (offset + parent).reshape(-1)                             # (A·K,)
        sequences = np.concatenate([sequences.reshape(rows, step)[rows_kept]
                                    .reshape(searched, beams, step), word[:, :, None]], axis=2)
        if history is not None:
            step_weights = weights.reshape(rows, 1, cells)[rows_kept]
            history = np.concatenate([history.reshape(rows, step, cells)[rows_kept]
                                      .reshape(searched, beams, step, cells),
                                      step_weights.reshape(searched, beams, 1, cells)], axis=2)

        if ends.any():
            local, beam = np.nonzero(ends)
            image = active[local]
            slot = done_count[image] + (np.cumsum(ends, axis=1) - 1)[local, beam]
            done_tokens[image, slot, :step + 1] = sequences[local, beam]
            done_length[image, slot] = step + 1
            done_total[image, slot] = best[local, beam]
            if history is not None and done_attention is not None:
                done_attention[image, slot, :step + 1] = history[local, beam]
            done_count[active] += ends.sum(axis=1)

        scores = np.where(live, best, NEG_INF).astype(np.float32)
        searching = live.any(axis=1)                                          # (A,)
        if not searching.any():
            break
        if not searching.all():
            keep = np.flatnonzero(searching)
            active, scores, sequences, word = (active[keep], scores[keep], sequences[keep],
                                               word[keep])
            history = history[keep] if history is not None else None
            rows_kept = rows_kept.reshape(searched, beams)[keep].reshape(-1)
            memory = _select(memory, (keep[:, None] * beams + rank).reshape(-1))
        state = _select(state, rows_kept)
        words = word.reshape(-1)

    live_sequences = np.full((batch, beams, sequences.shape[2]), Vocabulary.pad_id,
                             dtype=np.int64)
    live_sequences[active] = sequences
    live_scores = np.full((batch, beams), NEG_INF, dtype=np.float32)
    live_scores[active] = scores
    live_history = None
    if history is not None:
        live_history = np.zeros((batch, beams, history.shape[2], cells), dtype=np.float32)
        live_history[active] = history
    return _choose(params, done_tokens, done_length, done_total, done_attention, done_count,
                   live_sequences, live_scores, live_history)


def _choose(params: DecodingParams, done_tokens, done_length, done_total, done_attention,
            done_count, sequences, scores, history) -> NumpyBeamResult:
    """The best finished hypothesis per image, else the best live one."""
    batch, beams, steps = done_tokens.shape
    images = np.arange(batch)
    ranked = done_total / done_length.astype(np.float32) ** np.float32(params.length_penalty)
    ranked = np.where(np.isfinite(done_total), ranked, np.float32(-1e30))
    pick = ranked.argmax(axis=1)
    tokens = done_tokens[images, pick]                       # (B, steps) ending with <end>
    length = done_length[images, pick]                       # tokens, <end> included
    total = done_total[images, pick]
    attention = done_attention[images, pick] if done_attention is not None else None
    finished = done_count > 0

    if not finished.all():
        fallback = ~finished
        generated = sequences.shape[2]
        tokens[fallback] = Vocabulary.pad_id
        tokens[fallback, :generated] = sequences[fallback, 0]
        length[fallback] = generated
        total[fallback] = scores[fallback, 0]
        if attention is not None:
            attention[fallback] = 0.0
            attention[fallback, :generated] = history[fallback, 0]

    words = np.where(finished, length - 1, length)           # drop <end> when there is one
    positions = np.arange(steps)[None, :]
    tokens = np.where(positions < words[:, None], tokens, Vocabulary.pad_id)
    width = max(1, int(words.max()))
    mean = total / length.astype(np.float32)
    return NumpyBeamResult(tokens[:, :width], words, total, mean, finished,
                           attention[:, :width] if attention is not None else None)
