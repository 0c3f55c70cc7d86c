"""A small live loss plot drawn with QPainter (no plotting library)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

LINE = QColor("#2f6fb5")
SMOOTH = QColor("#e8772e")


def ema(values: Sequence[float], alpha: float = 0.2) -> list[float]:
    """Exponential moving average (for the smoothed line)."""
    out: list[float] = []
    for value in values:
        out.append(value if not out else alpha * value + (1 - alpha) * out[-1])
    return out


def nice_bounds(values: Sequence[float]) -> tuple[float, float]:
    """A y-range covering ``values`` with a little headroom (never empty)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if high - low < 1e-6:
        return low - 0.5, high + 0.5
    pad = 0.06 * (high - low)
    return max(0.0, low - pad) if low >= 0 else low - pad, high + pad


class LossCurve(QWidget):
    """Loss per step (thin line) and its moving average (thick line), with step/loss axes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lossCurve")
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.total_steps = 0

    def sizeHint(self) -> QSize:
        """A wide, short plot."""
        return QSize(480, 180)

    def clear(self, total_steps: int = 0) -> None:
        """Start a new run of ``total_steps``."""
        self.steps, self.losses, self.total_steps = [], [], total_steps
        self.update()

    def add_points(self, points: Sequence[tuple[int, float]]) -> None:
        """Append ``(step, loss)`` pairs and repaint once."""
        for step, loss in points:
            self.steps.append(int(step))
            self.losses.append(float(loss))
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        """Draw axes, the raw and the smoothed loss."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        metrics = QFontMetrics(self.font())
        left = metrics.horizontalAdvance("0.000") + 12
        plot = QRectF(left, 10, self.width() - left - 12, self.height() - metrics.height() - 22)
        text_colour = palette.color(QPalette.ColorRole.PlaceholderText)
        grid = palette.color(QPalette.ColorRole.Mid)
        grid.setAlpha(70)
        if not self.losses:
            painter.setPen(text_colour)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "The loss appears here")
            return
        low, high = nice_bounds(self.losses)
        last_step = max(self.total_steps, self.steps[-1], 1)

        def point(step: int, loss: float) -> QPointF:
            x = plot.left() + plot.width() * (step / last_step)
            y = plot.bottom() - plot.height() * ((loss - low) / (high - low))
            return QPointF(x, y)

        painter.setPen(QPen(grid, 1))
        for i in range(5):
            y = plot.top() + plot.height() * i / 4
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            value = high - (high - low) * i / 4
            painter.setPen(text_colour)
            painter.drawText(
                QRectF(0, y - metrics.height() / 2, left - 6, metrics.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"{value:.3f}",
            )
            painter.setPen(QPen(grid, 1))
        painter.setPen(text_colour)
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + 4, plot.width(), metrics.height()),
            Qt.AlignmentFlag.AlignLeft,
            "step 0",
        )
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + 4, plot.width(), metrics.height()),
            Qt.AlignmentFlag.AlignRight,
            f"step {last_step}",
        )
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + 4, plot.width(), metrics.height()),
            Qt.AlignmentFlag.AlignHCenter,
            f"loss {self.losses[-1]:.3f} at step {self.steps[-1]}",
        )
        painter.setClipRect(plot.adjusted(-2, -2, 2, 2))
        for values, colour, width in (
            (self.losses, LINE, 1.2),
            (ema(self.losses), SMOOTH, 2.4),
        ):
            path = QPainterPath(point(self.steps[0], values[0]))
            for step, value in zip(self.steps[1:], values[1:], strict=True):
                path.lineTo(point(step, value))
            faded = QColor(colour)
            if colour == LINE:
                faded.setAlpha(150)
            painter.setPen(QPen(faded, width))
            painter.drawPath(path)
            if len(values) == 1:
                painter.setBrush(faded)
                painter.drawEllipse(point(self.steps[0], values[0]), 2.5, 2.5)
