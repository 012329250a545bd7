"""Installing MapScribe's runtime packages into a folder the plugin manages, with pip run by a
real Python interpreter (:mod:`.interpreter`).

Plain Python, no Qt and no QGIS: :mod:`.panel` runs :func:`install_runtime_packages` in a QgsTask
and shows its output; tests run it from any interpreter.

Why it works the way it does:

* **QGIS's numpy stays.** ``pip install --target`` ignores what is installed and would bring
  its own numpy and Pillow, which would shadow the ones GDAL, rasterio and QGIS are built
  against. So pip first *resolves* against the environment QGIS really has (``--dry-run
  --report``, with numpy and Pillow pinned to the running versions as constraints), and only
  what that environment lacks is then installed into the folder, each file exactly as resolved
  (``--no-deps``, direct URLs with their hashes). Packaging tools (setuptools, pip, wheel) are
  never put into the folder either: torch does not need them at run time and the folder goes
  first on ``sys.path``, where they would shadow QGIS's own.
* **The machine's pip configuration is used**, not replaced (see :mod:`.pip_commands`).
* **What was installed is recorded** (``mapscribe-install.json`` in the folder), and every
  package is imported by the interpreter, the way QGIS will, before the installation counts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .download import MB, DownloadMeter
from .interpreter import (
    check_interpreter,
    child_environment,
    find_python_interpreter,
    no_console_window,
    pip_version,
)
from .packages import (
    CPU,
    INSTALL_RECORD,
    InstallError,
    InstallParams,
    InstallResult,
    system_versions,
)
from .pip_commands import (
    explain_pip_failure,
    has_distribution,
    install_command,
    read_report,
    requirement_lines,
    resolve_command,
    split_resolved,
    variant_index,
    verify_command,
)


def run_streaming(command: List[str], on_output: Callable[[str], None],
                  cancelled: Callable[[], bool], env: Optional[Dict[str, str]] = None,
                  timeout_s: Optional[float] = None,
                  on_tick: Optional[Callable[[], None]] = None) -> Tuple[int, str]:
    """Run ``command``, passing each output line to ``on_output`` as it comes (and calling
    ``on_tick`` every 0.2 s while it runs); stop it when ``cancelled()`` (InstallError
    'cancelled'). Returns (exit code, all output)."""
    on_output("$ " + " ".join(_quote(part) for part in command))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env or child_environment(),
                               text=True, encoding="utf-8", errors="replace", bufsize=1,
                               **no_console_window())
    lines: List[str] = []

    def read() -> None:
        for line in process.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            on_output(line)

    # A thread reads, so that the cancel check runs even while pip prints nothing for minutes
    # (unpacking a 2 GB wheel).
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started = time.monotonic()
    while process.poll() is None:
        if cancelled() or (timeout_s and time.monotonic() - started > timeout_s):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            reader.join(5)
            process.stdout.close()
            what = "cancelled" if cancelled() else f"stopped after {timeout_s:g} s"
            raise InstallError("cancelled", f"The installation was {what}; the folder may hold "
                               "part of the packages: install again to complete it.",
                               "\n".join(lines))
        if on_tick is not None:
            on_tick()
        time.sleep(0.2)
    reader.join(10)
    process.stdout.close()
    return process.returncode, "\n".join(lines)


def _first_on_path(folder: Path) -> str:
    """PYTHONPATH with ``folder`` first, as ensure_managed_path() puts it in QGIS."""
    rest = os.environ.get("PYTHONPATH")
    return str(folder) + (os.pathsep + rest if rest else "")


def _quote(part: str) -> str:
    return part if re.fullmatch(r"[\w@%+=:,./\-]+", part) else json.dumps(part)


def install_runtime_packages(params: InstallParams,
                             on_output: Callable[[str], None] = lambda line: None,
                             cancelled: Callable[[], bool] = lambda: False,
                             on_progress: Optional[Callable[[int, int, bool], None]] = None
                             ) -> InstallResult:
    """Find the interpreter, resolve, install into ``params.target`` and check the imports.
    ``on_progress(done_bytes, total_bytes, total_exact)`` follows the download. Raises
    :class:`InstallError` with a message for people and pip's log."""
    started = time.monotonic()
    if params.interpreter:
        interpreter = check_interpreter(params.interpreter, prefix=sys.prefix)
    else:
        interpreter = find_python_interpreter()
    python = interpreter.path
    on_output(f"Python {'.'.join(map(str, interpreter.version))}: {python}")
    pip = pip_version(python)
    on_output(f"pip {pip[0]}.{pip[1]}")
    downloaded = 0
    system = params.system_versions if params.system_versions is not None else system_versions()
    params.system_versions = system
    target = Path(params.target)
    with tempfile.TemporaryDirectory(prefix="mapscribe-pip-") as scratch:
        constraints = Path(scratch, "keep-system.txt")
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in system.items()),
                               encoding="utf-8")
        report = str(Path(scratch, "report.json"))
        on_output("Resolving what QGIS's Python lacks …")
        code, output = run_streaming(resolve_command(python, params, report, str(constraints)),
                                     on_output, cancelled)
        if code != 0 or not os.path.isfile(report):
            raise explain_pip_failure(output, params, python)
        install, keep, skip = split_resolved(read_report(report), system, has_distribution)
        check_pytorch_build(install, params)
        for item in keep:
            on_output(f"Keeping QGIS's own {item['name']} (not installed into the folder)")
        for item in skip:
            on_output(f"Leaving out {item['name']} {item['version']}: only torch.compile uses "
                      "it, and it crashes QGIS")
        if install:
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise InstallError("disk", f"Cannot create the folder {target}: {error}") \
                    from None
            lines, hashed = requirement_lines(install)
            requirements = Path(scratch, "requirements.txt")
            requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
            downloads = Path(scratch, "tmp")
            downloads.mkdir()
            meter = DownloadMeter([item["url"] for item in install], downloads)
            on_output(f"Installing {len(install)} packages into {target}: "
                      f"{'at least ' if not meter.sizes_known else ''}"
                      f"{meter.total_bytes / MB:.1f} MB to fetch …")

            def tick() -> None:
                if on_progress is not None:
                    on_progress(meter.done_bytes(), meter.total_bytes, meter.sizes_known)

            def output_line(line: str) -> None:
                meter.line(line)
                on_output(line)

            code, output = run_streaming(
                install_command(python, params, str(requirements), hashed), output_line,
                cancelled, env=child_environment({"TMPDIR": str(downloads)}), on_tick=tick)
            if code != 0:
                raise explain_pip_failure(output, params, python)
            meter.finished = True
            downloaded = meter.done_bytes()
            tick()

    on_output("Checking that the packages import …")
    code, output = run_streaming(verify_command(python, params), on_output, cancelled,
                                 env=child_environment({"PYTHONPATH": _first_on_path(target)}))
    versions = {}
    try:
        versions = json.loads(output.strip().splitlines()[-1])
    except (IndexError, ValueError):
        pass
    if code != 0 or not versions:
        raise InstallError("verify", "The packages were installed but do not import; the log "
                           "below shows the error.", output)
    result = InstallResult(str(target), params.choice, params.variant, python,
                           [(i["name"], i["version"]) for i in install],
                           [(i["name"], i["version"]) for i in keep], versions,
                           time.monotonic() - started, downloaded / MB)
    record = {"choice": params.choice, "variant": params.variant, "interpreter": python,
              "versions": versions,
              "installed": result.installed, "kept_from_system": result.kept_from_system,
              "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    target.mkdir(parents=True, exist_ok=True)
    (target / INSTALL_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return result


def check_pytorch_build(install: List[Dict], params: InstallParams) -> None:
    """The CPU choice must bring PyTorch's CPU build: when PyTorch's index cannot be reached,
    pip quietly falls back to the default index, whose Linux torch is the 5 GB CUDA build."""
    if params.pytorch_build() != CPU or params.platform == "darwin":
        return
    for item in install:
        if item["name"].lower() == "torch" and "+cpu" not in item["version"]:
            raise InstallError(
                "network", f"PyTorch's CPU build was not found ({variant_index(params)} could "
                f"not be reached, or has no build for Python {sys.version_info[0]}."
                f"{sys.version_info[1]}): pip would install torch {item['version']}, the CUDA "
                "build of about 5 GB, instead. Nothing was installed. Check the network, or "
                "choose the NVIDIA GPU (CUDA) build on purpose.")
