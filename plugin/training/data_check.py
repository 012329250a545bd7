"""The data check of the training dialog: the engine reads and validates a dataset folder (every
entry and image) in a QgsTask, and the dialog shows its summary in words.
"""

from __future__ import annotations

from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ...model import (
    CaptionFolder,
    FolderSummary,
    MapScribeError,
    read_caption_folder,
    summarise,
)
from ..tasks import keep_alive, let_go
from ..ui import log_bug, tr


class DataCheckTask(QgsTask):
    """The engine's data check off the main thread (a large folder takes a while). Afterwards
    ``caption_folder`` and ``summary`` hold what it found, or ``error`` says why the folder
    cannot be used; ``ended`` fires in the main thread."""

    ended = pyqtSignal()

    def __init__(self, folder: str, val_split_pct: float, min_word_count: int) -> None:
        super().__init__(tr("MapScribe: checking a caption dataset"), QgsTask.Flag.CanCancel)
        self.folder, self.val_split_pct, self.min_word_count = folder, val_split_pct, min_word_count
        self.caption_folder: Optional[CaptionFolder] = None
        self.summary: Optional[FolderSummary] = None
        self.error: Optional[str] = None
        # A check goes on when its dialog is gone: its Python object must outlive its run.
        keep_alive(self)

    def run(self) -> bool:  # worker thread
        try:
            self.caption_folder = read_caption_folder(self.folder,
                                                      val_split_pct=self.val_split_pct)
            self.summary = summarise(self.caption_folder, self.min_word_count)
            return True
        except MapScribeError as error:  # names the folder, file and entry already
            self.error = str(error)
        except Exception as error:  # noqa: BLE001 - a bug, told as one and logged
            self.error = log_bug(tr("The data check"), error)
        return False

    def finished(self, result: bool) -> None:  # main thread
        try:
            self.ended.emit()
        finally:
            let_go(self)


def summary_text(summary: FolderSummary, caption_folder: CaptionFolder) -> str:
    """The data check for people: counts per split, vocabulary, lengths and every problem."""
    lines = [tr("Format: {format} (splits from {source})").format(
        format=summary.format.upper(), source=summary.split_source.replace("_", " "))]
    lines.append(tr("Images / captions per split:"))
    for split, (images, captions) in summary.splits.items():
        lines.append(f"  {split}: {images} / {captions}")
    lines.append(tr("Vocabulary: {words} words (minimum word count {count} in train)").format(
        words=summary.vocabulary_words, count=summary.min_word_count))
    length = summary.caption_length
    lines.append(tr("Caption length in words: min {min}, mean {mean}, median {median}, 95th "
                    "percentile {p95}, max {max}").format(**length))
    problems = caption_folder.problems
    if not problems:
        lines.append(tr("Problems: none"))
    else:
        lines.append(tr("Problems: {errors} error(s), {warnings} warning(s); entries with errors "
                        "are left out of training:").format(errors=summary.errors,
                                                            warnings=summary.warnings))
        lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines)
