"""Scene themes: the datasets' own classes mapped onto MapScribe's themes by one table, and a
dataset folder assembled from a captions file and images kept elsewhere."""

from __future__ import annotations

import json
import shutil

import pytest

from locations import TEST_DATA
from mapscribe.model import DatasetError, read_caption_folder
from mapscribe.model.data.assemble import assemble_caption_folder
from mapscribe.model.data.themes import SCENE_THEMES, THEMES, UCM_CLASSES, scene_of, theme_index

UCM_SAMPLE = TEST_DATA / "ucm-sample"


def test_every_class_has_a_theme_and_every_theme_a_class():
    assert set(SCENE_THEMES.values()) == set(THEMES)
    assert 18 <= len(THEMES) <= 25
    assert all(name in SCENE_THEMES for name in UCM_CLASSES)


@pytest.mark.parametrize("dataset, filename, scene", [
    ("RSICD", "bridge_12.jpg", "bridge"),
    ("RSICD", "denseresidential_3.jpg", "denseresidential"),
    ("RSICD", "00001.jpg", None),              # RSICD's numbered images carry no class
    ("RSICD", "spaceport_1.jpg", None),        # not one of RSICD's classes
    ("UCM-captions", "1.tif", "agricultural"),
    ("UCM-captions", "100.jpg", "agricultural"),
    ("UCM-captions", "101.jpg", "airplane"),
    ("UCM-captions", "1289.tif", "mediumresidential"),
    ("UCM-captions", "2100.tif", "tenniscourt"),
    ("UCM-captions", "2101.tif", None),
    ("ucm-sample", "1905.jpg", "storagetanks"),
    ("my own data", "bridge_12.jpg", None),    # rules apply to their own datasets only
])
def test_scene_classes_come_from_each_dataset_s_own_naming(dataset, filename, scene):
    assert scene_of(dataset, filename) == scene


def test_records_carry_their_scene_and_an_entry_may_name_its_own(tmp_path):
    folder = read_caption_folder(UCM_SAMPLE)
    assert {r.filename: r.scene for r in folder.records}["905.jpg"] == "golfcourse"
    copy = tmp_path / "named"
    shutil.copytree(UCM_SAMPLE, copy)
    document = json.loads((copy / "annotations.json").read_text())
    document["images"][0]["scene"] = "Harbor"
    (copy / "annotations.json").write_text(json.dumps(document))
    first = read_caption_folder(copy).records[0]
    assert first.scene == "harbor" and THEMES[theme_index(first.scene)] == "port"


def test_merging_keeps_each_image_s_scene(tmp_path):
    from mapscribe.model import merge_caption_folders

    merged = merge_caption_folders(tmp_path / "merged", [UCM_SAMPLE], copy=True)
    assert {r.scene for r in merged.records} == {r.scene for r in
                                                 read_caption_folder(UCM_SAMPLE).records}


def _captions_file(tmp_path):
    """An RSICD-style captions file naming the sample's images by RSICD class names, one of
    them in val twice over (one kept, one reserved)."""
    images = tmp_path / "elsewhere"
    images.mkdir()
    entries = []
    for index, (source, name, split) in enumerate([
            ("105.jpg", "airport_1.jpg", "train"), ("305.jpg", "beach_1.jpg", "train"),
            ("905.jpg", "forest_1.jpg", "train"), ("1905.jpg", "storagetanks_1.jpg", "val"),
            ("1650.jpg", "river_1.jpg", "val"), ("2005.jpg", "playground_1.jpg", "test")]):
        shutil.copy(UCM_SAMPLE / "images" / source, images / name)
        entries.append({"filename": name, "split": split, "imgid": index,
                        "sentences": [{"raw": f"a picture number {index} ."}]})
    captions = tmp_path / "captions_all_images.json"
    captions.write_text(json.dumps({"dataset": "RSICD", "images": entries}))
    kept_val = tmp_path / "subset"
    (kept_val / "images").mkdir(parents=True)
    shutil.copy(images / "storagetanks_1.jpg", kept_val / "images")
    (kept_val / "annotations.json").write_text(json.dumps({"dataset": "RSICD", "images": [
        dict(entries[3])]}))
    return captions, images, kept_val


def test_assemble_builds_a_folder_and_keeps_only_the_chosen_val_images(tmp_path):
    captions, images, kept_val = _captions_file(tmp_path)
    folder = assemble_caption_folder(tmp_path / "out", captions, images, keep_val_of=kept_val)
    assert [r.filename for r in folder.split("val")] == ["storagetanks_1.jpg"]
    assert len(folder.split("train")) == 3 and len(folder.split("test")) == 1
    assert {r.filename: r.scene for r in folder.records}["airport_1.jpg"] == "airport"
    assert not (tmp_path / "out" / "images" / "river_1.jpg").exists()  # reserved: left out


def test_assemble_refuses_missing_images_and_writes_nothing(tmp_path):
    captions, images, _ = _captions_file(tmp_path)
    (images / "beach_1.jpg").unlink()
    with pytest.raises(DatasetError, match="1 of the 6 images .* missing.*beach_1.jpg"):
        assemble_caption_folder(tmp_path / "out", captions, images)
    assert not (tmp_path / "out").exists()


def test_assemble_never_deletes_a_folder_it_did_not_write(tmp_path):
    captions, images, _ = _captions_file(tmp_path)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a dataset folder MapScribe wrote"):
        assemble_caption_folder(precious, captions, images, overwrite=True)
    assert (precious / "notes.txt").read_text() == "mine"
