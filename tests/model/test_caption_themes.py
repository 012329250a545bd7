"""Themes told from a caption's words, for layers whose model has no theme head: one keyword
table (data.themes.THEME_KEYWORDS) covering every theme, checked on real captions."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from locations import require_shared
from mapscribe.model.data.themes import (
    SCENE_THEMES,
    THEME_KEYWORDS,
    THEMES,
    scene_of,
    theme_from_caption,
)


def test_every_theme_has_keywords_and_nothing_else_does():
    assert {theme for theme, _ in THEME_KEYWORDS} == set(THEMES)


@pytest.mark.parametrize("caption, theme", [
    ("There is a piece of farmland .", "farmland"),
    ("some green trees are around a baseball field .", "sports ground"),
    ("Two airplanes are stopped at the airport .", "airport"),
    ("a bridge is over the river with some cars on it .", "roads and bridges"),
    ("It is a river with two rows of trees on both banks of the river .", "river"),
    ("many buildings and green trees are in a dense residential area .", "dense residential"),
    ("A medium residential area with houses and trees .", "medium residential"),
    ("A villa with lawn surrounded and a road beside .", "sparse residential"),
    ("Many mobile homes arranged neatly in the mobile home park .", "medium residential"),
    ("many green trees are around a pond in a park .", "park, square or resort"),
    ("Many cars are parked in the parking lot .", "parking"),
    ("some buildings and a playground are in a school .", "church, school or centre"),
    ("several green trees are near a piece of green meadow .", "meadow"),
    ("many green trees are in a piece of forest .", "forest"),
    ("Two round storage tanks are in the lawn .", "storage tanks"),
    ("This is a beach with blue sea and white sands .", "sea or beach"),
    ("many boats are in the port .", "port"),
    ("a train is in the railway station .", "railway station"),
    ("it is a piece of yellow desert .", "desert"),
    ("the mountain is covered with green trees .", "mountain"),
    ("it is a piece of bare land .", "bare land"),
    ("some factories and warehouses are in an industrial area .", "industrial"),
    ("many commercial buildings are near a road .", "commercial"),
    ("a lake is surrounded by some trees .", "lake or pond"),
    ("", None), (None, None), ("an image with nothing in particular", None),
])
def test_a_caption_s_words_name_its_theme(caption, theme):
    assert theme_from_caption(caption) == theme


def test_the_words_agree_with_the_classes_of_real_captions():
    """On every caption of UCM-captions (2,100 images, 21 classes), the theme told from the
    words is the theme of the image's class for at least 95% of them; on RSICD (30 classes,
    captions freer in wording) for at least 75%."""
    for folder, dataset, minimum in (("ucm-captions", "UCM-captions", 0.95),
                                     ("rsicd-subset", "RSICD", 0.75)):
        document = json.loads((require_shared(folder) / "captions_all_images.json").read_text())
        outcome: Counter = Counter()
        for image in document["images"]:
            scene = scene_of(dataset, image["filename"])
            if scene is None:
                continue
            for sentence in image["sentences"]:
                outcome[theme_from_caption(sentence["raw"]) == SCENE_THEMES[scene]] += 1
        agreement = outcome[True] / sum(outcome.values())
        assert agreement >= minimum, (dataset, agreement)
