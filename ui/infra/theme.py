"""Light and dark palettes, and the plot colours derived from the current palette.

Views never hard-code a background: they ask `plot_colors()` so plots and the
readout follow the system scheme (or the one the user picked in View > Theme).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt, Signal
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
    _Role.Mid: "#4a4d52",  # bubble and frame borders
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
    _Role.Mid: "#c4c7cc",
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


class ThemeNotifier(QObject):
    """One per application: says when apply_theme() has put a new palette in place.

    Signals:
        theme_changed(bool): the palette changed; True when it is dark.
    """

    theme_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.theme = "system"  # the user's choice, which a system scheme change may affect

    def on_color_scheme_changed(self, scheme: Qt.ColorScheme) -> None:
        app = QApplication.instance()
        if self.theme == "system" and isinstance(app, QApplication):
            _set_palette(app, dark_palette() if scheme == Qt.ColorScheme.Dark else light_palette())


def notifier() -> ThemeNotifier:
    """The application's ThemeNotifier (made on first use, parented to the QApplication)."""
    app = QApplication.instance()
    found = app.findChild(ThemeNotifier) if app is not None else None
    if isinstance(found, ThemeNotifier):
        return found
    made = ThemeNotifier(app)
    if isinstance(app, QApplication):
        # The system scheme can change while we run (a desktop's dark-mode switch).
        app.styleHints().colorSchemeChanged.connect(made.on_color_scheme_changed)
    return made


def _set_palette(app: QApplication, palette: QPalette) -> None:
    app.setPalette(palette)
    # A widget with its own style sheet (a chat bubble) gets no PaletteChange when the
    # application palette changes after start-up, so it kept the old scheme's colours:
    # every widget is told, and those that restyle from the palette do so now.
    for widget in app.allWidgets():
        QApplication.sendEvent(widget, QEvent(QEvent.Type.PaletteChange))
    notifier().theme_changed.emit(is_dark(palette))


def apply_theme(app: QApplication, theme: str) -> None:
    """Set the app palette: "light", "dark", or "system" (follow the platform's scheme,
    also when it changes later)."""
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")  # Fusion honours custom palettes on every platform
    notifier().theme = theme
    if theme == "dark":
        _set_palette(app, dark_palette())
    elif theme == "light":
        _set_palette(app, light_palette())
    else:
        scheme = app.styleHints().colorScheme()
        _set_palette(app, dark_palette() if scheme == Qt.ColorScheme.Dark else light_palette())
