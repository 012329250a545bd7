"""`data merge` (point 2 of issue 9): every input is read and checked before OUT is touched;
OUT may not be, lie inside or hold an input; --overwrite replaces only a dataset folder."""

from __future__ import annotations

import json
import shutil

from locations import UCM_SAMPLE


def _tree(folder):
    return sorted((str(p.relative_to(folder)), p.read_bytes() if p.is_file() else None)
                  for p in folder.rglob("*"))


def _dataset(tmp_path, name):
    target = tmp_path / name
    shutil.copytree(UCM_SAMPLE, target)
    return target


def test_out_equal_to_an_input_is_refused_and_the_dataset_kept(run_cli, tmp_path):
    first = _dataset(tmp_path, "first")
    before = _tree(first)
    result = run_cli("data", "merge", first, first, "--overwrite")
    assert result.returncode == 1 and "would change or destroy that dataset" in result.stderr
    assert _tree(first) == before


def test_out_inside_an_input_or_holding_one_is_refused(run_cli, tmp_path):
    first = _dataset(tmp_path, "first")
    before = _tree(first)
    inside = run_cli("data", "merge", first / "merged", first, "--overwrite")
    assert inside.returncode == 1 and "lies inside it" in inside.stderr
    assert _tree(first) == before
    holder = tmp_path / "holder"
    holder.mkdir()
    nested = _dataset(holder, "nested")
    (holder / "annotations.json").write_text("{}")
    result = run_cli("data", "merge", holder, nested, "--overwrite")
    assert result.returncode == 1 and "lies inside" in result.stderr
    assert (nested / "annotations.json").is_file() and len(list((nested / "images").iterdir()))


def test_a_malformed_input_leaves_an_earlier_merge_as_it_was(run_cli, tmp_path):
    first, second = _dataset(tmp_path, "first"), _dataset(tmp_path, "second")
    out = tmp_path / "merged"
    assert run_cli("data", "merge", out, first, second).returncode == 0
    good = (out / "annotations.json").read_bytes()
    (second / "annotations.json").write_text('{"images": [1, 2')  # cut short
    result = run_cli("data", "merge", out, first, second, "--overwrite")
    assert result.returncode == 1 and "malformed JSON" in result.stderr
    assert (out / "annotations.json").read_bytes() == good
    assert run_cli("data", "check", out).returncode == 0
    # Nothing left behind beside OUT.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merged")]


def test_overwrite_replaces_an_earlier_merge_but_never_another_folder(run_cli, tmp_path):
    first = _dataset(tmp_path, "first")
    out = tmp_path / "merged"
    assert run_cli("data", "merge", out, first).returncode == 0
    again = run_cli("data", "merge", out, first, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 8
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    result = run_cli("data", "merge", home, first, "--overwrite")
    assert result.returncode == 1 and "holds more than a dataset folder" in result.stderr
    assert (home / "thesis.tex").read_text() == "years of work"
