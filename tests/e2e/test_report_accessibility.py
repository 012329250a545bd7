"""The HTML report of a real captioned grid in a real browser: axe-core finds no violation, and a
keyboard alone reaches the search field and every link, and follows a region to its tiles.

Runs node/check_report.js (axe-core and playwright-core, installed into tests/e2e/node by
`make setup` at the versions of its package-lock.json) with Debian's Chromium. Skipped only when
Chromium is not installed; `make setup` installs it, so CI always runs this.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from locations import TEST_DATA
from mapscribe.model import describe_captions, export_captions
from mapscribe.model.jobs.caption import caption_raster
from mapscribe.model.jobs.caption_params import CaptionRasterParams

NODE_DIR = Path(__file__).resolve().parent / "node"
CHECK = NODE_DIR / "check_report.js"
RASTER = TEST_DATA / "RGB.byte.tif"  # Landsat, EPSG:32618; 128-px tiles: 6 × 7 = 42 tiles


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.skip("Chromium is not installed (Debian package 'chromium'; make setup installs "
                "it): the report's axe-core and keyboard checks need a browser")


@pytest.fixture(scope="module")
def report(tiny_model_path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    grid = folder / "grid.gpkg"
    caption_raster(CaptionRasterParams(raster=RASTER, model=tiny_model_path, output=grid,
                                       tile_size=128, tile_size_unit="pixels", batch_size=8,
                                       beam_size=1, max_length=12, device="cpu"))
    describe_captions(grid)
    out = folder / "report.html"
    export_captions(grid, "html", out)
    return out


@pytest.fixture(scope="module")
def checked(report, artifacts_dir) -> dict:
    chromium = _chromium()
    node = shutil.which("node")
    assert node, "Node.js is not installed: make setup installs it with npm"
    assert (NODE_DIR / "node_modules" / "axe-core").is_dir() and (
        NODE_DIR / "node_modules" / "playwright-core").is_dir(), (
        f"axe-core and playwright-core are not installed in {NODE_DIR}: run make setup")
    # A word of the first tile's caption, to search for.
    caption = re.search(r'data-tile="\d+">Column \d+: ([^<(]+)', report.read_text()).group(1)
    word = max(re.findall(r"[a-z]+", caption.lower()), key=len)
    result = subprocess.run([node, str(CHECK), str(report), chromium], capture_output=True,
                            text=True, timeout=300, cwd=NODE_DIR,
                            env={**os.environ, "MAPSCRIBE_SEARCH_WORD": word})
    assert result.returncode == 0, result.stderr
    # For people to look at: the report and what axe-core and the keyboard run found.
    shutil.copy(report, artifacts_dir / "report-accessibility.html")
    (artifacts_dir / "report-accessibility.json").write_text(result.stdout)
    return json.loads(result.stdout)


def _explain(violations) -> str:
    return "\n".join(f"{v['id']} ({v['impact']}): {v['help']}\n  "
                     + "\n  ".join(f"{n['target']}: {n['summary']}" for n in v["nodes"])
                     for v in violations)


def test_axe_core_finds_no_violation(checked):
    assert checked["axe"]["violations"] == [], _explain(checked["axe"]["violations"])
    assert checked["axe"]["passes"] >= 20  # axe really ran its rules on the page
    # The page as a search leaves it (items hidden, a status said) passes too.
    assert checked["axeAfterSearch"]["violations"] == [], _explain(
        checked["axeAfterSearch"]["violations"])


def test_tab_reaches_the_search_field_and_every_link(checked):
    keyboard = checked["keyboard"]
    assert keyboard["links"], "the report has links (the skip link, the regions)"
    assert set(keyboard["links"]) <= set(keyboard["reached"])
    assert keyboard["visited"][0]["href"] == "#tiles-heading"  # the skip link comes first
    assert keyboard["searchAt"] == 1  # then the search field, before the regions
    assert keyboard["firstRegionAt"] > keyboard["searchAt"]


def test_enter_on_a_region_link_moves_focus_to_its_tiles(checked):
    enter = checked["keyboard"]["enter"]
    assert enter is not None, "no region link was reached by Tab"
    assert enter["link"] == "#region-1-tiles"
    assert enter["focused"]["id"] == "region-1-tiles" and enter["focused"]["tag"] == "h3"
    assert enter["focused"]["text"].startswith("Region 1: ")


def test_typing_in_the_search_field_filters_the_tiles_and_says_how_many(checked):
    search = checked["keyboard"]["search"]
    assert search is not None, "the search field was not reached by Tab"
    assert search["tiles"] == 42
    assert 0 < search["shown"] <= 42
    assert all(search["word"] in text.lower() for text in search["shownTexts"])
    assert search["status"].startswith(f"{search['shown']} tile")
    assert f"match “{search['word']}”" in search["status"]


def test_without_scripts_the_page_reads_the_same_and_shows_no_dead_control(checked):
    assert checked["noScript"] == {"searchVisible": False, "tilesVisible": True, "tiles": 42}
