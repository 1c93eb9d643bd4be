"""Light and dark palettes, and the plot colours derived from the current palette.

Views never hard-code a background: they ask `plot_colors()` so plots and the
readout follow the system scheme (or the one the user picked in View > Theme).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")

# Series colours: readable on both backgrounds (Okabe-Ito, colour-blind safe).
QUEUE_COLOR = "#E69F00"
PREFILL_COLOR = "#0072B2"
DECODE_COLOR = "#D55E00"
CACHED_COLOR = "#009E73"
EVALUATED_COLOR = "#56B4E9"
OUTPUT_COLOR = "#CC79A7"


@dataclass(frozen=True)
class PlotColors:
    background: str
    foreground: str
    grid_alpha: float
    highlight: QColor
    dark: bool


def is_dark(palette: QPalette | None = None) -> bool:
    pal = palette or QApplication.palette()
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


def plot_colors(palette: QPalette | None = None) -> PlotColors:
    pal = palette or QApplication.palette()
    highlight = QColor(pal.color(QPalette.ColorRole.Highlight))
    highlight.setAlpha(70)
    return PlotColors(
        background=pal.color(QPalette.ColorRole.Base).name(),
        foreground=pal.color(QPalette.ColorRole.Text).name(),
        grid_alpha=0.25,
        highlight=highlight,
        dark=is_dark(pal),
    )


def dark_palette() -> QPalette:
    pal = QPalette()
    window, base, text = QColor("#202124"), QColor("#17181a"), QColor("#e8eaed")
    pal.setColor(QPalette.ColorRole.Window, window)
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, base)
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor("#26282b"))
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, QColor("#2d2f33"))
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor("#2d2f33"))
    pal.setColor(QPalette.ColorRole.ToolTipText, text)
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor("#9aa0a6"))
    pal.setColor(QPalette.ColorRole.Highlight, QColor("#8ab4f8"))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#202124"))
    pal.setColor(QPalette.ColorRole.Link, QColor("#8ab4f8"))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6f7378"))
    return pal


def light_palette() -> QPalette:
    pal = QPalette()
    text = QColor("#202124")
    pal.setColor(QPalette.ColorRole.Window, QColor("#f3f4f6"))
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor("#f1f3f4"))
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, QColor("#e8eaed"))
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.ToolTipText, text)
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor("#80868b"))
    pal.setColor(QPalette.ColorRole.Highlight, QColor("#1a73e8"))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.Link, QColor("#1a73e8"))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#9aa0a6"))
    return pal


def apply_theme(app: QApplication, theme: str) -> None:
    """Set the app palette: "light", "dark", or "system" (follow the platform's scheme)."""
    app.setStyle("Fusion")  # Fusion honours custom palettes on every platform
    if theme == "dark":
        app.setPalette(dark_palette())
    elif theme == "light":
        app.setPalette(light_palette())
    else:
        scheme = app.styleHints().colorScheme()
        app.setPalette(dark_palette() if scheme == Qt.ColorScheme.Dark else light_palette())
