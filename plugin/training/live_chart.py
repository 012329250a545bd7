"""A small live chart of training, one point per epoch: losses on the left, metrics on the right.

Drawn with QPainter (no plotting library to install into QGIS). The same numbers are in a table
under the chart and in :meth:`LiveChart.as_text`, so the chart is never the only way to read
them: a screen reader or a keyboard user reads the table, and series differ by line style and
marker shape as well as by colour (Okabe–Ito colours, readable with colour-vision deficiency).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from qgis.PyQt.QtCore import QPointF, QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QPainter, QPainterPath, QPalette, QPen, QPolygonF
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...model import EpochEnded
from ..ui import tr

LOGGER = logging.getLogger(__name__)


@dataclass
class EpochPoint:
    """One finished epoch: what the engine reports after validation (None: not measured, e.g.
    no validation split)."""

    epoch: int
    train_loss: Optional[float] = None
    val_loss: Optional[float] = None
    bleu4: Optional[float] = None
    cider_d: Optional[float] = None

    @classmethod
    def from_event(cls, event: EpochEnded) -> "EpochPoint":
        """The point of an engine's EpochEnded event (or a checkpoint's history record)."""
        return cls(event.epoch, event.train_loss, event.val_loss, event.bleu4, event.cider_d)


@dataclass(frozen=True)
class _Series:
    field: str
    label: str
    panel: int            # 0: losses, 1: metrics
    colour: str
    pen_style: int
    marker: str           # 'circle', 'square', 'triangle', 'diamond'


SERIES: Tuple[_Series, ...] = (
    _Series("train_loss", "Train loss", 0, "#0072B2", Qt.PenStyle.SolidLine, "circle"),
    _Series("val_loss", "Val loss", 0, "#D55E00", Qt.PenStyle.DashLine, "square"),
    _Series("bleu4", "BLEU-4", 1, "#009E73", Qt.PenStyle.SolidLine, "triangle"),
    _Series("cider_d", "CIDEr-D", 1, "#CC79A7", Qt.PenStyle.DashLine, "diamond"),
)
PANEL_TITLES = ("Loss", "Metrics (decoded validation)")
COLUMNS = ("Epoch",) + tuple(s.label for s in SERIES)


def _format(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.3f}"


def _finite(value: Optional[float]) -> Optional[float]:
    """The value to plot, or None for nothing to plot (not measured, NaN or infinite: a
    diverging loss is in the table, not on the axis)."""
    return value if value is not None and math.isfinite(value) else None


def nice_ticks(low: float, high: float, count: int = 4) -> List[float]:
    """About ``count`` round tick values covering [low, high] (steps of 1, 2 or 5 × 10^k).

    Always two ticks or more, strictly increasing, for finite input (a flat or nearly flat
    range, such as one epoch's BLEU-4 of 1e-12 beside a CIDEr-D of 0, becomes [low, low + 1]);
    [] when either end is not finite.
    """
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high - low <= 1e-9 * max(1.0, abs(low), abs(high)):
        high = low + 1.0
    raw = (high - low) / max(1, count)
    exponent = math.floor(math.log10(raw))
    step = next(m * 10.0 ** exponent for m in (1, 2, 5, 10) if m * 10.0 ** exponent >= raw)
    # Round to the step's own precision: a fixed number of decimals would turn the ticks of a
    # tiny range into equal values.
    decimals = max(0, 1 - math.floor(math.log10(step)))
    first = math.floor(low / step) * step
    ticks = [round(first, decimals)]
    while ticks[-1] < high:
        ticks.append(round(first + len(ticks) * step, decimals))
    return ticks


class _ChartCanvas(QWidget):
    """Paints the two panels from the owner's points."""

    def __init__(self, owner: "LiveChart") -> None:
        super().__init__(owner)
        self.owner = owner
        self.setMinimumSize(QSize(360, 170))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        # The table beside it carries the numbers; the drawing itself takes no focus.
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def sizeHint(self) -> QSize:
        return QSize(560, 220)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        points = self.owner.epochs()
        width = self.width() / 2.0
        try:
            for panel in (0, 1):
                area = QRectF(panel * width, 0, width, self.height()).adjusted(4, 4, -4, -4)
                self._panel(painter, area, panel, points, palette)
        except Exception:
            # An exception escaping a Qt virtual aborts the whole of QGIS (PyQt calls qFatal);
            # the table under the chart still has every number.
            LOGGER.exception("The training chart could not be drawn")
        finally:
            painter.end()

    def _panel(self, painter: QPainter, area: QRectF, panel: int, points: Sequence[EpochPoint],
               palette: QPalette) -> None:
        text = palette.color(QPalette.ColorRole.Text)
        metrics = painter.fontMetrics()
        line = metrics.height()
        series = [s for s in SERIES if s.panel == panel]
        painter.setPen(text)
        painter.drawText(QRectF(area.left(), area.top(), area.width(), line),
                         Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                         tr(PANEL_TITLES[panel]))
        # Legend: a short line with its marker, then the name.
        x = area.left() + 4
        legend_y = area.top() + line * 1.6
        for s in series:
            pen = QPen(QColor(s.colour), 2, s.pen_style)
            painter.setPen(pen)
            painter.drawLine(QPointF(x, legend_y), QPointF(x + 22, legend_y))
            self._marker(painter, QPointF(x + 11, legend_y), s)
            painter.setPen(text)
            label = tr(s.label)
            painter.drawText(QPointF(x + 26, legend_y + metrics.ascent() / 2.5), label)
            x += 34 + metrics.horizontalAdvance(label)

        values = [value for value in (_finite(getattr(p, s.field)) for p in points for s in series)
                  if value is not None]
        plot = QRectF(area.left() + metrics.horizontalAdvance("00.000") + 8,
                      area.top() + line * 2.4, 0, 0)
        plot.setRight(area.right() - 8)
        plot.setBottom(area.bottom() - line * 1.6)
        grid = QColor(text)
        grid.setAlpha(60)
        painter.setPen(QPen(grid, 1))
        painter.drawRect(plot)
        if not values:
            painter.setPen(text)
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             tr("No epoch finished yet") if not points
                             else tr("Not a finite number: see the table")
                             if any(getattr(p, s.field) is not None
                                    for p in points for s in series)
                             else tr("Not measured (no validation images)"))
            return
        low, high = min(values), max(values)
        if panel == 1:
            low = min(0.0, low)  # metrics read best against zero
        margin = (high - low) * 0.08 or 0.5
        ticks = nice_ticks(low - (margin if panel == 0 else 0.0), high + margin)
        low, high = ticks[0], ticks[-1]
        epochs = [p.epoch for p in points]
        first, last = min(epochs), max(max(epochs), min(epochs) + 1)

        def position(epoch: float, value: float) -> QPointF:
            px = plot.left() + (epoch - first) / (last - first) * plot.width()
            py = plot.bottom() - (value - low) / (high - low) * plot.height()
            return QPointF(px, py)

        for tick in ticks:  # horizontal grid lines with their values
            y = position(first, tick).y()
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(text)
            painter.drawText(QRectF(area.left(), y - line / 2, plot.left() - area.left() - 4, line),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             f"{tick:g}")
        step = max(1, math.ceil((last - first) / 8))
        for epoch in range(first, last + 1, step):  # epoch numbers under the plot
            x_pos = position(epoch, low).x()
            painter.drawText(QRectF(x_pos - 20, plot.bottom() + 2, 40, line),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, str(epoch))
        painter.drawText(QRectF(plot.left(), plot.bottom() + line * 0.8, plot.width(), line),
                         Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, tr("epoch"))
        for s in series:
            known = [(epoch, value) for epoch, value in
                     ((p.epoch, _finite(getattr(p, s.field))) for p in points)
                     if value is not None]
            if not known:
                continue
            painter.setPen(QPen(QColor(s.colour), 2, s.pen_style))
            path = QPainterPath(position(*known[0]))
            for epoch, value in known[1:]:
                path.lineTo(position(epoch, value))
            painter.drawPath(path)
            for epoch, value in known:
                self._marker(painter, position(epoch, value), s)

    @staticmethod
    def _marker(painter: QPainter, centre: QPointF, series: _Series, size: float = 4.0) -> None:
        colour = QColor(series.colour)
        painter.setPen(QPen(colour, 1.5))
        painter.setBrush(colour)
        x, y = centre.x(), centre.y()
        if series.marker == "circle":
            painter.drawEllipse(centre, size, size)
        elif series.marker == "square":
            painter.drawRect(QRectF(x - size, y - size, 2 * size, 2 * size))
        elif series.marker == "triangle":
            painter.drawPolygon(QPolygonF([QPointF(x, y - size * 1.2),
                                           QPointF(x - size * 1.1, y + size),
                                           QPointF(x + size * 1.1, y + size)]))
        else:
            painter.drawPolygon(QPolygonF([QPointF(x, y - size * 1.3), QPointF(x + size, y),
                                           QPointF(x, y + size * 1.3), QPointF(x - size, y)]))
        painter.setBrush(Qt.BrushStyle.NoBrush)


class LiveChart(QWidget):
    """The chart and, under it, a table with the same numbers (one row per epoch)."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("MapScribeLiveChart")
        self._points: List[EpochPoint] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.canvas = _ChartCanvas(self)
        self.canvas.setObjectName("MapScribeLiveChartCanvas")
        self.canvas.setAccessibleName(tr("Training chart"))
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("MapScribeEpochTable")
        self.table.setHorizontalHeaderLabels([tr(c) for c in COLUMNS])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move inside it
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setAccessibleName(tr("Loss and metrics per epoch"))
        self.table.setAccessibleDescription(tr(
            "One row per finished epoch: train loss, validation loss, BLEU-4 and CIDEr-D."))
        self.table.setMinimumHeight(90)
        layout.addWidget(self.canvas, 3)
        layout.addWidget(self.table, 2)
        self.setFocusProxy(self.table)
        self._describe()

    def epochs(self) -> List[EpochPoint]:
        return list(self._points)

    def clear(self) -> None:
        self._points = []
        self._refresh()

    def set_epochs(self, points: Sequence[EpochPoint]) -> None:
        self._points = []
        for point in points:
            self._store(point)
        self._refresh()

    def add_epoch(self, point: EpochPoint) -> None:
        """Add a finished epoch (an epoch seen before, e.g. after resuming, is replaced)."""
        self._store(point)
        self._refresh()

    def _store(self, point: EpochPoint) -> None:
        self._points = [p for p in self._points if p.epoch != point.epoch] + [point]
        self._points.sort(key=lambda p: p.epoch)

    def row_text(self, point: EpochPoint) -> str:
        return tr("Epoch {}: train loss {}, val loss {}, BLEU-4 {}, CIDEr-D {}").format(
            point.epoch, _format(point.train_loss), _format(point.val_loss),
            _format(point.bleu4), _format(point.cider_d))

    def as_text(self) -> str:
        """Every epoch's numbers, one line each (what the chart shows, for reading aloud)."""
        if not self._points:
            return tr("No epoch finished yet.")
        return "\n".join(self.row_text(p) for p in self._points)

    def _describe(self) -> None:
        if self._points:
            summary = tr("{} epochs. Latest: {}").format(len(self._points),
                                                         self.row_text(self._points[-1]))
        else:
            summary = tr("No epoch finished yet.")
        self.canvas.setAccessibleDescription(summary)
        self.setAccessibleName(tr("Training progress chart"))
        self.setAccessibleDescription(summary)
        self.canvas.setToolTip(self.as_text())

    def _refresh(self) -> None:
        self.table.setRowCount(len(self._points))
        for row, point in enumerate(self._points):
            cells = [str(point.epoch)] + [_format(getattr(point, s.field)) for s in SERIES]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        if self._points:
            self.table.scrollToBottom()
        self._describe()
        self.canvas.update()
