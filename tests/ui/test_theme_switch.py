"""View > Theme while the app runs: bubbles, plots and their legends follow a live switch,
and the system scheme when it changes (issue 10, item 1)."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from tests.ui.test_views import metrics


@pytest.fixture
def app_theme(qtbot):
    """The theme module, with the application's palette and choice put back afterwards."""
    from ui.infra import theme

    app = QApplication.instance()
    old_palette, old_choice = app.palette(), theme.notifier().theme
    yield theme
    theme.notifier().theme = old_choice
    app.setPalette(old_palette)


def bubble_background(widget) -> str:
    match = re.search(r"background: (#[0-9a-f]{6})", widget.styleSheet())
    assert match, widget.styleSheet()
    return match.group(1)


def expected_background(role: str) -> str:
    pal = QApplication.palette()
    which = QPalette.ColorRole.AlternateBase if role == "user" else QPalette.ColorRole.Base
    return pal.color(which).name()


@pytest.fixture
def chat(qtbot):
    from ui.chat.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    view.show()
    key = object()
    view.add_request(key, "Hello there")
    view.append_reply_text(key, "Hi! How can I help?")
    return view


def test_bubbles_follow_a_live_switch_both_ways(app_theme, chat):
    app = QApplication.instance()
    app_theme.apply_theme(app, "light")
    for name, dark in (("dark", True), ("light", False), ("dark", True)):
        app_theme.apply_theme(app, name)
        assert app_theme.is_dark() is dark
        widgets = chat.message_widgets()
        assert {w.role for w in widgets} == {"user", "assistant"}
        for widget in widgets:
            assert bubble_background(widget) == expected_background(widget.role), name


def title_html(plot) -> str:
    return plot.plotItem.titleLabel.item.toHtml()


def test_plot_titles_legends_and_axes_follow_a_live_switch(app_theme, qtbot):
    from ui.internals.panel import InternalsPanel

    app = QApplication.instance()
    app_theme.apply_theme(app, "light")
    panel = InternalsPanel()
    qtbot.addWidget(panel)
    panel.resize(560, 900)
    panel.show()
    panel.set_turns([(10 + i, metrics(i)) for i in range(3)])
    panel.flush()
    for name in ("dark", "light"):
        app_theme.apply_theme(app, name)
        colors = app_theme.plot_colors()
        for plot in panel.turn_plots():
            # The legend is in the title, written in the scheme's text colour.
            assert colors.foreground in title_html(plot).lower(), (name, plot)
            axis = plot.plotItem.getAxis("left")
            assert axis.textPen().color().name() == colors.foreground
            assert plot.backgroundBrush().color().name() == colors.background
        for plot in panel.turn_plots():
            assert plot.plotItem.legend is None  # no legend box drawn over the data
        for strip in (panel.tokens_plot, panel.itl_plot):
            image = strip.grab().toImage()  # painted in the scheme's colours
            assert image.pixelColor(1, 1).name() == colors.background, (name, strip.title)


def test_system_theme_follows_the_platform_scheme_when_it_changes(app_theme, chat):
    app = QApplication.instance()
    hints = app.styleHints()
    seen: list[bool] = []
    app_theme.notifier().theme_changed.connect(seen.append)
    app_theme.apply_theme(app, "system")
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert app_theme.is_dark() and seen[-1] is True
    for widget in chat.message_widgets():
        assert bubble_background(widget) == expected_background(widget.role)
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert not app_theme.is_dark() and seen[-1] is False
    # A scheme the user picked by name is not overridden by the platform's.
    app_theme.apply_theme(app, "light")
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert not app_theme.is_dark()
