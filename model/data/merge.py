"""Combining dataset folders into one RSICD-format folder, each image keeping its split.

Nothing of ``OUT`` is touched before every input has been read and checked; the merge is built
in a temporary folder beside ``OUT`` and put in its place when complete, so a bad input (or a
crash) leaves an earlier ``OUT`` as it was. ``OUT`` may not be, or lie inside, an input folder,
nor hold one; and ``--overwrite`` replaces only a dataset folder (``images/`` and
``annotations.json``, as a merge writes), never a folder holding anything else.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Sequence

from ..atomic import current_umask, write_text_atomic
from ..paths import inside
from .folder import CaptionFolder, read_caption_folder
from .records import ANNOTATIONS, IMAGES, DatasetError

# What a dataset folder written by a merge holds; --overwrite replaces nothing else.
MERGED_ENTRIES = frozenset({IMAGES, ANNOTATIONS})


# -- merging ------------------------------------------------------------------------------------
def merge_caption_folders(out: "str | os.PathLike", folders: Sequence["str | os.PathLike"], *,
                          copy: bool = False, overwrite: bool = False) -> CaptionFolder:
    """Combine several dataset folders into one RSICD-format folder ``out``, keeping each
    image's split. Images go under ``images/<folder name>/`` (linked, or copied with
    ``copy``); only usable entries are written (the problems of each source are logged)."""
    out = Path(out)
    if not folders:
        raise DatasetError("give at least one dataset folder to merge into "
                           f"{out}")
    _check_out_apart_from_inputs(out, folders)
    replace = _check_out(out, overwrite)
    # Every input is read and checked before anything is written.
    sources = [read_caption_folder(folder, check_images="header") for folder in folders]
    names: List[str] = []
    for folder in folders:
        name = Path(folder).resolve().name
        while name in names:
            name += "_"
        names.append(name)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".merging", dir=out.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's 0o700 would stay
        _write_merge(staging, names, folders, sources, copy)
        _put_in_place(staging, out, replace)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return read_caption_folder(out, check_images="none")


def _check_out_apart_from_inputs(out: Path, folders: Sequence["str | os.PathLike"]) -> None:
    for folder in folders:
        if inside(out, folder):
            raise DatasetError(f"{out} is the dataset folder {folder} or lies inside it: "
                               "writing the merge there would change or destroy that dataset. "
                               "Choose an OUT outside every input folder.")
        if inside(folder, out):
            raise DatasetError(f"the dataset folder {folder} lies inside {out}: replacing "
                               f"{out} would destroy it. Choose another OUT.")


def _check_out(out: Path, overwrite: bool) -> bool:
    """Whether an existing ``out`` is to be replaced; raises when it may not be."""
    if not os.path.lexists(out):
        return False
    if out.is_symlink() or not out.is_dir():
        raise DatasetError(f"{out} exists and is not a folder; choose a new folder name for "
                           "the merge")
    entries = sorted(os.listdir(out))
    if not entries:
        return True
    if not overwrite:
        raise DatasetError(f"{out} already exists and is not empty; choose an empty folder "
                           "or allow overwriting")
    others = [name for name in entries if name not in MERGED_ENTRIES]
    if others:
        raise DatasetError(f"{out} holds more than a dataset folder ({', '.join(others[:5])}"
                           f"{' …' if len(others) > 5 else ''}): MapScribe replaces only a "
                           f"folder holding '{IMAGES}/' and '{ANNOTATIONS}', not even with "
                           "--overwrite. Choose another OUT.")
    return True


def _write_merge(target_root: Path, names: Sequence[str], folders: Sequence["str | os.PathLike"],
                 sources: Sequence[CaptionFolder], copy: bool) -> None:
    (target_root / IMAGES).mkdir()
    items: List[Dict[str, Any]] = []
    for name, folder, source in zip(names, folders, sources):
        target = target_root / IMAGES / name
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
    write_text_atomic(target_root / ANNOTATIONS, json.dumps(
        {"dataset": "+".join(names), "images": items}, ensure_ascii=False))


def _put_in_place(staging: Path, out: Path, replace: bool) -> None:
    """Rename the finished merge to ``out``; an earlier ``out`` is moved aside first and
    deleted only once the new one is in place."""
    if not os.path.lexists(out):
        os.rename(staging, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rmdir(aside)
    os.rename(out, aside)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(aside, out)
        raise
    if replace:
        shutil.rmtree(aside)  # links are removed, never followed
    else:
        os.rmdir(aside)  # it was empty
