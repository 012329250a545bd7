"""Exporting a captions layer from the captions panel: a GeoPackage copy, GeoJSON, CSV or the
accessible HTML report (the engine's ``export_captions``).

The format follows the suffix people typed, whatever the file dialog's filter says: never HTML
in ``captions.csv``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Optional, Tuple

from qgis.core import QgsVectorLayer
from qgis.PyQt.QtWidgets import QFileDialog, QWidget

from ...model import MapScribeError, export_captions, format_from_suffix
from .. import layers as caption_layers_module
from ..ui import tr

# Export formats: (key, file-dialog filter, suffix).
EXPORT_CHOICES = (
    ("gpkg", "GeoPackage copy (*.gpkg)", ".gpkg"),
    ("geojson", "GeoJSON, WGS 84 (*.geojson)", ".geojson"),
    ("csv", "CSV table with WGS 84 centres (*.csv)", ".csv"),
    ("html", "HTML report for reading (*.html)", ".html"),
)


class CaptionsExportError(RuntimeError):
    """An export could not be written; the message says why."""


def export_layer(layer: QgsVectorLayer, fmt: str, out_path: Path) -> Path:
    """Write ``layer``'s GeoPackage as ``fmt`` ('gpkg', 'geojson', 'csv', 'html') to
    ``out_path``; raises CaptionsExportError with a message for people."""
    gpkg, name = caption_layers_module.layer_source(layer)
    out_path = Path(out_path)
    if fmt == "gpkg":
        if out_path.exists() and out_path.resolve() == gpkg.resolve():
            raise CaptionsExportError(tr("the copy would replace the GeoPackage it is made from: "
                                         "choose another file."))
        try:
            _copy_geopackage(gpkg, out_path)
        except (sqlite3.Error, OSError) as error:
            raise CaptionsExportError(tr("cannot copy {src} to {dst}: {error}").format(
                src=gpkg, dst=out_path, error=error)) from None
        return out_path
    try:
        # The save dialog has asked before a file is replaced: people allowed it there.
        return export_captions(gpkg, fmt, out_path, layer=name or None, overwrite=True).path
    except MapScribeError as error:
        raise CaptionsExportError(str(error)) from None


def _copy_geopackage(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API (a GeoPackage is an SQLite database): a
    plain file copy could catch it between the main file and its write-ahead log."""
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    source_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        target_db = sqlite3.connect(str(partial))
        try:
            source_db.backup(target_db)
        finally:
            target_db.close()
    finally:
        source_db.close()
    partial.replace(target)  # readers see the old file or the whole new one


def ask_export_target(parent: QWidget, layer: QgsVectorLayer) -> Optional[Tuple[str, Path]]:
    """Ask for a file and a format; (format, file) or None when people cancel. The suffix
    typed wins over the dialog's filter."""
    gpkg, _ = caption_layers_module.layer_source(layer)
    filters = ";;".join(label for _, label, _ in EXPORT_CHOICES)
    path, chosen = QFileDialog.getSaveFileName(
        parent, tr("Export captions"), str(gpkg.with_name(gpkg.stem + "-report.html")),
        filters, EXPORT_CHOICES[3][1])
    if not path:
        return None
    fmt, suffix = next(((key, suffix) for key, label, suffix in EXPORT_CHOICES
                        if label == chosen), ("html", ".html"))
    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(suffix)
    typed = "gpkg" if out.suffix.lower() == ".gpkg" else format_from_suffix(out)
    return typed or fmt, out


class ExportActions:
    """The captions panel's Export…, for a widget with ``layer`` (the captions layer),
    ``details`` (a label that says the outcome) and the ``exportFinished`` signal."""

    def export_dialog(self) -> Optional[Path]:
        """Ask for a file and a format, then export; returns the file written."""
        if self.layer is None:
            return None
        target = ask_export_target(self, self.layer)
        return self.export(*target) if target is not None else None

    def export(self, fmt: str, out_path: Path) -> Optional[Path]:
        """Export the current layer; the outcome is shown in the panel and signalled."""
        if self.layer is None:
            return None
        try:
            written = export_layer(self.layer, fmt, Path(out_path))
        except CaptionsExportError as error:
            self.details.setText(tr("Export failed: {error}").format(error=error))
            self.exportFinished.emit(str(out_path), str(error))
            return None
        self.details.setText(tr("Exported to {path}").format(path=written))
        self.exportFinished.emit(str(written), "")
        return written
