"""`mapscribe data check`, run as people run it: the installed console script."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from locations import TEST_DATA


def test_help_lists_the_commands(cli):
    result = cli("--help")
    assert result.returncode == 0 and "data" in result.stdout
    result = cli("data", "check", "--help")
    assert result.returncode == 0 and "--min-word-count" in result.stdout


def test_data_check_summarises_the_real_rsicd_subset(cli, rsicd_folder):
    result = cli("data", "check", str(rsicd_folder), "--min-word-count", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split() == ["train", "909", "4545"] for line in lines)
    assert any(line.split() == ["test", "1094", "5469"] for line in lines)
    assert "words seen at least 5 times in train" in result.stdout
    assert "Caption length in words: min 1" in result.stdout
    assert "images[434] 'bridge_59.jpg': caption 2 has no words" in result.stdout


def test_data_check_json_and_problems(cli, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(TEST_DATA / "ucm-sample", folder)
    (folder / "images" / "105.jpg").unlink()
    result = cli("data", "check", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["usable"] and report["splits"]["train"] == [5, 25]
    assert report["problem_counts"] == {"missing_image": 1}
    strict = cli("data", "check", str(folder), "--strict")
    assert strict.returncode == 1
    assert "missing_image" in strict.stderr and "105.jpg" in strict.stderr


def test_data_check_fails_on_unusable_folders(cli, tmp_path):
    result = cli("data", "check", str(tmp_path))
    assert result.returncode == 1
    assert "missing images/ and annotations.json" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations.json").write_text("[1, 2")
    result = cli("data", "check", str(tmp_path))
    assert result.returncode == 1 and "malformed JSON at line 1" in result.stderr
    assert cli("data", "check").returncode == 2  # usage error


def test_data_merge_combines_folders_keeping_splits(cli, tmp_path):
    second = tmp_path / "second"
    shutil.copytree(TEST_DATA / "ucm-sample", second)
    out = tmp_path / "merged"
    # A relative path with ".." in it, as the Makefile gives ../shared/data/...
    relative = os.path.relpath(TEST_DATA / "ucm-sample", Path.cwd())
    result = cli("data", "merge", str(out), relative, str(second))
    assert result.returncode == 0, result.stderr
    assert "16 images (train 12, val 2, test 2)" in result.stdout
    document = json.loads((out / "annotations.json").read_text())
    names = [item["filename"] for item in document["images"]]
    assert "ucm-sample/105.jpg" in names and "second/105.jpg" in names
    assert (out / "images" / "second" / "105.jpg").is_file()
    check = cli("data", "check", str(out), "--json")
    assert json.loads(check.stdout)["problems"] == []
    again = cli("data", "merge", str(out), str(second))
    assert again.returncode == 1 and "already exists and is not empty" in again.stderr
