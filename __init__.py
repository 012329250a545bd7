"""MapScribe: describe imagery in words.

This folder is both the QGIS plugin (QGIS calls :func:`classFactory`) and the Python package
``mapscribe`` (``pip install -e .``). Importing it must stay cheap: QGIS imports it at start-up,
so nothing here touches torch, numpy or Qt.
"""

__version__ = "0.1.0"  # keep equal to metadata.txt and pyproject.toml (a test checks)


def classFactory(iface):
    """Create the plugin for the QGIS interface ``iface``."""
    from .plugin.plugin import MapScribePlugin

    return MapScribePlugin(iface)
