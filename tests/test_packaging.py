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
RUNTIME_TOP_LEVEL = {"metadata.txt", "__init__.py", "__main__.py", "LICENSE", "README.md",
                     "model", "plugin", "resources"}
# In the repository for `make demo`, not in the zip (the Makefile's PACKAGE_EXCLUDE).
NOT_IN_ZIP = ("resources/sample/",)
MUST_BE_IN_ZIP = {"metadata.txt", "__init__.py", "LICENSE", "README.md", "model/__init__.py",
                  "plugin/__init__.py", "plugin/plugin.py", "plugin/dock/__init__.py",
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


def test_the_engine_reports_the_version_of_metadata_txt():
    from mapscribe.model.version import __version__

    assert __version__ == _metadata()["version"]


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
    assert top_level <= RUNTIME_TOP_LEVEL, (
        f"not runtime files: {sorted(top_level - RUNTIME_TOP_LEVEL)}")
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
                       if name.split("/")[0] in RUNTIME_TOP_LEVEL
                       and not name.startswith(NOT_IN_ZIP)}
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
                     if name.split("/")[0] in RUNTIME_TOP_LEVEL
                     and not name.startswith(NOT_IN_ZIP)}


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


# ------------------------------------------------------------------------------------------
# Every package is packaged: pyproject.toml (pip install) and the zip (QGIS)
# ------------------------------------------------------------------------------------------
# Never part of the plugin: the tests (and their helpers) and what tools build.
NOT_PACKAGED = ("tests", "build", "dist", ".venv")


def _package_folders() -> list[str]:
    """Every folder of this checkout (tracked or new, never ignored) with an __init__.py, as
    a path relative to the root ("" for the root itself)."""
    folders = set()
    for name in _git_visible_files(REPO):
        path = Path(name)
        if path.name == "__init__.py" and path.parts[0] not in NOT_PACKAGED:
            folders.add(path.parent.as_posix() if len(path.parts) > 1 else "")
    return sorted(folders)


def _package_name(folder: str) -> str:
    return ".".join(["mapscribe", *Path(folder).parts])


def test_every_folder_with_an_init_is_a_package_in_pyproject():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"mapscribe": "."}
    listed = set(setuptools["packages"])
    found = {_package_name(folder) for folder in _package_folders()}
    assert {"mapscribe", "mapscribe.model", "mapscribe.plugin"} <= found
    assert sorted(found - listed) == [], (
        "folders with an __init__.py that pyproject.toml's [tool.setuptools] packages does not "
        f"list (pip install would leave them out): {sorted(found - listed)}")
    assert sorted(listed - found) == [], (
        f"pyproject.toml lists packages that have no folder with an __init__.py: "
        f"{sorted(listed - found)}")


@pytest.fixture(scope="module")
def working_tree_zip_path(tmp_path_factory) -> Path:
    return _make_package(REPO, tmp_path_factory.mktemp("package"))


@pytest.fixture(scope="module")
def working_tree_zip(working_tree_zip_path) -> set[str]:
    return _zip_files(working_tree_zip_path)


def test_every_package_and_its_modules_land_in_the_zip(working_tree_zip):
    expected = {f"mapscribe/{name}" for name in _git_visible_files(REPO)
                if name.endswith(".py") and Path(name).parent.as_posix() in
                {folder or "." for folder in _package_folders()}}
    assert "mapscribe/model/__init__.py" in expected
    missing = sorted(expected - working_tree_zip)
    assert missing == [], f"modules of packages missing from the zip (make package): {missing}"
    folders_in_zip = {name.rpartition("/")[0] for name in working_tree_zip
                      if name.endswith("/__init__.py")}
    assert folders_in_zip == {f"mapscribe/{folder}".rstrip("/")
                              for folder in _package_folders()}


# ------------------------------------------------------------------------------------------
# plugins.qgis.org: its upload checks, run offline on the zip, and the URLs from one place
# ------------------------------------------------------------------------------------------
UPLOAD_MAX_BYTES = 25_000_000  # plugins.qgis.org's PLUGIN_MAX_UPLOAD_SIZE
UPLOAD_REQUIRED = ("name", "description", "version", "qgisMinimumVersion", "author", "email",
                   "about", "tracker", "repository")
PLACEHOLDER_URLS = {"tracker": "http://bugs", "repository": "http://repo",
                    "homepage": "http://homepage"}


def upload_problems(path: Path) -> list[str]:
    """What plugins.qgis.org's upload validator (qgis/QGIS-Django, plugins/validator.py) would
    refuse in the zip at ``path``, checked offline: the URLs' syntax is checked, not whether
    they answer."""
    from urllib.parse import urlparse

    problems = []
    if path.stat().st_size > UPLOAD_MAX_BYTES:
        problems.append(f"{path.stat().st_size} bytes: over the {UPLOAD_MAX_BYTES} limit")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        for name in names:
            parts = name.split("/")
            if ".." in name or name.startswith("/"):
                problems.append(f"path information in {name}")
            if ".pyc" in name:
                problems.append(f"byte-code {name}")
            for forbidden in ("__MACOSX", ".git", "__pycache__"):
                if forbidden in parts:
                    problems.append(f"forbidden folder {forbidden} in {name}")
        if archive.testzip() is not None:
            problems.append("a corrupt member")
        if len({name.split("/")[0] for name in names}) != 1:
            problems.append("more than one top folder")
        package = names[0].split("/")[0]
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-_]+", package):
            problems.append(f"top folder name {package!r}")
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{package}/{required}" not in names:
                problems.append(f"no {required}")
        # As the validator reads it: ConfigParser with its default interpolation.
        parser = configparser.ConfigParser()
        parser.optionxform = str
        try:
            parser.read_string(archive.read(f"{package}/metadata.txt").decode("utf8"))
            metadata = dict(parser.items("general"))
        except (configparser.Error, KeyError, UnicodeDecodeError) as error:
            return problems + [f"metadata.txt cannot be read: {error}"]
        problems += [f"metadata lacks {key}" for key in UPLOAD_REQUIRED if key not in metadata]
        icon = metadata.get("icon", "").removeprefix("./")
        if not icon or f"{package}/{icon}" not in names:
            problems.append(f"icon {icon!r} is not in the zip")
    for key, placeholder in PLACEHOLDER_URLS.items():
        url = metadata.get(key, "")
        parsed = urlparse(url)
        if url == placeholder or not (parsed.scheme and parsed.netloc):
            problems.append(f"{key}={url!r} is not a URL")
    if "/" in metadata.get("author", ""):
        problems.append("author has a slash")
    return problems


def test_the_zip_passes_the_plugin_repositorys_upload_checks(working_tree_zip_path):
    assert upload_problems(working_tree_zip_path) == []


def test_the_upload_checks_can_fail(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("mapscribe/__init__.py", "")
        archive.writestr("mapscribe/__pycache__/x.cpython-311.pyc", b"")
        archive.writestr("mapscribe/metadata.txt", "[general]\nname=x\nabout=50% done\n")
    problems = upload_problems(bad)
    assert "byte-code mapscribe/__pycache__/x.cpython-311.pyc" in problems
    assert "no LICENSE" in problems
    assert any(p.startswith("metadata.txt cannot be read") for p in problems)


def test_make_package_drops_the_sample_raster_and_says_the_zip_size(tmp_path):
    done = subprocess.run(["make", "--no-print-directory", "package",
                           f"DIST_DIR={tmp_path / 'dist'}", f"PACKAGE_ROOT={tmp_path / 'b'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (zip_path,) = (tmp_path / "dist").glob("*.zip")
    said = re.search(r": (\d+\.\d) MB \((\d+) bytes;", done.stdout)
    assert said and int(said.group(2)) == zip_path.stat().st_size, done.stdout
    assert float(said.group(1)) == round(zip_path.stat().st_size / 1e6, 1)
    assert not [n for n in _zip_files(zip_path) if n.startswith("mapscribe/resources/sample/")]
    assert (REPO / "resources" / "sample").is_dir()  # still there for make demo


def test_metadata_urls_come_from_the_makefile(tmp_path):
    """REPOSITORY_URL in the Makefile is the one place: metadata.txt agrees with its default,
    and make package writes whatever it is set to into the zip."""
    default = re.search(r"^REPOSITORY_URL \?= (\S+)$", (REPO / "Makefile").read_text(),
                        re.MULTILINE).group(1)
    meta = _metadata()
    assert (meta["homepage"], meta["repository"], meta["tracker"]) == (
        default, default, f"{default}/issues")
    done = subprocess.run(["make", "--no-print-directory", "package",
                           "REPOSITORY_URL=https://example.org/fork",
                           f"DIST_DIR={tmp_path / 'dist'}", f"PACKAGE_ROOT={tmp_path / 'b'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (zip_path,) = (tmp_path / "dist").glob("*.zip")
    with zipfile.ZipFile(zip_path) as archive:
        packaged = archive.read("mapscribe/metadata.txt").decode()
    assert "\nhomepage=https://example.org/fork\n" in packaged
    assert "\ntracker=https://example.org/fork/issues\n" in packaged


def test_the_changelog_describes_releases():
    changelog = _metadata()["changelog"].strip().splitlines()
    assert changelog[0].startswith(_metadata()["version"])
    assert len([line for line in changelog if line.strip().startswith("*")]) >= 3


def test_the_code_parses_as_python_3_9():
    """qgisMinimumVersion=3.22: QGIS 3.22 on Windows runs Python 3.9, so no newer syntax."""
    sources = [REPO / "__init__.py", *sorted((REPO / "model").rglob("*.py")),
               *sorted((REPO / "plugin").rglob("*.py"))]
    for path in sources:
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 9))
