"""The host side of the end-to-end tests that start the real QGIS desktop under Xvfb.

Every desktop test does the same things around its own startup script (run inside QGIS with
``--code``; those scripts share qgis_steps.py): it requires qgis and xvfb-run (a failure, never
a skip: CI must not pass without the desktop tests; `make setup` installs both), installs the
plugin from the `make package` zip into a throw-away profile, starts QGIS in an environment
that nothing of pytest's leaks into, kills QGIS and Xvfb together when they outlive the
time-out, keeps QGIS's output and the script's JSON result as artifacts, and reads that result.
Every failure message carries QGIS's output and the result: a desktop run cannot be stepped
through in a debugger, so the message is all a reader gets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
PRELOAD = E2E_DIR / "preload.py"
SCREEN = "-screen 0 1600x1000x24"
# pytest-qgis points QGIS at its own settings folder and forces offscreen Qt (under which the
# desktop crashes); PYTHONPATH/QGIS_PLUGINPATH could load another copy of the plugin;
# PYTHONHOME/VIRTUAL_ENV would choose QGIS's Python for it; DISPLAY is xvfb-run's to set.
LEAKING_VARIABLES = ("QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH",
                     "QGIS_PLUGINPATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DISPLAY")
# How much of each the failure messages quote: the end is where QGIS and the script stopped.
OUTPUT_TAIL_CHARS = 6000
RESULT_TAIL_CHARS = 10000
SCREENSHOT_MIN_BYTES = 10_000  # a blank or black window compresses far below this


def require(program: str) -> str:
    """The program's path; a failure (not a skip) when it is not installed."""
    path = shutil.which(program)
    assert path, f"{program} is not installed: run `make setup` (it installs qgis and xvfb)"
    return path


def install_plugin(tmp_path: Path) -> Path:
    """Build the zip with `make package` and unpack it where QGIS's "Install from ZIP" puts it,
    in a fresh profile where the plugin is enabled; return the profiles path for QGIS."""
    built = subprocess.run(
        ["make", "--no-print-directory", "package", f"DIST_DIR={tmp_path / 'dist'}",
         f"PACKAGE_ROOT={tmp_path / 'build'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, f"make package failed:\n{built.stdout}\n{built.stderr}"
    (package,) = (tmp_path / "dist").glob("mapscribe-*.zip")
    profiles = tmp_path / "profiles-root"
    default = profiles / "profiles" / "default"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(default / "python" / "plugins")
    (default / "QGIS").mkdir(parents=True)
    (default / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nmapscribe=true\n")
    return profiles


def clean_environment(home: Path, *, venv_python: bool = True) -> dict[str, str]:
    """This process's environment without what would change the QGIS started from it, with
    its own HOME (QGIS writes settings there).

    venv_python: QGIS's Python is this venv, whose bin then comes first on PATH (not resolved:
    it must be the venv's bin, not /usr/bin), so that it sees torch and `mapscribe`. False:
    the venv's bin is taken off PATH, so QGIS runs Debian's own Python, which lacks torch.
    """
    env = {name: value for name, value in os.environ.items() if name not in LEAKING_VARIABLES}
    venv_bins = {str(Path(sys.executable).parent), str(Path(sys.prefix) / "bin")}
    path = [entry for entry in env.get("PATH", "").split(os.pathsep)
            if entry and entry not in venv_bins]
    if venv_python:
        path.insert(0, str(Path(sys.executable).parent))
    env["PATH"] = os.pathsep.join(path)
    env["HOME"] = str(home)
    return env


def qgis_environment(tmp_path: Path, result_path: Path, shots: Path, watchdog_ms: int, *,
                     venv_python: bool = True, **variables: str) -> dict[str, str]:
    """The environment of a desktop run: clean (see clean_environment), preload.py run before
    any plugin loads, and what qgis_steps.py reads: where the result and the screenshots go,
    when its watchdog ends QGIS, and this folder (the startup scripts import from it).
    ``variables`` are added as they are (a startup script's own inputs)."""
    env = clean_environment(tmp_path / "home", venv_python=venv_python)
    env.update({"PYQGIS_STARTUP": str(PRELOAD), "MAPSCRIBE_E2E_DIR": str(E2E_DIR),
                "MAPSCRIBE_E2E_RESULT": str(result_path), "MAPSCRIBE_E2E_SHOTS": str(shots),
                "MAPSCRIBE_E2E_WATCHDOG_MS": str(watchdog_ms)})
    env.update({name: str(value) for name, value in variables.items()})
    return env


def qgis_command(profiles: Path, startup_script: Path, screen: str = SCREEN) -> list[str]:
    """The QGIS desktop on a fresh Xvfb display, running startup_script once its window is up."""
    return ["xvfb-run", "-a", "-s", screen, "qgis", "--nologo", "--noversioncheck",
            "--profiles-path", str(profiles), "--code", str(startup_script)]


@dataclass(frozen=True)
class QgisRun:
    code: int | None  # None: killed at the time-out
    output: str  # stdout and stderr together, in order
    seconds: float

    def describe(self) -> str:
        how = "killed at the time-out" if self.code is None else "exited"
        return f"QGIS exit code {self.code} after {self.seconds:.0f} s ({how})"


def run_qgis(command: list[str], env: dict[str, str], timeout_s: float) -> QgisRun:
    """Run QGIS in its own process group, killing the whole group (Xvfb too) on time-out."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        code = None
    return QgisRun(code, output, time.monotonic() - started)


@dataclass(frozen=True)
class DesktopRun:
    """A desktop run that finished cleanly: its startup script's result and, for every
    assertion's message, ``context`` (QGIS's output and the result)."""
    qgis: QgisRun
    result: dict
    context: str
    artifacts_dir: Path

    @property
    def checks(self) -> dict:
        return self.result["checks"]

    def python_problems(self, *, mapscribe_warnings: bool = False) -> list[dict]:
        """Python errors and warnings in QGIS's message log since before the plugins loaded
        (preload.py); with mapscribe_warnings, also every warning or worse naming mapscribe."""
        return [m for m in self.result["messages"]
                if m["tag"] in ("Python error", "Python warning")
                or (mapscribe_warnings and "mapscribe" in m["text"].lower() and m["level"] >= 1)]

    def assert_screenshots(self, *names: str) -> None:
        __tracebackhide__ = True
        for name in names:
            path = self.artifacts_dir / name
            assert path.is_file(), f"no screenshot {name}" + self.context
            assert path.stat().st_size > SCREENSHOT_MIN_BYTES, (
                f"{name} is nearly empty ({path.stat().st_size} bytes)" + self.context)


def run_desktop(startup_script: Path, *, tmp_path: Path, artifacts_dir: Path, name: str,
                profiles: Path, timeout_s: int, watchdog_margin_s: int = 20,
                venv_python: bool = True, variables: dict | None = None,
                screen: tuple[int, int] = (1600, 1000)) -> DesktopRun:
    """Start QGIS on startup_script and require that it finished cleanly: a result written,
    no Python error dialog, no error recorded, every step done and exit code 0.

    The script's watchdog ends QGIS watchdog_margin_s before timeout_s, so that a hang still
    leaves a result to read; timeout_s kills QGIS and Xvfb when even that fails. QGIS's output
    and the result are kept as ``<name>-qgis-output.txt`` and ``<name>-result.json`` in
    artifacts_dir, whatever happened.
    """
    __tracebackhide__ = True  # a failure shows in the test, not in this helper
    result_path = tmp_path / "result.json"
    env = qgis_environment(tmp_path, result_path, artifacts_dir,
                           (timeout_s - watchdog_margin_s) * 1000, venv_python=venv_python,
                           MAPSCRIBE_E2E_WINDOW=f"{screen[0]}x{screen[1]}",
                           **(variables or {}))
    run = run_qgis(qgis_command(profiles, startup_script,
                                f"-screen 0 {screen[0]}x{screen[1]}x24"), env, timeout_s)
    (artifacts_dir / f"{name}-qgis-output.txt").write_text(run.output)
    recorded = result_path.read_text() if result_path.exists() else None
    (artifacts_dir / f"{name}-result.json").write_text(recorded or "(no result file)")
    context = (f"\n{run.describe()}"
               f"\n--- QGIS output (last {OUTPUT_TAIL_CHARS} characters) ---"
               f"\n{run.output[-OUTPUT_TAIL_CHARS:]}"
               f"\n--- {result_path.name} written by {startup_script.name} "
               f"(last {RESULT_TAIL_CHARS} characters) ---"
               f"\n{(recorded or '(no result file)')[-RESULT_TAIL_CHARS:]}")

    script = startup_script.name
    assert recorded is not None, f"{script} wrote no result" + context
    try:
        result = json.loads(recorded)
    except ValueError as error:
        raise AssertionError(f"{script} wrote a result that is not JSON ({error})"
                             + context) from None
    assert result["stack_dialogs"] == [], "QGIS reported Python errors (dialogs)" + context
    assert result["errors"] == [], f"{script} failed:\n" + "\n".join(result["errors"]) + context
    assert result["finished"] and run.code == 0, "QGIS did not finish cleanly" + context
    return DesktopRun(run, result, context, artifacts_dir)
