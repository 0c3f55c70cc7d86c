"""Download an official model in a child process, with progress and a working Cancel.

A download of ~800 MB must never block the window and must stop the moment the user says so.
:class:`ModelDownload` runs :mod:`app.gui.download_worker` with ``QProcess`` and turns its
JSON lines into signals; :meth:`ModelDownload.cancel` ends the process, which removes its
partial file, so a cancelled download starts that file over next time (finished files stay).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

ROOT = Path(__file__).resolve().parents[2]
KILL_AFTER_MS = 5_000
"""How long a cancelled download may take to clean up before it is killed."""


class ModelDownload(QObject):
    """One download. Signals: ``progress(name, done, total)``, ``finished(ok, message)``."""

    progress = Signal(str, int, int)
    finished = Signal(bool, str)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.cancelled = False
        self._buffer = b""
        self._error = ""
        self._done = False
        self._process = QProcess(self)
        self._process.setProgram(sys.executable)
        self._process.setArguments(["-m", "app.gui.download_worker", name])
        self._process.setWorkingDirectory(str(ROOT))
        env = QProcessEnvironment.systemEnvironment()
        env.insert(
            "PYTHONPATH",
            str(ROOT) + (":" + env.value("PYTHONPATH") if env.contains("PYTHONPATH") else ""),
        )
        env.insert("PYTHONUNBUFFERED", "1")
        self._process.setProcessEnvironment(env)
        self._process.readyReadStandardOutput.connect(self._read)
        self._process.finished.connect(self._ended)
        self._process.errorOccurred.connect(self._process_error)

    def start(self) -> None:
        """Start the child process."""
        self._process.start()

    @property
    def running(self) -> bool:
        """True while the child process runs."""
        return self._process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """Stop now (the file being fetched is dropped; finished files stay in the cache).

        The child is asked to end (it removes its partial file) and killed if it has not
        ended after :data:`KILL_AFTER_MS`.
        """
        self.cancelled = True
        if self.running:
            self._process.terminate()
            QTimer.singleShot(KILL_AFTER_MS, self, self._kill_if_running)

    def _kill_if_running(self) -> None:
        if self.running:
            self._process.kill()

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Block until the process ended (tests, shutdown)."""
        return self._process.waitForFinished(timeout_ms)

    def _read(self) -> None:
        self._buffer += bytes(self._process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            kind = event.get("event")
            if kind in ("file", "progress"):
                self.progress.emit(
                    str(event.get("name", "")),
                    int(event.get("done", 0)),
                    int(event.get("total", 0)),
                )
            elif kind == "error":
                self._error = str(event.get("message", "download failed"))
            elif kind == "done":
                self._done = True

    def _ended(self, code: int, _status: QProcess.ExitStatus) -> None:
        self._read()
        if self.cancelled:
            self.finished.emit(False, "Download cancelled.")
        elif self._done and code == 0:
            self.finished.emit(True, "")
        else:
            stderr = bytes(self._process.readAllStandardError().data()).decode(errors="replace")
            message = self._error or stderr.strip().splitlines()[-1:] or ["download failed"]
            self.finished.emit(False, message if isinstance(message, str) else message[0])

    def _process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.finished.emit(False, "Could not start the download process.")
