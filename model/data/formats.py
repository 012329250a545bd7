"""The two annotation formats, RSICD/Karpathy and COCO captions, read into entries, every
problem of an entry reported with its index and file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .records import (
    ANNOTATIONS,
    SPLIT_ALIASES,
    SPLITS,
    CaptionRecord,
    DatasetError,
    Problem,
)
from .text import tokenize


@dataclass
class _Entry:
    """An annotation entry on its way to becoming a record."""

    entry: int
    filename: str
    split: Optional[str]
    captions: List[str]
    tokens: List[List[str]]
    usable: bool = True
    path: Optional[Path] = None
    mode: str = "RGB"
    size: Optional[Tuple[int, int]] = None
    scene: Optional[str] = None   # as the entry names it ("scene"); else from the file name

    def record(self) -> CaptionRecord:
        # Only usable entries become records: their path and split are known by then.
        assert self.path is not None and self.split is not None
        return CaptionRecord(self.filename, self.path, self.split, self.captions, self.tokens,
                             self.entry, self.mode, self.size, self.scene)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value),
                                                                         type(value).__name__)


def _top_list(document: dict, key: str) -> List[Any]:
    value = document.get(key)
    if not isinstance(value, list):
        raise DatasetError(f"{ANNOTATIONS}: '{key}' must be a list, not {_type_name(value)}")
    return value


def _split_of(raw: Any, index: int, filename: str, problems: List[Problem],
              list_name: str = "images") -> Tuple[bool, Optional[str]]:
    """(ok, split name or None when absent)."""
    if raw is None:
        return True, None
    if not isinstance(raw, str):
        problems.append(Problem("wrong_type", f"'split' must be a string, not {_type_name(raw)}",
                                entry=index, filename=filename, list_name=list_name))
        return False, None
    name = SPLIT_ALIASES.get(raw.strip().lower(), raw.strip().lower())
    if name not in SPLITS:
        problems.append(Problem("unknown_split", f"unknown split {raw!r}; use one of "
                                f"{', '.join(SPLITS)} (or leave 'split' out to split by "
                                "val_split_pct); it is left out", entry=index, filename=filename,
                                list_name=list_name))
        return False, None
    return True, name


def _clean_captions(raw_captions: Iterable[Tuple[int, str]], index: int, filename: str,
                    problems: List[Problem], list_name: str = "images"
                    ) -> Tuple[List[str], List[List[str]]]:
    """Tokenise captions, reporting (and leaving out) the ones with no words."""
    captions, tokens = [], []
    for position, caption in raw_captions:
        words = tokenize(caption)
        if not words:
            problems.append(Problem("empty_caption", f"caption {position} has no words "
                                    f"({caption!r}); it is left out", entry=index,
                                    filename=filename, list_name=list_name))
            continue
        captions.append(caption.strip())
        tokens.append(words)
    return captions, tokens


def _rsicd_entries(document: dict) -> Tuple[List[_Entry], List[Problem]]:
    problems: List[Problem] = []
    entries: List[_Entry] = []
    for index, item in enumerate(_top_list(document, "images")):
        if not isinstance(item, dict):
            problems.append(Problem("wrong_type", f"each image entry must be an object, not "
                                    f"{_type_name(item)}", entry=index))
            continue
        filename = item.get("filename")
        if filename is None:
            problems.append(Problem("missing_key", "no 'filename'", entry=index))
            continue
        if not isinstance(filename, str) or not filename.strip():
            problems.append(Problem("wrong_type", f"'filename' must be a non-empty string, not "
                                    f"{filename!r}", entry=index))
            continue
        if isinstance(item.get("filepath"), str) and item["filepath"]:
            filename = f"{item['filepath'].rstrip('/')}/{filename}"
        split_ok, split = _split_of(item.get("split"), index, filename, problems)
        sentences = item.get("sentences")
        if sentences is None:
            problems.append(Problem("missing_key", "no 'sentences'", entry=index,
                                    filename=filename))
            continue
        if not isinstance(sentences, list):
            problems.append(Problem("wrong_type", f"'sentences' must be a list, not "
                                    f"{_type_name(sentences)}", entry=index, filename=filename))
            continue
        raw_captions = []
        for position, sentence in enumerate(sentences):
            caption = _sentence_text(sentence, position, index, filename, problems)
            if caption is not None:
                raw_captions.append((position, caption))
        captions, tokens = _clean_captions(raw_captions, index, filename, problems)
        if not captions:
            problems.append(Problem("no_captions", "the image has no usable caption; it is left "
                                    "out", entry=index, filename=filename))
            continue
        scene = item.get("scene")
        entries.append(_Entry(index, filename, split, captions, tokens, usable=split_ok,
                              scene=scene.strip().lower() if isinstance(scene, str) else None))
    return entries, problems


def _sentence_text(sentence: Any, position: int, index: int, filename: str,
                   problems: List[Problem]) -> Optional[str]:
    """The caption text of one RSICD sentence: 'raw', else the 'tokens' joined."""
    if not isinstance(sentence, dict):
        problems.append(Problem("wrong_type", f"sentence {position} must be an object with "
                                f"'raw', not {_type_name(sentence)}", entry=index,
                                filename=filename))
        return None
    raw = sentence.get("raw")
    if raw is None:
        tokens = sentence.get("tokens")
        if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            return " ".join(tokens)
        problems.append(Problem("missing_key", f"sentence {position} has no 'raw' text (nor a "
                                "list of 'tokens')", entry=index, filename=filename))
        return None
    if not isinstance(raw, str):
        problems.append(Problem("wrong_type", f"sentence {position}: 'raw' must be a string, "
                                f"not {_type_name(raw)}", entry=index, filename=filename))
        return None
    return raw


def _coco_entries(document: dict) -> Tuple[List[_Entry], List[Problem]]:
    problems: List[Problem] = []
    images: Dict[Any, Tuple[int, str, Optional[str], bool]] = {}
    for index, item in enumerate(_top_list(document, "images")):
        if not isinstance(item, dict):
            problems.append(Problem("wrong_type", f"each image must be an object, not "
                                    f"{_type_name(item)}", entry=index))
            continue
        missing = [key for key in ("id", "file_name") if key not in item]
        if missing:
            problems.append(Problem("missing_key", f"no {' and no '.join(map(repr, missing))}",
                                    entry=index, filename=item.get("file_name")))
            continue
        image_id, filename = item["id"], item["file_name"]
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            problems.append(Problem("wrong_type", f"'id' must be a number or string, not "
                                    f"{_type_name(image_id)}", entry=index))
            continue
        if not isinstance(filename, str) or not filename.strip():
            problems.append(Problem("wrong_type", f"'file_name' must be a non-empty string, not "
                                    f"{filename!r}", entry=index))
            continue
        if image_id in images:
            problems.append(Problem("duplicate_id", f"image id {image_id!r} is used again (first "
                                    f"by images[{images[image_id][0]}]); this entry is left out",
                                    entry=index, filename=filename))
            continue
        split_ok, split = _split_of(item.get("split"), index, filename, problems)
        images[image_id] = (index, filename, split, split_ok)

    captions_by_id: Dict[Any, List[Tuple[int, str]]] = {key: [] for key in images}
    for index, note in enumerate(_top_list(document, "annotations")):
        if not isinstance(note, dict):
            problems.append(Problem("wrong_type", f"each annotation must be an object, not "
                                    f"{_type_name(note)}", entry=index, list_name="annotations"))
            continue
        missing = [key for key in ("image_id", "caption") if key not in note]
        if missing:
            problems.append(Problem("missing_key", f"no {' and no '.join(map(repr, missing))}",
                                    entry=index, list_name="annotations"))
            continue
        if not isinstance(note["caption"], str):
            problems.append(Problem("wrong_type", f"'caption' must be a string, not "
                                    f"{_type_name(note['caption'])}", entry=index,
                                    list_name="annotations"))
            continue
        if note["image_id"] not in captions_by_id:
            problems.append(Problem("unknown_image_id", f"image_id {note['image_id']!r} matches "
                                    "no entry of 'images'", entry=index, list_name="annotations"))
            continue
        captions_by_id[note["image_id"]].append((index, note["caption"]))

    entries = []
    for image_id, (index, filename, split, split_ok) in images.items():
        captions, tokens = _clean_captions(captions_by_id[image_id], index, filename, problems)
        if not captions:
            problems.append(Problem("no_captions", "no usable caption refers to this image (by "
                                    f"image_id {image_id!r}); it is left out", entry=index,
                                    filename=filename))
            continue
        entries.append(_Entry(index, filename, split, captions, tokens, usable=split_ok))
    return entries, problems
