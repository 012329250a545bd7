"""The overview: at most five sentences, read first, made by templates from the regions, the
coarse levels of a caption pyramid and the tiles' statuses. The same layer always gives the
same words.

In order (each only when it has something to say, and region sentences only as many as fit):

1. the whole: "Mostly farmland (62%), with 5 small patches of lake or pond.", "Almost entirely
   forest (95%).", "A mix of farmland in the north-west (40%), forest in the east (35%) and
   river (25%)." (a theme is placed where one region holds most of it);
2. the coarsest level of a pyramid, when it is one captioned tile: "Seen as a whole: “…”.";
3. the largest regions not already said by the first sentence, largest first: "Dense
   residential in the south-east (12%): “…”.", "A river crosses the area from the north-west
   to the south (5%).", "Forest along the east edge (8%): “…”.";
4. what is not described: "14% of tiles are uncertain and 3% hold no data."

Areas with nothing to name say so plainly: all nodata, all uncertain, a single tile.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from .regions import caption_in_sentence, percent, theme_subject
from .schema import MAX_OVERVIEW_SENTENCES, Region, TileCounts

# A theme covering at least this share of the captioned area is what the area "mostly" is.
MOSTLY = 0.5
ALMOST_ENTIRELY = 0.9
# Themes named in "A mix of …": at most this many, each covering at least this share; each is
# placed ("farmland in the north-west") where one region holds this much of its area.
MIX_THEMES = 4
MIX_MIN_SHARE = 0.05
MAIN_REGION = 2 / 3
# Regions smaller than this share are not given a sentence of their own …
REGION_MIN_SHARE = 0.02
# … but several small regions of one theme make "with N small patches of <theme>".
SMALL_PATCH_TILES = 2
SMALL_PATCHES = 3

# How a region that crosses the area is named, by theme; others are "a band of <theme>".
CROSSING_NOUNS = {"river": "A river", "roads and bridges": "A road",
                  "railway station": "A railway", "sea or beach": "The coast"}


def overview_sentences(regions: Sequence[Region], counts: TileCounts, *,
                       whole_caption: Optional[str] = None,
                       only_caption: Optional[str] = None,
                       uncertain_caption: Optional[str] = None,
                       unthemed_caption: Optional[str] = None) -> Tuple[str, ...]:
    """The overview's sentences (at most :data:`MAX_OVERVIEW_SENTENCES`).

    ``whole_caption``: the caption of the coarsest level when it is one confident tile (a
    pyramid); ``only_caption``: the caption of an area of a single tile; ``uncertain_caption``
    and ``unthemed_caption``: the typical caption of the uncertain tiles and of those whose
    theme could not be told.
    """
    status = _status_sentence(counts)
    if counts.total == 0:
        return ("No tile has been captioned yet.",)
    if counts.with_caption == 0:
        return (_nothing_captioned(counts),)
    if counts.captioned == 0:
        sentences = [_all_uncertain(counts)]
        if uncertain_caption:
            sentences.append(f"The commonest caption, said without confidence, is "
                             f"“{caption_in_sentence(uncertain_caption)}”.")
        status = _status_sentence(counts, uncertain=False)
        return tuple(sentences + ([status] if status else []))
    if counts.total == 1 and only_caption:
        theme = regions[0].theme if regions else None
        return (f"The whole area is one tile{f' of {theme}' if theme else ''}: "
                f"“{caption_in_sentence(only_caption)}”.",)

    sentences = [_whole_sentence(regions, unthemed_caption)]
    if whole_caption:
        sentences.append(f"Seen as a whole: “{caption_in_sentence(whole_caption)}”.")
    room = MAX_OVERVIEW_SENTENCES - len(sentences) - (1 if status else 0)
    sentences.extend(_region_sentences(regions, room))
    if status:
        sentences.append(status)
    return tuple(sentences[:MAX_OVERVIEW_SENTENCES])


def theme_shares(regions: Sequence[Region]) -> List[Tuple[str, float]]:
    """Each theme's share of the captioned area, largest first (ties: theme name)."""
    shares: Dict[str, float] = defaultdict(float)
    for region in regions:
        shares[region.theme] += region.share
    return sorted(shares.items(), key=lambda item: (-round(item[1], 9), item[0]))


# --------------------------------------------------------------------------------------------
# The sentences
# --------------------------------------------------------------------------------------------
def _whole_sentence(regions: Sequence[Region], unthemed_caption: Optional[str]) -> str:
    shares = theme_shares(regions)
    if not shares:
        text = "No theme could be told from the captions"
        if unthemed_caption:
            text += f"; the most typical is “{caption_in_sentence(unthemed_caption)}”"
        return text + "."
    theme, share = shares[0]
    if share >= ALMOST_ENTIRELY:
        return f"Almost entirely {theme} ({percent(share)})."
    if share >= MOSTLY:
        return f"Mostly {theme} ({percent(share)}){_small_patches(regions, theme)}."
    named = [(name, value) for name, value in shares[:MIX_THEMES] if value >= MIX_MIN_SHARE]
    if not named:
        return (f"A patchwork of {len(shares)} themes, none covering more than "
                f"{percent(share)} of the captioned area.")
    items = []
    for name, value in named:
        main = _main_region(regions, name, value)
        where = f" {main.position.phrase}" if main is not None else ""
        items.append(f"{name}{where} ({percent(value)})")
    if len(shares) > len(named):
        items.append("other themes")
    return f"A mix of {_join(items)}."


def _main_region(regions: Sequence[Region], theme: str, share: float) -> Optional[Region]:
    """The region that is most of a theme's area (:data:`MAIN_REGION` of it), if any."""
    largest = next((region for region in regions if region.theme == theme), None)
    if largest is not None and largest.share >= MAIN_REGION * share:
        return largest
    return None


def _small_patches(regions: Sequence[Region], dominant: str) -> str:
    small = Counter(region.theme for region in regions
                    if region.theme != dominant and region.tile_count <= SMALL_PATCH_TILES)
    patches = [(count, theme) for theme, count in small.items() if count >= SMALL_PATCHES]
    if not patches:
        return ""
    count, theme = max(patches, key=lambda item: (item[0], _reverse(item[1])))
    return f", with {count} small patches of {theme}"


def _reverse(text: str) -> Tuple[int, ...]:
    """A key that sorts text backwards, so that max() picks the first name alphabetically."""
    return tuple(-ord(character) for character in text)


def _region_sentences(regions: Sequence[Region], room: int) -> List[str]:
    if room <= 0:
        return []
    shares = theme_shares(regions)
    dominant = shares[0][0] if shares and shares[0][1] >= MOSTLY else None
    # The regions the first sentence placed already ("A mix of farmland in the north-west …").
    said = set()
    placed: List[Region] = []
    if dominant is None:
        for name, value in shares[:MIX_THEMES]:
            main = _main_region(regions, name, value) if value >= MIX_MIN_SHARE else None
            if main is not None:
                said.add((main.theme, main.position.phrase))
                placed.append(main)
    sentences: List[str] = []
    # Other themes first: the first sentence said what the area mostly is.
    ordered = ([r for r in regions if r.theme != dominant]
               + [r for r in regions if r.theme == dominant])
    for region in ordered:
        if len(sentences) >= room:
            break
        if region.share < REGION_MIN_SHARE and len(regions) > room:
            continue
        if region.theme == dominant and region.position.kind in ("whole", "most"):
            continue
        key = (region.theme, region.position.phrase)
        if key in said:
            continue
        said.add(key)
        sentences.append(_region_sentence(region))
    # Room left: what the regions placed by the first sentence look like, largest first.
    for region in regions:
        if len(sentences) >= room:
            break
        if region in placed and region.typical_caption:
            phrase = region.position.phrase
            sentences.append(f"{phrase[:1].upper() + phrase[1:]}: "
                             f"“{caption_in_sentence(region.typical_caption)}”.")
    return sentences


def _region_sentence(region: Region) -> str:
    share = percent(region.share)
    caption = caption_in_sentence(region.typical_caption)
    quoted = f": “{caption}”" if caption else ""
    if region.position.kind == "crossing":
        start, end = region.position.places
        noun = CROSSING_NOUNS.get(region.theme, f"A band of {region.theme}")
        return f"{noun} crosses the area from the {start} to the {end} ({share}){quoted}."
    return f"{theme_subject(region.theme)} {region.position.phrase} ({share}){quoted}."


def _nothing_captioned(counts: TileCounts) -> str:
    every = "the only tile" if counts.total == 1 else f"all {counts.total} tiles"
    if counts.failed == 0:
        verb = "holds" if counts.total == 1 else "hold"
        return f"No tile of this area holds imagery to describe: {every} {verb} no data."
    if counts.nodata == 0:
        return f"No tile of this area has a caption: {every} could not be read."
    return (f"No tile of this area has a caption: {counts.nodata} of {counts.total} tiles hold "
            f"no data and {counts.failed} could not be read.")


def _all_uncertain(counts: TileCounts) -> str:
    if counts.uncertain == 1:
        return ("The only captioned tile is uncertain: the model is not confident about it, so "
                "no region is named.")
    return (f"All {counts.uncertain} captioned tiles are uncertain: the model is not confident "
            "about any of them, so no region is named.")


def _status_sentence(counts: TileCounts, uncertain: bool = True) -> str:
    """'14% of tiles are uncertain, 3% hold no data and 5 of 42 planned tiles are not
    captioned yet.' ('' when every tile was described)."""
    clauses: List[Tuple[int, str]] = []
    if uncertain and counts.uncertain:
        clauses.append((counts.uncertain, "are uncertain"))
    if counts.unthemed:
        clauses.append((counts.unthemed, "fit no theme"))
    if counts.nodata:
        clauses.append((counts.nodata, "hold no data"))
    if counts.failed:
        clauses.append((counts.failed, "could not be read"))
    total = max(1, counts.total)
    items = []
    for index, (count, verb) in enumerate(clauses):
        if count == total:
            items.append(f"all tiles {verb}")
        else:
            amount = percent(count / total)
            items.append(f"{amount} of tiles {verb}" if index == 0 else f"{amount} {verb}")
    if counts.missing:
        items.append(f"{counts.missing} of {counts.planned} planned tiles are not captioned "
                     "yet")
    if not items:
        return ""
    text = _join(items)
    return text[:1].upper() + text[1:] + "."


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


__all__ = ["overview_sentences", "theme_shares"]
