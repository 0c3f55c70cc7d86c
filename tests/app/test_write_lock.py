"""The library's write lock (filelock): one writing process, re-entrant inside it, and never
stale after the holder is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.library.library import Library, LibraryBusyError
from tests.app.conftest import ROOT

HOLDER = """
import sys
from app.library.library import Library
lib = Library.open(sys.argv[1])
with lib.writing():
    print("held", flush=True)
    sys.stdin.read()
"""


def test_second_process_is_refused_until_the_holder_dies(tmp_path: Path) -> None:
    lib_dir = tmp_path / "library"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lib_dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with Library.open(lib_dir) as lib:
            with pytest.raises(LibraryBusyError) as info, lib.writing():
                pass
            assert f"process {holder.pid}" in str(info.value)
            holder.send_signal(signal.SIGKILL)  # no clean-up: the OS drops the lock
            holder.wait(timeout=30)
            with lib.writing():
                assert lib.is_writing
            assert not lib.is_writing
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_lock_is_reentrant_and_process_wide(tmp_path: Path) -> None:
    with Library.open(tmp_path / "library") as lib:
        with lib.writing():
            with lib.writing():  # nested (forget inside an index run)
                assert lib.is_writing
            assert lib.is_writing
            seen: list[bool] = []

            def enter() -> None:
                with lib.writing():
                    seen.append(lib.is_writing)

            worker = threading.Thread(target=enter)
            worker.start()
            worker.join()
            assert seen == [True]  # another thread of the holding process may enter
            assert lib.is_writing
        assert not lib.is_writing
