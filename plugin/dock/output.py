"""The dock's output file: a default name that is never an existing file, what an existing
output already holds, and the question asked before Run touches captions already there.

An output that holds captions is never replaced without being asked for: Run resumes it,
writes beside it, replaces it, or asks (:func:`ask_about_existing`), as the form says.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

from qgis.PyQt.QtWidgets import QMessageBox, QWidget

from ...model import GridFileError, find_caption_layers, read_caption_layer_info
from ..ui import tr
from .request import CAPTIONS_LAYER, OUTPUT_SUFFIX, CaptionRequest, with_output

OUTPUT_FOLDER_NAME = "mapscribe"  # under the system's temporary folder, for unsaved projects
# What Run does with an output that holds captions: (key, label) for the form's list.
ON_EXISTING = (("ask", "Ask me"), ("resume", "Resume: caption only the missing tiles"),
               ("new", "Write to a new file beside it"), ("replace", "Replace its captions"))


def _file_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem).strip("._") or "raster"
    return stem[:60]


def next_free_path(path: Path) -> Path:
    """``path`` when nothing is there, else the first of name-2.gpkg, name-3.gpkg, … that is
    free: a new name is never a silent overwrite."""
    if not path.exists():
        return path
    stem = re.sub(r"-\d+$", "", path.stem)
    number = 2
    while True:
        candidate = path.with_name(f"{stem}-{number}{path.suffix}")
        if not candidate.exists():
            return candidate
        number += 1


def default_output_path(raster_name: str, project_file: str = "",
                        fallback_folder: Optional[Path] = None) -> Path:
    """``<raster>-captions.gpkg`` beside the saved project, else in a "mapscribe" folder of the
    system's temporary folder; a free name, never one that exists."""
    if project_file:
        folder = Path(project_file).resolve().parent
    else:
        folder = fallback_folder or Path(tempfile.gettempdir()) / OUTPUT_FOLDER_NAME
    return next_free_path(folder / f"{_file_stem(raster_name)}-captions{OUTPUT_SUFFIX}")


@dataclass(frozen=True)
class ExistingCaptions:
    """What an output GeoPackage already holds."""

    path: Path
    tiles_done: int
    tiles_planned: int
    raster_name: str

    @property
    def complete(self) -> bool:
        return self.tiles_planned > 0 and self.tiles_done >= self.tiles_planned


def existing_captions(path: Union[str, Path]) -> Optional[ExistingCaptions]:
    """The captions layer already in ``path``, or None when there is none (no file, or a
    GeoPackage without one). Anything else at that path is left for the engine to judge."""
    path = Path(path)
    if not path.is_file() or CAPTIONS_LAYER not in find_caption_layers(path):
        return None
    try:
        info = read_caption_layer_info(path, CAPTIONS_LAYER)
    except GridFileError:
        return None
    raster = (info.run.get("raster") or {}).get("name", "")
    return ExistingCaptions(path, info.feature_count, info.tiles_planned, raster)


def settle_existing(request: CaptionRequest, choice: str,
                    ask: Callable[[ExistingCaptions], Optional[str]]
                    ) -> Optional[Tuple[CaptionRequest, str]]:
    """What Run does with ``request``'s output: (request, mode) with mode 'create', 'resume' or
    'replace', or None to leave everything as it is. ``choice`` is the form's (a key of
    ON_EXISTING); 'ask' calls ``ask`` with what the output holds. 'new' writes beside it."""
    existing = existing_captions(request.output_path)
    if existing is None:
        return request, "create"
    if choice == "ask":
        choice = ask(existing)
    if choice is None:
        return None
    if choice == "new":
        return with_output(request, str(next_free_path(Path(request.output_path)))), "create"
    return request, choice


def ask_about_existing(parent: QWidget, existing: ExistingCaptions) -> Optional[str]:
    """Ask what to do with ``existing``: 'resume', 'new', 'replace', or None (Cancel)."""
    box = QMessageBox(parent)
    box.setObjectName("MapScribeExistingOutput")
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(tr("The output already holds captions"))
    if existing.complete:
        state = (tr("its one tile") if existing.tiles_planned == 1
                 else tr("all {n} tiles").format(n=existing.tiles_planned))
    else:
        state = tr("{done} of {planned} tiles").format(done=existing.tiles_done,
                                                       planned=existing.tiles_planned)
    box.setText(tr("{path} already holds captions of {raster}: {state}.").format(
        path=existing.path, raster=existing.raster_name or tr("a raster"), state=state))
    box.setInformativeText(tr(
        "Resume captions only the missing tiles (same raster, area, tile size and model). "
        "New file writes beside it. Replace deletes these captions first."))
    resume = box.addButton(tr("Resume"), QMessageBox.ButtonRole.AcceptRole)
    new = box.addButton(tr("New file"), QMessageBox.ButtonRole.AcceptRole)
    replace = box.addButton(tr("Replace"), QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(new if existing.complete else resume)
    box.exec()
    return {resume: "resume", new: "new", replace: "replace"}.get(box.clickedButton())
