"""A read-only library in the app: it opens, browses and searches; every control that would
write is off and says why; nothing in the library changes (the CLI's rule, tests/app)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from app.gui.actions import results_context_menu
from tests.app.test_cli_faults import read_only


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def is_off(control: Any) -> bool:
    return not control.isEnabled() and "read-only" in control.toolTip()


def test_read_only_library_searches_and_writes_nothing(
    qtbot: Any,
    make_session: Any,
    make_window: Any,
    scenes_dir: Path,
    index_now: Any,
    searcher_model: str,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library = isolated / "library"
    indexing = make_session(searcher_model, load=True)
    index_now(indexing, [scenes_dir])
    indexing.shutdown()
    before = digest(library)

    with read_only(library) as ro:
        monkeypatch.setenv("LOTLIP_SEARCH_LIBRARY", str(ro))
        session = make_session(None)
        assert session.read_only
        window = make_window(session)
        qtbot.waitUntil(lambda: window.results.rowCount() == 8, timeout=20_000)
        window.search_text("a red circle in the middle")
        qtbot.waitUntil(
            lambda: window.outcome is not None and window.outcome.request.mode == "text",
            timeout=20_000,
        )
        assert len(window.outcome.items) == 8

        assert window.read_only_label.isVisible()
        assert not session.watching  # watch folders are on by default, but never here
        for action in (
            window.index_action,
            window.update_action,
            window.remove_action,
            window.captions_action,
            window.import_captions_action,
        ):
            assert is_off(action), action.text()
            action.setEnabled(True)  # whatever enables it again, it stays off
            assert not action.isEnabled()
        for button in (window.welcome.start_button, window.paragraph.saved.save_button):
            assert is_off(button)
        window.view.setCurrentIndex(window.results.index(0))  # the preview re-enables buttons
        assert window.preview.open_button.isEnabled() and is_off(window.preview.captions_button)
        menu = results_context_menu(window, window.selected_items())
        states = {a.text(): a.isEnabled() for a in menu.actions() if a.text()}
        assert states["Find similar"] and not states["Remove from library"]
        assert not states["Captions…"]

        window.update_index()  # F5 is off too; called anyway, it says why
        assert "read-only" in window.statusBar().currentMessage()
        assert window.photos.remove(confirm=False) is None
        assert session.index_soon(None) is None and not session.busy()

        settings = window.open_settings()
        assert is_off(settings.device) and is_off(settings.watch)
        models = window.open_models()
        models._update_buttons()
        assert is_off(models.use_button)
        folders = window.library_tools.open_folders()
        assert all(
            is_off(b)
            for b in (
                folders.add_button,
                folders.remove_button,
                folders.exclude_button,
                folders.rescan_button,
            )
        )
        errors = window.library_tools.open_errors(None)
        assert is_off(errors.retry_all_button)
        finetune = window.open_finetune()
        assert is_off(finetune.switch_button)
        settings.accept()  # OK in the settings dialog writes nothing either
        window.close()
        session.shutdown()
    assert digest(library) == before
