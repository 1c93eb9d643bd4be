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


_Role = QPalette.ColorRole

# One table per scheme; the palette builder below is shared.
_DARK = {
    _Role.Window: "#202124",
    _Role.WindowText: "#e8eaed",
    _Role.Base: "#17181a",
    _Role.AlternateBase: "#26282b",
    _Role.Text: "#e8eaed",
    _Role.Button: "#2d2f33",
    _Role.ButtonText: "#e8eaed",
    _Role.ToolTipBase: "#2d2f33",
    _Role.ToolTipText: "#e8eaed",
    _Role.PlaceholderText: "#9aa0a6",
    _Role.Highlight: "#8ab4f8",
    _Role.HighlightedText: "#202124",
    _Role.Link: "#8ab4f8",
}
_DARK_DISABLED_TEXT = "#6f7378"

_LIGHT = {
    _Role.Window: "#f3f4f6",
    _Role.WindowText: "#202124",
    _Role.Base: "#ffffff",
    _Role.AlternateBase: "#f1f3f4",
    _Role.Text: "#202124",
    _Role.Button: "#e8eaed",
    _Role.ButtonText: "#202124",
    _Role.ToolTipBase: "#ffffff",
    _Role.ToolTipText: "#202124",
    _Role.PlaceholderText: "#80868b",
    _Role.Highlight: "#1a73e8",
    _Role.HighlightedText: "#ffffff",
    _Role.Link: "#1a73e8",
}
_LIGHT_DISABLED_TEXT = "#9aa0a6"


def _palette(colors: dict[QPalette.ColorRole, str], disabled_text: str) -> QPalette:
    pal = QPalette()
    for role, color in colors.items():
        pal.setColor(role, QColor(color))
    for role in (_Role.Text, _Role.ButtonText, _Role.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled_text))
    return pal


def dark_palette() -> QPalette:
    return _palette(_DARK, _DARK_DISABLED_TEXT)


def light_palette() -> QPalette:
    return _palette(_LIGHT, _LIGHT_DISABLED_TEXT)


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
