"""One app per user and library: a second launch hands its arguments to the running one.

The running app listens on a local socket (a Unix socket / Windows named pipe) named after the
user and the library folder, created with ``QLocalServer.UserAccessOption`` so only the same
user can connect. A second launch connects, sends its command line as one JSON line and exits;
the running app treats the message exactly like a command line (the same parser, the same
checks: existing image files only) and raises its window.

Messages are small and strict: at most :data:`MAX_MESSAGE` bytes, a JSON object
``{"argv": [str, ...]}``; anything else is dropped with a log line.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024
CONNECT_MS = 500
ACK = b"ok\n"


def server_name(library_dir: str | os.PathLike[str]) -> str:
    """The socket name for this user and library (short: Unix socket paths are limited)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    key = f"{user}\0{os.path.realpath(os.fspath(library_dir))}".encode()
    return f"lotlip-search-{hashlib.sha256(key).hexdigest()[:16]}"


def encode_message(argv: Sequence[str], cwd: str | None = None) -> bytes:
    """One JSON line; relative paths are made absolute (the receiver runs elsewhere)."""
    base = Path(cwd or os.getcwd())

    def absolute(arg: str) -> str:
        if not arg or arg.startswith("-") or Path(arg).is_absolute():
            return arg
        return str(base / arg) if (base / arg).exists() else arg

    return json.dumps({"argv": [absolute(a) for a in argv]}).encode() + b"\n"


def decode_message(data: bytes) -> list[str]:
    """The argument list of a message; ValueError when it is not a valid one."""
    if len(data) > MAX_MESSAGE:
        raise ValueError("message too long")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON message: {exc}") from None
    if not isinstance(value, dict) or set(value) != {"argv"}:
        raise ValueError("expected an object with only 'argv'")
    argv = value["argv"]
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError("'argv' must be a list of strings")
    if any("\0" in a for a in argv):
        raise ValueError("NUL in an argument")
    return argv


def send_to_running(name: str, argv: Sequence[str], timeout_ms: int = CONNECT_MS) -> bool:
    """Hand ``argv`` to the app listening on ``name``; false when none answers."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write(encode_message(argv))
    socket.flush()
    ok = socket.waitForBytesWritten(timeout_ms) or socket.bytesToWrite() == 0
    answered = socket.waitForReadyRead(timeout_ms * 4) and socket.readAll().data() == ACK
    socket.disconnectFromServer()
    return bool(ok and answered)


class InstanceServer(QObject):
    """Listens for later launches. Signal ``argumentsReceived(list[str])`` (already decoded)."""

    argumentsReceived = Signal(list)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytearray] = {}

    def listen(self) -> bool:
        """Start listening (a socket left by a crashed app is removed first)."""
        if self.server.listen(self.name):
            return True
        QLocalServer.removeServer(self.name)
        if self.server.listen(self.name):
            return True
        log.warning(
            "single instance: cannot listen on %s: %s", self.name, self.server.errorString()
        )
        return False

    def close(self) -> None:
        """Stop listening."""
        self.server.close()

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            self._buffers[socket] = bytearray()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._drop(s))

    def _drop(self, socket: QLocalSocket) -> None:
        # The socket stays a child of the server until it closes: deleting it here (with
        # deleteLater) crashed PySide6 6.12 when the server went away soon after.
        self._buffers.pop(socket, None)

    def _read(self, socket: QLocalSocket) -> None:
        buffer = self._buffers.get(socket)
        if buffer is None:
            return
        buffer += socket.readAll().data()
        if len(buffer) > MAX_MESSAGE:
            log.warning("single instance: message too long; dropped")
            self._buffers.pop(socket, None)
            socket.abort()
            return
        if b"\n" not in buffer:
            return
        line = bytes(buffer.split(b"\n", 1)[0])
        self._buffers.pop(socket, None)
        try:
            argv = decode_message(line)
        except ValueError as exc:
            log.warning("single instance: bad message dropped: %s", exc)
            socket.abort()
            return
        socket.write(ACK)
        socket.flush()
        socket.disconnectFromServer()
        self.argumentsReceived.emit(argv)


def claim(
    name: str, argv: Sequence[str], parent: QObject | None = None
) -> tuple[InstanceServer | None, bool]:
    """Become the app for ``name``, or hand ``argv`` to the one that is.

    Returns ``(server, False)`` when this process is the first (``server`` may be None if
    listening failed: the app then runs unshared), or ``(None, True)`` when a running app took
    the arguments and this process should exit.
    """
    if send_to_running(name, argv):
        return None, True
    server = InstanceServer(name, parent)
    return (server if server.listen() else None), False
