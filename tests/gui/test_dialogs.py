"""Models and settings dialogs, the model download process, desktop integration."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.gui.download import ModelDownload
from app.gui.icons import ICON_NAME, PNG_SIZES, app_icon, icons_dir

ROOT = Path(__file__).resolve().parents[2]
TINY = "gui-tiny"


@pytest.fixture
def say_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answer every confirmation with Yes (and swallow information boxes)."""
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: QMessageBox.StandardButton.Ok)


def test_models_dialog_lists_uses_and_removes_models(
    qtbot: Any,
    make_window: Any,
    install_model: Any,
    scenes_dir: Path,
    index_now: Any,
    say_yes: None,
) -> None:
    folder = install_model("gui-extra")
    window = make_window()
    session = window.session
    index_now(session, [scenes_dir])
    dialog = window.open_models()
    qtbot.waitUntil(lambda: dialog.panel.loaded, timeout=30_000)
    entries = {e.name: e for e in dialog.panel.table.entries}
    assert entries[TINY].kind == "imported" and entries[TINY].size_bytes
    official = entries["lotlip-vit-b16"]
    assert official.kind == "official" and not official.installed  # offered for download
    row = dialog.panel.table.findItems(TINY, Qt.MatchFlag.MatchStartsWith)[0]
    assert row.text(0).endswith("(in use)") and row.text(3) == "8"  # indexed photos

    dialog.panel.table.select("lotlip-vit-b16")
    assert dialog.panel.download_button.isEnabled() and not dialog.use_button.isEnabled()

    dialog.panel.table.select("gui-extra")
    assert dialog.use_button.isEnabled() and dialog.remove_button.isEnabled()
    dialog.use_selected()  # not indexed with it yet: "index the rest?" -> yes
    assert session.setting("model") == "gui-extra"
    qtbot.waitUntil(
        lambda: session.indexing is not None and not session.indexing.running, timeout=60_000
    )
    assert session.choice.name == "gui-extra"
    assert session.library.store.counts().embeddings["gui-extra"] == 8

    qtbot.waitUntil(lambda: dialog.panel.loaded and dialog.panel.selected() is not None)
    dialog.panel.table.select("gui-extra")
    task = dialog.remove_selected()
    assert task is not None
    qtbot.waitUntil(lambda: not folder.exists(), timeout=30_000)
    qtbot.waitUntil(lambda: session.setting("model") is None, timeout=30_000)


def test_models_dialog_offers_an_imported_model_only_when_the_library_can_use_it(
    qtbot: Any,
    make_window: Any,
    make_session: Any,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After Import… the new model is selected; "Use for this library" is offered (button and
    words) for a library that can take it, and not for a read-only one."""
    import shutil

    from lotlip import registry
    from tests.app.test_cli_faults import read_only
    from tests.gui.conftest import make_model

    source = isolated / "source"
    make_model("gui-imported", seed=7).save(source)

    def import_into(window: Any, name: str) -> Any:
        dialog = window.open_models()
        qtbot.waitUntil(lambda: dialog.panel.loaded, timeout=30_000)
        dialog.panel.start_import(source, name, None)
        qtbot.waitUntil(lambda: dialog.panel.selected() is not None, timeout=30_000)
        qtbot.waitUntil(
            lambda: not dialog.panel.busy() and dialog.panel.selected().name == name,
            timeout=30_000,
        )
        return dialog

    try:
        window = make_window()
        dialog = import_into(window, "gui-imported")
        assert dialog.use_button.isEnabled()
        assert "Use for this library" in dialog.panel.status.text()
        window.session.shutdown()

        with read_only(isolated / "library") as ro:
            monkeypatch.setenv("LOTLIP_SEARCH_LIBRARY", str(ro))
            session = make_session(None)
            assert session.read_only
            dialog = import_into(make_window(session), "gui-imported-2")
            assert not dialog.use_button.isEnabled()
            status = dialog.panel.status.text()
            assert "Use for this library" not in status and "read-only" in status
            session.shutdown()
    finally:
        for name in ("gui-imported", "gui-imported-2"):
            shutil.rmtree(registry.models_home() / name, ignore_errors=True)


def test_settings_dialog_writes_library_settings(
    qtbot: Any, make_window: Any, say_yes: None, tmp_path: Path
) -> None:
    from app.gui.config import GuiSettings

    window = make_window()
    dialog = window.open_settings()
    qtbot.waitUntil(lambda: dialog.model.findData(TINY) >= 0, timeout=30_000)
    dialog.results.setValue(42)
    dialog.excludes.setPlainText("*.tmp\n*/Trash/*")
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.model.setCurrentIndex(dialog.model.findData(TINY))
    dialog.library.setText(str(tmp_path / "elsewhere"))
    dialog.accept()
    session = window.session
    assert session.result_count == 42
    assert session.excludes == ["*.tmp", "*/Trash/*"]
    assert session.library.store.get_setting("result_count") == 42  # shared with the CLI
    assert GuiSettings().library_dir == str(tmp_path / "elsewhere")


def test_settings_precision_reloads_the_model_at_that_precision(
    qtbot: Any, make_window: Any, say_yes: None
) -> None:
    window = make_window()
    session = window.session
    qtbot.waitUntil(lambda: session.choice is not None, timeout=60_000)
    dialog = window.open_settings()
    assert dialog.precision.currentData() == "auto"
    dialog.precision.setCurrentIndex(dialog.precision.findData("int8"))
    dialog.accept()
    assert session.library.store.get_setting("precision") == "int8"  # kept with the library
    qtbot.waitUntil(
        lambda: session.choice is not None and session.choice.model.precision == "int8",
        timeout=60_000,
    )
    assert window.open_settings().precision.currentData() == "int8"


def test_download_of_an_unknown_model_reports_the_error(qtbot: Any) -> None:
    download = ModelDownload("no-such-model")
    with qtbot.waitSignal(download.finished, timeout=60_000) as blocker:
        download.start()
    ok, message = blocker.args
    assert not ok and "not an official model" in message


def test_desktop_entry_icon_and_python_m_app() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(ROOT / "resources" / "lotlip-search.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Exec"].startswith("lotlip-search-gui")
    assert desktop["Icon"] == ICON_NAME and desktop["Type"] == "Application"
    for size in PNG_SIZES:
        assert (icons_dir() / f"{ICON_NAME}-{size}.png").is_file()
    assert (icons_dir() / f"{ICON_NAME}.svg").is_file()
    usage = subprocess.run(
        [sys.executable, "-m", "app", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert usage.returncode == 0 and "lotlip-search-gui" in usage.stdout


def test_app_icon_has_every_size(qapp: Any) -> None:
    sizes = {(s.width(), s.height()) for s in app_icon().availableSizes()}
    assert {(16, 16), (32, 32), (256, 256)} <= sizes


def test_models_dialog_download_confirms_size_and_offline_path_is_selectable(
    qtbot: Any, make_window: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from app.gui.models_panel import proposed_import_name
    from lotlip import registry

    asked: list[str] = []

    def refuse(_parent: Any, _title: str, text: str, *a: Any, **k: Any) -> Any:
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", refuse)
    window = make_window()
    dialog = window.open_models()
    qtbot.waitUntil(lambda: dialog.panel.loaded, timeout=30_000)
    panel = dialog.panel
    panel.table.select("lotlip-vit-b16")
    panel.download_button.click()
    size_mb = registry.OFFICIAL_MODELS["lotlip-vit-b16"].approx_mb
    assert len(asked) == 1 and "lotlip-vit-b16" in asked[0]
    assert f"(about {size_mb} MB)" in asked[0]  # the registry's size, in the question
    assert panel.download is None  # refused: nothing started

    # the offline instructions name the dialog's own Import… and their links can be copied
    info = registry.OFFICIAL_MODELS["lotlip-vit-b16"]
    text = panel.status.text()
    assert f'href="{info.url}"' in text and f'href="{info.vocab_url}"' in text
    assert "Import…" in text
    flags = panel.status.textInteractionFlags()
    assert flags & Qt.TextInteractionFlag.TextSelectableByMouse
    assert flags & Qt.TextInteractionFlag.LinksAccessibleByMouse

    # Import proposes the selected model's name (the user fetched its files by hand)
    checkpoint = tmp_path / "holiday-tune" / "model.pt"
    assert proposed_import_name(panel.selected(), checkpoint) == "lotlip-vit-b16"
    # installed: the CLI's rule (one rule for both): a generic file name like model.pt says
    # nothing, so its folder names the model; any other file goes by its own name
    panel.table.select(TINY)
    assert proposed_import_name(panel.selected(), checkpoint) == "holiday-tune"
    assert proposed_import_name(panel.selected(), tmp_path / "beach-v2.pt") == "beach-v2"
    assert "href" not in panel.status.text()
