"""Run inside the real QGIS desktop by tests/e2e/test_deps_install.py (``qgis --code``), in a
QGIS whose Python lacks torch.

Records what Python QGIS runs and what the plugin finds missing, opens the dependency panel,
chooses the CUDA build, presses Install, waits for the installation (a screenshot while it
runs), then captions an image with the engine imported from the managed folder.
qgis_steps.py runs the steps, writes what they saw to the JSON result and exits QGIS.
"""

import os
import sys

# QGIS runs this file with exec(), without __file__: the test names this folder.
sys.path.insert(0, os.environ["MAPSCRIBE_E2E_DIR"])

import importlib.util

import qgis.utils
from qgis.utils import iface

from qgis_steps import SHOTS, Wait, checks, finish, repeat_while, run_steps

MODEL = os.environ["MAPSCRIBE_E2E_MODEL"]
IMAGE = os.environ["MAPSCRIBE_E2E_IMAGE"]
INSTALL_FAILED = 4  # QGIS's exit code when the installer reported an error
state = {}


def before_install():
    checks["executable"] = sys.executable
    checks["prefix"] = sys.prefix
    checks["torch_spec_at_start"] = importlib.util.find_spec("torch") is not None
    checks["plugin_active"] = "mapscribe" in qgis.utils.active_plugins
    import mapscribe
    checks["plugin_file"] = mapscribe.__file__
    checks["torch_imported_by_plugin_load"] = "torch" in sys.modules
    from mapscribe.plugin.deps.managed import managed_folder, missing_dependencies
    from mapscribe.plugin.deps.panel import DependencyPanel
    checks["missing_before"] = missing_dependencies("training")
    checks["managed_folder"] = str(managed_folder())
    panel = state["panel"] = DependencyPanel(purpose="training")
    panel.setWindowTitle("MapScribe dependencies")
    panel.resize(900, 700)
    panel.show()
    panel.set_variant("cuda")
    checks["missing_text"] = panel.missing_label.text()
    checks["install_enabled"] = panel.install_button.isEnabled()
    panel.install_button.click()  # the real button
    checks["installing_after_click"] = panel.is_installing()

    def screenshot_once_the_log_runs():
        if panel.log_view.blockCount() > 20 and "shot" not in state:
            state["shot"] = True
            panel.grab().save(str(SHOTS / "deps-installing.png"))

    repeat_while(panel.is_installing, screenshot_once_the_log_runs, every_ms=500)


def installed():
    panel = state["panel"]
    checks["status"] = panel.status_label.text()
    error = panel.last_error
    checks["error"] = None if error is None else {"kind": error.kind, "message": error.message,
                                                  "log": error.log[-6000:]}
    checks["log_tail"] = panel.log_view.toPlainText()[-6000:]
    if panel.last_result is not None:
        checks["versions"] = panel.last_result.versions
        checks["installed"] = panel.last_result.installed
        checks["kept"] = panel.last_result.kept_from_system
        checks["install_seconds"] = panel.last_result.seconds
    panel.grab().save(str(SHOTS / "deps-installed.png"))
    if error is not None:
        finish(INSTALL_FAILED)  # checks["error"] says why; no caption to try


def caption():
    from mapscribe.plugin.deps.managed import missing_dependencies
    checks["missing_after"] = missing_dependencies("training")
    import numpy
    import torch

    from mapscribe.model.api import ImageCaptioner
    checks["torch_file"] = torch.__file__
    checks["torch_version"] = torch.__version__
    checks["numpy_file"] = numpy.__file__
    checks["numpy_version"] = numpy.__version__
    captioner = ImageCaptioner.from_model(MODEL, device="cpu")
    checks["caption"] = captioner.predict(IMAGE)
    checks["triton_loaded"] = sys.modules.get("triton") is not None
    iface.mainWindow().grab().save(str(SHOTS / "deps-window-after.png"))


# The installation has no time-out of its own: the watchdog (the test's time-out less a
# margin) bounds it, as downloading 5 GB takes what it takes.
run_steps([before_install,
           Wait(lambda: not state["panel"].is_installing(), None, "the installation"),
           installed, caption])
