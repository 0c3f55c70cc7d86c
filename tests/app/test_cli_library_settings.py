"""The CLI runs models where and how the library's settings say (the app's Settings dialog
writes them, "shared with the command line"); ``--device`` and ``--precision`` still win."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.cli import EXIT_OK
from app.library.library import PRECISION_KEY, Library
from tests.app.conftest import RANDOM_MODEL, draw_folder


def set_settings(library: Path, **values: str) -> None:
    with Library.open(library) as lib:
        for key, value in values.items():
            lib.store.set_setting(key, value)


def indexed_precision(library: Path) -> str:
    with Library.open(library) as lib:
        record = lib.store.get_model(RANDOM_MODEL)
    assert record is not None
    return str(record.metadata[PRECISION_KEY])


def test_precision_setting_is_used_unless_the_flag_says_otherwise(cli, tmp_path: Path) -> None:
    library, photos = tmp_path / "library", tmp_path / "photos"
    draw_folder(photos, 3)
    set_settings(library, precision="int8", device="cpu")
    status, _, err = cli("index", str(photos))
    assert status == EXIT_OK, err
    assert indexed_precision(library) == "int8"

    draw_folder(photos, 2, start=3)  # something new, so the run records its precision again
    status, _, err = cli("--precision", "fp32", "index", str(photos))
    assert status == EXIT_OK, err
    assert indexed_precision(library) == "fp32"

    set_settings(library, precision="fp16")  # a GPU precision, on this CPU
    status, _, err = cli("search", "a red block")
    assert status != EXIT_OK
    assert "fp16 is for GPUs" in err and "the library's precision setting" in err, err
    status, _, err = cli("--precision", "fp32", "search", "a red block")
    assert status == EXIT_OK, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_setting_is_used_unless_the_flag_says_otherwise(cli, tmp_path: Path) -> None:
    library, photos = tmp_path / "library", tmp_path / "photos"
    draw_folder(photos, 3)
    status, _, err = cli("index", str(photos))
    assert status == EXIT_OK, err
    set_settings(library, device="cuda")
    status, _, err = cli("search", "a red block")
    assert status != EXIT_OK
    assert "CUDA" in err and "the library's device setting" in err, err
    status, _, err = cli("--device", "cpu", "search", "a red block")
    assert status == EXIT_OK, err


def test_the_app_writes_the_settings_the_cli_reads() -> None:
    from app.gui import config
    from app.library.models import DEVICE_SETTING, MODEL_SETTING, PRECISION_SETTING

    assert (config.LIB_MODEL, config.LIB_DEVICE, config.LIB_PRECISION) == (
        MODEL_SETTING,
        DEVICE_SETTING,
        PRECISION_SETTING,
    )
