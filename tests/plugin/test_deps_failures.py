"""How the installer fails, each case really happening and told in words people can act on:
no network, an index that cannot be reached, a full disk, a package without a wheel for this
Python, and a cancel while pip waits.

pip runs for real (the venv's interpreter, as QGIS's would), with ``--isolated`` so that the
machine's own pip configuration (its mirrors) cannot answer in the test's place, and with
wheels the tests build themselves (tiny, or a few MB of random bytes), so nothing here needs
the internet.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest

from mapscribe.plugin.deps.install import install_runtime_packages
from mapscribe.plugin.deps.packages import InstallError, InstallParams

REPO = Path(__file__).resolve().parents[2]
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "PIP_INDEX_URL",
                 "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)


def make_wheel(folder: Path, name: str, version: str = "1.0", tag: str = "py3-none-any",
               payload: int = 0) -> Path:
    """A real, installable wheel of a package ``name`` holding ``payload`` random bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {f"{module}/__init__.py": b"",
             f"{module}/payload.bin": os.urandom(payload),
             f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\n"
                                       f"Version: {version}\n").encode(),
             f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: test\n"
                                    f"Root-Is-Purelib: true\nTag: {tag}\n").encode()}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{module}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def params(tmp_path: Path, **options) -> InstallParams:
    # One retry: pip says why a request failed only when it retries.
    return InstallParams(target=str(tmp_path / "packages" / f"py{PYTHON}"), isolated=True,
                         timeout_s=3, retries=1, **options)


def failure(tmp_path: Path, **options) -> InstallError:
    lines = []
    with pytest.raises(InstallError) as caught:
        install_runtime_packages(params(tmp_path, **options), lines.append)
    caught.value.seen = "\n".join(lines)
    return caught.value


def test_no_network(tmp_path):
    # .invalid never resolves (RFC 2606): what pip meets when there is no network (no DNS).
    error = failure(tmp_path, index_url="https://mapscribe-test.invalid/simple",
                    requirements=("mapscribe-test-package",))
    assert error.kind == "no_network", error.message + error.log[-2000:]
    assert error.message.startswith("No network: the name of the package index "
                                    "(https://mapscribe-test.invalid/simple) could not be "
                                    "looked up.")
    assert "Nothing was installed" in error.message
    assert not (tmp_path / "packages").exists()


def test_index_unreachable(tmp_path):
    error = failure(tmp_path, index_url="http://127.0.0.1:9/simple",  # discard port: refused
                    requirements=("mapscribe-test-package",))
    assert error.kind == "network", error.message + error.log[-2000:]
    assert error.message.startswith("Could not reach the package index "
                                    "http://127.0.0.1:9/simple. Check the network connection")
    assert "Connection refused" in error.log or "NewConnectionError" in error.log


def test_no_wheel_for_this_python(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "mapscribe-test-package", tag="cp38-cp38-manylinux_2_17_x86_64")
    error = failure(tmp_path, find_links=str(wheels), no_index=True,
                    requirements=("mapscribe-test-package>=1.0",))
    assert error.kind == "no_wheel", error.message + error.log[-2000:]
    assert error.message.startswith(
        f"There is no wheel of mapscribe-test-package>=1.0 for Python {PYTHON} on this "
        f"platform ({sys.platform}) in {wheels}")
    assert "Nothing was installed" in error.message


def test_disk_full(tmp_path):
    """The managed folder on a 2 MB file system (a tmpfs in a user namespace of its own), and
    a 4 MB wheel to install into it."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: no small file system to fill")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs "
                            f"{tmp_path}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine lets no user namespace mount a tmpfs: {probe.stderr.strip()}")
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "mapscribe-test-package", payload=4_000_000)
    small = tmp_path / "small"
    small.mkdir()
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO.parent)!r})
        from mapscribe.plugin.deps.install import install_runtime_packages
        from mapscribe.plugin.deps.packages import InstallError, InstallParams
        try:
            install_runtime_packages(InstallParams(
                target={str(small / "py")!r}, isolated=True, no_index=True,
                find_links={str(wheels)!r}, requirements=("mapscribe-test-package",)))
        except InstallError as error:
            print(json.dumps({{"kind": error.kind, "message": error.message,
                              "log": error.log[-2000:]}}))
    """)
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c",
         f'mount -t tmpfs -o size=2m tmpfs "{small}" && exec "$0" -c "$1"', sys.executable,
         script], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-3000:]
    import json

    error = json.loads(done.stdout.strip().splitlines()[-1])
    assert error["kind"] == "disk", error
    assert error["message"].startswith(f"The disk holding {small / 'py'} (or the temporary "
                                       "folder) is full: free some space and try again")
    assert "No space left on device" in error["log"]


def test_cancel_while_pip_waits(tmp_path):
    """An index that accepts the connection and never answers; Cancel stops pip at once."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(InstallError) as caught:
            install_runtime_packages(
                InstallParams(target=str(tmp_path / "py"), isolated=True, timeout_s=60,
                              retries=0, requirements=("mapscribe-test-package",),
                              index_url=f"http://127.0.0.1:{server.getsockname()[1]}/simple"),
                cancelled=lambda: time.monotonic() - started > 3)
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        server.close()
    assert caught.value.kind == "cancelled"
    assert caught.value.message.startswith("The installation was cancelled")
    assert time.monotonic() - started < 30  # not pip's 60 s time-out
