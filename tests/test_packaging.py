"""The plugin as plugins.qgis.org and QGIS see it: metadata, versions, the zip from `make
package`, a cheap import, and the console script."""

from __future__ import annotations

import ast
import configparser
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The zip's top level inside mapscribe/: what QGIS needs at run time and nothing else.
RUNTIME_TOP_LEVEL = {"metadata.txt", "__init__.py", "LICENSE", "README.md",
                     "model", "plugin", "resources"}
MUST_BE_IN_ZIP = {"metadata.txt", "__init__.py", "LICENSE", "README.md", "model/__init__.py",
                  "plugin/__init__.py", "plugin/plugin.py", "plugin/dock.py",
                  "plugin/processing/provider.py", "resources/icon.svg"}
# plugins.qgis.org refuses an upload without these (its metadata validator).
REQUIRED_BY_PLUGINS_QGIS_ORG = ("name", "qgisMinimumVersion", "description", "about",
                                "version", "author", "email", "repository")
ALSO_WANTED = ("tracker", "homepage", "tags", "category", "icon", "hasProcessingProvider",
               "changelog")


def _metadata() -> configparser.SectionProxy:
    # QGIS reads metadata.txt with configparser too; interpolation off so '%' stays literal.
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    parser.read(REPO / "metadata.txt", encoding="utf-8")
    assert parser.has_section("general"), "metadata.txt needs a [general] section"
    return parser["general"]


def test_metadata_has_every_field_the_plugin_repository_requires():
    meta = _metadata()
    missing = [key for key in REQUIRED_BY_PLUGINS_QGIS_ORG + ALSO_WANTED
               if not meta.get(key, "").strip()]
    assert missing == [], f"metadata.txt lacks or leaves empty: {missing}"
    assert meta["name"] == "MapScribe"
    assert meta["qgisMinimumVersion"] == "3.22"
    assert meta["category"] == "Raster"
    assert meta["hasProcessingProvider"] == "yes"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]), meta["version"]
    assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", meta["email"]), meta["email"]
    for key in ("repository", "tracker", "homepage"):
        assert meta[key].startswith("https://"), f"{key}={meta[key]} is not an https URL"
    assert meta["version"] in meta["changelog"], "the changelog does not mention this version"
    icon = REPO / meta["icon"]
    assert icon.is_file(), f"icon={meta['icon']} does not exist"
    assert "<svg" in icon.read_text(encoding="utf-8")


def test_versions_agree_in_metadata_pyproject_and_package():
    metadata_version = _metadata()["version"]
    pyproject_version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    # Read __init__.py rather than import it, so the check is about this checkout's file.
    module = ast.parse((REPO / "__init__.py").read_text())
    package_version = next(
        node.value.value for node in module.body
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets))
    assert metadata_version == pyproject_version == package_version, (
        f"metadata.txt {metadata_version}, pyproject.toml {pyproject_version}, "
        f"__init__.__version__ {package_version}")


def _make_package(source: Path, out: Path) -> Path:
    """Run `make package` in ``source``, building into ``out``; return the zip."""
    result = subprocess.run(
        ["make", "--no-print-directory", "package", f"DIST_DIR={out / 'dist'}",
         f"PACKAGE_ROOT={out / 'build'}"],
        cwd=source, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"make package failed:\n{result.stdout}\n{result.stderr}"
    zips = list((out / "dist").glob("mapscribe-*.zip"))
    assert [z.name for z in zips] == [f"mapscribe-{_metadata()['version']}.zip"]
    return zips[0]


def _zip_files(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None, f"{path} has a corrupt member"
        return {name for name in archive.namelist() if not name.endswith("/")}


def _assert_runtime_layout(names: set[str]) -> None:
    outside = sorted(name for name in names if not name.startswith("mapscribe/"))
    assert outside == [], f"files outside the single top folder mapscribe/: {outside}"
    relative = {name[len("mapscribe/"):] for name in names}
    top_level = {name.split("/")[0] for name in relative}
    assert top_level <= RUNTIME_TOP_LEVEL, f"not runtime files: {sorted(top_level - RUNTIME_TOP_LEVEL)}"
    assert MUST_BE_IN_ZIP <= relative, f"missing from the zip: {sorted(MUST_BE_IN_ZIP - relative)}"
    junk = sorted(name for name in relative
                  if "__pycache__" in name or name.endswith((".pyc", ".pyo")))
    assert junk == [], f"byte-code in the zip: {junk}"


def _git_visible_files(repo: Path) -> list[str]:
    """What a commit of the working tree would hold: tracked and new, never ignored, files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=repo, capture_output=True, check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (repo / name).is_file()]


def _copy_tree(files: list[str], source: Path, target: Path) -> None:
    """Copy what `make package` reads: the Makefile, .gitignore and the runtime files (tests and
    their data are left out only to keep this fast; make package never looks at them)."""
    for name in files:
        if name not in ("Makefile", ".gitignore") and name.split("/")[0] not in RUNTIME_TOP_LEVEL:
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)


def test_package_from_the_working_tree_holds_runtime_files_only(tmp_path):
    # The working tree has a .venv, caches and byte-code next to the sources: none may leak in.
    names = _zip_files(_make_package(REPO, tmp_path))
    _assert_runtime_layout(names)
    runtime_sources = {f"mapscribe/{name}" for name in _git_visible_files(REPO)
                       if name.split("/")[0] in RUNTIME_TOP_LEVEL}
    assert names == runtime_sources, (
        f"lost: {sorted(runtime_sources - names)}; extra: {sorted(names - runtime_sources)}")


def test_package_works_in_a_fresh_clone(tmp_path):
    work = tmp_path / "work"
    _copy_tree(_git_visible_files(REPO), REPO, work)
    git = ["git", "-c", "user.name=MapScribe test", "-c", "user.email=test@example.org",
           "-c", "init.defaultBranch=main"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + command, cwd=work, check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", str(work), str(tmp_path / "clone")], check=True,
                   capture_output=True)
    names = _zip_files(_make_package(tmp_path / "clone", tmp_path / "out"))
    _assert_runtime_layout(names)
    assert names == {f"mapscribe/{name}" for name in _git_visible_files(REPO)
                     if name.split("/")[0] in RUNTIME_TOP_LEVEL}


def test_package_from_a_source_archive_without_git_skips_byte_code(tmp_path):
    source = tmp_path / "source"
    _copy_tree(_git_visible_files(REPO), REPO, source)
    (source / "model" / "__pycache__").mkdir(exist_ok=True)
    (source / "model" / "__pycache__" / "data.cpython-311.pyc").write_bytes(b"stale")
    (source / "plugin" / "old.pyc").write_bytes(b"stale")
    names = _zip_files(_make_package(source, tmp_path / "out"))
    _assert_runtime_layout(names)


def test_package_names_a_missing_runtime_file(tmp_path):
    source = tmp_path / "source"
    _copy_tree(_git_visible_files(REPO), REPO, source)
    (source / "LICENSE").unlink()
    result = subprocess.run(["make", "package", f"DIST_DIR={tmp_path / 'dist'}",
                             f"PACKAGE_ROOT={tmp_path / 'build'}"],
                            cwd=source, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "make package: LICENSE is missing" in result.stderr


_IMPORT_PROBE = """
import sys
sys.path.insert(0, sys.argv[1]) if len(sys.argv) > 1 else None
import mapscribe, mapscribe.plugin.plugin
heavy = sorted(m for m in ("torch", "torchvision", "numpy") if m in sys.modules)
print(mapscribe.__file__)
print(",".join(heavy))
"""


@pytest.mark.parametrize("where", ["installed", "zip"])
def test_importing_the_plugin_loads_no_torch_and_no_numpy(where, tmp_path):
    """QGIS imports every enabled plugin at start-up: torch alone would add seconds."""
    args = []
    expected_root = REPO
    if where == "zip":
        # The zip must also be complete: extracted alone, its package imports.
        with zipfile.ZipFile(_make_package(REPO, tmp_path)) as archive:
            archive.extractall(tmp_path / "plugins")
        args, expected_root = [str(tmp_path / "plugins")], tmp_path / "plugins" / "mapscribe"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    module_file, heavy = result.stdout.splitlines()[-2:]
    assert Path(module_file).resolve().parent == expected_root.resolve()
    assert heavy == "", f"importing the plugin imported {heavy}"


def test_console_script_help():
    # pip installs the console script beside the interpreter running the tests.
    script = Path(sys.executable).parent / "mapscribe"
    assert script.exists(), f"{script} is missing: run make setup (pip install -e .)"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: mapscribe")
    assert "data" in result.stdout  # the `data check` command group
