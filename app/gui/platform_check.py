"""Say in one line what to install when Qt cannot open a window on Linux, before Qt aborts.

Since Qt 6.5 the X11 ("xcb") platform plugin needs ``libxcb-cursor0`` and a few other xcb
libraries that many systems do not have. Without them Qt prints several lines about plugins
and aborts the process (SIGABRT, no Python exception to catch). :func:`platform_problem` checks
beforehand, with the same dynamic loader, and returns the fix (``sudo apt install ...``).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

XCB_LIBRARIES = (
    "libxcb-cursor.so.0",
    "libxcb-icccm.so.4",
    "libxcb-keysyms.so.1",
    "libxcb-image.so.0",
    "libxcb-render-util.so.0",
    "libxcb-shape.so.0",
    "libxcb-randr.so.0",
    "libxcb-xkb.so.1",
    "libxkbcommon-x11.so.0",
)
"""Libraries of Qt's xcb plugin that are often missing (the Qt for X11 requirements)."""

_MISSING = re.compile(r"([\w.+-]+\.so(?:\.\d+)*): cannot open shared object file")

Loader = Callable[[str], object]


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname`` (``libxcb-cursor.so.0`` ->
    ``libxcb-cursor0``; a name ending in a digit gets a dash: ``libxkbcommon-x11-0``)."""
    match = re.fullmatch(r"(.+)\.so\.(\d+)(?:\.\d+)*", soname)
    if not match:
        return soname.removesuffix(".so").lower()
    name, major = match.groups()
    return f"{name}{'-' if name[-1].isdigit() else ''}{major}".lower()


def missing_libraries(
    names: tuple[str, ...] = XCB_LIBRARIES,
    plugin: Path | None = None,
    load: Loader = ctypes.CDLL,
) -> list[str]:
    """Sonames that the dynamic loader cannot find: from ``names``, then whatever stops
    ``plugin`` (the xcb plugin itself) from loading."""
    missing = []
    for name in names:
        try:
            load(name)
        except OSError:
            missing.append(name)
    if plugin is not None and plugin.exists():
        try:
            load(str(plugin))
        except OSError as exc:
            found = _MISSING.findall(str(exc)) or [f"({exc})"]
            missing += [m for m in found if m not in missing]
    return missing


def xcb_plugin_path() -> Path | None:
    """Where PySide6 keeps Qt's xcb platform plugin."""
    try:
        from PySide6.QtCore import QLibraryInfo
    except ImportError:
        return None
    folder = QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)
    return Path(folder) / "platforms" / "libqxcb.so"


def uses_xcb(env: Mapping[str, str], platform: str) -> bool:
    """True when Qt would pick its X11 plugin for this environment."""
    if platform != "linux":
        return False
    wanted = env.get("QT_QPA_PLATFORM", "")
    if wanted:
        return wanted.split(":")[0].split(";")[0] == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def platform_problem(
    env: Mapping[str, str] | None = None,
    platform: str = sys.platform,
    load: Loader = ctypes.CDLL,
    plugin: Path | None = None,
) -> str | None:
    """A one-line fix when Qt's xcb plugin cannot load here, else None."""
    env = os.environ if env is None else env
    if not uses_xcb(env, platform):
        return None
    if not env.get("DISPLAY"):
        return (
            "LoTLIP Search cannot open a window: no display (DISPLAY is not set). Start it from "
            "a desktop session, or use `lotlip-search` on the command line."
        )
    missing = missing_libraries(
        plugin=plugin if plugin is not None else xcb_plugin_path(), load=load
    )
    if not missing:
        return None
    packages = " ".join(dict.fromkeys(debian_package(m) for m in missing if not m.startswith("(")))
    fix = f"sudo apt install {packages}" if packages else "reinstall PySide6"
    return (
        f"LoTLIP Search cannot open a window: Qt's X11 plugin needs {', '.join(missing)}. "
        f"Fix: {fix}"
    )
