"""The PySide6 over-release guard: is what the module says about versions still true?"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from app.gui import pyside_fix

ROOT = Path(__file__).resolve().parents[2]
PROBE = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("probe", {str(ROOT / "app/gui/pyside_fix.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)  # without app.gui, so the guard is not applied
import PySide6
print(PySide6.__version__, module.leaks_singletons())
"""


def is_affected(pyside: str, python: tuple[int, ...]) -> bool:
    """Whether this PySide6 release on this Python is known to over-release (the table)."""
    return pyside in pyside_fix.AFFECTED and python < pyside_fix.IMMORTAL_FROM


def installed_pyside() -> str:
    import PySide6

    return PySide6.__version__


def test_the_table_of_affected_versions_matches_a_fresh_probe() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    version, leaks = out[0], out[1] == "True"
    expected = is_affected(version, sys.version_info[:2])
    assert leaks == expected, f"PySide6 {version} on Python {sys.version.split()[0]} " + (
        "over-releases: add it to pyside_fix.AFFECTED and exclude it in pyproject.toml"
        if leaks
        else "no longer over-releases: take it out of pyside_fix.AFFECTED"
    )


def test_the_guard_is_on_exactly_where_it_is_needed() -> None:
    # app.gui applied it at import; it must be active for an affected install only
    assert pyside_fix._applied == is_affected(installed_pyside(), sys.version_info[:2])


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _supported_pythons() -> list[str]:
    low = re.search(r">=\s*3\.(\d+)", _project()["requires-python"])
    assert low, "requires-python needs a lower bound"
    return [f"3.{minor}" for minor in range(int(low.group(1)), 15)]


def test_fresh_installs_never_get_an_affected_version() -> None:
    requirements = [Requirement(r) for r in _project()["dependencies"]]
    pyside = [r for r in requirements if r.name.lower() == "pyside6-essentials"]
    assert pyside
    for python in _supported_pythons():
        wanted = [
            r for r in pyside if r.marker is None or r.marker.evaluate({"python_version": python})
        ]
        assert len(wanted) == 1, f"one PySide6 requirement per Python ({python})"
        spec: SpecifierSet = wanted[0].specifier
        for version in pyside_fix.AFFECTED:
            if is_affected(version, tuple(int(p) for p in python.split("."))):
                assert not spec.contains(Version(version)), f"{version} allowed on {python}"


def test_the_guard_is_still_needed() -> None:
    """Fails once no supported Python can be hit: then delete app/gui/pyside_fix.py."""
    oldest = tuple(int(p) for p in _supported_pythons()[0].split("."))
    assert oldest < pyside_fix.IMMORTAL_FROM, (
        "every supported Python has immortal singletons: remove app/gui/pyside_fix.py"
    )
    assert pyside_fix.AFFECTED, "no affected release left: remove app/gui/pyside_fix.py"
