"""Copying paths leaves a QMimeData on the clipboard; the process must still exit cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
from PySide6.QtWidgets import QApplication
from app.gui.desktop import copy_paths
app = QApplication([])
copy_paths(["/tmp/a.jpg", "/tmp/b.jpg"])
assert app.clipboard().text() == "/tmp/a.jpg\\n/tmp/b.jpg"
"""


def test_process_with_copied_paths_exits_cleanly() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    # PySide6 6.11 destroyed the clipboard's QMimeData after the interpreter: SIGSEGV (-11)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
