"""Which level of a captions layer is drawn and labelled at which map scale.

A captions layer is one grid of tiles, or a caption pyramid: a ``level`` field, 0 the coarsest,
each level's tiles half as wide as the level above. At any scale one level suits the map: the
finest whose tiles are still at least :data:`LABEL_MIN_TILE_PIXELS` wide on screen (a caption
wrapped at 24 characters fits over it). That level alone is outlined and labelled; zooming in
hands over to the next finer level, zooming out to the next coarser one:

* level k is shown for scales in (S(k+1), S(k)], where S(k) is the scale at which a tile of
  level k is LABEL_MIN_TILE_PIXELS wide;
* the coarsest level has no zoomed-out limit and the finest no zoomed-in limit, so that words
  are on the map at every scale, the scale the view is left at after Run included (QGIS's
  labelling then leaves out the labels that would overlap others: zooming in shows more).

With one level (a layer without a ``level`` field, or a pyramid of one) the style of
resources/captions.qml is kept as it is: every tile outlined and labelled at every scale. With
several, :func:`style_levels` wraps its rules in one rule per level, with that level's scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from qgis.core import (
    QgsFeatureRequest,
    QgsPalLayerSettings,
    QgsRuleBasedLabeling,
    QgsRuleBasedRenderer,
    QgsUnitTypes,
    QgsVectorLayer,
)

from .ui import tr

LEVEL_FIELD = "level"
# A level is labelled once its tiles are at least this wide on screen: narrower tiles would
# each get a tower of one-word lines, and the level above says the same in fewer words.
LABEL_MIN_TILE_PIXELS = 160
# Metres per screen pixel at QGIS's scale computation (96 dpi): 0.0254 m per inch / 96.
METRES_PER_SCREEN_PIXEL = 0.0254 / 96


@dataclass(frozen=True)
class LevelScales:
    """One level of a captions layer and the scales at which it is drawn and labelled.

    Scales are denominators, as QGIS names them: ``minimum_scale`` is the most zoomed-out scale
    at which the level is shown, ``maximum_scale`` the most zoomed-in one (exclusive); 0 is no
    limit.
    """

    level: int
    tile_metres: float
    minimum_scale: float = 0.0
    maximum_scale: float = 0.0

    def shown_at(self, scale: float) -> bool:
        if self.minimum_scale and scale > self.minimum_scale:
            return False
        return not (self.maximum_scale and scale <= self.maximum_scale)

    @property
    def expression(self) -> str:
        """The filter that picks this level's tiles (tiles without a level are level 0)."""
        return f'coalesce("{LEVEL_FIELD}", 0) = {self.level}'


def scale_for_tile(tile_metres: float) -> float:
    """The scale at which a tile ``tile_metres`` wide is LABEL_MIN_TILE_PIXELS wide on screen,
    rounded to a whole denominator (QGIS's renderer rules take whole numbers)."""
    return float(max(1, round(tile_metres / (LABEL_MIN_TILE_PIXELS * METRES_PER_SCREEN_PIXEL))))


def _is_null(value) -> bool:
    return value is None or (hasattr(value, "isNull") and value.isNull())


def _metres(layer: QgsVectorLayer, width: float) -> float:
    factor = QgsUnitTypes.fromUnitToUnitFactor(layer.crs().mapUnits(),
                                               QgsUnitTypes.DistanceUnit.DistanceMeters)
    return width * factor


def layer_levels(layer: QgsVectorLayer) -> List[LevelScales]:
    """The levels of ``layer`` with their tile widths (in metres, roughly for a geographic CRS)
    and the scales at which each is shown, coarsest first; [] while the layer has no tile."""
    index = layer.fields().indexOf(LEVEL_FIELD)
    numbers = {0}
    if index >= 0:
        numbers = {0 if _is_null(value) else int(value) for value in layer.uniqueValues(index)}
    widths = {}
    for level in sorted(numbers):
        request = QgsFeatureRequest().setLimit(1)
        if index >= 0:
            request.setFilterExpression(LevelScales(level, 0.0).expression)
        for feature in layer.getFeatures(request):
            if feature.hasGeometry():
                width = _metres(layer, feature.geometry().boundingBox().width())
                if width > 0:
                    widths[level] = width
    # Coarsest (widest tiles) first, whatever the numbers say.
    ordered = sorted(widths.items(), key=lambda item: (-item[1], item[0]))
    levels = []
    for position, (level, width) in enumerate(ordered):
        coarser = position > 0
        finer = position + 1 < len(ordered)
        levels.append(LevelScales(
            level=level, tile_metres=width,
            minimum_scale=scale_for_tile(width) if coarser else 0.0,
            maximum_scale=scale_for_tile(ordered[position + 1][1]) if finer else 0.0))
    return levels


def level_shown(levels: List[LevelScales], scale: float) -> Optional[LevelScales]:
    """The level drawn and labelled at ``scale`` (None when there is none)."""
    return next((level for level in levels if level.shown_at(scale)), None)


def level_name(level: LevelScales, levels: List[LevelScales]) -> str:
    """'level 2 of 3 (tiles of 224 m)', counted from the coarsest as 1, for people."""
    position = [item.level for item in levels].index(level.level) + 1
    return tr("level {n} of {count} (tiles of {size})").format(
        n=position, count=len(levels), size=metres_text(level.tile_metres))


def metres_text(metres: float) -> str:
    if metres >= 10_000:
        return f"{metres / 1000:,.0f} km"
    if metres >= 1000:
        return f"{metres / 1000:,.1f} km"
    return f"{metres:,.0f} m"


def style_levels(layer: QgsVectorLayer) -> List[LevelScales]:
    """Give each level of ``layer`` (styled from captions.qml just before) its scales: with
    several levels, one renderer rule and one labelling rule per level wrap the style's own
    rules. Returns the levels, coarsest first."""
    levels = layer_levels(layer)
    if len(levels) < 2:
        return levels
    renderer, labeling = layer.renderer(), layer.labeling()
    if isinstance(renderer, QgsRuleBasedRenderer):
        root = QgsRuleBasedRenderer.Rule(None)
        for level in levels:
            rule = QgsRuleBasedRenderer.Rule(None, int(level.maximum_scale),
                                             int(level.minimum_scale), level.expression,
                                             level_name(level, levels))
            for child in renderer.rootRule().children():
                rule.appendChild(child.clone())
            root.appendChild(rule)
        layer.setRenderer(QgsRuleBasedRenderer(root))
    if labeling is not None and labeling.type() == "simple":
        base = labeling.settings()
        root = QgsRuleBasedLabeling.Rule(None)
        for level in levels:
            settings = QgsPalLayerSettings(base)
            settings.scaleVisibility = False  # the rule's scales decide
            root.appendChild(QgsRuleBasedLabeling.Rule(
                settings, level.maximum_scale, level.minimum_scale, level.expression,
                level_name(level, levels)))
        layer.setLabeling(QgsRuleBasedLabeling(root))
        layer.setLabelsEnabled(True)
    return levels
