"""Words: the one tokeniser and the vocabulary.

Every place that turns a caption into words — building the vocabulary, training, decoding and
computing metrics — calls :func:`tokenize`, so a caption is scored on exactly the words the model
was trained on.

The tokeniser:
1. normalises Unicode (NFKC) and lower-cases;
2. keeps runs of letters and digits as words, with an inner apostrophe kept inside a word
   ("it's", "farmers'" → "it's", "farmers");
3. drops everything else (punctuation, hyphens and slashes split words: "tree-lined" →
   "tree", "lined").

This is close to what RSICD's own ``tokens`` were made with (lower-cased, split on spaces, the
final "." dropped) and to the PTB tokeniser of the COCO evaluation once its punctuation is
removed, but it needs no Java and gives the same words everywhere.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable, List, Sequence

from ..atomic import write_text_atomic
from ..errors import MapScribeError

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*", re.UNICODE)


def tokenize(text: str) -> List[str]:
    """Split a caption into lower-case words (see the module docstring for the rules)."""
    normalised = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    return _WORD.findall(normalised)


def detokenize(words: Sequence[str]) -> str:
    """Join words back into a caption as shown to people."""
    return " ".join(words)


class VocabularyError(MapScribeError, ValueError):
    """A vocabulary file that cannot be used."""


class Vocabulary:
    """Maps words to ids and back.

    Ids 0..3 are the special tokens ``<pad>``, ``<start>``, ``<end>`` and ``<unk>``; the words
    follow, most frequent first (ties in alphabetical order, so a vocabulary built from the same
    captions is always the same).
    """

    PAD = "<pad>"
    START = "<start>"
    END = "<end>"
    UNK = "<unk>"
    SPECIALS = (PAD, START, END, UNK)

    def __init__(self, words: Iterable[str], min_count: int = 1):
        words = list(words)
        clashes = sorted(set(words) & set(self.SPECIALS))
        if clashes:
            raise VocabularyError(f"words may not be special tokens: {clashes}")
        if len(set(words)) != len(words):
            raise VocabularyError("the vocabulary lists a word twice")
        self.min_count = int(min_count)
        self.itos: List[str] = list(self.SPECIALS) + words
        self.stoi = {word: index for index, word in enumerate(self.itos)}

    pad_id = 0
    start_id = 1
    end_id = 2
    unk_id = 3

    @classmethod
    def build(cls, captions: Iterable[Sequence[str]], min_count: int = 1) -> "Vocabulary":
        """Build from tokenised captions, keeping words seen at least ``min_count`` times."""
        if min_count < 1:
            raise VocabularyError(f"min_count must be at least 1, not {min_count}")
        counts = Counter(word for caption in captions for word in caption)
        kept = [w for w, c in counts.items() if c >= min_count]
        kept.sort(key=lambda w: (-counts[w], w))
        return cls(kept, min_count=min_count)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def encode(self, words: Sequence[str], add_start_end: bool = True) -> List[int]:
        """Word ids for ``words``; words not in the vocabulary become ``<unk>``."""
        ids = [self.stoi.get(w, self.unk_id) for w in words]
        if add_start_end:
            ids = [self.start_id] + ids + [self.end_id]
        return ids

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Words for ``ids``, stopping at ``<end>`` and leaving out ``<start>`` and ``<pad>``."""
        words = []
        for index in ids:
            index = int(index)
            if index == self.end_id:
                break
            if index in (self.start_id, self.pad_id):
                continue
            words.append(self.itos[index] if 0 <= index < len(self.itos) else self.UNK)
        return words

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": "mapscribe-vocabulary", "version": 1, "min_count": self.min_count,
                "specials": list(self.SPECIALS), "words": self.itos[len(self.SPECIALS):]}

    @classmethod
    def from_dict(cls, data: dict, source: str = "vocabulary") -> "Vocabulary":
        if not isinstance(data, dict) or data.get("format") != "mapscribe-vocabulary":
            raise VocabularyError(f"{source}: not a MapScribe vocabulary (no 'format': "
                                  "'mapscribe-vocabulary')")
        if data.get("version") != 1:
            raise VocabularyError(f"{source}: vocabulary version {data.get('version')!r} is not "
                                  "supported (this MapScribe reads version 1)")
        if list(data.get("specials", [])) != list(cls.SPECIALS):
            raise VocabularyError(f"{source}: special tokens {data.get('specials')!r} differ from "
                                  f"{list(cls.SPECIALS)!r}")
        words = data.get("words")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise VocabularyError(f"{source}: 'words' must be a list of strings")
        return cls(words, min_count=int(data.get("min_count", 1)))

    def save(self, path: "str | os.PathLike") -> None:
        """Write the vocabulary as JSON, atomically (a crash never leaves half a file)."""
        write_text_atomic(Path(path), json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "Vocabulary":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise VocabularyError(f"{path}: cannot read the vocabulary: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise VocabularyError(f"{path}: not valid JSON (line {error.lineno}, column "
                                  f"{error.colno}: {error.msg})") from None
        return cls.from_dict(data, source=str(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, min_count={self.min_count})"
