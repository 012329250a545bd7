"""The plugin's code is ready for Qt 6 (QGIS 4 builds), as metadata.txt's supportsQt6=True
says: enums written with their scope (``Qt.AlignmentFlag.AlignLeft``, ``QgsTask.Flag.CanCancel``:
PyQt6 has no unscoped names, and PyQt5 takes both), ``exec()`` rather than ``exec_()``, and none
of the Qt 5 classes and methods that Qt 6 removed.

Every ``Class.Name`` in plugin/ (and the package's __init__.py) whose class is a Qt or QGIS
class is looked up in this QGIS: if the name is an enum value reached without its enum, the
test names the file, the line and the scoped spelling.
"""

from __future__ import annotations

import re
from pathlib import Path

import qgis.core
import qgis.gui
from qgis.PyQt import QtCore, QtGui, QtTest, QtWidgets

REPO = Path(__file__).resolve().parents[2]
MODULES = (QtCore, QtGui, QtWidgets, QtTest, qgis.core, qgis.gui)
ACCESS = re.compile(r"(?<![\w.])(Qt|Qgis|Q[A-Za-z0-9]+|Qgs[A-Za-z0-9]+)\.([A-Z][A-Za-z0-9_]*)"
                    r"\b(?!\s*[(.])")
# Qt 5 names that Qt 6 removed (or PyQt6 renamed): each with what to use instead.
REMOVED = {
    r"\.exec_\(": "exec()",
    r"\.print_\(": "print()",
    r"\bQRegExp\b": "QRegularExpression",
    r"\bQDesktopWidget\b": "QScreen (QGuiApplication.screens())",
    r"\bQMatrix\b": "QTransform",
    r"\bQGLWidget\b": "QOpenGLWidget",
    r"\bQStringRef\b": "str",
    r"\.setMargin\(": "setContentsMargins()",
    r"\bQt\.MidButton\b": "Qt.MouseButton.MiddleButton",
    r"\bQSound\b": "QSoundEffect",
    r"\bpyqtSignature\b": "pyqtSlot",
    r"\bQFontMetrics\w*\([^)]*\)\.width\(": "horizontalAdvance()",
}


def plugin_sources():
    yield REPO / "__init__.py"
    yield from sorted((REPO / "plugin").rglob("*.py"))


def _enum_scope(class_name: str, member: str):
    for module in MODULES:
        owner = getattr(module, class_name, None)
        if owner is None:
            continue
        value = getattr(owner, member, None)
        kind = type(value)
        if value is None or type(kind).__name__ != "enumtype":
            return None
        return kind.__name__ if kind.__name__ not in (member, class_name) else None
    return None


def test_enums_are_written_with_their_scope():
    unscoped = []
    for path in plugin_sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            for match in ACCESS.finditer(code):
                scope = _enum_scope(*match.groups())
                if scope:
                    unscoped.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)} -> "
                                    f"{match.group(1)}.{scope}.{match.group(2)}")
    assert unscoped == [], "unscoped enums (not in PyQt6):\n" + "\n".join(unscoped)


def test_no_qt5_only_api():
    found = []
    for path in plugin_sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern, instead in REMOVED.items():
                if re.search(pattern, line.split("#")[0]):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()} "
                                 f"(use {instead})")
    assert found == [], "Qt 5 API that Qt 6 removed:\n" + "\n".join(found)


def test_the_scan_finds_what_it_looks_for():
    """The checks can fail: an unscoped enum and exec_() are found in a sample line."""
    sample = "box.setIcon(QMessageBox.Question); box.exec_(); x = Qt.AlignmentFlag.AlignLeft"
    hits = [m.group(0) for m in ACCESS.finditer(sample) if _enum_scope(*m.groups())]
    assert hits == ["QMessageBox.Question"]
    assert re.search(r"\.exec_\(", sample)


def test_metadata_says_qt6():
    metadata = (REPO / "metadata.txt").read_text(encoding="utf-8")
    assert "\nsupportsQt6=True\n" in metadata
    assert re.search(r"\nqgisMaximumVersion=\d+\.\d+\n", metadata)
