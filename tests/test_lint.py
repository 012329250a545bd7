"""What ruff and mypy do not check themselves: every `noqa` and `type: ignore` names what it
silences and says why, after the code (ruff's RUF100 removes those that silence nothing):

    except Exception:  # noqa: BLE001 - a broken folder must not stop the plugin from loading
    value = thing.attribute  # type: ignore[attr-defined]  # set by the C extension at run time
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]

_NOQA = re.compile(r"#\s*noqa\b(?P<codes>:\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)?"
                   r"(?P<reason>.*)$")
_TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]+\])?(?P<reason>.*)$")


def _python_files() -> List[Path]:
    """The checkout's Python files: tracked or new, never ignored (.venv, build, caches)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                             "--", "*.py"], cwd=REPO, capture_output=True, check=True)
    return [REPO / name for name in listed.stdout.decode().split("\0")
            if name and (REPO / name).is_file()]


def _says_why(reason: str) -> bool:
    return re.search(r"[A-Za-z]{2,}", reason) is not None


def unexplained(lines: List[str], where: str) -> List[str]:
    found = []
    for number, line in enumerate(lines, start=1):
        for pattern, kind in ((_NOQA, "noqa"), (_TYPE_IGNORE, "type: ignore")):
            match = pattern.search(line)
            if match is None:
                continue
            if not match["codes"]:
                found.append(f"{where}:{number}: a bare `{kind}` silences everything: name the "
                             "codes")
            elif not _says_why(match["reason"]):
                found.append(f"{where}:{number}: `{match.group(0).strip()}` does not say why")
    return found


def test_every_noqa_and_type_ignore_names_its_codes_and_says_why():
    found = []
    for path in _python_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        found += unexplained(lines, path.relative_to(REPO).as_posix())
    assert found == [], "\n".join(found)


def test_the_check_tells_reasons_from_their_absence():
    noqa, ignore = "no" + "qa", "type: " + "ignore"  # spelled apart: this file is checked too
    lines = [f"def initGui(self):  # {noqa}: N802 (the name QGIS looks for)",
             f"except Exception:  # {noqa}: BLE001 - shown in the dock",
             f"import x  # {noqa}: E402, F401",
             f"import y  # {noqa}",
             f"z = a.b  # {ignore}[attr-defined]  # set at run time",
             f"z = a.b  # {ignore}"]
    assert unexplained(lines, "f.py") == [
        f"f.py:3: `# {noqa}: E402, F401` does not say why",
        f"f.py:4: a bare `{noqa}` silences everything: name the codes",
        f"f.py:6: a bare `{ignore}` silences everything: name the codes"]
