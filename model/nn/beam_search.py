"""Beam search over many images at once.

All images × beams live in one tensor of N = B·K rows, so one decoder step serves every image
and there is no Python loop over images. Per image, the search is the classic one:

1. Start with one live hypothesis, ``<start>``.
2. At each step expand every live hypothesis by every word; of all expansions keep the best
   ``K − finished`` by total log-probability. Those that end with ``<end>`` join the image's
   finished list; the others stay live.
3. Stop when every image has K finished hypotheses or ``max_length`` tokens were generated
   (so a finished caption has at most ``max_length − 1`` words and ``<end>``).
4. Choose among the finished hypotheses by ``total / length ** length_penalty`` (length counts
   the ``<end>`` token). When none finished, the best unfinished one is returned (the reference
   tutorial crashes there).

Beam size 1 is greedy decoding. ``<start>``, ``<pad>`` and (unless allowed) ``<unk>`` are never
generated, and no caption repeats a word immediately ("with with") or a trigram
(:func:`ban_repetitions`): a captioner trained on short, formulaic captions otherwise loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

from ..data.text import Vocabulary
from .config import DecodingParams, banned_word_ids
from .decoder import AttentionDecoder


@dataclass
class BeamResult:
    """The chosen caption of each of B images."""

    tokens: torch.Tensor               # (B, T) word ids, <end> excluded, padded with <pad>
    lengths: torch.Tensor              # (B,) words per caption
    total_log_prob: torch.Tensor       # (B,) summed over the words and the <end> token
    mean_log_prob: torch.Tensor        # (B,) total / tokens (words + <end> when finished)
    finished: torch.Tensor             # (B,) bool: the caption reached <end>
    attention: Optional[torch.Tensor]  # (B, T, P) attention weights per word, when asked

    def words(self, vocabulary: Vocabulary) -> List[List[str]]:
        return [vocabulary.decode(row[:length].tolist())
                for row, length in zip(self.tokens, self.lengths)]


def word_log_probs(logits: torch.Tensor, banned: Sequence[int]) -> torch.Tensor:
    """logits (N, V) → log-probabilities (N, V) in float32, banned words at −inf."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    log_probs[:, list(banned)] = float("-inf")
    return log_probs


def ban_repetitions(log_probs: torch.Tensor, previous: torch.Tensor,
                    sequences: torch.Tensor) -> None:
    """In place: no word right after itself, and no trigram twice in one caption.

    ``log_probs`` (N, V) of the next word of N hypotheses, ``previous`` (N,) their last word,
    ``sequences`` (N, L) their words so far. A next word that would close a trigram already in
    the caption gets −inf, as does the previous word.
    """
    log_probs.scatter_(1, previous.unsqueeze(1), float("-inf"))
    if sequences.size(1) >= 3:
        first, second = sequences[:, -2:-1], sequences[:, -1:]                # (N, 1) each
        seen = (sequences[:, :-2] == first) & (sequences[:, 1:-1] == second)  # (N, L − 2)
        # <pad> is banned anyway, so it stands in where nothing is.
        repeated = torch.where(seen, sequences[:, 2:], torch.full_like(seen, Vocabulary.pad_id,
                                                                       dtype=torch.long))
        log_probs.scatter_(1, repeated, float("-inf"))


def normalised_score(total: torch.Tensor, length: torch.Tensor, penalty: float) -> torch.Tensor:
    return total / length.to(total.dtype).pow(penalty)


@torch.no_grad()
def beam_search(decoder: AttentionDecoder, features: torch.Tensor,
                params: DecodingParams) -> BeamResult:
    """Caption B images at once. features (B, P, C) from the encoder.

    Images whose search is over (no live hypothesis left) leave the working tensors at once,
    so the steps of long captions are not paid for by the images that finished early."""
    batch, cells, _ = features.shape
    beams = params.beam_size
    steps = params.max_length
    device = features.device
    banned = banned_word_ids(params)
    rank = torch.arange(beams, device=device).unsqueeze(0)                    # (1, K)

    # The working set: A images still searched (their global ids in `active`), K rows each.
    active = torch.arange(batch, device=device)                               # (A,)
    memory, state = decoder.start(features)
    # Every beam of an image shares its memory: expand it once, never reorder it.
    beam_image = active.repeat_interleave(beams)                              # (A·K,)
    memory, state = memory.select(beam_image), state.select(beam_image)
    words = torch.full((batch * beams,), Vocabulary.start_id, dtype=torch.long, device=device)
    # Live hypotheses: only slot 0 of each image is live at the start.
    scores = torch.full((batch, beams), float("-inf"), device=device)        # (A, K)
    scores[:, 0] = 0.0
    sequences = torch.zeros((batch, beams, 0), dtype=torch.long, device=device)
    history = features.new_zeros((batch, beams, 0, cells)) if params.return_attention else None

    # Finished hypotheses of every image, at most K each, in the order they finished.
    done_tokens = torch.full((batch, beams, steps), Vocabulary.pad_id, dtype=torch.long,
                             device=device)
    done_length = torch.ones((batch, beams), dtype=torch.long, device=device)
    done_total = torch.full((batch, beams), float("-inf"), device=device)
    done_attention = (features.new_zeros((batch, beams, steps, cells))
                      if params.return_attention else None)
    done_count = torch.zeros(batch, dtype=torch.long, device=device)

    for step in range(steps):
        searched = active.numel()
        rows = searched * beams
        logits, state, weights = decoder.step(words, memory, state)
        log_probs = word_log_probs(logits, banned)                            # (A·K, V)
        if step:
            ban_repetitions(log_probs, words, sequences.reshape(rows, step))
        vocabulary_size = log_probs.size(1)
        expanded = (scores.unsqueeze(2) + log_probs.view(searched, beams, vocabulary_size))
        best, flat_index = expanded.view(searched, -1).topk(beams, dim=1)    # (A, K) sorted
        parent = torch.div(flat_index, vocabulary_size, rounding_mode="floor")  # (A, K)
        word = flat_index % vocabulary_size

        # An image keeps only its best K − finished expansions.
        taken = (rank < (beams - done_count[active]).unsqueeze(1)) & torch.isfinite(best)
        ends = taken & (word == Vocabulary.end_id)
        live = taken & ~ends

        offset = (torch.arange(searched, device=device) * beams).unsqueeze(1)  # (A, 1)
        rows_kept = (offset + parent).view(-1)                                # (A·K,)
        sequences = torch.cat([sequences.reshape(rows, step)[rows_kept]
                               .view(searched, beams, step), word.unsqueeze(2)], dim=2)
        if history is not None:
            step_weights = weights.view(rows, 1, cells)[rows_kept]
            history = torch.cat([history.reshape(rows, step, cells)[rows_kept]
                                 .view(searched, beams, step, cells),
                                 step_weights.view(searched, beams, 1, cells)], dim=2)

        if ends.any():
            local, beam = ends.nonzero(as_tuple=True)
            image = active[local]
            slot = done_count[image] + (ends.long().cumsum(dim=1) - 1)[local, beam]
            done_tokens[image, slot, :step + 1] = sequences[local, beam]
            done_length[image, slot] = step + 1
            done_total[image, slot] = best[local, beam]
            if history is not None:
                assert done_attention is not None  # both exist exactly with return_attention
                done_attention[image, slot, :step + 1] = history[local, beam]
            done_count[active] += ends.sum(dim=1)

        scores = torch.where(live, best, torch.full_like(best, float("-inf")))
        searching = live.any(dim=1)                                           # (A,)
        if not searching.any():
            break
        if not searching.all():
            keep = searching.nonzero().squeeze(1)
            active, scores, sequences, word = active[keep], scores[keep], sequences[keep], \
                word[keep]
            history = history[keep] if history is not None else None
            rows_kept = rows_kept.view(searched, beams)[keep].view(-1)
            memory = memory.select((keep.unsqueeze(1) * beams + rank).view(-1))
        state = state.select(rows_kept)
        words = word.reshape(-1)

    # The images still searched at the end may have no finished hypothesis: their live ones
    # are the fallback.
    live_sequences = torch.full((batch, beams, sequences.size(2)), Vocabulary.pad_id,
                                dtype=torch.long, device=device)
    live_sequences[active] = sequences
    live_scores = torch.full((batch, beams), float("-inf"), device=device)
    live_scores[active] = scores
    live_history = None
    if history is not None:
        live_history = features.new_zeros((batch, beams, history.size(2), cells))
        live_history[active] = history
    return _choose(params, done_tokens, done_length, done_total, done_attention, done_count,
                   live_sequences, live_scores, live_history)


def _choose(params: DecodingParams, done_tokens, done_length, done_total, done_attention,
            done_count, sequences, scores, history) -> BeamResult:
    """The best finished hypothesis per image, else the best live one."""
    batch, beams, steps = done_tokens.shape
    device = done_tokens.device
    images = torch.arange(batch, device=device)
    ranked = normalised_score(done_total, done_length, params.length_penalty)
    ranked = torch.where(torch.isfinite(done_total), ranked, torch.full_like(ranked, -1e30))
    pick = ranked.argmax(dim=1)
    tokens = done_tokens[images, pick]                       # (B, steps) ending with <end>
    length = done_length[images, pick]                       # tokens, <end> included
    total = done_total[images, pick]
    attention = done_attention[images, pick] if done_attention is not None else None
    finished = done_count > 0

    if not bool(finished.all()):
        # Unfinished images: every live hypothesis has the same length, so the best total is
        # the best normalised score; the live scores are sorted, slot 0 is the best.
        fallback = ~finished
        generated = sequences.size(2)
        tokens[fallback] = Vocabulary.pad_id
        tokens[fallback, :generated] = sequences[fallback, 0]
        length[fallback] = generated
        total[fallback] = scores[fallback, 0]
        if attention is not None:
            attention[fallback] = 0.0
            attention[fallback, :generated] = history[fallback, 0]

    words = torch.where(finished, length - 1, length)        # drop <end> when there is one
    positions = torch.arange(steps, device=device).unsqueeze(0)
    tokens = torch.where(positions < words.unsqueeze(1), tokens,
                         torch.full_like(tokens, Vocabulary.pad_id))
    width = max(1, int(words.max()))
    mean = total / length.to(total.dtype)
    return BeamResult(tokens[:, :width], words, total, mean, finished,
                      attention[:, :width] if attention is not None else None)
