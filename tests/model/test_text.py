"""The tokeniser and the vocabulary."""

from __future__ import annotations

import json

import pytest

from mapscribe.model.data.folder import read_caption_folder
from mapscribe.model.data.text import Vocabulary, VocabularyError, tokenize


@pytest.mark.parametrize("text, words", [
    ("There is a piece of farmland .", ["there", "is", "a", "piece", "of", "farmland"]),
    ("Tree-lined road, it's 2 cars!", ["tree", "lined", "road", "it's", "2", "cars"]),
    ("It\u2019s a  PARKING lot", ["it's", "a", "parking", "lot"]),
    ("ﬁeld", ["field"]),  # NFKC folds the ligature
    (" . ", []),
])
def test_tokenize(text, words):
    assert tokenize(text) == words


def test_tokens_match_rsicd_own_tokens_for_plain_sentences(rsicd_folder):
    """RSICD's tokens were made by lower-casing and dropping '.': ours agree wherever the raw
    sentence holds only words, spaces and a final full stop."""
    document = json.loads((rsicd_folder / "annotations.json").read_text())
    compared = 0
    for item in document["images"][:300]:
        for sentence in item["sentences"]:
            raw = sentence["raw"]
            if all(c.isalnum() or c in " ." for c in raw):
                assert tokenize(raw) == [t for t in sentence["tokens"] if t != "."]
                compared += 1
    assert compared > 1000


def test_vocabulary_min_count_specials_and_unknown_words():
    captions = [["a", "b", "b"], ["b", "c", "a"], ["d"]]
    vocabulary = Vocabulary.build(captions, min_count=2)
    assert vocabulary.itos == ["<pad>", "<start>", "<end>", "<unk>", "b", "a"]
    assert vocabulary.encode(["a", "zebra", "b"]) == [1, 5, 3, 4, 2]
    assert vocabulary.decode([1, 5, 3, 4, 2, 4, 4]) == ["a", "<unk>", "b"]
    assert "c" not in vocabulary and "b" in vocabulary
    with pytest.raises(VocabularyError, match="min_count"):
        Vocabulary.build(captions, min_count=0)


def test_vocabulary_is_deterministic_and_round_trips(ucm_folder, tmp_path):
    records = read_caption_folder(ucm_folder, check_images="none").split("train")
    first = Vocabulary.build((t for r in records for t in r.tokens), min_count=5)
    second = Vocabulary.build((t for r in reversed(records) for t in r.tokens), min_count=5)
    assert first == second and 200 < len(first) < 400
    path = tmp_path / "vocabulary.json"
    first.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == first and loaded.min_count == 5


def test_vocabulary_file_errors(tmp_path):
    path = tmp_path / "vocabulary.json"
    path.write_text("{oops")
    with pytest.raises(VocabularyError, match="not valid JSON .line 1, column 2"):
        Vocabulary.load(path)
    path.write_text(json.dumps({"words": ["a"]}))
    with pytest.raises(VocabularyError, match="not a MapScribe vocabulary"):
        Vocabulary.load(path)
    path.write_text(json.dumps({"format": "mapscribe-vocabulary", "version": 9, "words": []}))
    with pytest.raises(VocabularyError, match="version 9"):
        Vocabulary.load(path)
    with pytest.raises(VocabularyError, match="cannot read"):
        Vocabulary.load(tmp_path / "missing.json")
    with pytest.raises(VocabularyError, match="special tokens"):
        Vocabulary(["<end>"])
