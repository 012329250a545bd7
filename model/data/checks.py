"""Checks across a folder's entries: paths that leave ``images/``, duplicates, missing and
unreadable images, images no entry names, splits made from file names.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Dict, List, Optional, Set, Tuple

from .formats import _Entry
from .images import ImageTooLargeError, open_image
from .records import ERROR, IMAGES, WARNING, DatasetError, Problem


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
    from PIL import UnidentifiedImageError

    try:
        # Decoded from memory, not from the file (Pillow's libtiff decoder closes the file
        # descriptor it was given, which under threads can close another thread's file), and
        # only once its size is known to be below the ceiling.
        with open_image(path) as image:
            size, mode = image.size, image.mode
            if check == "full":
                image.load()
    except ImageTooLargeError as error:
        return "image_too_large", str(error).split(": ", 1)[-1], None, ""
    except FileNotFoundError:
        return "missing_image", "the image file is missing from images/", None, ""
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
