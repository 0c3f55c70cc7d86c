"""Small panels of the main window: the bundled-model banner, the welcome page, empty states."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QSizePolicy,
    QWidget,
)

from app.gui import widgets as ui
from app.gui.icons import app_icon

WELCOME_TEXT_WIDTH = 560
LINEAGE_DEPTH = 8
ELIDED_MIN_WIDTH = 60


class ElidedLabel(QLabel):
    """A one-line label that never asks for more width than it gets.

    Text that does not fit is elided (``…``) and the full text becomes the tooltip, so long
    summaries, file names and paths cannot widen the window.
    """

    def __init__(
        self,
        text: str = "",
        parent: QWidget | None = None,
        mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
    ) -> None:
        super().__init__(parent)
        self.mode = mode
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        """Set the full text (shown elided when needed; the tooltip always holds it)."""
        super().setText(text)
        self.setToolTip(text)
        self.update()

    def minimumSizeHint(self) -> QSize:
        """A few characters wide: the layout decides the width, not the text."""
        return QSize(
            min(ELIDED_MIN_WIDTH, super().minimumSizeHint().width()),
            super().minimumSizeHint().height(),
        )

    def sizeHint(self) -> QSize:
        """The full text's size (used only when there is room)."""
        return QSize(
            self.fontMetrics().horizontalAdvance(self.text()) + 4, super().sizeHint().height()
        )

    def elided(self) -> str:
        """The text as it is painted at the current width."""
        return self.fontMetrics().elidedText(self.text(), self.mode, self.contentsRect().width())

    def paintEvent(self, _event: QPaintEvent) -> None:
        """Paint the elided text."""
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment()), self.elided())


def demo_ancestor(name: str, metadata: dict[str, Any]) -> str | None:
    """The bundled demo model that ``name`` is, or was fine-tuned from (through any chain).

    ``metadata``: the loaded model's (a fine-tune records ``base_model``); the bases' own
    records are read from their folders. None when the model does not come from the demo.
    """
    from lotlip import registry
    from lotlip.checkpoints import read_folder_config

    for _ in range(LINEAGE_DEPTH):
        if name == registry.BUNDLED_MODEL:
            return name
        base = metadata.get("base_model")
        if not base:
            return None
        name = str(base)
        folder = registry.resolve_folder(name)
        if name != registry.BUNDLED_MODEL and folder is None:
            return None
        try:
            metadata = read_folder_config(folder)[1] if folder is not None else {}
        except (OSError, ValueError, KeyError):
            metadata = {}
    return None


class ModelBanner(QFrame):
    """A clear notice that the small bundled model is in use, with a way to get a real one.

    Signals: ``getOfficialRequested()``, ``dismissed()``.
    """

    getOfficialRequested = Signal()
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.text = ui.label("", self, name="modelBannerText", wrap=True, rich=True)
        self.button = ui.button(
            "Get the official model…", self, self.getOfficialRequested, name="getOfficialModel"
        )
        close = ui.dismiss_button(
            self, "Hide this notice for now", self._dismiss, width=28, name="bannerClose"
        )
        ui.hbox((self.text, 1), self.button, close, parent=self, margins=(12, 6, 6, 6))
        self.set_model("lotlip-tiny", None)

    def set_model(self, name: str, warning: str | None, demo: str | None = None) -> None:
        """Describe the demo model ``name`` (``warning``, the library's advice, as tooltip).

        ``demo``: the bundled model it was fine-tuned from, when it is not that model itself.
        """
        what = name if demo is None or demo == name else f"{name}, fine-tuned from {demo}"
        self.text.setText(
            f"<b>Demo model in use ({what}).</b> It only knows simple coloured shapes, so it will "
            "not find real photos well. The official LoTLIP model (about 800 MB, downloaded "
            "once) understands real photos."
        )
        self.setToolTip(warning or "")

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()


class WelcomePage(QWidget):
    """First start: what the app does and one button that leads to the indexing wizard.

    Signals: ``chooseFoldersRequested()``, ``demoRequested()``.
    """

    chooseFoldersRequested = Signal()
    demoRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        icon = QLabel(self)
        icon.setPixmap(app_icon().pixmap(96, 96))
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = ui.label("Welcome to LoTLIP Search", self, name="welcomeTitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        title.setFont(font)
        body = QLabel(
            "Find photos by describing them the way you remember them — in whole sentences: "
            "<i>“Two children in yellow raincoats on a pier, grey sea behind them, a red boat on "
            "the left.”</i>",
            self,
        )
        privacy = QLabel(
            "Everything runs on this computer; your photos never leave it. To begin, choose the "
            "folders that hold your photos. They are only read, never changed.",
            self,
        )
        for label in (body, privacy):
            label.setObjectName("welcomeText")
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setFixedWidth(WELCOME_TEXT_WIDTH)
            label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Minimum)
        self.texts = (body, privacy)
        self.start_button = ui.button(
            "Choose photo folders…", self, self.chooseFoldersRequested, name="welcomeStart"
        )
        self.start_button.setDefault(True)
        self.start_button.setMinimumHeight(36)
        self.demo_button = ui.button(
            "Try it on generated demo scenes",
            self,
            self.demoRequested,
            name="welcomeDemo",
            tip="Draws 200 simple scenes into the library folder and indexes them "
            "(a minute or two)",
        )
        self.demo_button.setFlat(True)

        centre = Qt.AlignmentFlag.AlignHCenter
        texts = ((body, 0, centre), (privacy, 0, centre), 6)
        buttons = ((self.start_button, 0, centre), (self.demo_button, 0, centre))
        column = ui.vbox(
            (ui.STRETCH, 2), icon, title, *texts, *buttons, (ui.STRETCH, 3), spacing=14
        )
        ui.hbox(ui.STRETCH, (column, 4), ui.STRETCH, parent=self)

    def _fit_texts(self) -> None:
        # An aligned label is laid out by its size hint, which ignores word wrapping: give it
        # the height its wrapped text needs in the font it has now (style sheets apply late).
        for label in self.texts:
            label.setMinimumHeight(label.heightForWidth(WELCOME_TEXT_WIDTH))

    def showEvent(self, event: QShowEvent) -> None:
        """Size the paragraphs for the final font."""
        self._fit_texts()
        super().showEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        """Re-size the paragraphs when the font or style changes."""
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fit_texts()
        super().changeEvent(event)


class EmptyState(QLabel):
    """A centred message in place of the grid ("No photos match", "Loading the model…")."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setMargin(40)
