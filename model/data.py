"""Caption dataset folders: read, validate and split them.

A dataset folder holds ``images/`` and ``annotations.json`` in one of two formats:

* RSICD / Karpathy::

    {"images": [{"filename": "00001.jpg", "split": "train",
                 "sentences": [{"raw": "a football field ...", "tokens": [...]}, ...]}, ...]}

* COCO captions::

    {"images": [{"id": 1, "file_name": "00001.jpg", "split": "train"}, ...],
     "annotations": [{"image_id": 1, "caption": "a football field ..."}, ...]}

:func:`read_caption_folder` reads either, checks every entry and every image, and returns the
usable records with a report of every problem found, each naming its entry and file. Nothing is
dropped silently: an entry that cannot be used is left out *and* reported. In strict mode the
first class of errors found stops the reading instead.

Captions are re-tokenised with :func:`mapscribe.model.text.tokenize` (the dataset's own
``tokens`` are not trusted: RSICD's and COCO's were made with different rules).

This module needs no torch; :mod:`mapscribe.model.caption_dataset` turns records into tensors.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .text import tokenize

log = logging.getLogger(__name__)

ANNOTATIONS = "annotations.json"
IMAGES = "images"
SPLITS = ("train", "val", "test")
# Karpathy's COCO split file calls the images moved from val to train "restval".
SPLIT_ALIASES = {"restval": "train"}
IMAGE_CHECKS = ("full", "header", "none")

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset folder.

    ``code`` is a short, stable name for the class of problem (tests and strict mode use it);
    ``entry`` is the index in the annotation list it was found in (``images`` for RSICD,
    ``images`` or ``annotations`` for COCO: ``list_name`` says which).
    """

    code: str
    message: str
    severity: str = ERROR
    entry: Optional[int] = None
    filename: Optional[str] = None
    list_name: str = "images"

    def __str__(self) -> str:
        where = []
        if self.entry is not None:
            where.append(f"{self.list_name}[{self.entry}]")
        if self.filename is not None:
            where.append(repr(self.filename))
        prefix = " ".join(where)
        return f"{self.severity}: {prefix + ': ' if prefix else ''}{self.message}"


class DatasetError(ValueError):
    """A dataset folder that cannot be used; ``problems`` lists why."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()):
        self.problems = list(problems)
        details = "".join(f"\n  - {problem}" for problem in self.problems[:50])
        if len(self.problems) > 50:
            details += f"\n  … and {len(self.problems) - 50} more"
        super().__init__(message + details)


@dataclass
class CaptionRecord:
    """One usable image with its captions."""

    filename: str                 # as written in the annotations, relative to images/
    image_path: Path
    split: str                    # 'train', 'val' or 'test'
    captions: List[str]           # the raw sentences, as people wrote them
    tokens: List[List[str]]       # tokenize(caption) for each caption
    entry: int                    # index in the annotations' image list
    image_mode: str = "RGB"       # PIL mode on disk ('L', 'RGBA' ... are converted to RGB)
    image_size: Optional[Tuple[int, int]] = None  # (width, height) on disk


@dataclass
class CaptionFolder:
    """A read and validated dataset folder."""

    root: Path
    format: str                              # 'rsicd' or 'coco'
    records: List[CaptionRecord]
    problems: List[Problem]
    split_source: str                        # 'annotations', 'val_split_pct' or 'mixed'
    val_split_pct: float = 0.1
    dataset_name: Optional[str] = None       # the annotations' "dataset" field, when given

    @property
    def errors(self) -> List[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> List[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    def split(self, name: str) -> List[CaptionRecord]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return [r for r in self.records if r.split == name]

    def split_counts(self) -> Dict[str, Tuple[int, int]]:
        """(images, captions) per split."""
        counts = {name: (0, 0) for name in SPLITS}
        for record in self.records:
            images, captions = counts[record.split]
            counts[record.split] = (images + 1, captions + len(record.captions))
        return counts

    @property
    def name(self) -> str:
        """The dataset's own name (its annotations' "dataset" field), else the folder's."""
        return self.dataset_name or self.root.name


# -- reading ------------------------------------------------------------------------------------
def read_caption_folder(folder: "str | os.PathLike", *, strict: bool = False,
                        val_split_pct: float = 0.1, check_images: str = "full",
                        workers: Optional[int] = None) -> CaptionFolder:
    """Read and validate a dataset folder.

    ``strict``: stop at the first class of errors (raise :class:`DatasetError` listing every
    problem of that class) instead of skipping the entries it affects.
    ``val_split_pct``: the fraction of images (0 ≤ f < 1, as in arcgis.learn's ``prepare_data``)
    put into ``val`` when the annotations give no split; the choice depends only on file names.
    ``check_images``: 'full' decodes every image (finds truncated files), 'header' only opens
    them, 'none' only checks that they exist.
    """
    root = Path(folder)
    if check_images not in IMAGE_CHECKS:
        raise ValueError(f"check_images must be one of {IMAGE_CHECKS}, not {check_images!r}")
    if not 0.0 <= float(val_split_pct) < 1.0:
        raise DatasetError(f"val_split_pct={val_split_pct!r} must be a fraction in [0, 1), "
                           "e.g. 0.1 for 10% of the images")
    document = _load_annotations(root)
    if isinstance(document, dict) and "annotations" in document:
        fmt, entries, problems = "coco", *_coco_entries(document)
    elif isinstance(document, dict) and "images" in document:
        fmt, entries, problems = "rsicd", *_rsicd_entries(document)
    else:
        raise DatasetError(
            f"{root / ANNOTATIONS}: neither RSICD/Karpathy format (an object with an 'images' "
            "list whose entries have 'filename' and 'sentences') nor COCO captions format (an "
            "object with 'images' and 'annotations' lists)")
    entries, more = _check_paths_and_duplicates(root, entries)
    problems += more
    split_source = _assign_missing_splits(entries, float(val_split_pct))
    more = _check_image_files(entries, check_images, workers)
    problems += more
    problems += _unlisted_images(root, _named_files(document, fmt))
    if strict:
        _raise_first_error_class(root, problems)
    records = [entry.record() for entry in entries if entry.usable]
    if not records:
        raise DatasetError(f"{root}: no usable image with captions was found", problems)
    n_errors = sum(p.severity == ERROR for p in problems)
    if problems:
        log.warning("%s: %d error(s) and %d warning(s) found; the affected entries are left "
                    "out or converted (see the folder's problem report)", root, n_errors,
                    len(problems) - n_errors)
    name = document.get("dataset") if isinstance(document.get("dataset"), str) else None
    return CaptionFolder(root, fmt, records, problems, split_source, float(val_split_pct),
                         name)


def _load_annotations(root: Path) -> Any:
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; a dataset folder holds '{IMAGES}/' and "
                           f"'{ANNOTATIONS}'")
    missing = [name for name, ok in ((f"{IMAGES}/", (root / IMAGES).is_dir()),
                                     (ANNOTATIONS, (root / ANNOTATIONS).is_file())) if not ok]
    if missing:
        raise DatasetError(f"{root}: missing {' and '.join(missing)}; a dataset folder holds "
                           f"'{IMAGES}/' (the image files) and '{ANNOTATIONS}' (the captions, "
                           "RSICD or COCO format)")
    path = root / ANNOTATIONS
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8 "
                           "JSON") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot be read: {error.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: malformed JSON at line {error.lineno}, column "
                           f"{error.colno}: {error.msg}") from None


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

    def record(self) -> CaptionRecord:
        return CaptionRecord(self.filename, self.path, self.split, self.captions, self.tokens,
                             self.entry, self.mode, self.size)


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
        entries.append(_Entry(index, filename, split, captions, tokens, usable=split_ok))
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


# -- checks across entries and on disk ----------------------------------------------------------
def _escapes_images(filename: str) -> bool:
    for pure in (PurePosixPath(filename), PureWindowsPath(filename)):
        if pure.is_absolute() or pure.drive or pure.root or ".." in pure.parts:
            return True
    return False


def _check_paths_and_duplicates(root: Path, entries: List[_Entry]
                                ) -> Tuple[List[_Entry], List[Problem]]:
    problems: List[Problem] = []
    # Checked on the names, not on resolved paths: a dataset whose images/ holds symbolic links
    # to the files elsewhere is fine; a name that climbs out of images/ is not.
    images = (root / IMAGES).absolute()
    first_use: Dict[str, int] = {}
    kept = []
    for entry in entries:
        if _escapes_images(entry.filename):
            problems.append(Problem("unsafe_path", "the file name leads outside images/ "
                                    "(absolute or with '..'); name files relative to images/",
                                    entry=entry.entry, filename=entry.filename))
            continue
        path = Path(os.path.normpath(images / entry.filename))
        key = str(path)
        if key in first_use:
            problems.append(Problem("duplicate_filename", "the same image is listed again (first "
                                    f"by images[{first_use[key]}]); this entry is left out — merge "
                                    "its captions into the first", entry=entry.entry,
                                    filename=entry.filename))
            continue
        first_use[key] = entry.entry
        entry.path = path
        kept.append(entry)
    return kept, problems


def _assign_missing_splits(entries: List[_Entry], val_split_pct: float) -> str:
    """Give entries without a split 'train' or 'val', decided by their file names only."""
    missing = [entry for entry in entries if entry.split is None and entry.usable]
    if not missing:
        return "annotations"
    # Sorting by a hash of the name gives the same split whatever the order of the file, and
    # exactly round(n × pct) images in val.
    missing.sort(key=lambda e: hashlib.sha1(e.filename.encode("utf-8")).hexdigest())
    n_val = int(round(len(missing) * val_split_pct))
    for position, entry in enumerate(missing):
        entry.split = "val" if position < n_val else "train"
    return "val_split_pct" if len(missing) == sum(e.usable for e in entries) else "mixed"


def _inspect_image(path: Path, check: str) -> Tuple[Optional[str], str, Optional[Tuple[int, int]],
                                                     str]:
    """(problem code or None, message, size, mode) for one image file."""
    if not path.is_file():
        return "missing_image", "the image file is missing from images/", None, ""
    if check == "none":
        return None, "", None, "RGB"
    from PIL import Image, UnidentifiedImageError

    try:
        # Decode from memory, not from the file: Pillow's libtiff decoder closes the file
        # descriptor it was given, which under threads can close another thread's file.
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            size, mode = image.size, image.mode
            if check == "full":
                image.load()
    except UnidentifiedImageError:
        return "unreadable_image", "not an image file Pillow can read", None, ""
    except (OSError, SyntaxError, ValueError) as error:
        text = str(error)
        if "truncated" in text.lower() or "premature end" in text.lower():
            return "truncated_image", f"the image file is truncated ({text})", None, ""
        return "unreadable_image", f"the image cannot be decoded ({text})", None, ""
    return None, "", size, mode


def _check_image_files(entries: List[_Entry], check: str, workers: Optional[int]
                       ) -> List[Problem]:
    problems: List[Problem] = []
    from PIL import Image

    # Pillow registers its format plugins lazily on first use; doing that from several threads
    # at once races (seen: valid JPEGs reported as truncated), so register them all up front.
    Image.init()
    # Decoding releases the GIL, so threads help; results come back in entry order.
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 1)) as pool:
        results = list(pool.map(lambda e: _inspect_image(e.path, check), entries))
    for entry, (code, message, size, mode) in zip(entries, results):
        if code is not None:
            problems.append(Problem(code, message + "; it is left out", entry=entry.entry,
                                    filename=entry.filename))
            entry.usable = False
            continue
        entry.size, entry.mode = size, mode
        if mode != "RGB":
            problems.append(Problem("converted_to_rgb", f"the image is {mode}, not RGB; it is "
                                    "converted to RGB when read", severity=WARNING,
                                    entry=entry.entry, filename=entry.filename))
    return problems


def load_rgb_image(path: "str | os.PathLike"):
    """Open an image file as an RGB ``PIL.Image`` (grayscale, RGBA, palette ... are converted)."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except FileNotFoundError:
        raise DatasetError(f"{path}: the image file is missing") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"{path}: the image cannot be read ({error})") from None


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def _named_files(document: dict, fmt: str) -> Set[str]:
    """Every file name the annotations mention, usable entry or not."""
    key = "file_name" if fmt == "coco" else "filename"
    names = set()
    for item in document.get("images", []):
        if isinstance(item, dict) and isinstance(item.get(key), str):
            folder = item.get("filepath") if fmt == "rsicd" else None
            name = item[key]
            names.add(f"{folder.rstrip('/')}/{name}" if isinstance(folder, str) and folder
                      else name)
    return {PurePosixPath(name).as_posix() for name in names}


def _unlisted_images(root: Path, named: Set[str]) -> List[Problem]:
    """Image files in images/ that no annotation names (they have no captions)."""
    images = root / IMAGES
    unlisted = [path.relative_to(images).as_posix() for path in sorted(images.rglob("*"))
                if path.suffix.lower() in _IMAGE_SUFFIXES
                and path.relative_to(images).as_posix() not in named]
    return [Problem("image_without_captions", "the image is in images/ but no annotation names "
                    "it, so it has no captions and is not used", severity=WARNING, filename=name)
            for name in unlisted]


def _raise_first_error_class(root: Path, problems: List[Problem]) -> None:
    errors = [p for p in problems if p.severity == ERROR]
    if not errors:
        return
    first = errors[0].code
    same = [p for p in errors if p.code == first]
    raise DatasetError(f"{root}: {len(same)} problem(s) of kind '{first}' (strict mode stops at "
                       "the first kind of error; without strict mode the affected entries are "
                       "left out and reported)", same)


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


# -- merging ------------------------------------------------------------------------------------
def merge_caption_folders(out: "str | os.PathLike", folders: Sequence["str | os.PathLike"], *,
                          copy: bool = False, overwrite: bool = False) -> CaptionFolder:
    """Combine several dataset folders into one RSICD-format folder ``out``, keeping each
    image's split. Images go under ``images/<folder name>/`` (linked, or copied with
    ``copy``); only usable entries are written (the problems of each source are logged)."""
    import shutil

    from .atomic import write_text_atomic

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"{out} already exists and is not empty; choose an empty folder "
                               "or allow overwriting")
        shutil.rmtree(out)
    names: List[str] = []
    for folder in folders:
        name = Path(folder).resolve().name
        while name in names:
            name += "_"
        names.append(name)
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    items = []
    for name, folder in zip(names, folders):
        source = read_caption_folder(folder, check_images="header")
        target = out / IMAGES / name
        if copy:
            target.mkdir()
        else:
            target.symlink_to((Path(folder) / IMAGES).resolve(), target_is_directory=True)
        for record in source.records:
            relative = PurePosixPath(record.filename)  # checked: inside images/
            if copy:
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(record.image_path, target / relative)
            items.append({"filename": f"{name}/{relative.as_posix()}", "split": record.split,
                          "imgid": len(items),
                          "sentences": [{"raw": caption, "tokens": tokens} for caption, tokens
                                        in zip(record.captions, record.tokens)]})
    write_text_atomic(out / ANNOTATIONS, json.dumps(
        {"dataset": "+".join(names), "images": items}, ensure_ascii=False))
    return read_caption_folder(out, check_images="none")
