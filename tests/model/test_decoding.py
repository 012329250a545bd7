"""Batched beam search against the one-image-at-a-time reference, on untrained decoders and on
a decoder whose weights make it a known bigram model (the trained-model comparison on real
images is in test_training.py)."""

from __future__ import annotations

import math
from typing import Dict

import pytest
import torch

from mapscribe.model.data.text import Vocabulary
from mapscribe.model.nn.beam_search import beam_search
from mapscribe.model.nn.config import DecoderParams, DecodingParams
from mapscribe.model.nn.decoder import AttentionDecoder
from reference_beam import reference_beam_search


def untrained_decoder(vocabulary_size=40, features=16, seed=0, end_bias=0.0):
    torch.manual_seed(seed)
    params = DecoderParams(embed_size=12, hidden_size=20, attention_size=10, dropout=0.0,
                           context_size=24)
    decoder = AttentionDecoder(vocabulary_size, features, params).eval()
    with torch.no_grad():
        decoder.output.bias[Vocabulary.end_id] += end_bias
    return decoder


def compare(decoder, features, params):
    batched = beam_search(decoder, features, params)
    for image in range(features.size(0)):
        words, total, finished = reference_beam_search(decoder, features[image:image + 1],
                                                       params)
        length = int(batched.lengths[image])
        assert batched.tokens[image, :length].tolist() == words, f"image {image}"
        assert bool(batched.finished[image]) == finished
        assert float(batched.total_log_prob[image]) == pytest.approx(total, abs=1e-4)
        tokens = len(words) + (1 if finished else 0)
        assert float(batched.mean_log_prob[image]) == pytest.approx(total / tokens, abs=1e-5)
    return batched


@pytest.mark.parametrize("beam_size", [1, 3, 5])
@pytest.mark.parametrize("end_bias", [2.5, 4.0])
def test_batched_equals_reference_when_captions_end(beam_size, end_bias):
    decoder = untrained_decoder(end_bias=end_bias, seed=beam_size)
    features = torch.randn(6, 9, 16)
    params = DecodingParams(beam_size=beam_size, max_length=8)
    result = compare(decoder, features, params)
    assert result.finished.any()


@pytest.mark.parametrize("beam_size", [1, 3])
def test_no_beam_reaches_the_end_the_best_unfinished_is_returned(beam_size):
    decoder = untrained_decoder(end_bias=-30.0)  # <end> practically never chosen
    features = torch.randn(3, 9, 16)
    params = DecodingParams(beam_size=beam_size, max_length=5)
    result = compare(decoder, features, params)
    assert not result.finished.any()
    assert result.lengths.tolist() == [5, 5, 5]


def test_length_penalty_agrees_with_the_reference():
    decoder = untrained_decoder(end_bias=3.0, seed=7)
    features = torch.randn(8, 9, 16)
    for penalty in (0.0, 0.5, 1.0, 2.0):
        compare(decoder, features, DecodingParams(beam_size=4, max_length=7,
                                                  length_penalty=penalty))


# Word ids of the bigram model below (0-3 are <pad>, <start>, <end>, <unk>); NOISE takes what
# probability each row leaves over, and leads nowhere.
A, B, C, D, E, NOISE = 4, 5, 6, 7, 8, 9
END = Vocabulary.end_id


def bigram_decoder(next_word: Dict[int, Dict[int, float]], vocabulary_size: int = 10,
                   feature_size: int = 6) -> AttentionDecoder:
    """An AttentionDecoder whose weights make it a bigram model, whatever the image:
    p(word | previous word) = next_word[previous][word] (the rest of each row goes to NOISE).

    The embedding is one-hot; the LSTM's input gate is open, its forget gate shut and its
    output gate open, so the hidden state is tanh(tanh(20)) · one-hot(previous word) and
    nothing of the image or of earlier words; the output layer maps it to the row's
    log-probabilities."""
    size = vocabulary_size
    params = DecoderParams(embed_size=size, hidden_size=size, attention_size=4, dropout=0.0,
                           context_size=4)
    decoder = AttentionDecoder(size, feature_size, params).eval()
    log_probs = torch.full((size, size), -40.0)
    for previous in range(size):
        row = next_word.get(previous, {NOISE: 1.0})
        for word, probability in row.items():
            log_probs[previous, word] = math.log(probability)
        rest = 1.0 - sum(row.values())
        if rest > 0:
            log_probs[previous, NOISE] = math.log(rest)
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.zero_()
        decoder.embedding.weight.copy_(torch.eye(size))
        lstm = decoder.lstm
        lstm.bias_ih[0:size] = 30.0                  # input gate: open
        lstm.bias_ih[size:2 * size] = -30.0          # forget gate: shut
        lstm.bias_ih[3 * size:4 * size] = 30.0       # output gate: open
        lstm.weight_ih[2 * size:3 * size, :size] = 20.0 * torch.eye(size)  # the previous word
        decoder.output.weight.copy_(log_probs.T / math.tanh(math.tanh(20.0)))
    return decoder


# "a <end>":         log .3 + log .98    = −1.224 in 2 tokens: −0.612 per token;
# "b c d e <end>":   log .69 + 4 log .6  = −2.414 in 5 tokens: −0.483 per token.
SHORT_OR_LONG = {Vocabulary.start_id: {A: 0.3, B: 0.69}, A: {END: 0.98}, B: {C: 0.6},
                 C: {D: 0.6}, D: {E: 0.6}, E: {END: 0.6}}
SHORT_TOTAL = math.log(0.3) + math.log(0.98)
LONG_TOTAL = math.log(0.69) + 4 * math.log(0.6)


@pytest.mark.parametrize("penalty, words, total", [
    (0.0, [A], SHORT_TOTAL),           # raw total: −1.224 beats −2.414
    (0.5, [A], SHORT_TOTAL),           # −1.224 / √2 = −0.866 beats −2.414 / √5 = −1.080
    (1.0, [B, C, D, E], LONG_TOTAL),   # per token: −0.483 beats −0.612
    (2.0, [B, C, D, E], LONG_TOTAL),   # −2.414 / 25 = −0.097 beats −1.224 / 4 = −0.306
])
def test_length_penalty_chooses_between_a_short_and_a_long_caption(penalty, words, total):
    decoder = bigram_decoder(SHORT_OR_LONG)
    features = torch.randn(3, 5, 6)
    result = compare(decoder, features, DecodingParams(beam_size=2, max_length=8,
                                                       length_penalty=penalty))
    for image in range(3):
        length = int(result.lengths[image])
        assert result.tokens[image, :length].tolist() == words, f"penalty {penalty}"
        assert bool(result.finished[image])
        assert float(result.total_log_prob[image]) == pytest.approx(total, abs=1e-4)
        assert float(result.mean_log_prob[image]) == pytest.approx(total / (len(words) + 1),
                                                                   abs=1e-4)


def test_special_tokens_are_never_generated():
    decoder = untrained_decoder(end_bias=1.0)
    with torch.no_grad():
        decoder.output.bias[Vocabulary.unk_id] += 50.0
    features = torch.randn(4, 9, 16)
    result = beam_search(decoder, features, DecodingParams(beam_size=3, max_length=6))
    generated = set(result.tokens[result.tokens != Vocabulary.pad_id].tolist())
    assert not generated & {Vocabulary.pad_id, Vocabulary.start_id, Vocabulary.unk_id}
    allowed = beam_search(decoder, features,
                          DecodingParams(beam_size=3, max_length=6, allow_unknown=True))
    assert (allowed.tokens == Vocabulary.unk_id).any()


def test_attention_maps_follow_the_chosen_beam():
    decoder = untrained_decoder(end_bias=3.0, seed=3)
    features = torch.randn(5, 9, 16)
    result = beam_search(decoder, features, DecodingParams(beam_size=3, max_length=6,
                                                           return_attention=True))
    assert result.attention.shape == (5, result.tokens.size(1), 9)
    for image in range(5):
        length = int(result.lengths[image])
        if length == 0:
            continue
        maps = result.attention[image, :length]
        assert torch.allclose(maps.sum(dim=1), torch.ones(length), atol=1e-5)
        # Recompute the attention of the chosen caption by teacher forcing it.
        ids = torch.tensor([[Vocabulary.start_id] + result.tokens[image, :length].tolist()])
        _, weights = decoder(features[image:image + 1], ids, teacher_forcing=1.0)
        assert torch.allclose(weights[0, :length], maps, atol=1e-5)


def test_bad_decoding_parameters():
    with pytest.raises(ValueError, match="beam size"):
        DecodingParams(beam_size=0)
    with pytest.raises(ValueError, match="maximum length"):
        DecodingParams(max_length=0)


# A decoder that wants to stutter: after A it wants A again; after B, C; after C, B.
STUTTER = {Vocabulary.start_id: {A: 0.9}, A: {A: 0.8, B: 0.15, END: 0.04},
           B: {C: 0.9, END: 0.06}, C: {B: 0.9, END: 0.06}}


def _has_repetition(words) -> bool:
    immediate = any(a == b for a, b in zip(words, words[1:]))
    trigrams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    return immediate or len(trigrams) != len(set(trigrams))


@pytest.mark.parametrize("beam_size", [1, 3])
def test_no_caption_repeats_a_word_or_a_trigram(beam_size):
    decoder = bigram_decoder(STUTTER)
    features = torch.randn(2, 5, 6)
    result = compare(decoder, features, DecodingParams(beam_size=beam_size, max_length=12))
    for image in range(2):
        words = result.tokens[image, :int(result.lengths[image])].tolist()
        assert not _has_repetition(words), words
        if beam_size == 1:
            # Without the rule the model writes "a a a …"; with it "a b c b c", then <end>
            # (another "b" would repeat the trigram "b c b").
            assert words == [A, B, C, B, C]
