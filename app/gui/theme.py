"""The app's few style rules (on top of the platform style): warnings, the banner, badges."""

from __future__ import annotations

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

WARNING = "#b42318"
CAUTION = "#9a6700"


def style_sheet(palette: QPalette) -> str:
    """Rules that follow the palette (light and dark themes both read well)."""
    dark = palette.color(QPalette.ColorRole.Window).lightness() < 128
    banner_bg = "#4a3b12" if dark else "#fff4d6"
    banner_border = "#8a6d1f" if dark else "#e7c665"
    banner_text = "#ffe8a8" if dark else "#4d3900"
    muted = palette.color(QPalette.ColorRole.PlaceholderText).name()
    chip_bg = palette.color(QPalette.ColorRole.AlternateBase).name()
    return f"""
    #wordPieceCounter {{ color: {muted}; padding: 0 2px; }}
    #wordPieceCounter[level="near"] {{ color: {CAUTION}; }}
    #wordPieceCounter[level="over"] {{ color: {WARNING}; font-weight: bold; }}
    QPlainTextEdit#query[level="over"] {{ border: 1px solid {WARNING}; }}
    #modelBanner {{ background: {banner_bg}; border: 1px solid {banner_border};
                    border-radius: 6px; }}
    #modelBanner QLabel {{ color: {banner_text}; }}
    #exampleChip {{ background: {chip_bg}; border-radius: 6px; }}
    #resultsSummary, #mutedLabel {{ color: {muted}; }}
    #emptyState {{ color: {muted}; font-size: 12pt; }}
    #welcomeText {{ font-size: 11pt; }}
    QPushButton#welcomeDemo {{ color: {palette.color(QPalette.ColorRole.Link).name()};
                               border: none; background: transparent; }}
    QPushButton#welcomeDemo:hover {{ text-decoration: underline; }}
    #failureList {{ font-family: monospace; }}
    #lossCurve {{ border: 1px solid {palette.color(QPalette.ColorRole.Mid).name()};
                  border-radius: 4px; }}
    """


def apply_theme(app: QApplication) -> None:
    """Install the style sheet for the current palette."""
    app.setStyleSheet(style_sheet(app.palette()))
