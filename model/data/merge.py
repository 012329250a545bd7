"""Combining dataset folders into one RSICD-format folder, each image keeping its split."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import List, Sequence

from .folder import CaptionFolder, read_caption_folder
from .records import ANNOTATIONS, IMAGES, DatasetError


# -- merging ------------------------------------------------------------------------------------
def merge_caption_folders(out: "str | os.PathLike", folders: Sequence["str | os.PathLike"], *,
                          copy: bool = False, overwrite: bool = False) -> CaptionFolder:
    """Combine several dataset folders into one RSICD-format folder ``out``, keeping each
    image's split. Images go under ``images/<folder name>/`` (linked, or copied with
    ``copy``); only usable entries are written (the problems of each source are logged)."""
    import shutil

    from ..atomic import write_text_atomic

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
