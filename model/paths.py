"""Paths people give: checked before anything is read or written.

* :func:`check_not_an_input`: an output must never be one of the job's inputs (the raster, the
  model, the polygons, a dataset), whatever path leads to it: two paths are the same file when
  :func:`os.path.samefile` says so (symbolic and hard links followed), not when their text is
  equal.
* :func:`inside`: whether a path lies in a folder, links resolved (an output folder inside an
  input folder, or the reverse).
* :func:`check_utf8_path`: GDAL and SQLite take file names as UTF-8; a name with bytes that are
  not (made on another system) is refused with a message rather than a crash.

No GDAL, numpy or torch here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Type, Union

from .errors import MapScribeError, ParameterError

PathLike = Union[str, "os.PathLike[str]"]


class OutputIsInputError(ParameterError):
    """An output path that is (or lies inside) one of the job's inputs."""


def same_file(first: Optional[PathLike], second: Optional[PathLike]) -> bool:
    """Whether two paths name the same existing file or folder (links followed)."""
    if not first or not second:
        return False
    try:
        return os.path.samefile(first, second)
    except (OSError, ValueError):  # either is missing, unreadable or not a file name at all
        return False


def inside(path: PathLike, folder: PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, both resolved (links followed; a path
    that does not exist yet is resolved as far as it goes)."""
    try:
        resolved, base = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    except (OSError, ValueError):
        return False
    return resolved == base or base in resolved.parents


def check_not_an_input(output: PathLike, inputs: Mapping[str, Optional[PathLike]], *,
                       error: Type[MapScribeError] = OutputIsInputError,
                       what: str = "the output") -> None:
    """Refuse an ``output`` that is the same file as one of ``inputs`` (``{"the model file":
    path, ...}``; None values are skipped)."""
    for name, path in inputs.items():
        if same_file(output, path):
            raise error(f"{what} {output} is {name} ({path}) — writing there would destroy it. "
                        "Choose another output file.")


def check_utf8_path(path: PathLike, what: str) -> str:
    """``path`` as text GDAL accepts; a name that is not valid UTF-8 gets a message."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        raise ParameterError(f"{what} {shown}: its name is not valid UTF-8 (it was made on a "
                             "system with another encoding); GDAL cannot open it. Rename it "
                             "with letters that are valid UTF-8.") from None
    return text


# The longest file name (one path component) most file systems take, in bytes.
MAX_NAME_BYTES = 255


def check_writable(path: PathLike, what: str) -> Path:
    """Refuse, before any work is done, an output that could not be written: a folder, a name
    too long, a folder that cannot be made or written to. Returns the path."""
    target = Path(check_utf8_path(path, what))
    if len(os.fsencode(target.name)) > MAX_NAME_BYTES:
        raise ParameterError(f"{what} {target}: file name too long (more than the "
                             f"{MAX_NAME_BYTES} bytes file systems allow); choose a shorter one.")
    if target.is_dir():
        raise ParameterError(f"{what} {target} is a folder: give a file name.")
    folder = target.parent
    while not folder.exists():  # the nearest folder that exists decides
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise ParameterError(f"{what} {target}: {folder} is a file, not a folder; choose "
                             "another place.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ParameterError(f"{what} {target}: the folder {folder} is not writable; choose "
                             "another place.")
    return target
