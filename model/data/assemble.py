"""Building a dataset folder from a captions file and a folder of images kept elsewhere.

RSICD's images cannot be shipped with MapScribe; its captions file (all 10,921 images, official
splits) can be read from one place and its images from another. :func:`assemble_caption_folder`
writes ``OUT/annotations.json`` and ``OUT/images/`` (hard links where the file system allows,
else copies), checks every image, and can leave part of the val split out: with
``keep_val_of`` only the val images that another dataset folder holds are kept, so that the
rest stays reserved for an independent check (nothing trains, tunes or chooses on it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Set

from .folder import CaptionFolder, read_caption_folder
from .records import ANNOTATIONS, IMAGES, DatasetError, Problem

log = logging.getLogger(__name__)


def assemble_caption_folder(out: "str | os.PathLike", annotations: "str | os.PathLike",
                            images: "str | os.PathLike", *,
                            keep_val_of: Optional["str | os.PathLike"] = None,
                            overwrite: bool = False) -> CaptionFolder:
    """Write the dataset folder ``out`` from an RSICD-format ``annotations`` file whose
    ``filename`` entries name files in ``images``; returns it, read and checked."""
    out, annotations, images = Path(out), Path(annotations), Path(images)
    document = _read_document(annotations)
    if not images.is_dir():
        raise DatasetError(f"{images}: no such folder of images; give the folder that holds the "
                           "files the captions file names")
    entries = document["images"]
    if keep_val_of is not None:
        entries = _only_val_of(entries, Path(keep_val_of))
    missing = [entry["filename"] for entry in entries
               if not (images / _safe_name(entry, annotations)).is_file()]
    if missing:
        raise DatasetError(
            f"{images}: {len(missing)} of the {len(entries)} images named in {annotations} are "
            f"missing (e.g. {', '.join(missing[:5])}); nothing was written. Give the complete "
            "images folder.", [Problem("missing_image", "no such file", filename=name)
                               for name in missing[:50]])
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"{out} already exists and is not empty; choose an empty folder "
                               "or allow overwriting (--overwrite)")
        if not (out / ANNOTATIONS).is_file():
            raise DatasetError(f"{out} is not a dataset folder MapScribe wrote (no "
                               f"{ANNOTATIONS}); it is left as it is: choose another folder")
        shutil.rmtree(out)
    (out / IMAGES).mkdir(parents=True)
    for entry in entries:
        name = _safe_name(entry, annotations)
        target = out / IMAGES / name
        target.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(images / name, target)
    from ..atomic import write_text_atomic

    write_text_atomic(out / ANNOTATIONS, json.dumps({**document, "images": entries},
                                                    ensure_ascii=False))
    log.info("%s: %d images assembled from %s", out, len(entries), images)
    return read_caption_folder(out)


def _read_document(path: Path) -> Dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: cannot be read as a captions file ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise DatasetError(f"{path}: not an RSICD-format captions file (an object with an "
                           "'images' list)")
    return document


def _safe_name(entry: Any, annotations: Path) -> PurePosixPath:
    name = entry.get("filename") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name:
        raise DatasetError(f"{annotations}: an image entry has no file name ({entry!r:.80})")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise DatasetError(f"{annotations}: file name {name!r} leaves the images folder; "
                           "captions files name images by their path inside it")
    return path


def _only_val_of(entries: List[Dict[str, Any]], folder: Path) -> List[Dict[str, Any]]:
    kept: Set[str] = {record.filename for record in
                      read_caption_folder(folder, check_images="none").split("val")}
    chosen = [entry for entry in entries
              if entry.get("split") != "val" or entry.get("filename") in kept]
    log.info("val split: %d images kept (those of %s), %d left out", len(kept & {
        e.get("filename") for e in entries}), folder, len(entries) - len(chosen))
    return chosen


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
