"""The main window: query box, filters, the thumbnail grid, the preview pane and the status bar.

The window holds no search or indexing logic. It turns user actions into
:class:`~app.gui.requests.SearchRequest` objects and session calls, and shows what the session
reports. Layout::

    [ bundled-model banner                                              ]
    [ query box (multi-line)                        ] [Search]
    [ folder / date filters ] [example chip] [not: …]  87 / 124 word pieces
    [ summary · sort · size ][                                          ]
    [ results grid (or welcome page)          ][ preview pane           ]
    [ status: counts · model · indexing progress                        ]

Menus and the results' context menu are tables in :mod:`app.gui.actions`, what they do to
photos is :mod:`app.gui.photo_actions`, and the full-screen viewer is :mod:`app.gui.viewer`.
The window never grows by itself: every text that could be long is elided
(:class:`~app.gui.panels.ElidedLabel`) and only a size the user chose is saved.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QResizeEvent,
    QShortcut,
    QShowEvent,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QSlider,
    QSplitter,
    QStackedWidget,
    QWidget,
)

from app.gui import sentences
from app.gui import widgets as ui
from app.gui.actions import build_menus, results_context_menu
from app.gui.config import THUMB_MAX, THUMB_MIN, GuiSettings
from app.gui.filters import FilterBar
from app.gui.formatting import count_text
from app.gui.library_tools import install_library_tools
from app.gui.panels import ElidedLabel, EmptyState, ModelBanner, WelcomePage, demo_ancestor
from app.gui.photo_actions import PhotoActions
from app.gui.preview import PreviewPane
from app.gui.query import QueryEdit, WordPieceCounter
from app.gui.read_only import reason, show_read_only
from app.gui.requests import Filters, SearchOutcome, SearchRequest, same_query
from app.gui.results import ResultItem, ResultsModel, local_image_paths
from app.gui.results_view import ResultsView
from app.gui.session import IndexingRun, LibraryInfo, Session
from app.gui.status import IndexingStatus, counts_line
from app.gui.thumbnails import ThumbnailCache
from app.gui.viewer import PhotoViewer

SORT_LABELS = {
    "relevance": "Best match",
    "newest": "Newest first",
    "oldest": "Oldest first",
    "name": "File name",
}
PAGE_WELCOME, PAGE_RESULTS, PAGE_EMPTY = 0, 1, 2
MODEL_LOAD_DELAY_MS = 120
LIVE_BROWSE_LIMIT = 200
QUIT_WAIT_MS = 600  # how long quitting waits for background work to stop at a safe point
DEFAULT_SIZE = QSize(1180, 760)


class ExampleChip(QFrame):
    """ "Photos like IMG_0042.jpg  ✕" while searching by example. Signal ``cleared()``."""

    cleared = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exampleChip")
        self.label = ElidedLabel("", self, Qt.TextElideMode.ElideMiddle)
        self.label.setMaximumWidth(260)
        clear = ui.dismiss_button(self, "Stop searching by example", self.cleared)
        ui.hbox(self.label, clear, parent=self, margins=(8, 2, 2, 2))
        self.hide()

    def show_for(self, name: str, path: str) -> None:
        """Show "Photos like ``name``", with ``path`` as the tooltip."""
        self.label.setText(f"Photos like {name}")
        self.setToolTip(path)
        self.show()


class MainWindow(QMainWindow):
    """The search window (see the module docstring)."""

    def __init__(self, session: Session, settings: GuiSettings | None = None) -> None:
        super().__init__()
        self.session = session
        self.settings = settings or GuiSettings()
        self.setWindowTitle("LoTLIP Search")
        self.setAcceptDrops(True)
        self.request: SearchRequest | None = None
        self.outcome: SearchOutcome | None = None
        self._pending_request: SearchRequest | None = None
        self._closing = False
        self._welcome_dismissed = False
        self.dialogs: dict[str, QWidget] = {}
        self.viewer: PhotoViewer | None = None
        self.demo_examples: QWidget | None = None  # the demo's example queries (app.gui.demo)
        self._user_size: QSize | None = None  # the last size the user (or a restore) chose

        self.thumbnails = ThumbnailCache(session.thumbnails_dir, parent=self)
        self.photos = PhotoActions(self)  # open, show in folder, copy, export, remove
        self.results = ResultsModel(self)
        self.results.set_items([], self.browse_order())
        self._build_widgets()
        self.paragraph = sentences.attach(self)  # sentence strips/states, badges, saved searches
        self.menus = build_menus(self)
        QShortcut(QKeySequence("Ctrl+F"), self, self.focus_query)
        self._connect_session()
        self.library_tools = install_library_tools(self)  # Folders, errors, Resume, watching
        show_read_only(self)  # a read-only library: say so, turn off what would write
        self._restore_layout()

        self._show_page(PAGE_EMPTY)
        self._show_empty("Opening the library…")
        self._shown_once = False
        session.refresh_info()

    # -- construction ---------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.banner = ModelBanner(self)
        self.banner.hide()
        self.banner.getOfficialRequested.connect(lambda: self.open_models(download=True))

        self.query = QueryEdit(self)
        self.query.submitted.connect(self.search_text)
        self.query.typingPaused.connect(self._typing_paused)
        self.query.imageDropped.connect(self.search_like)
        self.counter = WordPieceCounter(self.query, self)
        self.counter.levelChanged.connect(self._counter_level)
        self.search_button = ui.button(
            "Search",
            self,
            lambda: self.search_text(self.query.text()),
            name="searchButton",
            tip="Search (Enter)",
        )
        self.search_button.setDefault(True)
        self.filters = FilterBar(self)
        self.filters.changed.connect(self._filters_changed)
        self.example = ExampleChip(self)
        self.example.cleared.connect(self._clear_example)
        self.not_edit = QLineEdit(self)
        self.not_edit.setObjectName("notTerms")
        self.not_edit.setPlaceholderText("dogs, people")
        self.not_edit.setClearButtonEnabled(True)
        self.not_edit.setToolTip(
            "Steer away from these (like the command line's --not); Enter searches again"
        )
        self.not_edit.setMinimumWidth(90)
        self.not_edit.setMaximumWidth(200)
        self.not_edit.returnPressed.connect(self._not_changed)

        self.query_bar = QWidget(self)
        button_column = ui.vbox(self.search_button, ui.STRETCH)
        ui.hbox((self.query, 1), button_column, parent=self.query_bar, margins=0, spacing=8)
        self.filter_bar = QWidget(self)
        not_label = QLabel("Not:", self)
        not_label.setBuddy(self.not_edit)
        filters = ((self.filters, 1), self.example, not_label, self.not_edit, self.counter)
        ui.hbox(*filters, parent=self.filter_bar, margins=0)

        self.summary = ElidedLabel("", self)
        self.summary.setObjectName("resultsSummary")
        self.sort = ui.choices(self, "sortOrder", SORT_LABELS, self.browse_order())
        self.sort.currentIndexChanged.connect(self._sort_changed)
        self.size_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.size_slider.setObjectName("thumbSize")
        self.size_slider.setRange(THUMB_MIN, THUMB_MAX)
        self.size_slider.setSingleStep(16)
        self.size_slider.setPageStep(32)
        self.size_slider.setValue(self.settings.thumb_size)
        self.size_slider.setFixedWidth(120)
        self.size_slider.setToolTip("Thumbnail size (Ctrl+= / Ctrl+-)")
        self.size_slider.valueChanged.connect(self._size_changed)
        self.results_header = QWidget(self)
        header = ((self.summary, 1), QLabel("Sort:", self), self.sort, 10, QLabel("Size:", self))
        ui.hbox(*header, self.size_slider, parent=self.results_header, margins=(2, 0, 2, 0))

        self.view = ResultsView(self.thumbnails, self.settings.thumb_size, self)
        self.view.setModel(self.results)
        self.view.openRequested.connect(lambda _item: self.with_current(self.view_item))
        self.view.previewRequested.connect(self._preview_item)
        self.view.escapePressed.connect(self.focus_query)
        self.view.contextMenuRequested.connect(self._context_menu)
        self.empty = EmptyState(self)
        self.welcome = WelcomePage(self)
        self.welcome.chooseFoldersRequested.connect(self.open_wizard)
        self.welcome.demoRequested.connect(self.start_demo)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.empty)

        results_panel = QWidget(self)
        ui.vbox(self.results_header, (self.stack, 1), parent=results_panel, margins=0, spacing=4)

        self.preview = PreviewPane(self.session.tasks, self)
        self.preview.openRequested.connect(self.photos.open)
        self.preview.revealRequested.connect(self.photos.reveal)
        self.preview.copyRequested.connect(lambda item: self.photos.copy_paths([item]))
        self.preview.similarRequested.connect(self.search_similar)
        self.preview.captionsRequested.connect(lambda item: self.open_captions([item]))
        self.view.currentItemChanged.connect(self.preview.set_item)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(results_panel)
        self.splitter.addWidget(self.preview)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([820, 340])
        self.preview.setVisible(self.settings.preview_visible)

        central = QWidget(self)
        parts = (self.banner, self.query_bar, self.filter_bar, (self.splitter, 1))
        ui.vbox(*parts, parent=central, margins=(10, 8, 10, 4), spacing=6)
        self.setCentralWidget(central)

        self.counts_label = ElidedLabel("", self)
        self.counts_label.setObjectName("countsLabel")
        self.model_label = ElidedLabel("Loading model…", self)
        self.model_label.setObjectName("modelLabel")
        self.model_label.setMaximumWidth(320)
        self.indexing_status = IndexingStatus(self)
        self.indexing_status.stopRequested.connect(self.stop_indexing)
        self.indexing_status.detailsRequested.connect(self.open_wizard)
        bar = self.statusBar()
        bar.addWidget(self.counts_label, 1)
        bar.addPermanentWidget(self.indexing_status)
        bar.addPermanentWidget(self.model_label)

    def _connect_session(self) -> None:
        s = self.session
        s.modelLoading.connect(self._model_loading)
        s.modelReady.connect(self._model_ready)
        s.modelFailed.connect(self._model_failed)
        s.libraryInfo.connect(self._library_info)
        s.indexingStarted.connect(self._indexing_started)
        s.indexingDone.connect(self._indexing_done)
        s.searchDone.connect(self._search_done)
        s.searchFailed.connect(self._search_failed)
        if s.choice is not None:
            self._model_ready(s.choice)
        if s.indexing is not None and s.indexing.running:
            self._indexing_started(s.indexing)

    def _restore_layout(self) -> None:
        geometry = self.settings.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(self._default_size())
        self._user_size = self.size()
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)
        splitter = self.settings.splitter_state()
        if splitter is not None:
            self.splitter.restoreState(splitter)

    # -- session events -------------------------------------------------------------------------
    def _model_loading(self, name: str) -> None:
        self.model_label.setText(f"Loading model {name}…" if name else "Loading model…")
        self.statusBar().showMessage("Loading model…", 3000)

    def _model_ready(self, choice: Any) -> None:
        model = choice.model
        if self.statusBar().currentMessage().startswith("Loading model"):
            self.statusBar().clearMessage()
        tag = " (bundled demo)" if choice.is_bundled else ""
        self.model_label.setText(f"Model: {choice.name}{tag} on {model.device.type}")
        if choice.warning:
            self.model_label.setToolTip(choice.warning)
        self.counter.set_counter(model.tokenizer.count)
        demo = demo_ancestor(choice.name, getattr(model, "metadata", {}) or {})
        if choice.is_bundled or demo is not None:  # a fine-tune of the demo is still a demo
            self.banner.set_model(choice.name, choice.warning, demo)
            self.banner.show()
        else:
            self.banner.hide()
        if self._pending_request is not None:
            request, self._pending_request = self._pending_request, None
            self.run_request(request)
        resume = self.session.pending_resume()
        if resume is not None and not self.session.busy():
            self.statusBar().showMessage("Resuming the indexing interrupted last time…", 5000)
            self.session.start_indexing(resume.folders, model=resume.model, device=resume.device)

    def _model_failed(self, message: str) -> None:
        self.model_label.setText("No model")
        self.model_label.setToolTip(message)
        self._pending_request = None
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "The model could not be loaded",
            "Searching needs a model. Open Tools ▸ Models to download or import one.",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setDetailedText(message)
        open_models = box.addButton("Open Models…", QMessageBox.ButtonRole.ActionRole)
        box.exec()
        if box.clickedButton() is open_models:
            self.open_models(False)

    def _library_info(self, info: LibraryInfo) -> None:
        self.counts_label.setText(counts_line(info))
        self.filters.set_folders(info.folders)
        if info.empty and not self.session.busy() and not self._welcome_dismissed:
            self._show_page(PAGE_WELCOME)
            return
        if self.stack.currentIndex() == PAGE_WELCOME or self.request is None:
            self.browse()
        elif (
            self.request.mode == "browse"
            and self.session.busy()
            and self.results.rowCount() < LIVE_BROWSE_LIMIT
        ):
            self.browse()  # new photos appear while indexing (until the grid is well filled)

    def _indexing_started(self, run: IndexingRun) -> None:
        self.indexing_status.show_starting()
        run.progress.connect(self.indexing_status.show_progress)
        if self.stack.currentIndex() == PAGE_WELCOME:
            self._show_empty("Indexing your photos… they appear here as soon as they are ready.")

    def _indexing_done(self, run: IndexingRun) -> None:
        self.indexing_status.hide()
        report = run.report
        if run.error:
            self.statusBar().showMessage(f"Indexing failed: {run.error}", 15000)
        elif report is not None:
            verb = "Stopped" if report.cancelled else "Indexed"
            self.statusBar().showMessage(f"{verb}: {report.counts_text()}", 15000)
        if self._closing:  # quitting: nothing more to show
            return
        if self.request is None or self.request.mode == "browse":
            self.browse()

    # -- searching ------------------------------------------------------------------------------
    def _request(self, **what: Any) -> SearchRequest:
        """A request for ``what`` with the current filters, not-terms and result count."""
        return SearchRequest(
            filters=self.filters.filters(),
            top=self.session.result_count,
            not_text=self.not_edit.text(),
            **what,
        )

    def search_text(self, text: str) -> None:
        """Search for a paragraph (an empty query shows the whole library)."""
        self.query.pause.stop()  # e.g. the Search button: a pause must not repeat it
        self.example.hide()
        self.settings.add_recent_query(text)
        self.run_request(self._request(text=text))

    def _typing_paused(self, text: str) -> None:
        """Search what was typed, once typing pauses (only Enter adds it to the recent list).

        Nothing happens when the text asks what is already shown (a trailing space, an edit
        undone): the same question would only flash the grid.
        """
        request = self._request(text=text.strip())
        if self.request is not None and same_query(self.request, request):
            return
        self.example.hide()
        self.run_request(request)

    def search_like(self, path: Path | str) -> None:
        """Search for photos that look like the image at ``path``."""
        path = Path(path)
        self.example.show_for(path.name, str(path))
        self.run_request(self._request(like=path))

    def search_similar(self, item: ResultItem) -> None:
        """Photos similar to a library photo."""
        self.example.show_for(item.name, item.path)
        self.run_request(self._request(similar_to=item.id, similar_name=item.name))

    def browse(self) -> None:
        """Show the library's photos (no query), in the browsing order (newest first)."""
        self.run_request(SearchRequest(filters=self.filters.filters()), quiet=True)

    def run_request(self, request: SearchRequest, *, quiet: bool = False) -> None:
        """Send ``request`` to the session (queued until the model is ready if needed).

        A new search shows its best match first and says so in the sort box; browsing has no
        "best match" and shows its own order there.
        """
        previous, self.request = self.request, request
        if request.mode == "browse":
            self._show_sort(self.browse_order(), relevance=False)
        elif previous is None or not same_query(previous, request):
            self._show_sort("relevance", relevance=True)
        if request.mode != "browse" and self.session.searcher is None:
            self._pending_request = request
            if self.session.model_error:
                self._search_failed(self.session.model_error)
            else:
                self.summary.setText("Waiting for the model to load…")
            return
        if not quiet:
            self.summary.setText("Searching…")
        self.session.search(request)

    def _search_done(self, outcome: SearchOutcome) -> None:
        request = outcome.request
        if request != self.request:
            return  # asked before the current search (e.g. one waiting for the model)
        previous = self.outcome
        self.outcome = outcome
        keep = self.view.current_item() if previous and previous.request == request else None
        self.thumbnails.cancel_pending()
        menu = getattr(self, "context_menu", None)
        if menu is not None and menu.isVisible():
            menu.close()  # it was opened for photos of the results being replaced
        self.results.set_items(outcome.items, self.sort.currentData())
        n = len(outcome.items)
        if request.mode == "browse":
            text = f"{count_text(n, 'photo')} in the library"
            if request.filters.active:
                text = f"{count_text(n, 'photo')} match the filters"
        else:
            text = (
                f"{count_text(n, 'photo')} for {request.describe()} · {outcome.elapsed_ms:.0f} ms"
            )
            if outcome.truncated:
                text += " · description cut to what the model reads"
            if request.not_text.strip():
                text += f" · not {request.not_text.strip()}"
        if outcome.undated:
            text += f" · {outcome.undated:,} without EXIF date: file date used"
        self.summary.setText(text)
        warnings = [w for w in outcome.warnings if "word pieces" not in w]  # the counter says it
        if warnings:
            message = "; ".join(warnings)
            self.statusBar().showMessage(message[:1].upper() + message[1:], 15000)
        if n:
            self._show_page(PAGE_RESULTS)
            row = self.results.row_of(keep.path) if keep is not None else -1
            if row >= 0:  # the same search again (e.g. while indexing): stay where the user is
                self.view.setCurrentIndex(self.results.index(row))
            else:
                self.view.setCurrentIndex(self.results.index(0))
                self.view.scrollToTop()
        elif request.mode == "browse":
            if self.session.info.empty and not self._welcome_dismissed and not self.session.busy():
                self._show_page(PAGE_WELCOME)
            else:
                self._show_empty(
                    "No photos here yet."
                    if not request.filters.active
                    else "No photos match the filters."
                )
        else:
            self._show_empty(
                outcome.empty_reason
                or "No photos found. Try describing it differently, or widen the filters."
            )
        if not n:
            self.view.setCurrentIndex(QModelIndex())
            self.preview.set_item(None)  # nothing is selected, so nothing is previewed

    def _search_failed(self, message: str) -> None:
        self.summary.setText("Search failed")
        self.statusBar().showMessage(message, 10000)

    def _show_empty(self, text: str) -> None:
        self.empty.setText(text)
        if self.stack.currentIndex() != PAGE_WELCOME or self.session.busy():
            self._show_page(PAGE_EMPTY)

    def _show_page(self, page: int) -> None:
        """Switch the central page; the welcome page hides the search controls."""
        self.stack.setCurrentIndex(page)
        searching = page != PAGE_WELCOME
        for widget in (self.query_bar, self.filter_bar, self.results_header):
            widget.setVisible(searching)
        self.preview.setVisible(searching and self.settings.preview_visible)

    def _filters_changed(self, _filters: Filters) -> None:
        if self.request is not None:
            self.search_again()

    def _not_changed(self) -> None:
        if self.request is not None and self.request.mode != "browse":
            self.search_again()
        elif self.query.text().strip():
            self.search_text(self.query.text())

    def search_again(self) -> None:
        """The current search with the filters and not-terms as they are now."""
        assert self.request is not None
        self.run_request(
            replace(
                self.request,
                filters=self.filters.filters(),
                not_text=self.not_edit.text() if self.request.mode != "browse" else "",
            ),
            quiet=self.request.mode == "browse",
        )

    def search_for(self, text: str) -> None:
        """Put ``text`` in the query box and search for it (a recent or an example query)."""
        self.query.set_text(text)
        self.search_text(text)

    def _clear_example(self) -> None:
        self.example.hide()
        self.search_text(self.query.text())

    def _counter_level(self, level: str) -> None:
        self.query.setProperty("level", level)
        self.query.style().unpolish(self.query)
        self.query.style().polish(self.query)

    # -- results --------------------------------------------------------------------------------
    def _preview_item(self, item: ResultItem) -> None:
        if not self.preview.isVisible():
            self.toggle_preview(True)
        self.preview.set_item(item)

    def browse_order(self) -> str:
        """The order browsing uses (the saved choice; "best match" means nothing there)."""
        order = self.settings.sort_order
        return "newest" if order == "relevance" else order

    def _show_sort(self, order: str, *, relevance: bool) -> None:
        """Show ``order`` in the sort box (no re-sort); ``relevance``: offer "Best match"."""
        model = self.sort.model()
        assert isinstance(model, QStandardItemModel)
        item = model.item(self.sort.findData("relevance"))
        item.setEnabled(relevance)
        item.setToolTip("" if relevance else "Browsing has no best match")
        self.sort.blockSignals(True)
        self.sort.setCurrentIndex(self.sort.findData(order))
        self.sort.blockSignals(False)

    def _sort_changed(self, _index: int) -> None:
        order = self.sort.currentData()
        if order != "relevance":
            self.settings.sort_order = order
        self.results.set_order(order)
        current = self.view.currentIndex()
        if current.isValid():
            self.view.scrollTo(current)

    def _size_changed(self, value: int) -> None:
        self.view.set_edge(value)
        self.settings.thumb_size = value

    def step_size(self, step: int) -> None:
        """Larger (positive) or smaller thumbnails."""
        self.size_slider.setValue(self.size_slider.value() + step)

    def toggle_preview(self, visible: bool | None = None) -> None:
        """Show or hide the preview pane (None: toggle)."""
        show = not self.preview.isVisible() if visible is None else bool(visible)
        self.preview.setVisible(show)
        self.preview_action.setChecked(show)
        self.settings.preview_visible = show

    def selected_items(self) -> list[ResultItem]:
        """Selected results, or the current one."""
        items = self.view.selected_items()
        current = self.view.current_item()
        return items or ([current] if current is not None else [])

    def with_current(self, action: Any) -> None:
        """Call ``action`` with the current photo, if there is one."""
        item = self.view.current_item()
        if item is not None:
            action(item)

    def _context_menu(self, position: QPoint) -> None:
        items = self.selected_items()
        if items:  # the menu keeps these photos, whatever happens to the grid meanwhile
            self.context_menu = results_context_menu(self, items)
            self.context_menu.popup(self.view.viewport().mapToGlobal(position))

    # -- the full-screen viewer -----------------------------------------------------------------
    def view_item(self, item: ResultItem) -> PhotoViewer:
        """Show ``item`` in the full-screen viewer; Esc comes back with its photo selected."""
        if self.viewer is None:
            self.viewer = PhotoViewer(self.results, self.session.tasks, self)
            self.viewer.closed.connect(self._viewer_closed)
        row = self.results.row_of(item.path)
        if row < 0:  # the grid changed meanwhile
            self.statusBar().showMessage(f"{item.name} is not among the results any more", 5000)
            return self.viewer
        self.viewer.show_row(row)
        self.viewer.showFullScreen()
        self.viewer.raise_()
        self.viewer.activateWindow()
        self.viewer.setFocus()
        return self.viewer

    def _viewer_closed(self, row: int) -> None:
        if row >= 0:
            index = self.results.index(row)
            self.view.setCurrentIndex(index)
            self.view.scrollTo(index)
        self.activateWindow()
        self.view.setFocus()

    def focus_query(self) -> None:
        """Put the cursor in the query box with its text selected (Ctrl+L, Ctrl+F)."""
        self.query.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.query.selectAll()

    def choose_example(self) -> None:
        """Pick an image file to search by example."""
        path = ui.choose_file(
            self,
            "Search by example image",
            "Images (*.jpg *.jpeg *.png *.webp *.gif *.bmp *.tif *.tiff *.heic);;All files (*)",
        )
        if path:
            self.search_like(path)

    # -- drag and drop --------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept image files dragged from elsewhere (not our own results), also while the drag
        moves over the window."""
        if event.source() is None and local_image_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, event: QDropEvent) -> None:
        """A dropped image searches by example."""
        paths = local_image_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.search_like(paths[0])

    # -- indexing -------------------------------------------------------------------------------
    def update_index(self) -> None:
        """Index new and changed photos in every library folder."""
        if self.session.read_only:
            self.statusBar().showMessage(reason(self.session, "indexing"), 15000)
            return
        if not self.session.info.folders:
            self.open_wizard()
            return
        self.session.start_indexing()

    def stop_indexing(self) -> None:
        """Stop the running indexing after the current batch."""
        if self.session.indexing is not None:
            self.session.indexing.cancel()
            self.indexing_status.stop.setEnabled(False)
            self.indexing_status.label.setText("Stopping after the current batch…")

    def start_demo(self) -> None:
        """Draw demo scenes into the library folder and index them (first-run option)."""
        from app.gui.demo import start_demo

        self._welcome_dismissed = True
        self._show_empty("Drawing demo scenes…")
        start_demo(self.session, self)

    # -- dialogs --------------------------------------------------------------------------------
    def show_dialog(self, key: str, factory: Any) -> Any:
        """Show the window's dialog ``key``, made by ``factory`` when there is none (a closed
        dialog is deleted: the next one starts fresh)."""
        dialog = self.dialogs.get(key)
        if dialog is None:
            dialog = factory()
            dialog.finished.connect(lambda _code, k=key: self._dialog_closed(k))
            self.dialogs[key] = dialog
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _dialog_closed(self, key: str) -> None:
        dialog = self.dialogs.pop(key, None)
        if dialog is not None:
            dialog.deleteLater()  # the next one starts fresh; nothing keeps the old alive

    def open_wizard(self) -> Any:
        """The folder indexing wizard (shows the running indexing when there is one)."""
        from app.gui.wizard import IndexWizard

        return self.show_dialog("wizard", lambda: IndexWizard(self.session, self))

    def open_models(self, download: bool = False) -> Any:
        """The models dialog (``download``: start on the official download)."""
        from app.gui.models_dialog import ModelsDialog

        dialog = self.show_dialog("models", lambda: ModelsDialog(self.session, self))
        if download:
            dialog.focus_download()
        return dialog

    def open_settings(self) -> Any:
        """The settings dialog."""
        from app.gui.settings_dialog import SettingsDialog

        return self.show_dialog(
            "settings", lambda: SettingsDialog(self.session, self.settings, self)
        )

    def open_captions(self, items: list[ResultItem] | None) -> Any:
        """Caption editor for ``items`` (None: the selection)."""
        from app.gui.captions import CaptionEditor

        items = items if items is not None else self.selected_items()
        if not items:
            self.statusBar().showMessage("Select one or more photos to caption", 5000)
            return None
        self.dialogs.pop("captions", None)
        return self.show_dialog("captions", lambda: CaptionEditor(self.session, items, self))

    def import_captions(self) -> Any:
        """Import a caption file (JSONL/CSV manifest) or a folder of sidecar captions."""
        from app.gui.captions import import_captions_interactively

        return import_captions_interactively(self.session, self)

    def open_finetune(self) -> Any:
        """The fine-tune dialog."""
        from app.gui.finetune_dialog import FinetuneDialog

        return self.show_dialog("finetune", lambda: FinetuneDialog(self.session, self))

    # -- showing and closing ------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        """Start loading the model once the window is on screen.

        Importing torch holds the GIL for a few hundred milliseconds in its C extension; the
        short delay lets the first frame paint before that happens.
        """
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(MODEL_LOAD_DELAY_MS, self._load_model_if_needed)

    def _load_model_if_needed(self) -> None:
        if self.session.choice is None and not self.session.model_loading and not self._closing:
            self.session.load_model()

    def changeEvent(self, event: QEvent) -> None:
        """Follow palette changes (dark mode switches)."""
        if event.type() == QEvent.Type.PaletteChange:
            from PySide6.QtWidgets import QApplication

            from app.gui.theme import apply_theme

            app = QApplication.instance()
            if isinstance(app, QApplication):
                QTimer.singleShot(0, lambda: apply_theme(app))
        super().changeEvent(event)

    def _default_size(self) -> QSize:
        """The first-start size, within the screen's free area (a 1024×640 screen fits)."""
        return ui.fit_screen(self, DEFAULT_SIZE).expandedTo(QSize(640, 400))

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Remember sizes the user chose (spontaneous resizes come from the window manager)."""
        super().resizeEvent(event)
        if event.spontaneous() and not (self.isMaximized() or self.isFullScreen()):
            self._user_size = event.size()

    def _save_layout(self) -> None:
        """Save the geometry as the user left it: a size the window grew to by itself is not."""
        if (
            self._user_size is not None
            and self.size() != self._user_size
            and not (self.isMaximized() or self.isFullScreen())
        ):
            self.resize(self._user_size)
        self.settings.save_window(self.saveGeometry(), self.saveState(), self.splitter.saveState())

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop indexing safely (it resumes next start), remember the layout, shut down."""
        finetune = self.dialogs.get("finetune")
        if finetune is not None and getattr(finetune, "task", None) is not None:
            question = "A fine-tune is running. Stop it and quit? Nothing will be saved."
            if not ui.confirm(self, "Quit", question):
                event.ignore()
                return
            finetune.confirm_close = False
        self._closing = True
        if self.session.busy():
            self.indexing_status.label.setText("Stopping…")
            self.session.indexing.task.cancel()  # not a user cancel: it resumes next start
        self._save_layout()
        for dialog in list(self.dialogs.values()):
            dialog.close()
        self.thumbnails.shutdown(QUIT_WAIT_MS // 4)
        self.session.shutdown(QUIT_WAIT_MS)  # the process ends within a second (app.gui.main)
        event.accept()
