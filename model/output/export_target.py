"""Whether an export may be written where people asked: never over the GeoPackage it is made
from, never over a file that is not an earlier MapScribe export of the same kind unless they
said so (``--overwrite``), never into a pipe or a device.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..paths import same_file
from .schema import ExportError

# How much of an existing file is read to recognise an earlier export.
SNIFF_BYTES = 64 * 1024

CSV_HEADER = b"tile_id,row,col,caption,score,status,longitude,latitude,wkt"
HTML_GENERATOR = b'<meta name="generator" content="MapScribe'


def check_replaceable(out_path: Path, format: str, gpkg_path: Path, overwrite: bool) -> None:
    """Raise :class:`ExportError` unless writing ``format`` to ``out_path`` destroys nothing
    that MapScribe did not write (or that people did not allow with ``overwrite``)."""
    if same_file(out_path, gpkg_path):
        raise ExportError(f"the export {out_path} would replace the GeoPackage it is made from: "
                          "choose another output file.")
    try:
        mode = os.stat(out_path).st_mode
    except FileNotFoundError:
        if os.path.islink(out_path):
            raise ExportError(f"output {out_path} is a symbolic link to a file that does not "
                              "exist: give the real file name, or another output.") from None
        return
    except OSError as error:
        raise ExportError(f"output {out_path} cannot be used: {error.strerror}. Choose another "
                          "output file.") from None
    if stat.S_ISDIR(mode):
        raise ExportError(f"output {out_path} is a folder: give a file name, e.g. "
                          f"captions.{format}.")
    if not stat.S_ISREG(mode):
        raise ExportError(f"output {out_path} is not a regular file (a pipe or a device): give "
                          "a file name.")
    if overwrite or is_earlier_export(out_path, format):
        return
    raise ExportError(f"output {out_path} exists and is not an earlier MapScribe {format} "
                      "export, so it is left as it is: choose another output file, or replace "
                      "it (--overwrite).")


def is_earlier_export(path: Path, format: str) -> bool:
    """Whether ``path`` is empty, or looks like a file MapScribe exported as ``format``."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(SNIFF_BYTES)
    except OSError:
        return False
    if not head:
        return True
    if format == "csv":
        return head.lstrip(b"\xef\xbb\xbf").startswith(CSV_HEADER)
    if format == "html":
        return head.startswith(b"<!DOCTYPE html>") and HTML_GENERATOR in head
    # GeoJSON written by GDAL from a captions layer: a FeatureCollection whose features carry
    # the layer's fields.
    text = head.lstrip()
    return (text.startswith(b"{") and b'"FeatureCollection"' in text
            and b'"tile_id"' in text and b'"caption"' in text)
