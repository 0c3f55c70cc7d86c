"""Child process that downloads an official model and reports progress as JSON lines.

``python -m app.gui.download_worker lotlip-vit-b16`` calls :func:`lotlip.registry.download`
and prints one JSON object per line on stdout::

    {"event": "file", "name": "model.pt", "total": 850000000, "done": 0}
    {"event": "progress", "name": "model.pt", "total": 850000000, "done": 123456789}
    {"event": "done", "checkpoint": "...", "vocab": "..."}
    {"event": "error", "message": "..."}

The GUI runs it with ``QProcess`` so that *Cancel* can stop a download at any moment by ending
the process: SIGTERM unwinds the download (huggingface_hub then deletes its partial file), a
kill follows if that takes too long. Progress comes from ``hf_hub_download``'s ``tqdm_class``
hook.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

REPORT_INTERVAL_S = 0.2
EXIT_CANCELLED = 3


def emit(event: str, **fields: Any) -> None:
    """Write one progress line and flush it."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class ReportingBar:
    """A tqdm stand-in that prints progress lines (at most five per second)."""

    def __init__(self, *args: object, total: int | None = None, initial: int = 0, **kwargs: Any):
        self.n = initial
        self.total = total
        self.desc = str(kwargs.get("desc") or "")
        self._last = 0.0
        emit("file", name=self.desc, total=self.total or 0, done=self.n)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more bytes."""
        self.n += n
        now = time.monotonic()
        if now - self._last >= REPORT_INTERVAL_S:
            self._last = now
            emit("progress", name=self.desc, total=self.total or 0, done=self.n)

    def __enter__(self) -> ReportingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Report the final position."""
        emit("progress", name=self.desc, total=self.total or 0, done=self.n)

    def set_description(self, desc: str = "", *args: object, **kwargs: object) -> None:
        """Remember the file name."""
        self.desc = desc

    def set_postfix(self, *args: object, **kwargs: object) -> None:
        """Ignored."""

    def refresh(self, *args: object, **kwargs: object) -> None:
        """Ignored."""


def main(argv: list[str] | None = None) -> int:
    """Download the model named in ``argv``; exit 0 on success, 2 on a download error."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        emit("error", message="usage: python -m app.gui.download_worker MODEL_NAME")
        return 2
    from lotlip import registry

    # SIGTERM (Cancel) raises SystemExit here, so huggingface_hub's clean-up of its partial
    # file runs; the default action would end the process on the spot and leave it behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(EXIT_CANCELLED))
    try:
        checkpoint, vocab = registry.download(args[0], progress_bar=ReportingBar)
    except (registry.DownloadError, registry.ModelNotFoundError) as exc:
        emit("error", message=str(exc))
        return 2
    except Exception as exc:  # report anything else too, the GUI shows it
        emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1
    emit("done", checkpoint=str(checkpoint), vocab=str(vocab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
