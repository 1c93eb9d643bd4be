"""Plot images: the internals plots to PNG (pyqtgraph's ImageExporter) or SVG (QSvgGenerator).

Two callers: File > Export plots (the panel's own plots, as shown) and
`glassbox export --format png` (plots built offscreen from a stored conversation;
registered into app.export.renderers by ui.launch, so app/ never imports Qt).
Qt and pyqtgraph are imported inside the functions: registering costs the CLI nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.export.document import ConversationDocument, ExportError
from app.export.renderers import register_renderer

if TYPE_CHECKING:
    import pyqtgraph as pg
    from PySide6.QtGui import QImage

# Size of each plot in an image rendered offscreen (the panel's plots keep their own).
OFFSCREEN_PLOT_SIZE = (720, 300)


def register_export_formats() -> None:
    """Make `glassbox export --format png` available (called while the CLI builds)."""
    register_renderer("png", render_document_png)


def plots_png_bytes(plots: Sequence[pg.PlotWidget]) -> bytes:
    """The plots stacked top to bottom in one PNG (GUI thread; the caller writes the bytes)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    image = _stacked_image([_plot_image(plot) for plot in plots])
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):  # type: ignore[call-overload]  # str works; stubs say bytes
        raise ExportError("could not encode the plots as PNG")
    buffer.close()
    return bytes(data.data())


def plots_svg_text(plots: Sequence[pg.PlotWidget]) -> str:
    """The plots stacked in one SVG document, drawn as vectors by Qt's SVG paint device.

    Not pyqtgraph's SVGExporter: with this Qt it fails on the path data Qt writes
    ("not enough values to unpack" in SVGExporter's path rewriting)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRect, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    width = max(plot.width() for plot in plots)
    height = sum(plot.height() for plot in plots)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setSize(QSize(width, height))
    generator.setViewBox(QRect(0, 0, width, height))
    generator.setTitle("Glassbox internals plots")
    painter = QPainter(generator)
    y = 0
    for plot in plots:
        # QGraphicsView.render: the scene as shown, into this slot of the page.
        plot.render(painter, QRect(0, y, plot.width(), plot.height()))
        y += plot.height()
    painter.end()
    buffer.close()
    return bytes(data.data()).decode("utf-8")


def render_document_png(document: ConversationDocument, path: Path) -> None:
    """The conversation's per-turn plots, drawn offscreen as the panel draws them, to PNG."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from ui.internals.turn_plots import KvPlot, RatePlot, TtftPlot

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication(["glassbox-export"])
    metrics = document.turn_metrics()
    plots: list[TtftPlot | RatePlot | KvPlot] = [TtftPlot(), RatePlot(), KvPlot()]
    try:
        for plot in plots:
            plot.set_turns(metrics)
            plot.resize(*OFFSCREEN_PLOT_SIZE)
            # Shown (never on screen) so the plot lays itself out at that size.
            plot.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
            plot.show()
        app.processEvents()
        data = plots_png_bytes(plots)
    finally:
        for plot in plots:
            plot.close()
            plot.deleteLater()
        app.processEvents()
    Path(path).write_bytes(data)


def _plot_image(plot: pg.PlotWidget) -> QImage:
    import pyqtgraph.exporters as exporters

    exporter = exporters.ImageExporter(plot.plotItem)
    exporter.parameters()["width"] = max(plot.width(), 100)
    image = exporter.export(toBytes=True)
    return image


def _stacked_image(images: Sequence[QImage]) -> QImage:
    from PySide6.QtGui import QColor, QImage, QPainter

    width = max(image.width() for image in images)
    height = sum(image.height() for image in images)
    out = QImage(width, height, QImage.Format.Format_ARGB32)
    out.fill(QColor("white"))
    painter = QPainter(out)
    y = 0
    for image in images:
        painter.drawImage(0, y, image)
        y += image.height()
    painter.end()
    return out
