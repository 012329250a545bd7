"""The plain records of a dataset folder: one :class:`CaptionRecord` per usable image, one
:class:`Problem` per thing wrong, and the folder layout's names. No torch, no image decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..errors import MapScribeError

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


class DatasetError(MapScribeError, ValueError):
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
    scene: Optional[str] = None   # the dataset's scene class (data.themes), when it has one
