"""Batched beam search against the one-image-at-a-time reference, on untrained decoders (the
trained-model comparison on real images is in test_captioner.py)."""

from __future__ import annotations

import pytest
import torch

from mapscribe.model.nn.decoder import AttentionDecoder
from mapscribe.model.nn.config import DecoderParams
from mapscribe.model.nn.beam_search import DecodingParams, beam_search
from mapscribe.model.data.text import Vocabulary

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


def test_length_penalty_changes_the_choice_like_the_reference():
    decoder = untrained_decoder(end_bias=3.0, seed=7)
    features = torch.randn(8, 9, 16)
    for penalty in (0.0, 0.5, 1.0, 2.0):
        compare(decoder, features, DecodingParams(beam_size=4, max_length=7,
                                                  length_penalty=penalty))


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
