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

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ParameterError
from .checks import (
    _assign_missing_splits,
    _check_image_files,
    _check_paths_and_duplicates,
    _named_files,
    _raise_first_error_class,
    _unlisted_images,
)
from .formats import _coco_entries, _rsicd_entries
from .records import (
    ANNOTATIONS,
    ERROR,
    IMAGE_CHECKS,
    IMAGES,
    SPLITS,
    WARNING,
    CaptionRecord,
    DatasetError,
    Problem,
)
from .themes import scene_of

log = logging.getLogger(__name__)

# The largest annotations.json read (json.loads needs several times its size in memory).
MAX_ANNOTATIONS_BYTES = 512 * 10**6


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
            raise ParameterError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
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
        raise ParameterError(f"check_images must be one of {IMAGE_CHECKS}, not {check_images!r}")
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
    name = document.get("dataset") if isinstance(document.get("dataset"), str) else None
    records = [entry.record() for entry in entries if entry.usable]
    for record in records:
        if record.scene is None:
            record.scene = scene_of(name, record.filename)
    if not records:
        raise DatasetError(f"{root}: no usable image with captions was found", problems)
    n_errors = sum(p.severity == ERROR for p in problems)
    if problems:
        log.warning("%s: %d error(s) and %d warning(s) found; the affected entries are left "
                    "out or converted (see the folder's problem report)", root, n_errors,
                    len(problems) - n_errors)
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
    _check_stays_inside(root)
    path = root / ANNOTATIONS
    size = path.stat().st_size
    if size > MAX_ANNOTATIONS_BYTES:
        raise DatasetError(f"{path}: {size / 1e6:.0f} MB, more than the "
                           f"{MAX_ANNOTATIONS_BYTES // 10**6} MB MapScribe reads as annotations "
                           "(COCO's own captions file is 90 MB); split the dataset into "
                           "several folders")
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
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply to be annotations") from None


def _check_stays_inside(root: Path) -> None:
    """``images/`` and ``annotations.json`` must lie in the folder: a symbolic link that leads
    out of it (to ``/``, say) is refused like a file name with ``..``, before anything under it
    is listed or read."""
    base = root.resolve()
    for name in (IMAGES, ANNOTATIONS):
        target = (root / name).resolve()
        if target != base / name and base not in target.parents:
            raise DatasetError(f"{root / name}: a symbolic link to {target}, outside the "
                               f"dataset folder; '{IMAGES}/' and '{ANNOTATIONS}' must lie in "
                               "it (copy them in, or point MapScribe at the folder they are in)")
