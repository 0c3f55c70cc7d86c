"""The GUI's model download: a child process using huggingface_hub, against the stand-in hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.gui.download import ModelDownload
from tests.lotlip.test_registry_download import MODEL_REPO, NAME, VOCAB_REPO, start_hub


def test_download_reports_progress_and_finishes(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = bytes(range(256)) * 40_000  # 10 MB
    hub = start_hub(
        {(MODEL_REPO, "model.pt"): checkpoint, (VOCAB_REPO, "vocab.txt"): b"[PAD]\n[UNK]\n"},
        lfs={"model.pt"},
    )
    hub.state.corrupt_gets = 1  # the child notices the bad checksum and fetches it again
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)  # the child inherits the environment
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    download = ModelDownload(NAME)
    progress: list[tuple[str, int, int]] = []
    download.progress.connect(lambda name, done, total: progress.append((name, done, total)))
    try:
        with qtbot.waitSignal(download.finished, timeout=120_000) as blocker:
            download.start()
    finally:
        hub.shutdown()
    assert blocker.args == [True, ""]
    assert (len(checkpoint), len(checkpoint)) in [(done, total) for _, done, total in progress]
    assert len([r for r in hub.gets() if r.origin == "cdn"]) == 2


def test_cancel_stops_the_download_and_keeps_no_partial_file(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = bytes(range(256)) * 100_000  # 25.6 MB, served at ~5 MB/s
    hub = start_hub(
        {(MODEL_REPO, "model.pt"): checkpoint, (VOCAB_REPO, "vocab.txt"): b"[PAD]\n[UNK]\n"},
        lfs={"model.pt"},
    )
    hub.state.pause_s = 0.05
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    download = ModelDownload(NAME)
    started: list[int] = []
    download.progress.connect(
        lambda _name, done, total: started.append(done) if total == len(checkpoint) else None
    )
    try:
        download.start()
        qtbot.waitUntil(lambda: any(0 < d < len(checkpoint) for d in started), timeout=60_000)
        with qtbot.waitSignal(download.finished, timeout=30_000) as blocker:
            download.cancel()
    finally:
        hub.shutdown()
    assert blocker.args == [False, "Download cancelled."]
    assert not download.running
    stored = [p for p in (tmp_path / "hub").rglob("*") if p.is_file() and p.stat().st_size > 1000]
    assert stored == []  # neither a finished checkpoint nor an orphaned partial file
