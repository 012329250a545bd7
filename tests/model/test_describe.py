"""Describing a captioned area: regions of one theme, their positions and areas, the overview
(mosaics whose layout is known: blocks of real captions of known classes placed in known
quarters), what is stored in the GeoPackage, and bad input."""

from __future__ import annotations

import json
import math
import re

import pytest
from osgeo import ogr

from mapscribe.model import (
    DescribeError,
    GridFileError,
    describe_captions,
    read_overview,
)
from mapscribe.model.describe.schema import MAX_OVERVIEW_SENTENCES
from mosaics import add_coarse_levels, theme_of, write_mosaic

QUARTERS = ["FFFFAAAA"] * 4 + ["RRRRBBBB"] * 4


def _sentence_with(overview, *words):
    """The overview's sentence that holds every one of ``words`` (None when none does)."""
    return next((s for s in overview if all(w in s for w in words)), None)


def _regions_layer(path, name="regions"):
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayerByName(name)
    assert layer is not None, f"no layer {name!r}"
    rows = [{key: feature.GetField(key) for key in feature.keys()} | {
        "wkt": feature.GetGeometryRef().ExportToWkt()} for feature in layer]
    metadata = layer.GetMetadata()
    dataset = None
    return rows, metadata


# --------------------------------------------------------------------------------------------
# Mosaics: each block named in its quarter
# --------------------------------------------------------------------------------------------
def test_four_quarters_are_each_named_with_their_theme(tmp_path):
    path = write_mosaic(tmp_path / "quarters.gpkg", QUARTERS)
    description = describe_captions(path)
    overview = description.overview
    assert 1 <= len(overview) <= MAX_OVERVIEW_SENTENCES
    for character, quarter in (("F", "north-west"), ("A", "north-east"), ("R", "south-west"),
                               ("B", "south-east")):
        theme = theme_of(character)
        assert _sentence_with(overview, theme, f"in the {quarter}"), (theme, overview)
        # and in no other quarter
        for other in ("north-west", "north-east", "south-west", "south-east"):
            if other != quarter:
                assert not re.search(rf"{theme} in the {other}\b", " ".join(overview))
    assert overview[0].startswith("A mix of") and "(25%)" in overview[0]
    assert [r.theme for r in description.regions] == ["farmland", "airport", "river",
                                                      "sea or beach"]
    assert {r.position.words for r in description.regions} == {
        "north-west", "north-east", "south-west", "south-east"}


def test_a_raster_stored_south_up_gives_the_same_words(tmp_path):
    path = write_mosaic(tmp_path / "south-up.gpkg", QUARTERS, north_up=False)
    description = describe_captions(path)
    assert description.overview == describe_captions(
        write_mosaic(tmp_path / "north-up.gpkg", QUARTERS)).overview
    farmland = next(r for r in description.regions if r.theme == "farmland")
    assert farmland.position.words == "north-west"


def test_nine_blocks_are_placed_in_the_nine_zones(tmp_path):
    letters = "FARBGITCu"
    layout = []
    for block_row in range(3):
        for _ in range(3):
            layout.append("".join(letters[3 * block_row + c] * 3 for c in range(3)))
    # Model themes (a theme field): nine different themes, whatever the captions say.
    themes = dict(zip(letters, ("farmland", "airport", "river", "sea or beach", "forest",
                                "meadow", "desert", "port", "commercial")))
    description = describe_captions(write_mosaic(tmp_path / "nine.gpkg", layout,
                                                 themes=themes))
    where = {region.theme: region.position.words for region in description.regions}
    assert where == {"farmland": "north-west", "airport": "north", "river": "north-east",
                     "sea or beach": "west", "forest": "centre", "meadow": "east",
                     "desert": "south-west", "port": "south", "commercial": "south-east"}
    assert description.theme_source == "model"
    assert all(region.tile_count == 9 for region in description.regions)


def test_a_river_crossing_farmland_is_said_to_cross_it(tmp_path):
    layout = []
    for row in range(10):
        line = ["F"] * 10
        for col in (row, row + 1):
            if col < 10:
                line[col] = "R"
        layout.append("".join(line))
    description = describe_captions(write_mosaic(tmp_path / "river.gpkg", layout))
    overview = description.overview
    assert overview[0].startswith("Mostly farmland (")
    assert _sentence_with(overview, "A river crosses the area from the north-west to the "
                                    "south-east"), overview
    river = next(r for r in description.regions if r.theme == "river")
    assert river.position.words == "from the north-west to the south-east"


def test_a_strip_along_an_edge_and_small_patches(tmp_path):
    layout = ["FFFFFFFFFB",
              "FFRFFFFFFB",
              "FFFFFFFFFB",
              "FFFFFFRFFB",
              "FFFFFFFFFB",
              "FRFFFFFFFB",
              "FFFFFFFFFB",
              "FFFFFFFFFB"]
    description = describe_captions(write_mosaic(tmp_path / "edge.gpkg", layout))
    overview = description.overview
    assert overview[0].startswith("Mostly farmland (")
    assert "with 3 small patches of river" in overview[0]
    assert _sentence_with(overview, "Sea or beach along the east edge"), overview


def test_one_theme_everywhere_and_statuses_are_said(tmp_path):
    layout = ["FFFFF", "FFFFF", "FF?FF", "FFFF.", "FFFx."]
    description = describe_captions(write_mosaic(tmp_path / "farm.gpkg", layout))
    counts = description.counts
    assert (counts.total, counts.uncertain, counts.nodata, counts.failed) == (25, 1, 2, 1)
    # 21 farmland tiles of the 22 with a caption (the uncertain one counts in the area).
    assert description.overview[0] == "Almost entirely farmland (95%)."
    assert description.overview[-1] == ("4% of tiles are uncertain, 8% hold no data and 4% "
                                         "could not be read.")


# --------------------------------------------------------------------------------------------
# Regions: fields, areas on the ellipsoid, the typical caption, the stored layer
# --------------------------------------------------------------------------------------------
def test_regions_layer_fields_and_areas_on_the_ellipsoid(tmp_path):
    path = write_mosaic(tmp_path / "quarters.gpkg", QUARTERS)
    description = describe_captions(path)
    assert description.regions_layer == "regions"
    rows, metadata = _regions_layer(path)
    assert metadata["MAPSCRIBE_FORMAT"] == "mapscribe-regions"
    assert metadata["MAPSCRIBE_REGIONS_OF"] == "captions"
    assert [row["region_id"] for row in rows] == [1, 2, 3, 4]
    farmland = rows[0]
    assert farmland["theme"] == "farmland" and farmland["tile_count"] == 16
    # 16 tiles of 100 m in UTM on its central meridian, where the scale factor is 0.9996:
    # on the ellipsoid each is 100² / 0.9996² m², not the 100² m² of the map.
    assert farmland["area_km2"] == pytest.approx(16 * 0.01 / 0.9996 ** 2, rel=2e-5)
    assert farmland["share_percent"] == pytest.approx(25.0)
    assert farmland["position"] == "north-west" and farmland["level"] == 0
    assert farmland["theme_source"] == "caption words"
    assert farmland["typical_caption"] in ("There is a piece of farmland .",
                                           "It is a piece of farmland .")
    assert farmland["sentence"].startswith("Farmland in the north-west: 16 tiles, 0.2 km² "
                                           "(25% of the captioned area); typically “")
    # One dissolved polygon, the block's outline: 400 m × 400 m.
    polygon = ogr.CreateGeometryFromWkt(farmland["wkt"])
    assert polygon.GetGeometryName() == "MULTIPOLYGON" and polygon.GetGeometryCount() == 1
    assert polygon.GetArea() == pytest.approx(160_000)
    assert polygon.GetEnvelope() == pytest.approx((500_000, 500_400, 4_999_600, 5_000_000))


def test_area_of_a_degree_at_the_equator(tmp_path):
    # A 1° × 1° cell at the equator, stored in EPSG:4326: the area on the WGS 84 ellipsoid,
    # from the authalic formula.
    path = write_mosaic(tmp_path / "degree.gpkg", ["F"], tile_m=1.0, epsg=4326,
                        origin=(10.0, 1.0))
    region = describe_captions(path).regions[0]
    a, f = 6378137.0, 1 / 298.257223563
    e = math.sqrt(f * (2 - f))

    def q(phi):
        s = math.sin(phi)
        return s / (1 - e * e * s * s) + math.log((1 + e * s) / (1 - e * s)) / (2 * e)

    expected = a * a * (1 - e * e) / 2 * math.radians(1) * (q(math.radians(1)) - q(0)) / 1e6
    assert region.area_km2 == pytest.approx(expected, rel=1e-4)  # about 12,308 km²


def test_typical_caption_is_the_one_nearest_the_others():
    from mapscribe.model.describe.regions import typical_caption

    captions = ["a river with trees on both banks", "a river with green trees on its banks",
                "a river with trees on both banks", "two airplanes at the airport"]
    assert typical_caption(captions) == "a river with trees on both banks"
    assert typical_caption([]) == "" and typical_caption(["", "  "]) == ""
    assert typical_caption(["b c", "a c"]) == "a c"  # a tie: the first in alphabetical order


def test_describing_again_replaces_only_its_own_regions_layer(tmp_path):
    path = write_mosaic(tmp_path / "twice.gpkg", QUARTERS)
    first = describe_captions(path)
    second = describe_captions(path)
    assert first.overview == second.overview and first.regions == second.regions
    rows, _ = _regions_layer(path)
    assert len(rows) == 4
    dataset = ogr.Open(str(path))
    names = sorted(dataset.GetLayerByIndex(i).GetName() for i in range(dataset.GetLayerCount()))
    dataset = None
    assert names == ["captions", "regions"]

    other = write_mosaic(tmp_path / "theirs.gpkg", QUARTERS)
    dataset = ogr.Open(str(other), 1)
    theirs = dataset.CreateLayer("regions", dataset.GetLayer(0).GetSpatialRef(), ogr.wkbPoint)
    theirs.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    feature = ogr.Feature(theirs.GetLayerDefn())
    feature.SetField("name", "mine")
    theirs.CreateFeature(feature)
    dataset = None
    with pytest.raises(DescribeError, match=r"already has a layer 'regions' that MapScribe did "
                                            r"not write.*left as it is"):
        describe_captions(other)
    dataset = ogr.Open(str(other))
    assert dataset.GetLayerByName("regions").GetFeatureCount() == 1
    dataset = None
    # Nothing written, so the person can still read the overview without writing.
    assert describe_captions(other, write=False).regions_layer is None


def test_another_captions_layer_gets_its_own_regions_layer(tmp_path):
    path = write_mosaic(tmp_path / "two.gpkg", QUARTERS)
    write_mosaic(path, ["RRRR"] * 4, layer="second")
    with pytest.raises(GridFileError, match="several MapScribe captions layers"):
        describe_captions(path)
    assert describe_captions(path, layer="second").regions_layer == "second_regions"
    assert describe_captions(path, layer="captions").regions_layer == "regions"
    rows, metadata = _regions_layer(path, "second_regions")
    assert [row["theme"] for row in rows] == ["river"]
    assert metadata["MAPSCRIBE_REGIONS_OF"] == "second"


def test_the_overview_is_stored_beside_the_run_metadata_and_read_back(tmp_path):
    path = write_mosaic(tmp_path / "stored.gpkg", QUARTERS)
    assert read_overview(path) is None
    description = describe_captions(path)
    stored = read_overview(path)
    assert stored.sentences == description.overview and stored.text == description.text
    assert stored.regions_layer == "regions" and stored.theme_source == "caption words"
    assert stored.grid_signature == "mosaic-8x8" and stored.created.endswith("Z")
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayerByName("captions")
    item = json.loads(layer.GetMetadataItem("MAPSCRIBE_OVERVIEW"))
    assert "MAPSCRIBE_RUN" in layer.GetMetadata()
    dataset = None
    assert item["tiles"]["total"] == 64 and item["regions"] == 4 and item["version"] == 1

    dataset = ogr.Open(str(path), 1)
    dataset.GetLayerByName("captions").SetMetadataItem("MAPSCRIBE_OVERVIEW",
                                                       json.dumps({"sentences": "x" * 10}))
    dataset = None
    with pytest.raises(GridFileError, match="MAPSCRIBE_OVERVIEW.*edited or damaged"):
        read_overview(path)


# --------------------------------------------------------------------------------------------
# Themes: the model's when the layer has them, else the caption's words
# --------------------------------------------------------------------------------------------
def test_model_themes_win_over_the_words_and_unknown_themes_fall_back(tmp_path):
    # The captions all speak of farmland; the model's theme head says meadow for the west
    # half, and names a theme MapScribe does not know for the east half.
    layout = ["FFFFGGGG"] * 4
    path = write_mosaic(tmp_path / "themes.gpkg", layout,
                        themes={"F": "meadow", "G": "golf links"},
                        captions={"G": "There is a piece of farmland ."})
    description = describe_captions(path)
    assert {(r.theme, r.position.words, r.theme_source) for r in description.regions} == {
        ("meadow", "west", "model"), ("farmland", "east", "caption words")}
    assert description.theme_source == "model and caption words"
    assert any("themes MapScribe does not know ('golf links'" in n for n in description.notes)


def test_an_older_layer_without_themes_is_described_from_its_words_and_says_so(tmp_path):
    older = describe_captions(write_mosaic(tmp_path / "old.gpkg", QUARTERS, older=True))
    assert older.theme_source == "caption words"
    assert any("has no theme field (captioned by an older MapScribe)" in note
               and "told from the captions' words" in note for note in older.notes)
    # A layer with the field, from a model without a theme head (every theme NULL): the same
    # regions, and it says why.
    headless = describe_captions(write_mosaic(tmp_path / "headless.gpkg", QUARTERS,
                                              themes={}))
    assert headless.regions == tuple(r for r in older.regions)
    assert headless.overview == older.overview
    assert any("names no theme for any tile (captioned by a model without a theme head)" in n
               for n in headless.notes)


def test_tiles_captioned_by_several_models_are_noted(tmp_path):
    path = write_mosaic(tmp_path / "models.gpkg", QUARTERS, models={"A": "other.mscap"})
    notes = " ".join(describe_captions(path).notes)
    assert "captioned by 2 different models (mosaic.mscap, other.mscap)" in notes


# --------------------------------------------------------------------------------------------
# A caption pyramid (level, parent_id): regions from the finest, the coarsest read whole
# --------------------------------------------------------------------------------------------
def test_a_pyramid_is_described_from_its_finest_level_and_its_whole(tmp_path):
    path = write_mosaic(tmp_path / "pyramid.gpkg", QUARTERS)
    finest = add_coarse_levels(path, captions=["Many buildings and green trees are around "
                                               "an airport ."])
    assert finest == 3
    description = describe_captions(path)
    assert description.levels == (0, 1, 2, 3)
    assert description.counts.total == 64
    assert [r.tile_count for r in description.regions] == [16, 16, 16, 16]
    assert all(r.level == 3 for r in description.regions)
    assert _sentence_with(description.overview, "Seen as a whole: “Many buildings and green "
                                                "trees are around an airport”.")
    assert _sentence_with(description.overview, "farmland in the north-west")
    assert any("holds 4 levels" in note for note in description.notes)


# --------------------------------------------------------------------------------------------
# Bad input and plain cases
# --------------------------------------------------------------------------------------------
def test_a_geopackage_without_captions_says_what_to_run(tmp_path):
    plain = tmp_path / "plain.gpkg"
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(plain))
    dataset.CreateLayer("roads", None, ogr.wkbLineString)
    dataset = None
    with pytest.raises(GridFileError, match=r"holds no MapScribe captions layer.*roads.*"
                                            r"mapscribe caption"):
        describe_captions(plain)
    with pytest.raises(GridFileError, match="no such file"):
        describe_captions(tmp_path / "missing.gpkg")


def test_a_layer_missing_a_field_names_it(tmp_path):
    path = write_mosaic(tmp_path / "edited.gpkg", QUARTERS)
    dataset = ogr.Open(str(path), 1)
    layer = dataset.GetLayerByName("captions")
    assert layer.DeleteField(layer.GetLayerDefn().GetFieldIndex("status")) == 0
    dataset = None
    with pytest.raises(DescribeError, match=r"layer 'captions' of .*edited.gpkg has no field "
                                            r"status.*mapscribe caption"):
        describe_captions(path)


def test_an_empty_layer_says_to_finish_the_run(tmp_path):
    path = write_mosaic(tmp_path / "empty.gpkg", ["F"])
    dataset = ogr.Open(str(path), 1)
    dataset.ExecuteSQL("DELETE FROM captions")
    dataset = None
    with pytest.raises(DescribeError, match="has no tiles yet.*--resume"):
        describe_captions(path)


def test_an_area_of_one_tile(tmp_path):
    description = describe_captions(write_mosaic(tmp_path / "one.gpkg", ["R"]))
    assert len(description.overview) == 1
    assert description.overview[0].startswith("The whole area is one tile of river: “")
    assert description.regions[0].position.words == "the whole area"


def test_an_area_all_nodata(tmp_path):
    path = write_mosaic(tmp_path / "nodata.gpkg", ["...", "..."])
    description = describe_captions(path)
    assert description.overview == ("No tile of this area holds imagery to describe: all 6 "
                                    "tiles hold no data.",)
    assert description.regions == ()
    rows, metadata = _regions_layer(path)
    assert rows == [] and metadata["MAPSCRIBE_FORMAT"] == "mapscribe-regions"


def test_all_tiles_uncertain_is_said_plainly(tmp_path):
    description = describe_captions(write_mosaic(tmp_path / "unsure.gpkg", ["???", "??."]))
    assert description.overview[0] == ("All 5 captioned tiles are uncertain: the model is not "
                                       "confident about any of them, so no region is named.")
    assert description.overview[1].startswith("The commonest caption, said without "
                                              "confidence, is “")
    assert description.overview[-1] == "17% of tiles hold no data."
    assert description.regions == ()


def test_an_unfinished_grid_is_said(tmp_path):
    path = write_mosaic(tmp_path / "unfinished.gpkg", QUARTERS)
    dataset = ogr.Open(str(path), 1)
    dataset.ExecuteSQL("DELETE FROM captions WHERE tile_id >= 60")
    dataset = None
    description = describe_captions(path)
    assert description.counts.missing == 4
    assert "4 of 64 planned tiles are not captioned yet" in description.overview[-1]
    assert any("--resume" in note for note in description.notes)


def test_diagonal_neighbours_are_connected(tmp_path):
    # A river one tile wide along the diagonal is one region (8-neighbour), not ten.
    layout = ["".join("R" if col == row else "F" for col in range(10)) for row in range(10)]
    description = describe_captions(write_mosaic(tmp_path / "diagonal.gpkg", layout))
    rivers = [r for r in description.regions if r.theme == "river"]
    assert len(rivers) == 1 and rivers[0].tile_count == 10
    assert rivers[0].position.words == "from the north-west to the south-east"


def test_captions_that_name_no_theme(tmp_path):
    path = write_mosaic(tmp_path / "vague.gpkg", ["FF", "FF"],
                        captions={"F": "an image with nothing in particular ."})
    description = describe_captions(path)
    assert description.overview == (
        "No theme could be told from the captions; the most typical is “an image with nothing "
        "in particular”.", "All tiles fit no theme.")
    assert description.regions == () and description.counts.unthemed == 4
