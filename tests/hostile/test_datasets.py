"""Dataset folders and images from anyone (points 13 and 14 of issue 9): decompression bombs
are messages in `data check`, `predict`, `evaluate` and `train`; `images/` leading out of the
folder is refused like a `../` path; pipes and devices never block a read."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from locations import UCM_SAMPLE


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG of a few hundred bytes whose header declares ``width`` × ``height`` gray pixels
    (its data holds a few rows only: nothing should ever get as far as decoding them)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = zlib.compress(b"\x00" * (width + 1) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def dataset(tmp_path) -> Path:
    folder = tmp_path / "dataset"
    shutil.copytree(UCM_SAMPLE, folder)
    return folder


def _add_entry(folder: Path, name: str, split: str = "train") -> None:
    path = folder / "annotations.json"
    document = json.loads(path.read_text())
    document["images"].append({"filename": name, "split": split,
                               "sentences": [{"raw": "a bomb in a field"}]})
    path.write_text(json.dumps(document))


# -- point 13: decompression bombs -----------------------------------------------------------------
def test_data_check_reports_a_bomb_and_goes_on(run_cli, dataset):
    bomb_png(dataset / "images" / "bomb.png", 30_000, 30_000)
    bomb_png(dataset / "images" / "large.png", 9_000, 9_000)
    _add_entry(dataset, "bomb.png")
    _add_entry(dataset, "large.png")
    result = run_cli("data", "check", dataset, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    bomb = next(line for line in lines if "'bomb.png'" in line)
    assert "decompression bomb" in bomb and "left out" in bomb
    large = next(line for line in lines if "'large.png'" in line)
    assert "the image is 9000 × 9000 px" in large and "left out" in large
    strict = run_cli("data", "check", dataset, "--strict", "--json")
    assert strict.returncode == 1 and "image_too_large" in strict.stdout


def test_predict_and_evaluate_refuse_a_bomb_with_a_message(run_cli, dataset, tiny_model_path):
    bomb = bomb_png(dataset / "images" / "bomb.png", 30_000, 30_000)
    predicted = run_cli("predict", tiny_model_path, bomb)
    assert predicted.returncode == 1 and "decompression bomb" in predicted.stderr
    large = bomb_png(dataset / "images" / "large.png", 9_000, 9_000)
    predicted = run_cli("predict", tiny_model_path, large)
    assert predicted.returncode == 1 and "9000 × 9000 px" in predicted.stderr
    _add_entry(dataset, "bomb.png", split="test")
    evaluated = run_cli("evaluate", tiny_model_path, dataset, "--split", "test", "--no-meteor",
                        "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["images"] == 1  # the bomb left out, and said so
    assert "1 error(s)" in evaluated.stderr


def test_train_leaves_a_bomb_out_with_a_message(run_cli, dataset, tmp_path):
    bomb_png(dataset / "images" / "bomb.png", 30_000, 30_000)
    _add_entry(dataset, "bomb.png")
    result = run_cli("train", dataset, "--out", tmp_path / "model.mscap", "--epochs", "1",
                     "--backbone", "efficientnet_lite0", "--batch-size", "4", "--embed-size", "8",
                     "--hidden-size", "8", "--attention-size", "8", "--feature-variants", "1",
                     "--lr", "1e-3", "--min-word-count", "1", "--patience", "0", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "1 error(s)" in result.stderr


# -- point 14: images/ leading out of the folder ---------------------------------------------------
def test_images_linked_out_of_the_folder_are_refused_at_once(run_cli, tmp_path):
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "images").symlink_to("/")
    (folder / "annotations.json").write_text(json.dumps(
        {"images": [{"filename": "etc/passwd", "split": "train",
                     "sentences": [{"raw": "a file"}]}]}))
    result = run_cli("data", "check", folder, timeout=60)
    assert result.returncode == 1
    assert "outside the dataset folder" in result.stderr
    annotations = tmp_path / "elsewhere.json"
    annotations.write_text("{}")
    (folder / "images").unlink()
    (folder / "images").mkdir()
    (folder / "annotations.json").unlink()
    (folder / "annotations.json").symlink_to(annotations)
    result = run_cli("data", "check", folder, timeout=60)
    assert result.returncode == 1 and "outside the dataset folder" in result.stderr


def test_links_inside_the_folder_still_work(run_cli, tmp_path):
    folder = tmp_path / "linked"
    folder.mkdir()
    shutil.copytree(UCM_SAMPLE / "images", folder / "pictures")
    (folder / "images").symlink_to("pictures")
    shutil.copy(UCM_SAMPLE / "annotations.json", folder / "annotations.json")
    result = run_cli("data", "check", folder, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["problems"] == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_pipes_and_devices_in_a_dataset_never_block(run_cli, dataset):
    os.mkfifo(dataset / "images" / "pipe.jpg")
    (dataset / "images" / "zero.jpg").symlink_to("/dev/zero")
    _add_entry(dataset, "pipe.jpg")
    _add_entry(dataset, "zero.jpg")
    result = run_cli("data", "check", dataset, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "'pipe.jpg': the image file is missing" in result.stdout
    assert "'zero.jpg': the image file is missing" in result.stdout
    (dataset / "annotations.json").unlink()
    os.mkfifo(dataset / "annotations.json")
    result = run_cli("data", "check", dataset, timeout=60)
    assert result.returncode == 1 and "annotations.json" in result.stderr
