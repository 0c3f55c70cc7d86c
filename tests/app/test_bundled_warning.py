"""The bundled-model warning is said once per library, and only when no other model is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import EXIT_OK
from lotlip import registry
from tests.app.conftest import draw_folder

pytestmark = pytest.mark.skipif(
    not registry.is_installed(registry.BUNDLED_MODEL), reason="the bundled model is not shipped"
)
WARNING = "bundled model lotlip-tiny"


@pytest.fixture
def nothing_but_the_bundled_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf_constants

    (tmp_path / "models").mkdir()
    monkeypatch.setenv("LOTLIP_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))


def test_warned_once_per_library(cli, nothing_but_the_bundled_model: None, tmp_path: Path) -> None:
    draw_folder(tmp_path / "photos", 2)
    status, _, err = cli("index", str(tmp_path / "photos"), model=None)
    assert status == EXIT_OK and WARNING in err  # the first time: say it

    for args in (("search", "a red shape"), ("index", str(tmp_path / "photos"))):
        status, _, err = cli(*args, model=None)
        assert status == EXIT_OK and WARNING not in err, args  # not on every command

    other = tmp_path / "another-library"
    status, _, err = cli("index", str(tmp_path / "photos"), library=other, model=None)
    assert WARNING in err  # a new library is told too


def test_no_warning_when_the_bundled_model_was_chosen(
    cli, nothing_but_the_bundled_model: None, tmp_path: Path
) -> None:
    draw_folder(tmp_path / "photos", 2)
    for args in (("index", str(tmp_path / "photos")), ("search", "a red shape")):
        status, _, err = cli(*args, model=registry.BUNDLED_MODEL)
        assert status == EXIT_OK and WARNING not in err, args
