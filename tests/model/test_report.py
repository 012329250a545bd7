"""The HTML report read from the overview to the details (on mosaics whose layout is known), its
template language, the exports' formats and permissions, and `mapscribe describe`."""

from __future__ import annotations

import os
import re
import stat

import pytest
from osgeo import ogr

from mapscribe.model import (
    ExportError,
    describe_captions,
    export_captions,
    format_from_suffix,
    read_overview,
)
from mapscribe.model.cli.main import main
from mapscribe.model.output.template import TemplateError, render
from mosaics import add_coarse_levels, write_mosaic
from rasters import RGB_BYTE

QUARTERS = ["FFFFAAAA"] * 4 + ["RRRRBBBB"] * 4


def _report(tmp_path, layout=QUARTERS, pyramid=False, **options):
    path = write_mosaic(tmp_path / "mosaic.gpkg", layout, **options)
    if pyramid:
        add_coarse_levels(path)
    out = tmp_path / "report.html"
    export_captions(path, "html", out)
    return path, out.read_text(encoding="utf-8")


def _ids(text):
    return re.findall(r'\bid="([^"]+)"', text)


def test_the_report_opens_with_the_overview_then_regions_then_tiles(tmp_path):
    path, text = _report(tmp_path)
    description = describe_captions(path, write=False)
    body = text.split("<main>")[1]
    overview = body.index(description.overview[0])
    assert overview < body.index('id="regions-heading"') < body.index(
        'id="region-tiles-heading"') < body.index('id="tiles-heading"') < body.index(
        'id="about-heading"')
    # Each region links to its tiles, whose heading can take the focus.
    links = re.findall(r'<a href="#(region-\d+-tiles)">The 16 tiles of region \d+ \((\w[^)]*)\)'
                       r'</a>', text)
    assert [theme for _, theme in links] == ["farmland", "airport", "river", "sea or beach"]
    for target, _ in links:
        assert re.search(rf'<h3 id="{target}" tabindex="-1">Region \d+: ', text)
    assert len(_ids(text)) == len(set(_ids(text)))
    # Source, model and the uncertain count are stated; files by name only.
    assert "<dt>Raster</dt><dd>mosaic.tif</dd>" in text
    assert "<dt>Model</dt><dd>mosaic.mscap (sha256 000000000000)</dd>" in text
    assert "<dt>Uncertain tiles</dt><dd>0</dd>" in text
    assert "/home/someone" not in text and str(tmp_path) not in text


def test_tiles_by_level_in_reading_order_with_a_search_field_for_scripts(tmp_path):
    _, text = _report(tmp_path, pyramid=True)
    # Levels from the coarsest; rows north to south, west to east.
    levels = re.findall(r'<h3 id="level-(\d+)">([^<]+)</h3>', text)
    assert levels == [("0", "Level 0 (the whole area): 1 tile"), ("1", "Level 1: 4 tiles"),
                      ("2", "Level 2: 16 tiles"), ("3", "Level 3 (the finest): 64 tiles")]
    finest = re.findall(r'data-level="3" data-row="(\d+)" data-col="(\d+)"', text)
    assert [(int(r), int(c)) for r, c in finest] == [(r, c) for r in range(8) for c in range(8)]
    assert 'Row 1 of 8</h4>' in text and "Column 8: " in text
    # The search form is in the page but hidden: the script shows it, so without scripts
    # there is no control that does nothing.
    assert re.search(r'<form role="search" id="search-form" aria-label="[^"]+" hidden>', text)
    assert '<label for="search">' in text and 'id="search-status" role="status"' in text
    assert text.count("<script>") == 1 and "form.hidden = false" in text


def test_statuses_and_an_area_without_regions(tmp_path):
    _, text = _report(tmp_path, layout=["??", "?."])
    assert "All 3 captioned tiles are uncertain" in text
    assert "No region: every captioned tile is uncertain." in text
    assert "(uncertain)</li>" in text and "No caption: too little imagery (no data)" in text
    assert "<dt>Uncertain tiles</dt><dd>3</dd>" in text
    assert 'id="region-tiles-heading"' not in text


# --------------------------------------------------------------------------------------------
# Exports: the format follows the file name, normal permissions
# --------------------------------------------------------------------------------------------
def test_a_suffix_that_says_another_format_is_refused(tmp_path):
    path = write_mosaic(tmp_path / "mosaic.gpkg", QUARTERS)
    for asked, name in (("html", "captions.csv"), ("csv", "report.html"),
                        ("geojson", "captions.csv")):
        with pytest.raises(ExportError, match=rf"ends in \.\w+, which is \w+, not {asked}"):
            export_captions(path, asked, tmp_path / name)
        assert not (tmp_path / name).exists()
    # A suffix that says nothing is the person's choice.
    assert export_captions(path, "html", tmp_path / "report.txt").format == "html"
    assert main(["export", str(path), "--out", str(tmp_path / "r.htm")]) == 0
    assert (tmp_path / "r.htm").read_text().startswith("<!DOCTYPE html>")


def test_exports_get_the_permissions_any_new_file_gets(tmp_path):
    path = write_mosaic(tmp_path / "mosaic.gpkg", QUARTERS)
    previous = os.umask(0o022)
    try:
        for name in ("report.html", "captions.csv", "captions.geojson"):
            export_captions(path, format_from_suffix(name), tmp_path / name)
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
    finally:
        os.umask(previous)


# --------------------------------------------------------------------------------------------
# The template language: every value escaped
# --------------------------------------------------------------------------------------------
def test_template_values_are_always_escaped_and_partials_are_verbatim():
    template = ('<p title="{{title}}">{{#items}}<i>{{name}}</i>{{/items}}{{^items}}none'
                '{{/items}}{{#flag}}!{{/flag}}</p><style>{{>css}}</style>')
    text = render(template, {"title": '"><script>', "items": [{"name": "<b>&"}, {"name": 3}],
                             "flag": True}, {"css": "a > b {}"})
    assert text == ('<p title="&quot;&gt;&lt;script&gt;"><i>&lt;b&gt;&amp;</i><i>3</i>!</p>'
                    "<style>a > b {}</style>")
    assert render("{{^items}}none{{/items}}{{missing}}", {"items": []}) == "none"
    for broken in ("{{#a}}", "{{/a}}", "{{#a}}{{/b}}", "{{{raw}}}"):
        with pytest.raises(TemplateError):
            render(broken, {})


# --------------------------------------------------------------------------------------------
# mapscribe describe
# --------------------------------------------------------------------------------------------
def test_describe_command_prints_the_overview_and_writes_the_regions(tmp_path, capsys):
    path = write_mosaic(tmp_path / "mosaic.gpkg", QUARTERS)
    assert main(["describe", str(path)]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[0] == "Overview:" and lines[1].startswith("  A mix of farmland in the "
                                                           "north-west (25%)")
    assert "Regions (4, largest first):" in lines
    assert any(line.startswith("  1. Farmland in the north-west: 16 tiles") for line in lines)
    assert "(layer 'regions')" in printed.out
    assert "mapscribe describe: note:" in printed.err
    assert "themes were told from the captions' words" in printed.err

    assert main(["describe", str(tmp_path / "missing.gpkg")]) == 1
    err = capsys.readouterr().err
    assert "mapscribe describe: error:" in err and "no such file" in err
    assert "Traceback" not in err
    assert main(["describe", str(path), "--layer", "nope"]) == 1
    assert "layer 'nope'" in capsys.readouterr().err


def test_caption_describes_the_grid_at_the_end_unless_told_not_to(tiny_model_path, tmp_path,
                                                                  capsys):
    fast = ["--tile-size", "256", "--tile-size-unit", "pixels", "--beam", "1", "--max-length",
            "12", "--device", "cpu", "--model", str(tiny_model_path)]
    out = tmp_path / "grid.gpkg"
    assert main(["caption", str(RGB_BYTE), *fast, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Overview:" in printed and "(layer 'regions')" in printed
    assert read_overview(out).sentences == describe_captions(out, write=False).overview

    other = tmp_path / "plain.gpkg"
    assert main(["caption", str(RGB_BYTE), *fast, "--out", str(other), "--no-describe"]) == 0
    assert "Overview:" not in capsys.readouterr().out
    assert read_overview(other) is None
    dataset = ogr.Open(str(other))
    assert dataset.GetLayerByName("regions") is None
    dataset = None


def test_the_resolution_note_reaches_the_summary_the_metadata_and_the_report(tiny_model_path,
                                                                             tmp_path, capsys):
    # RGB.byte.tif has 300 m pixels: the tiny model, trained at 0.3 m, sees them ~1000× coarser.
    out = tmp_path / "coarse.gpkg"
    assert main(["caption", str(RGB_BYTE), "--tile-size", "256", "--tile-size-unit", "pixels",
                 "--beam", "1", "--max-length", "8", "--device", "cpu", "--model",
                 str(tiny_model_path), "--out", str(out), "--no-describe"]) == 0
    printed = capsys.readouterr()
    note = re.search(r"imagery \d+× coarser than the model was trained on",
                     printed.out + printed.err)
    assert note, printed
    assert main(["export", str(out), "--format", "html", "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert note.group(0) in html
