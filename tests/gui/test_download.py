"""The GUI's model download: a child process using huggingface_hub, against the stand-in hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.gui.download import ModelDownload
from tests.lotlip.test_registry_download import MODEL_REPO, NAME, VOCAB_REPO, start_hub


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache of the test's own, the stand-in hub reached without a proxy."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # the child inherits the environment
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))  # read once at import
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return cache


def test_download_reports_progress_and_finishes(
    qtbot: Any, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = bytes(range(256)) * 40_000  # 10 MB
    hub = start_hub(
        {(MODEL_REPO, "model.pt"): checkpoint, (VOCAB_REPO, "vocab.txt"): b"[PAD]\n[UNK]\n"},
        lfs={"model.pt"},
    )
    hub.state.corrupt_gets = 1  # the child notices the bad checksum and fetches it again
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
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
    qtbot: Any, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = bytes(range(256)) * 100_000  # 25.6 MB, served at ~5 MB/s
    hub = start_hub(
        {(MODEL_REPO, "model.pt"): checkpoint, (VOCAB_REPO, "vocab.txt"): b"[PAD]\n[UNK]\n"},
        lfs={"model.pt"},
    )
    hub.state.pause_s = 0.05
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
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
    stored = [p for p in hub_cache.rglob("*") if p.is_file() and p.stat().st_size > 1000]
    assert stored == []  # neither a finished checkpoint nor an orphaned partial file


def test_a_downloaded_model_is_not_marked_in_use_unless_the_library_uses_it(
    qtbot: Any, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no model known to be in use, the freshly downloaded one is listed, not "(in use)"."""
    from app.gui.models_panel import ModelPanel
    from app.gui.tasks import TaskSet

    hub = start_hub(
        {(MODEL_REPO, "model.pt"): b"weights" * 1000, (VOCAB_REPO, "vocab.txt"): b"[PAD]\n"},
        lfs={"model.pt"},
    )
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    tasks = TaskSet()
    panel = ModelPanel(tasks)
    qtbot.addWidget(panel)
    panel.reload()
    qtbot.waitUntil(lambda: panel.loaded, timeout=30_000)
    panel.table.select(NAME)
    try:
        with qtbot.waitSignal(panel.installed, timeout=120_000):
            panel.start_download(confirm=False)
    finally:
        hub.shutdown()
        tasks.stop_all()
    labels = [panel.table.topLevelItem(i).text(0) for i in range(panel.table.topLevelItemCount())]
    entry = panel.table.entry(NAME)
    assert entry is not None and entry.installed and panel.table.selected_name() == NAME
    assert [label for label in labels if "(in use)" in label] == []
