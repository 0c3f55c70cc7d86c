"""``lotlip-search``: every command, its output shapes and its exit statuses."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from app.cli import EXIT_ERROR, EXIT_NO_MODEL, EXIT_OK, EXIT_USAGE, main
from tests.app.conftest import RANDOM_MODEL, draw_folder, draw_image
from tests.builders import SMALL_OFFICIAL, bert_like_vocab, official_state_dict

COMMANDS = [
    [], ["index"], ["search"], ["status"], ["errors"], ["forget"], ["model"], ["model", "list"],
    ["model", "download"], ["model", "import"], ["model", "use"], ["model", "remove"], ["demo"],
    ["finetune"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "usage:" in out
    if command and command[0] != "finetune":
        assert "exit status" in out  # the exit codes are documented everywhere
    if not command:
        for word in ("index", "search", "status", "errors", "forget", "model", "demo"):
            assert word in out


def test_usage_errors_exit_2(cli) -> None:
    assert cli("frobnicate")[0] == EXIT_USAGE
    assert cli("search", "--top", "many")[0] == EXIT_USAGE
    status, _, err = cli("search")
    assert status == EXIT_USAGE and "description" in err
    status, _, err = cli("search", "sunset", "--from", "last year")
    assert status == EXIT_USAGE and "not a date" in err
    status, _, err = cli("index")
    assert status == EXIT_USAGE and "give a folder" in err


def test_missing_model_exits_4(cli, tmp_path: Path) -> None:
    draw_folder(tmp_path / "p", 1)
    status, _, err = cli("index", str(tmp_path / "p"), model="no-such-model")
    assert status == EXIT_NO_MODEL and "no-such-model" in err
    status, _, err = cli("model", "use", "no-such-model")
    assert status == EXIT_NO_MODEL


def test_index_search_status_errors_forget(cli, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    draw_folder(photos, 7)
    draw_folder(photos / "drafts", 3, start=7)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    status, out, err = cli("index", str(photos), "--json", "--exclude", "*.tmp")
    assert status == EXIT_OK, err
    counts = json.loads(out)
    keys = ("added", "updated", "unchanged", "moved", "removed", "failed")
    assert {k: counts[k] for k in keys} == {
        "added": 10, "updated": 0, "unchanged": 0, "moved": 0, "removed": 0, "failed": 1,
    }  # fmt: skip
    status, out, _ = cli("index", "--json")  # no path: every known folder again
    assert status == EXIT_OK and json.loads(out)["unchanged"] == 10

    status, out, err = cli("search", "a red block and a blue oval", "--top", "3", "--json")
    assert status == EXIT_OK, err
    data = json.loads(out)
    assert data.keys() >= {"query", "model", "tokens", "truncated", "results"}
    assert data["query"] == "a red block and a blue oval" and data["model"] == RANDOM_MODEL
    assert isinstance(data["tokens"], int) and data["tokens"] > 0 and data["truncated"] is False
    assert len(data["results"]) == 3
    assert all({"path", "score"} <= r.keys() for r in data["results"])
    scores = [r["score"] for r in data["results"]]
    assert scores == sorted(scores, reverse=True)

    status, out, _ = cli("search", "a red block", "--top", "4")
    lines = out.strip().splitlines()
    assert status == EXIT_OK and len(lines) == 4 and str(photos) in lines[0]

    status, out, _ = cli("status")
    assert status == EXIT_OK and str(photos) in out and "10 photos" in out
    status, out, _ = cli("status", "--json")
    data = json.loads(out)
    assert data["images"] == 10 and data["failures"] == 1
    assert data["embeddings"] == {RANDOM_MODEL: 10}
    assert data["folders"][0]["excludes"] == ["*.tmp"]

    status, out, _ = cli("errors")
    assert status == EXIT_OK and "broken.jpg" in out
    status, out, _ = cli("errors", "--json")
    assert [Path(e["path"]).name for e in json.loads(out)] == ["broken.jpg"]

    status, out, _ = cli("forget", str(photos / "drafts"))
    assert status == EXIT_OK and "forgot 3" in out
    status, out, _ = cli("index", "--json")  # the forgotten sub-folder stays out
    assert json.loads(out)["added"] == 0
    status, out, _ = cli("search", "anything", "--top", "50", "--json")
    assert len(json.loads(out)["results"]) == 7
    status, out, _ = cli("forget", str(photos))
    assert status == EXIT_OK and "forgot 7" in out
    status, out, _ = cli("status", "--json")
    assert json.loads(out)["images"] == 0 and json.loads(out)["folders"] == []


def test_status_lists_the_excluded_folders(cli, tmp_path: Path) -> None:
    """What `forget` and `--exclude` keep out of a folder is shown by `status`, text and JSON."""
    photos = tmp_path / "photos"
    draw_folder(photos, 2)
    draw_folder(photos / "drafts", 1, start=2)
    assert cli("index", str(photos), "--exclude", "*.png")[0] == EXIT_OK
    assert cli("forget", str(photos / "drafts"))[0] == EXIT_OK

    status, out, _ = cli("status")

    assert status == EXIT_OK
    assert "excluded: *.png, /drafts" in out
    folder = json.loads(cli("status", "--json")[1])["folders"][0]
    assert folder["excludes"] == ["*.png", "/drafts"]


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small random model saved in the official open_clip layout (.pt) plus its vocab.txt."""
    folder = tmp_path_factory.mktemp("official")
    torch.save({"state_dict": official_state_dict(**SMALL_OFFICIAL, seed=3)}, folder / "model.pt")
    (folder / "vocab.txt").write_text("\n".join(bert_like_vocab()) + "\n", encoding="utf-8")
    return folder / "model.pt", folder / "vocab.txt"


def test_model_list_import_use_remove(cli, official_checkpoint, tmp_path: Path) -> None:
    checkpoint, vocab = official_checkpoint
    status, out, _ = cli("model", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert status == EXIT_OK
    assert rows["lotlip-vit-b16"]["installed"] is False and RANDOM_MODEL in rows
    assert rows[RANDOM_MODEL]["in_use"] is True  # --model given

    install = ("model", "import", str(checkpoint), "--vocab", str(vocab), "--name", "mine")
    status, out, err = cli(*install)
    assert status == EXIT_OK, err
    assert "installed mine" in out
    status, _, err = cli(*install)
    assert status == EXIT_ERROR and "--replace" in err
    status, out, _ = cli("model", "list", model=None)
    assert status == EXIT_OK and "mine" in out

    draw_folder(tmp_path / "p", 3)
    assert cli("init")[0] == EXIT_OK  # `model use` needs a library; only init/index make one
    assert cli("model", "use", "mine", model=None)[0] == EXIT_OK
    status, out, err = cli("index", str(tmp_path / "p"), "--json", model=None)
    assert status == EXIT_OK, err
    assert json.loads(out)["model"] == "mine"  # the library's setting was used
    status, out, _ = cli("search", "a red dog on grass", "--json", model=None)
    assert json.loads(out)["model"] == "mine" and len(json.loads(out)["results"]) == 3

    status, out, _ = cli("model", "remove", "mine", model=None)
    assert status == EXIT_OK and "keeps its 3 vectors" in out
    assert cli("model", "remove", "mine", model=None)[0] == EXIT_NO_MODEL

    bad = tmp_path / "evil.pt"
    bad.write_bytes(b"this is not a checkpoint")
    status, _, err = cli("model", "import", str(bad), "--vocab", str(vocab), "--name", "evil")
    assert status == EXIT_ERROR and "evil.pt" in err


def test_import_offers_model_use_only_when_the_library_can_take_it(
    cli, official_checkpoint, tmp_path: Path
) -> None:
    """The `model use` hint after an import: not without a library, not for the model the
    library uses already, not for a read-only library; otherwise it is given."""
    from tests.app.test_cli_faults import read_only

    checkpoint, vocab = official_checkpoint
    hint = "lotlip-search model use"

    def install(name: str, *extra: str, library: Path | None = None) -> str:
        argv = ("model", "import", str(checkpoint), "--vocab", str(vocab), "--name", name)
        status, out, err = cli(*argv, *extra, library=library)
        assert status == EXIT_OK, err
        assert f"installed {name}" in out
        return out

    out = install("first")  # no library yet: nothing can use it
    assert hint not in out and "no library" in out
    assert cli("init")[0] == EXIT_OK
    assert f"{hint} second" in install("second")
    assert cli("model", "use", "second", model=None)[0] == EXIT_OK
    out = install("second", "--replace")
    assert hint not in out and "uses second already" in out
    with read_only(tmp_path / "library") as ro:
        out = install("third", library=ro)
    assert hint not in out and "read-only" in out
    for name in ("first", "second", "third"):
        assert cli("model", "remove", name, model=None)[0] == EXIT_OK


def test_import_refuses_a_checkpoint_whose_heads_cannot_be_told(
    cli, official_checkpoint, tmp_path: Path
) -> None:
    _, vocab = official_checkpoint
    sizes = {**SMALL_OFFICIAL, "width": 96, "embed_dim": 96}
    torch.save(official_state_dict(**sizes, seed=4), tmp_path / "odd.pt")
    status, _, err = cli("model", "import", str(tmp_path / "odd.pt"), "--vocab", str(vocab))
    assert status == EXIT_ERROR and "attention heads" in err and "96-wide image" in err
    assert "odd" not in cli("model", "list", model=None)[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_download_offline_gives_instructions(cli, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    status, _, err = cli("model", "download", "lotlip-vit-b16")
    assert status == EXIT_ERROR
    assert "lotlip-search model import model.pt --vocab vocab.txt --name lotlip-vit-b16" in err
    assert "huggingface.co/weiwu-ww/LoTLIP-ViT-B-16-100M" in err
    assert cli("model", "download", "lotlip-vit-huge")[0] == EXIT_USAGE


def test_demo_runs_end_to_end(cli, ranking_model: str, tmp_path: Path) -> None:
    lib = tmp_path / "library"
    status, out, err = cli("demo", "--count", "10", "--queries", "2", "--keep", model=ranking_model)
    assert status == EXIT_OK, err
    assert "Query 1 of 2" in out and "Query 2 of 2" in out
    assert "came back" in out and "descriptions found their scene first" in out
    assert "lotlip-search search" in out  # how to try it yourself
    assert len(list((lib / "demo").glob("*.png"))) == 10
    status, out, _ = cli("status", "--json", model=ranking_model)
    assert json.loads(out)["images"] == 10
    status, out, err = cli("demo", "--count", "10", "--queries", "1", model=ranking_model)
    assert status == EXIT_OK, err
    assert not (lib / "demo").exists()  # without --keep the demo cleans up after itself
    assert json.loads(cli("status", "--json")[1])["images"] == 0


def test_finetune_is_handed_to_training(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", "--help"]) == EXIT_OK
    assert "finetune" in capsys.readouterr().out
    assert main(["finetune", "--no-such-option"]) == EXIT_USAGE


def test_unicode_and_odd_paths_print(cli, tmp_path: Path) -> None:
    folder = tmp_path / "fotos ünï"
    draw_image(folder / "été 写真.jpg", "jpeg")
    status, out, err = cli("index", str(folder))
    assert status == EXIT_OK, err
    status, out, _ = cli("search", "summer", "--top", "1")
    assert "été 写真.jpg" in out


def test_cli_and_library_import_without_qt() -> None:
    """``app.library`` and the CLI never import Qt; ``lotlip-search --help`` not even torch."""
    import subprocess
    import sys

    from tests.app.conftest import ROOT

    code = (
        "import sys, app.cli; light = [m for m in sys.modules if m.split('.')[0] == 'torch']; "
        "import app.library.library, app.library.indexer, app.library.search, "
        "app.library.models, app.library.demo_gallery, app.commands.demo; "
        "qt = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6')]; "
        "print(light, qt); sys.exit(1 if light or qt else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_refuses_a_name_that_leaves_the_models_folder(
    cli, official_checkpoint, models_dir: Path
) -> None:
    checkpoint, vocab = official_checkpoint
    for name in ("../outside", ".hidden"):
        status, _, err = cli(
            "model", "import", str(checkpoint), "--vocab", str(vocab), "--name", name
        )
        assert status == EXIT_ERROR and name in err
    assert not (models_dir.parent / "outside").exists() and not (models_dir / ".hidden").exists()


def test_import_model_copies_a_model_folder(models_dir: Path, tmp_path: Path) -> None:
    from app.library.models import ModelImportError, import_model
    from lotlip import registry

    try:
        target = import_model(models_dir / RANDOM_MODEL, "copied")
        assert target == models_dir / "copied" and registry.is_installed("copied")
        assert not (models_dir / "copied.partial").exists()
        with pytest.raises(FileExistsError):
            import_model(models_dir / RANDOM_MODEL, "copied")
        with pytest.raises(ModelImportError, match="not a model folder"):
            import_model(tmp_path, "not-a-model")
    finally:
        registry.remove_model("copied")
