"""Words of the HTML report that are not the description's: recurring subjects, coordinates,
units, the model's training data, plurals.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import PurePath
from typing import Any, Iterable, List, Mapping, Optional, Tuple

from ..geo.crs import srs_from_file_text

TOP_SUBJECTS = 10

# Words that say little about what is on the ground: articles, prepositions, verbs that glue a
# caption together, counts, and nouns every caption uses ("area", "image").
_FUNCTION_WORDS = frozenset("""
a an the and or but of in on at to with by for from into onto over under near next beside
besides around between among along across behind above below through within without beyond
is are was were be been being am has have had do does can could will would may might
there here this that these those it its they their them which who whom whose what where when
while as so very too also both each every either neither other another such than then
one two three four five six seven eight nine ten some many several lots lot few much more most
all any no not only just like side sides part parts kind kinds
area areas image images picture pictures view place places scene
located surrounded seen shown built lined arranged stand stands standing lies lie lying
""".split())

_WORD = re.compile(r"[a-z][a-z'-]*")


def recurring_subjects(captions: Iterable[str], top: int = TOP_SUBJECTS
                       ) -> List[Tuple[str, int]]:
    """The content words found in the most captions (each caption counts a word once)."""
    counts: Counter = Counter()
    for caption in captions:
        words = set(_WORD.findall(caption.lower())) - _FUNCTION_WORDS
        counts.update(word for word in words if len(word) > 2)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]


def plural(count: int, word: str, many: Optional[str] = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def latlon_text(latitude: float, longitude: float) -> str:
    return (f"{abs(latitude):.4f}° {'N' if latitude >= 0 else 'S'}, "
            f"{abs(longitude):.4f}° {'E' if longitude >= 0 else 'W'}")


def map_units(grid: Mapping[str, Any]) -> str:
    """The unit of the grid's tile size, from the CRS text stored in the file: an authority
    code or WKT only, never GDAL's parser of people's input (which would follow a URL or open
    a path written there); "map units" when it cannot be told."""
    srs = srs_from_file_text(grid.get("crs"))
    if srs is None:
        return "map units"
    if srs.IsGeographic():
        return "degrees"
    name = srs.GetLinearUnitsName() or "map units"
    return "m" if name.lower() in ("metre", "meter", "metres", "meters") else name


def training_text(model: Mapping[str, Any]) -> str:
    data = model.get("trained_on") or "unknown data"
    images = model.get("training_images")
    resolution = model.get("ground_resolution_m")
    text = f"{data}" + (f", {images} images" if images else "")
    if resolution:
        text += f", about {resolution:g} m per pixel"
    return text


def file_name(value: Any, fallback: str) -> str:
    """A file as the report names it: by its name, never by a local path (the run metadata
    may hold one, from this machine or another)."""
    text = str(value or "").strip()
    if not text:
        return fallback
    # Either separator: a path written on Windows names its file after the last backslash.
    return PurePath(text.replace("\\", "/")).name or fallback
