"""StripPlot: the live strip's QPainter plots (ui/internals/strip_plot.py)."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor

from ui.infra import theme
from ui.internals.strip_plot import StripPlot, nice_step, tick_label, ticks


@pytest.fixture
def strip(qtbot):
    plot = StripPlot("This turn: tokens", "ms", "tokens", theme.DECODE_COLOR, (250.0, 10.0))
    qtbot.addWidget(plot)
    plot.resize(300, 180)
    plot.show()
    qtbot.waitExposed(plot)
    return plot


@pytest.mark.parametrize(
    ("span", "step"), [(10, 2), (250, 50), (3700, 1000), (0.9, 0.2), (60, 20), (1, 0.2), (45, 10)]
)
def test_ticks_fall_on_one_two_five_steps(span, step):
    assert nice_step(span) == pytest.approx(step)
    values = ticks(span)
    assert values[0] == 0 and values[-1] <= span + 1e-9 and 3 <= len(values) <= 6


def test_tick_labels_show_the_decimals_the_step_needs():
    assert tick_label(200.0, 50.0) == "200"
    assert tick_label(0.4, 0.2) == "0.4"


def colours_in(image, rect) -> set[str]:
    return {
        image.pixelColor(x, y).name()
        for x in range(int(rect.left()), int(rect.right()))
        for y in range(int(rect.top()), int(rect.bottom()))
    }


def test_empty_until_the_first_point_then_the_line_is_drawn(strip):
    assert strip.empty_shown
    line = QColor(theme.DECODE_COLOR).name()
    assert line not in colours_in(strip.grab().toImage(), strip.plot_rect())
    strip.set_points([0.0, 100.0, 200.0], [1, 2, 3])
    assert not strip.empty_shown
    assert line in colours_in(strip.grab().toImage(), strip.plot_rect())
    strip.set_points([], [])  # the next turn starts: no message again, the axes stay
    assert not strip.empty_shown


def test_tops_grow_in_steps_and_the_frame_is_painted_only_when_they_change(strip, qtbot):
    strip.set_points([0.0], [1.0])
    strip.repaint()
    painted = strip.frame_paints
    for i in range(1, 20):  # inside the starting range (250 ms, 10 tokens): same frame
        strip.extend([i * 10.0], [min(9, i)])
        strip.repaint()
    assert strip.tops() == (250.0, 10.0)
    assert strip.frame_paints == painted
    strip.extend([400.0], [30.0])  # past both tops
    assert strip.tops() == (800.0, 60.0)  # twice the data
    strip.repaint()
    assert strip.frame_paints == painted + 1


def test_fit_to_data_ends_the_axes_at_the_last_point(strip):
    strip.set_points([0.0, 90.0, 180.0], [1.0, 2.0, 3.0])
    strip.fit_to_data()
    assert strip.tops() == pytest.approx((180.0, 3.3))


class RecordingStrip(StripPlot):
    def __init__(self) -> None:
        super().__init__("t", "x", "y", theme.DECODE_COLOR, (100.0, 10.0))
        self.painted: list = []

    def paintEvent(self, event):  # noqa: N802 - Qt override
        self.painted.append(event.rect())
        super().paintEvent(event)


def test_points_added_at_the_end_repaint_only_their_rectangle(qtbot):
    strip = RecordingStrip()
    qtbot.addWidget(strip)
    strip.resize(300, 180)
    strip.show()
    qtbot.waitExposed(strip)
    strip.set_points([0.0, 10.0], [1.0, 2.0])
    qtbot.waitUntil(lambda: bool(strip.painted), timeout=1000)  # drawn whole once
    qtbot.wait(50)
    painted = strip.painted
    painted.clear()
    strip.extend([20.0, 30.0], [3.0, 4.0])
    qtbot.waitUntil(lambda: bool(painted), timeout=1000)
    area = strip.plot_rect()
    assert painted[0].width() < area.width() / 2  # the new segment, not the whole plot
    assert strip.count() == 4 and strip._line.size() == 4
    strip.set_points([0.0, 1.0], [9.0, 9.0])  # another turn: a new line
    assert strip._line.size() == 2 and strip.points() == ([0.0, 1.0], [9.0, 9.0])
