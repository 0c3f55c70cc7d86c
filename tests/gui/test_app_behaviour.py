"""Application behaviour: single instance, quitting within a second, the xcb message."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtNetwork import QLocalSocket

from app.gui import main as gui_main
from app.gui import platform_check
from app.gui.single_instance import InstanceServer, decode_message, server_name
from training.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[2]
TINY = "gui-tiny"


def launch(*args: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
    """``python -m app ARGS`` offscreen, as a user would start it (from ``cwd``)."""
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- single instance ----------------------------------------------------------------------------
def test_socket_name_is_per_user_and_library_and_user_only(qtbot: Any, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert server_name(one) == server_name(tmp_path / "x" / ".." / "one")
    assert server_name(one) != server_name(two)
    assert str(tmp_path) not in server_name(one)  # no private path in a world-visible name
    server = InstanceServer(server_name(one) + "-perm")
    assert server.listen()
    try:
        mode = os.stat(server.server.fullServerName()).st_mode
        assert stat.S_ISSOCK(mode) and mode & 0o077 == 0  # UserAccessOption: owner only
    finally:
        server.close()


def test_second_launch_hands_its_image_to_the_running_app(
    qtbot: Any, tmp_path: Path, isolated: Path
) -> None:
    library = isolated / "library"
    server = InstanceServer(server_name(library))
    assert server.listen()
    image = tmp_path / "example.png"
    make_scene(7).render(64).save(image)
    try:
        with qtbot.waitSignal(server.argumentsReceived, timeout=60_000) as received:
            started = time.monotonic()
            # a relative path: resolved against the second launch's working folder
            second = launch("--library", str(library), "example.png", cwd=tmp_path)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert "already running" in out
        assert time.monotonic() - started < 30
    finally:
        server.close()
    argv = received.args[0]
    assert argv[:2] == ["--library", str(library)]
    assert argv[2] == str(image)


def test_second_launch_resolves_relative_paths(qtbot: Any, tmp_path: Path, isolated: Path) -> None:
    from app.gui.single_instance import encode_message

    (tmp_path / "a.jpg").write_bytes(b"x")
    message = encode_message(["a.jpg", "--debug", "missing.jpg"], cwd=str(tmp_path))
    assert decode_message(message.strip()) == [str(tmp_path / "a.jpg"), "--debug", "missing.jpg"]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json\n",
        b'{"argv": "x"}\n',
        b'{"argv": ["a"], "exec": "rm"}\n',
        b'{"argv": [1, 2]}\n',
        b"[1]\n",
        b'{"argv": ["' + b"a" * 70_000 + b'"]}\n',
    ],
)
def test_bad_messages_are_dropped(qtbot: Any, payload: bytes, isolated: Path) -> None:
    server = InstanceServer(server_name(isolated / "bad"))
    assert server.listen()
    got: list[Any] = []
    server.argumentsReceived.connect(got.append)
    socket = QLocalSocket()
    try:
        socket.connectToServer(server.name)
        assert socket.waitForConnected(2_000)
        socket.write(payload)
        socket.flush()
        qtbot.waitUntil(
            lambda: socket.state() == QLocalSocket.LocalSocketState.UnconnectedState, timeout=5_000
        )
        assert got == []
        assert socket.readAll().data() != b"ok\n"
    finally:
        socket.abort()
        server.close()


def test_received_arguments_raise_the_window_and_search_by_example(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    window = make_window()
    window.showMinimized()
    image = tmp_path / "look.png"
    make_scene(3).render(64).save(image)
    assert gui_main.receive_arguments(window, [str(image), "--unknown-qt-option"])
    assert not window.isMinimized()
    request = window.request
    assert request.mode == "like" and request.like == image
    assert "look.png" in window.example.label.text()
    # checked like a command line: a bad one is refused, a missing file is ignored
    assert not gui_main.receive_arguments(window, ["--library"])
    assert gui_main.receive_arguments(window, [str(tmp_path / "missing.png")])
    assert window.request is request


# -- quitting -----------------------------------------------------------------------------------
def _count_images(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM images").fetchone()[0])


def _resume_note(library: Path) -> Any:
    from app.library.library import Library

    with Library.open(library) as lib:
        return lib.store.get_setting("gui_resume_indexing")


def test_quit_ends_the_process_within_a_second_and_the_next_start_resumes(
    qtbot: Any, tmp_path: Path, isolated: Path, make_session: Any, make_window: Any
) -> None:
    from app.library.library import Library

    folder = tmp_path / "photos"
    folder.mkdir()
    big = tmp_path / "big.png"
    make_scene(11).render(800).save(big)  # PNG: no draft decoding, so indexing takes a while
    total = 160
    for i in range(total):
        shutil.copyfile(big, folder / f"p{i:03d}.png")
    library = isolated / "library"
    with Library.open(library) as lib:  # as if the last run was interrupted by quitting
        lib.add_folder(folder)
        lib.store.set_setting("model", TINY)
        lib.store.set_setting("device", "cpu")
        lib.store.set_setting("gui_resume_indexing", {"folders": [str(folder)], "model": None})
    db = library / "library.db"

    app = launch("--library", str(library))
    try:
        deadline = time.monotonic() + 120
        while _count_images(db) == 0:  # the app started, loaded the model and resumed
            assert app.poll() is None, app.communicate()[1]
            assert time.monotonic() < deadline, "indexing did not resume"
            time.sleep(0.05)
        app.send_signal(signal.SIGTERM)  # what the window manager's close does: Quit
        asked = time.monotonic()
        app.wait(timeout=30)
        took = time.monotonic() - asked
    finally:
        if app.poll() is None:
            app.kill()
    err = app.stderr.read() if app.stderr else ""
    assert app.returncode == 0, err
    print(f"quit took {took:.2f} s")
    assert took < 1.0, f"quitting took {took:.2f} s"
    done = _count_images(db)
    assert 0 < done < total, "the run was not interrupted"
    assert _resume_note(library)["folders"] == [str(folder)]  # the next start goes on

    session = make_session(TINY)
    window = make_window(session)
    qtbot.waitUntil(lambda: session.indexing is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not session.indexing.running, timeout=240_000)
    report = session.indexing.report
    assert report.added == total - done and report.unchanged == done
    assert session.library.store.counts().images == total
    assert window.isVisible()


# -- the xcb plugin -----------------------------------------------------------------------------
def test_missing_xcb_libraries_give_a_one_line_apt_fix(tmp_path: Path) -> None:
    def load(name: str) -> object:  # the dynamic loader of a system without libxcb-cursor0
        if name in ("libxcb-cursor.so.0", str(plugin)):
            raise OSError("libxcb-cursor.so.0: cannot open shared object file: No such file")
        return object()

    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"")
    message = platform_check.platform_problem({"DISPLAY": ":0"}, "linux", load=load, plugin=plugin)
    assert message is not None and "\n" not in message
    assert message.endswith("Fix: sudo apt install libxcb-cursor0")
    assert (
        platform_check.platform_problem(
            {"DISPLAY": ":0"}, "linux", load=lambda n: object(), plugin=plugin
        )
        is None
    )
    assert (
        platform_check.platform_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", load=load)
        is None
    )
    assert platform_check.platform_problem({"DISPLAY": ":0"}, "darwin", load=load) is None
    assert platform_check.debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert platform_check.debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"


def test_without_a_display_the_app_prints_one_line_instead_of_aborting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "xcb"
    result = subprocess.run(
        [sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1  # not -6 (SIGABRT)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open a window" in lines[0], result.stderr
    assert "qt.qpa" not in result.stderr
