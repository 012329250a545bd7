"""The MapScribe dock: caption a raster in one click, then read its captions tile by tile.

* :mod:`.form`: the "Caption a raster" page, widgets only;
* :mod:`.request`: the form's values → the engine's CaptionRasterParams (pure, no widget);
* :mod:`.info`: the raster, model and tile lines (the tiles as the engine plans them);
* :mod:`.output`: the output file's default name, and what to do when it holds captions;
* :mod:`.controller`: :class:`MapScribeDock`, which wires them and runs the engine's job;
* :mod:`.captions_panel`: the "Captions" tab, the tiles in reading order.
"""

from .controller import DEFAULT_MODEL, DOCK_OBJECT_NAME, MapScribeDock

__all__ = ["MapScribeDock", "DOCK_OBJECT_NAME", "DEFAULT_MODEL"]
