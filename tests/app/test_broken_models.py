"""A broken or half-written model folder is listed with its reason and breaks nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.cli import EXIT_OK
from tests.app.conftest import RANDOM_MODEL, draw_folder


@pytest.fixture
def home_with_broken_models(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A models folder with the micro model and four damaged ones."""
    home = tmp_path / "models"
    shutil.copytree(models_dir / RANDOM_MODEL, home / RANDOM_MODEL)
    good = home / RANDOM_MODEL
    garbage = shutil.copytree(good, home / "garbled-config")
    (garbage / "config.json").write_text("{ this is not json", encoding="utf-8")
    half = home / "half-written"  # an interrupted save: weights, no config yet
    half.mkdir()
    shutil.copy(good / "model.safetensors", half / "model.safetensors")
    cut = shutil.copytree(good, home / "cut-weights")
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    foreign = shutil.copytree(good, home / "foreign-config")
    (foreign / "config.json").write_text(json.dumps({"format": "lotlip-search/1"}), "utf-8")
    monkeypatch.setenv("LOTLIP_MODELS_DIR", str(home))
    return home


BROKEN = {
    "garbled-config": "config.json",
    "half-written": "config.json",
    "cut-weights": "model.safetensors",
    "foreign-config": "config.json",
}


def test_model_list_names_each_broken_folder_and_why(cli, home_with_broken_models: Path) -> None:
    status, out, err = cli("model", "list", "--json", model=None)
    assert status == EXIT_OK, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows[RANDOM_MODEL]["installed"] is True and "problem" not in rows[RANDOM_MODEL]
    for name, culprit in BROKEN.items():
        assert rows[name]["installed"] is False and rows[name]["kind"] == "broken"
        assert culprit in rows[name]["problem"], rows[name]

    status, out, _ = cli("model", "list", model=None)
    assert status == EXIT_OK
    line = next(x for x in out.splitlines() if "garbled-config" in x)
    assert "broken" in line and "config.json" in line


def test_broken_folders_break_no_other_command(
    cli, home_with_broken_models: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    draw_folder(photos, 3)
    status, _, err = cli("index", str(photos))  # creates the library (with --model)
    assert status == EXIT_OK, err
    assert cli("model", "use", RANDOM_MODEL, model=None)[0] == EXIT_OK
    for args in (("index", str(photos)), ("status",), ("search", "a red shape"), ("errors",)):
        status, _, err = cli(*args, model=None)
        assert status == EXIT_OK, (args, err)
    status, _, err = cli("model", "use", "garbled-config", model=None)
    assert status != EXIT_OK and "garbled-config" in err

    status, _, err = cli("model", "remove", "half-written", model=None)
    assert status == EXIT_OK, err
    assert not (home_with_broken_models / "half-written").exists()
