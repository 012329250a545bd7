"""The data layer: reading RSICD and COCO folders, every bad input, splits, tensors."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image

from locations import TEST_DATA
from mapscribe.model.data.folder import read_caption_folder
from mapscribe.model.data.images import load_rgb_image
from mapscribe.model.data.records import DatasetError
from mapscribe.model.data.summary import summarise

SAMPLE = TEST_DATA / "ucm-sample"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A writable copy of the 8-image UCM sample."""
    target = tmp_path / "dataset"
    shutil.copytree(SAMPLE, target)
    return target


def annotations(folder: Path) -> dict:
    return json.loads((folder / "annotations.json").read_text())


def write(folder: Path, document) -> None:
    (folder / "annotations.json").write_text(json.dumps(document, indent=1))


def codes(result) -> list:
    return [p.code for p in result.problems]


def only_problem(result, code: str):
    matching = [p for p in result.problems if p.code == code]
    assert len(matching) == 1, result.problems
    return matching[0]


# -- the real data -----------------------------------------------------------------------------
def test_real_ucm_captions_load_completely(ucm_folder):
    result = read_caption_folder(ucm_folder)
    assert result.format == "rsicd"
    assert result.split_counts() == {"train": (1680, 8400), "val": (210, 1050),
                                     "test": (210, 1050)}
    assert result.problems == []
    sizes = {r.image_size for r in result.records}
    assert (256, 256) in sizes and len(sizes) > 1  # some originals are not 256×256


def test_real_rsicd_subset_loads_and_reports_its_one_empty_caption(rsicd_folder):
    result = read_caption_folder(rsicd_folder)
    counts = result.split_counts()
    assert {k: v[0] for k, v in counts.items()} == {"train": 909, "val": 258, "test": 1094}
    problem = only_problem(result, "empty_caption")
    assert problem.filename == "bridge_59.jpg" and "caption 2" in problem.message
    bridge = next(r for r in result.records if r.filename == "bridge_59.jpg")
    assert len(bridge.captions) == 4
    assert counts["test"][1] == 5 * 1094 - 1


def test_sample_loads_with_tokens_from_the_one_tokeniser(folder):
    result = read_caption_folder(folder)
    assert len(result.records) == 8 and result.problems == []
    airplane = next(r for r in result.records if r.filename == "105.jpg")
    assert airplane.tokens[0] == ["two", "airplanes", "are", "surrounded", "with", "some", "cars"]
    assert airplane.image_path == (folder / "images" / "105.jpg").resolve()


# -- whole-folder problems ---------------------------------------------------------------------
def test_missing_folder_parts_are_named(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="missing annotations.json"):
        read_caption_folder(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        read_caption_folder(tmp_path / "nope")


def test_malformed_json_reports_line_and_column(folder):
    (folder / "annotations.json").write_text('{"images": [\n  {"filename": "1.tif",,}\n]}')
    with pytest.raises(DatasetError) as error:
        read_caption_folder(folder)
    message = str(error.value)
    assert "annotations.json" in message and "line 2, column 24" in message


def test_unknown_format_says_which_formats_are_accepted(folder):
    write(folder, {"pictures": []})
    with pytest.raises(DatasetError, match="neither RSICD/Karpathy format .* nor COCO"):
        read_caption_folder(folder)


# -- entry problems: each reported with its index and file, the rest still loads ---------------
def test_missing_keys_and_wrong_types(folder):
    document = annotations(folder)
    del document["images"][0]["filename"]
    del document["images"][1]["sentences"]
    document["images"][2]["sentences"] = "a beach"
    document["images"][3]["sentences"][0]["raw"] = 42
    document["images"][4] = ["not", "an", "object"]
    write(folder, document)
    result = read_caption_folder(folder)
    by_entry = {p.entry: p for p in result.problems}
    assert by_entry[0].code == "missing_key" and "'filename'" in by_entry[0].message
    assert by_entry[1].code == "missing_key" and by_entry[1].filename == "105.jpg"
    assert by_entry[2].code == "wrong_type" and "'sentences' must be a list" in by_entry[2].message
    assert by_entry[3].code == "wrong_type" and "sentence 0: 'raw' must be a string" in \
        by_entry[3].message
    assert by_entry[4].code == "wrong_type"
    kept = {r.filename for r in result.records}
    assert kept == {"905.jpg", "1650.jpg", "1905.jpg", "2005.jpg"}
    golf = next(r for r in result.records if r.filename == "905.jpg")
    assert len(golf.captions) == 4  # only the bad sentence is left out


def test_missing_unreadable_and_truncated_images(folder):
    images = folder / "images"
    (images / "105.jpg").unlink()
    (images / "305.jpg").write_text("this is not an image")
    data = (images / "905.jpg").read_bytes()
    (images / "905.jpg").write_bytes(data[: len(data) // 2])
    result = read_caption_folder(folder)
    assert only_problem(result, "missing_image").filename == "105.jpg"
    assert only_problem(result, "unreadable_image").filename == "305.jpg"
    truncated = only_problem(result, "truncated_image")
    assert truncated.filename == "905.jpg" and truncated.entry == 3
    assert len(result.records) == 5


def test_header_check_does_not_decode_so_misses_truncation(folder):
    data = (folder / "images" / "905.jpg").read_bytes()
    (folder / "images" / "905.jpg").write_bytes(data[: len(data) // 2])
    assert "truncated_image" not in codes(read_caption_folder(folder, check_images="header"))
    assert "truncated_image" in codes(read_caption_folder(folder, check_images="full"))


def test_images_without_captions_and_empty_captions(folder):
    document = annotations(folder)
    document["images"][0]["sentences"] = []
    for sentence in document["images"][1]["sentences"]:
        sentence["raw"] = " . "
    document["images"][2]["sentences"][1]["raw"] = "..."
    write(folder, document)
    shutil.copy(folder / "images" / "1105.jpg", folder / "images" / "extra.jpg")
    result = read_caption_folder(folder)
    no_captions = [p for p in result.problems if p.code == "no_captions"]
    assert [(p.entry, p.filename) for p in no_captions] == [(0, "1.tif"), (1, "105.jpg")]
    empty = [p for p in result.problems if p.code == "empty_caption"]
    assert len(empty) == 6 and {p.filename for p in empty} == {"105.jpg", "305.jpg"}
    unlisted = only_problem(result, "image_without_captions")
    assert unlisted.filename == "extra.jpg" and unlisted.severity == "warning"
    assert len(result.records) == 6


def test_unknown_split_names(folder):
    document = annotations(folder)
    document["images"][0]["split"] = "training"
    document["images"][1]["split"] = "restval"  # Karpathy's name for extra train images
    write(folder, document)
    result = read_caption_folder(folder)
    problem = only_problem(result, "unknown_split")
    assert problem.entry == 0 and "'training'" in problem.message
    assert "train, val, test" in problem.message
    assert next(r for r in result.records if r.filename == "105.jpg").split == "train"
    assert "1.tif" not in {r.filename for r in result.records}


def test_duplicate_filenames_keep_the_first(folder):
    document = annotations(folder)
    document["images"].append(dict(document["images"][2]))
    write(folder, document)
    result = read_caption_folder(folder)
    problem = only_problem(result, "duplicate_filename")
    assert problem.entry == 8 and problem.filename == "305.jpg" and "images[2]" in problem.message
    assert len(result.records) == 8


@pytest.mark.parametrize("name", ["../annotations.json", "/etc/passwd", "a/../../x.jpg",
                                  "C:\\images\\1.tif", "..\\x.jpg"])
def test_file_names_that_escape_images_are_refused(folder, name):
    document = annotations(folder)
    document["images"][0]["filename"] = name
    write(folder, document)
    result = read_caption_folder(folder)
    problem = only_problem(result, "unsafe_path")
    assert problem.entry == 0 and problem.filename == name
    assert len(result.records) == 7


def test_grayscale_and_rgba_are_converted_with_a_warning(folder):
    images = folder / "images"
    Image.open(images / "105.jpg").convert("L").save(images / "105.jpg")
    Image.open(images / "305.jpg").convert("RGBA").save(images / "305.png")
    document = annotations(folder)
    document["images"][2]["filename"] = "305.png"
    write(folder, document)
    (images / "305.jpg").unlink()
    result = read_caption_folder(folder)
    warnings = {p.filename: p for p in result.warnings}
    assert set(warnings) == {"105.jpg", "305.png"}
    assert "is L, not RGB" in warnings["105.jpg"].message
    assert "is RGBA" in warnings["305.png"].message
    assert len(result.records) == 8 and result.errors == []
    assert load_rgb_image(images / "105.jpg").mode == "RGB"
    assert load_rgb_image(images / "305.png").mode == "RGB"


def test_strict_mode_stops_at_the_first_error_class(folder):
    document = annotations(folder)
    document["images"][0]["split"] = "bogus"
    document["images"][1]["split"] = "bogus"
    write(folder, document)
    (folder / "images" / "905.jpg").unlink()
    with pytest.raises(DatasetError) as error:
        read_caption_folder(folder, strict=True)
    assert {p.code for p in error.value.problems} == {"unknown_split"}
    assert len(error.value.problems) == 2
    assert "strict mode" in str(error.value)


def test_strict_mode_passes_warnings(folder):
    Image.open(folder / "images" / "105.jpg").convert("L").save(folder / "images" / "105.jpg")
    assert len(read_caption_folder(folder, strict=True).records) == 8


def test_no_usable_entry_is_an_error(folder):
    write(folder, {"images": [{"filename": "1.tif", "sentences": []}]})
    with pytest.raises(DatasetError, match="no usable image"):
        read_caption_folder(folder)


# -- splits ------------------------------------------------------------------------------------
def test_val_split_pct_is_deterministic_and_order_free(ucm_folder, tmp_path):
    document = json.loads((ucm_folder / "annotations.json").read_text())
    for item in document["images"]:
        del item["split"]
    target = tmp_path / "nosplit"
    (target / "images").mkdir(parents=True)
    # Links to each image (an images/ that is itself a link out of the folder is refused).
    for image in (ucm_folder / "images").iterdir():
        (target / "images" / image.name).symlink_to(image)
    write(target, document)
    first = read_caption_folder(target, val_split_pct=0.1, check_images="none")
    random.Random(1).shuffle(document["images"])
    write(target, document)
    second = read_caption_folder(target, val_split_pct=0.1, check_images="none")
    val_first = {r.filename for r in first.split("val")}
    assert len(val_first) == 210 and first.split("test") == []
    assert val_first == {r.filename for r in second.split("val")}
    assert first.split_source == "val_split_pct"
    classes = {(int(name.split(".")[0]) - 1) // 100 for name in val_first}
    assert len(classes) >= 18  # a spread over the 21 classes, not a block of file names


def test_val_split_pct_out_of_range(folder):
    with pytest.raises(DatasetError, match="val_split_pct=1.5"):
        read_caption_folder(folder, val_split_pct=1.5)


# -- COCO format -------------------------------------------------------------------------------
def coco_from_sample(folder: Path) -> dict:
    document = annotations(folder)
    images, notes = [], []
    for item in document["images"]:
        images.append({"id": item["imgid"] + 100, "file_name": item["filename"],
                       "split": item["split"]})
        notes += [{"image_id": item["imgid"] + 100, "caption": s["raw"]}
                  for s in item["sentences"]]
    return {"images": images, "annotations": notes}


def test_coco_format_loads_the_same_records(folder):
    rsicd = read_caption_folder(folder)
    write(folder, coco_from_sample(folder))
    coco = read_caption_folder(folder)
    assert coco.format == "coco"
    assert [(r.filename, r.split, r.tokens) for r in coco.records] == \
           [(r.filename, r.split, r.tokens) for r in rsicd.records]


def test_coco_format_problems(folder):
    document = coco_from_sample(folder)
    document["annotations"].append({"image_id": 999, "caption": "a lost caption"})
    document["annotations"].append({"image_id": 100})
    document["images"].append({"id": 101, "file_name": "1.tif"})
    document["images"].append({"file_name": "2.tif"})
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] != 102]
    write(folder, document)
    result = read_caption_folder(folder)
    unknown = only_problem(result, "unknown_image_id")
    assert unknown.list_name == "annotations" and "999" in unknown.message
    assert str(unknown).startswith("error: annotations[")
    assert only_problem(result, "duplicate_id").entry == 8
    assert any(p.code == "missing_key" and "'caption'" in p.message for p in result.problems)
    assert any(p.code == "missing_key" and "'id'" in p.message for p in result.problems)
    assert only_problem(result, "no_captions").filename == "305.jpg"


# -- summary -----------------------------------------------------------------------------------
def test_summary_counts(folder):
    summary = summarise(read_caption_folder(folder), min_word_count=2)
    assert summary.splits == {"train": (6, 30), "val": (1, 5), "test": (1, 5)}
    assert 10 < summary.vocabulary_words < 60
    assert summary.caption_length["min"] >= 3 and summary.caption_length["max"] <= 25
