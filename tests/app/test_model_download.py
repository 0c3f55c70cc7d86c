"""The GUI's download child process (app.gui.download_worker) against the local stand-in hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.gui import download_worker
from lotlip import registry
from tests.lotlip.test_registry_download import MODEL_REPO, NAME, VOCAB_REPO, start_hub


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))  # read once at import
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return cache


def test_worker_reports_progress_through_the_public_download_api(
    hf_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = bytes(range(256)) * 20_000  # 5 MB
    hub = start_hub(
        {(MODEL_REPO, "model.pt"): checkpoint, (VOCAB_REPO, "vocab.txt"): b"[PAD]\n[UNK]\n"},
        lfs={"model.pt"},
    )
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    try:
        assert download_worker.main([NAME]) == 0
    finally:
        hub.shutdown()

    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    files = [e for e in events if e["event"] == "file"]
    assert any(e["total"] == len(checkpoint) for e in files)
    last = [e for e in events if e["event"] == "progress" and e["total"] == len(checkpoint)][-1]
    assert last["done"] == len(checkpoint)
    assert events[-1]["event"] == "done"
    assert Path(events[-1]["checkpoint"]).read_bytes() == checkpoint
    assert registry.cached_official_files(NAME, hf_cache) is not None


def test_cli_download_installs_the_model_despite_a_corrupted_transfer(
    cli, hf_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from app.cli import EXIT_OK
    from tests.builders import SMALL_OFFICIAL, bert_like_vocab, official_state_dict

    checkpoint = tmp_path / "model.pt"
    torch.save(official_state_dict(**SMALL_OFFICIAL, seed=3), checkpoint)
    vocab = ("\n".join(bert_like_vocab()) + "\n").encode()
    hub = start_hub(
        {(MODEL_REPO, "model.pt"): checkpoint.read_bytes(), (VOCAB_REPO, "vocab.txt"): vocab},
        lfs={"model.pt"},
    )
    hub.state.corrupt_gets = 1  # the first transfer of the checkpoint arrives damaged
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("LOTLIP_MODELS_DIR", str(tmp_path / "models"))
    try:
        status, out, err = cli("model", "download", NAME, model=None)
    finally:
        hub.shutdown()
    assert status == EXIT_OK, err
    assert f"installed {NAME}" in out

    status, out, _ = cli("model", "list", "--json", model=None)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows[NAME]["installed"] is True and rows[NAME]["kind"] == "official"
