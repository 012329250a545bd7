"""pip's command lines for MapScribe's runtime packages, and reading what pip answers.

Plain Python (no Qt, no QGIS). The machine's pip configuration is used, not replaced: indexes,
find-links, proxies, certificates and its own constraint file all still apply; MapScribe adds a
constraint file (``-c``, which adds to the configured ones) and, for the CPU build, an extra
index. On Linux PyPI's torch is the CUDA build; the CPU build lives on PyTorch's own index and
carries the local version ``+cpu``, which sorts above the plain version of the same release, so
pip prefers it; :mod:`.install` refuses a resolution that would bring the CUDA build instead
(PyTorch's index unreachable). Versions are ranges for the running Python (:mod:`.versions`),
and only wheels are taken (``--only-binary=:all:``).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import urllib.error
import urllib.request
from importlib import metadata
from typing import Callable, Dict, List, Optional, Tuple

from .packages import (
    CPU,
    CPU_INDEX_URL,
    CUDA,
    NOT_NEEDED,
    PACKAGING_TOOLS,
    WINDOWS_CUDA_INDEX_URL,
    InstallError,
    InstallParams,
    normalise,
)
from .versions import UnsupportedPythonError, requirement


def requirements_for(params: InstallParams) -> List[str]:
    """The requirements of an installation: each package with its range for the running
    Python (:mod:`.versions`), unless ``params.requirements`` replaces them."""
    if params.requirements is not None:
        return list(params.requirements)
    try:
        return [requirement(p.name) for p in params.packages()]
    except UnsupportedPythonError as error:
        raise InstallError("no_wheel", str(error)) from None


def variant_index(params: InstallParams) -> Optional[str]:
    """The extra index PyTorch's chosen build comes from, if not the default index."""
    if params.extra_index_url:
        return params.extra_index_url
    build = params.pytorch_build()
    if build == CPU and params.platform != "darwin":  # macOS wheels are CPU builds already
        return CPU_INDEX_URL
    if build == CUDA and params.platform.startswith("win"):
        return WINDOWS_CUDA_INDEX_URL
    return None  # Linux: PyPI's torch is the CUDA build; macOS: there is only one build


def index_options(params: InstallParams) -> List[str]:
    """pip options choosing where packages come from: the machine's configuration, plus (never
    replacing it unless asked) the variant's extra index."""
    options = ["--isolated"] if params.isolated else []
    if params.no_index:
        options.append("--no-index")
    if params.index_url:
        options += ["--index-url", params.index_url]
    if params.find_links:
        options += ["--find-links", params.find_links]
    extra = variant_index(params)
    if extra and not params.no_index:
        options += ["--extra-index-url", extra]
    return options


def network_options(params: InstallParams) -> List[str]:
    # Wheels only: building torch or onnxruntime from source inside QGIS is never what anyone
    # wants, and "no wheel for this Python" is then said as such.
    return ["--only-binary=:all:", "--timeout", f"{params.timeout_s:g}", "--retries",
            str(int(params.retries)), "--progress-bar", "off", "--disable-pip-version-check",
            "--no-input"]


def resolve_command(interpreter: str, params: InstallParams, report: str,
                    constraints: str) -> List[str]:
    """pip resolving the runtime packages against the running environment, installing nothing
    (PEP 668 allows --dry-run --report even in an externally managed Python)."""
    return ([interpreter, "-m", "pip", "install", "--dry-run", "--report", report,
             "-c", constraints] + network_options(params) + index_options(params)
            + requirements_for(params))


def install_command(interpreter: str, params: InstallParams, requirements: str,
                    require_hashes: bool) -> List[str]:
    """pip putting exactly the resolved files into the managed folder."""
    return ([interpreter, "-m", "pip", "install", "--target", params.target, "--no-deps",
             "--upgrade", "-r", requirements] + (["--require-hashes"] if require_hashes else [])
            + network_options(params) + (["--isolated"] if params.isolated else []))


def verify_command(interpreter: str, params: InstallParams) -> List[str]:
    """Import every package of the installation the way QGIS will (the folder first on the
    path) and print their versions (and torch's CUDA) as JSON."""
    modules = [p.module for p in params.packages()]
    # triton blocked as in QGIS (see NOT_NEEDED): the packages must import without it.
    code = ("import sys, json, importlib; sys.modules.setdefault('triton', None); "
            f"names = {modules!r}; found = {{n: importlib.import_module(n) for n in names}}; "
            "out = {n: getattr(m, '__version__', '') for n, m in found.items()}; "
            "out.update({n + '_file': m.__file__ for n, m in found.items()}); "
            "torch = found.get('torch'); "
            "out.update({'cuda': torch.version.cuda} if torch else {}); "
            "print(json.dumps(out))")
    return [interpreter, "-c", code]


# -- reading pip's results -------------------------------------------------------------------------
_NO_NETWORK_PATTERNS = re.compile(
    r"Name or service not known|Temporary failure in name resolution|nodename nor servname|"
    r"getaddrinfo failed|Network is unreachable|No route to host|Failed to resolve",
    re.IGNORECASE)
_NETWORK_PATTERNS = re.compile(
    r"NewConnectionError|Failed to establish a new connection|ConnectTimeout|"
    r"Connection refused|Read timed out|ProxyError|SSLError|Max retries exceeded|"
    r"Could not fetch URL|HTTP error 404|403 Client Error", re.IGNORECASE)


def _indexes(params: InstallParams) -> str:
    named = [u for u in (params.index_url, variant_index(params), params.find_links) if u]
    return " and ".join(named) or "the package index pip is configured with (PyPI by default)"


def explain_pip_failure(output: str, params: InstallParams, interpreter: str) -> InstallError:
    """Turn a failed pip run into an error people can act on."""
    indexes = _indexes(params)
    python = ".".join(map(str, sys.version_info[:2]))
    if "No space left on device" in output or "[Errno 28]" in output:
        return InstallError("disk", f"The disk holding {params.target} (or the temporary "
                            "folder) is full: free some space and try again; this choice needs "
                            "about the size it says, plus as much again for pip's temporary "
                            "files. The folder may hold part of the packages.", output)
    probed = None if _NO_NETWORK_PATTERNS.search(output) or _NETWORK_PATTERNS.search(output) \
        else _probe(params)
    if _NO_NETWORK_PATTERNS.search(output) or probed == "no_network":
        return InstallError(
            "no_network", f"No network: the name of the package index ({indexes}) could not be "
            "looked up. Connect this computer to the internet (or set pip's proxy in pip.conf "
            "or HTTPS_PROXY) and try again. Nothing was installed.", output)
    if _NETWORK_PATTERNS.search(output) or probed == "network":
        return InstallError(
            "network", f"Could not reach the package index {indexes}. Check the network "
            "connection or proxy (pip reads its proxy from pip.conf or HTTPS_PROXY)"
            + (", or choose the other build (CUDA comes from the default index)"
               if params.pytorch_build() == CPU else "") + ". Nothing was installed.", output)
    missing = re.search(r"No matching distribution found for (\S+)", output)
    if missing:
        return InstallError(
            "no_wheel", f"There is no wheel of {missing.group(1)} for Python {python} on this "
            f"platform ({params.platform}) in {indexes}, so pip cannot install it here. "
            "Nothing was installed. A newer MapScribe may know versions for this Python; or "
            f"install {missing.group(1).split('<')[0].split('>')[0].split('=')[0]} into QGIS's "
            "Python yourself.", output)
    if "ResolutionImpossible" in output or "conflicting dependencies" in output:
        kept = ", ".join(f"{k} {v}" for k, v in (params.system_versions or {}).items())
        return InstallError(
            "resolution", "pip could not find versions that fit together with the packages of "
            f"QGIS's Python that must stay ({kept or 'none'}) and this machine's pip "
            "constraints. Nothing was installed; the log below says which requirement "
            "conflicts.", output)
    return InstallError("pip", f"pip ({interpreter}) failed; the log below says why.", output)


def _probe(params: InstallParams, timeout_s: float = 5.0) -> Optional[str]:
    """'no_network' when an explicit http(s) index of ours has a name that cannot be looked
    up, 'network' when it cannot be reached, else None (a diagnosis after pip failed without
    saying why; never a reason not to try, since pip may know a proxy urllib does not)."""
    urls = [u for u in (params.index_url, variant_index(params))
            if u and u.startswith(("http://", "https://"))]
    for url in urls:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/", timeout=timeout_s):
                pass
        except urllib.error.HTTPError:
            continue  # it answered
        except urllib.error.URLError as error:
            return "no_network" if isinstance(error.reason, socket.gaierror) else "network"
        except (OSError, ValueError):
            return "network"
    return None


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
    system_names = {normalise(n) for n in system}
    for item in items:
        name = normalise(item["name"])
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


def has_distribution(name: str) -> bool:
    """Whether the running Python has the distribution ``name`` installed."""
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False
