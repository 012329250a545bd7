"""Scene themes: the fixed set of ~20 kinds of place a tile is said to show, and the one table
that maps the caption datasets' own scene classes onto them.

A captioner with a theme head predicts one theme per image beside its caption; the map's
regions and overview count on it. Labels come from the datasets themselves:

* RSICD names most of its images after their scene class (``bridge_12.jpg`` → "bridge"); its
  numbered images (``00001.jpg``) carry no class and train the caption only;
* UCM-captions numbers its 2,100 images in blocks of 100 per UC Merced class, in alphabetical
  order (1–100 agricultural, 101–200 airplane, …, 2001–2100 tenniscourt);
* an annotation entry may also name its scene itself (``"scene": "harbor"``), which wins.

The table and the theme list are written into every model header that has a theme head, so a
model always says which themes it knows. No torch here.
"""

from __future__ import annotations

import logging
import re
from pathlib import PurePosixPath
from typing import Dict, Optional, Tuple

log = logging.getLogger(__name__)

THEMES: Tuple[str, ...] = (
    "dense residential", "medium residential", "sparse residential", "commercial",
    "industrial", "farmland", "meadow", "forest", "bare land", "desert", "mountain", "river",
    "lake or pond", "sea or beach", "port", "airport", "parking", "roads and bridges",
    "railway station", "sports ground", "park, square or resort", "storage tanks",
    "church, school or centre",
)

# A dataset's scene class → theme. RSICD's 30 classes and UC Merced's 21.
SCENE_THEMES: Dict[str, str] = {
    # RSICD
    "airport": "airport", "bareland": "bare land", "baseballfield": "sports ground",
    "beach": "sea or beach", "bridge": "roads and bridges", "center": "church, school or centre",
    "church": "church, school or centre", "commercial": "commercial",
    "denseresidential": "dense residential", "desert": "desert", "farmland": "farmland",
    "forest": "forest", "industrial": "industrial", "meadow": "meadow",
    "mediumresidential": "medium residential", "mountain": "mountain",
    "park": "park, square or resort", "parking": "parking", "playground": "sports ground",
    "pond": "lake or pond", "port": "port", "railwaystation": "railway station",
    "resort": "park, square or resort", "river": "river", "school": "church, school or centre",
    "sparseresidential": "sparse residential", "square": "park, square or resort",
    "stadium": "sports ground", "storagetanks": "storage tanks",
    "viaduct": "roads and bridges",
    # UC Merced (those not named like an RSICD class)
    "agricultural": "farmland", "airplane": "airport", "baseballdiamond": "sports ground",
    "buildings": "commercial", "chaparral": "meadow", "freeway": "roads and bridges",
    "golfcourse": "sports ground", "harbor": "port", "intersection": "roads and bridges",
    "mobilehomepark": "medium residential", "overpass": "roads and bridges",
    "parkinglot": "parking", "runway": "airport", "tenniscourt": "sports ground",
}

# UC Merced's classes in the order UCM-captions numbers them (100 images each).
UCM_CLASSES: Tuple[str, ...] = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
    "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
    "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
    "sparseresidential", "storagetanks", "tenniscourt",
)
UCM_IMAGES_PER_CLASS = 100

_RSICD_NAME = re.compile(r"^([a-z]+)_\d+$")
_UCM_NAME = re.compile(r"^[1-9]\d*$")   # 1 … 2100, no leading zero (RSICD's 00001 has one)


def scene_of(dataset: Optional[str], filename: str) -> Optional[str]:
    """The scene class a dataset's file name implies, or None when it implies none.

    ``dataset`` is the annotations' "dataset" field (e.g. "RSICD", "UCM-captions"); the rules
    are the datasets' own and are applied only to files of that dataset.
    """
    stem = PurePosixPath(filename).stem
    name = (dataset or "").lower()
    if "rsicd" in name:
        match = _RSICD_NAME.match(stem)
        if match and match.group(1) in SCENE_THEMES:
            return match.group(1)
        return None
    if "ucm" in name and _UCM_NAME.match(stem):
        index = (int(stem) - 1) // UCM_IMAGES_PER_CLASS
        return UCM_CLASSES[index] if index < len(UCM_CLASSES) else None
    return None


def theme_index(scene: Optional[str], themes: Tuple[str, ...] = THEMES) -> Optional[int]:
    """The index in ``themes`` of a scene class's theme, or None (no class, or one the table
    does not know)."""
    theme = SCENE_THEMES.get(scene or "")
    return themes.index(theme) if theme in themes else None


# --------------------------------------------------------------------------------------------
# Themes from a caption's words (layers captioned by a model without a theme head)
# --------------------------------------------------------------------------------------------
# (theme, words) in order of priority: the first entry whose words occur in a caption names its
# theme. Things people name a scene after (an airport, a port, a bridge) come before the land
# cover around them (farmland, forest, meadow), which most captions mention in passing ("…
# surrounded by green trees"); "road" alone comes late, as almost every built-up scene has one.
# Patterns are regular expressions over the lower-cased caption, matched on word boundaries.
THEME_KEYWORDS: Tuple[Tuple[str, str], ...] = (
    ("airport", r"airports?|runways?|airplanes?|aeroplanes?|aircraft|planes?|terminal|apron"),
    ("storage tanks", r"storage tanks?|oil tanks?|tanks?"),
    ("railway station", r"railway|railways|railroads?|trains?|(?:rail|train) station"),
    ("port", r"ports?|harbou?rs?|boats?|ships?|docks?|piers?|marinas?|yachts?|wharf"),
    ("church, school or centre", r"churche?s?|cathedral|schools?|campus"),
    ("sports ground", r"baseball|tennis|football|soccer|basketball|playgrounds?|stadiums?|"
                      r"golf|running tracks?|(?:ball )?courts?|diamonds?|race ?track"),
    ("parking", r"parking(?: lots?)?|car parks?"),
    ("roads and bridges", r"bridges?|viaducts?|overpass(?:es)?|freeways?|highways?|"
                          r"interchanges?|intersections?|crossroads?|motorways?"),
    ("park, square or resort", r"(?<!home )parks?|resorts?|plazas?|"
                               r"(?:a|the) (?:\w+ )?square(?! \w*build)"),
    ("river", r"rivers?|streams?|canals?|riverside"),
    ("sea or beach", r"beach(?:es)?|seas?|ocean|coast(?:line)?|waves|shore|seaside"),
    ("lake or pond", r"lakes?|ponds?|reservoirs?|pools? of water"),
    ("industrial", r"industrial|factory|factories|warehouses?|workshops?"),
    ("dense residential", r"dense(?:ly)?(?: \w+)? (?:residential|houses|buildings|homes)|"
                          r"dense residential"),
    ("sparse residential", r"sparse(?:ly)?(?: \w+)? (?:residential|houses|buildings|homes)|"
                           r"scattered (?:houses|buildings)|few (?:houses|buildings)"),
    ("medium residential", r"medium residential|mobile homes?"),
    ("dense residential", r"(?:lots|many|rows|a large number|a number) of (?:\w+ )?"
                          r"(?:houses|homes)|side by side|crowded|closely packed"),
    ("sparse residential", r"(?:a|an|one|two|the) (?:\w+ )?(?:house|villa)|villas?"),
    ("medium residential", r"residential|houses?|homes?|neighbou?rhoods?"),
    ("church, school or centre", r"(?<!the )(?<!in )cent(?:er|re)s?(?! of)"),
    ("commercial", r"commercial|offices?|shops?|stores?|malls?|buildings?"),
    ("park, square or resort", r"squares?(?! \w*build)|gardens?|swimming pools?"),
    ("desert", r"deserts?|dunes?|sand"),
    ("mountain", r"mountains?|mountainous|hills?|hillside|peaks?|ridges?|cliffs?"),
    ("bare land", r"bare(?: ?land)?|barren|wasteland|bare soil|empty land|vacant"),
    ("roads and bridges", r"roads?|streets?"),
    ("farmland", r"farm ?lands?|farms?|fields?|crops?|cropland|agricultur\w*|cultivated|"
                 r"paddy|plowed"),
    ("meadow", r"meadows?|grass(?:land)?s?|lawns?|chaparral|shrubs?|bushes|scrub|turf|"
               r"plants scattered|scattered plants|loess"),
    ("forest", r"forests?|woods|woodland|trees?"),
)

_KEYWORD_PATTERNS = tuple((theme, re.compile(r"\b(?:" + words + r")\b"))
                          for theme, words in THEME_KEYWORDS)


def theme_from_caption(text: Optional[str]) -> Optional[str]:
    """The theme a caption's words name (:data:`THEME_KEYWORDS`, first match wins), or None
    when it names none; for layers whose model has no theme head."""
    if not text:
        return None
    lowered = " ".join(text.lower().split())
    for theme, pattern in _KEYWORD_PATTERNS:
        if pattern.search(lowered):
            return theme
    return None


def themes_for(records) -> Tuple[str, ...]:
    """The themes a theme head trained on ``records`` should predict: :data:`THEMES` when any
    record has a scene class with a theme, else none (a head with no labels learns nothing)."""
    if any(theme_index(record.scene) is not None for record in records):
        return THEMES
    log.info("no training image has a scene class (data.themes): no theme head")
    return ()
