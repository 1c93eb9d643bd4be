"""Small builders for the dialogs' widgets: buttons, labels, spin boxes, tables, rows, pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

W = TypeVar("W", bound=QWidget)


def with_tip(widget: W, name: str, tip: str) -> W:
    """The widget, with an accessible name and a tooltip."""
    widget.setAccessibleName(name)
    widget.setToolTip(tip)
    return widget


def spin_box(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box


def double_spin_box(
    low: float, high: float, value: float, decimals: int, step: float
) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(decimals)
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    return box


def button(text: str, slot: Callable[[], Any]) -> QPushButton:
    widget = QPushButton(text)
    widget.clicked.connect(slot)
    return widget


def status_label(name: str) -> QLabel:
    label = QLabel("")
    label.setWordWrap(True)
    label.setAccessibleName(name)
    return label


def table(columns: tuple[str, ...], name: str) -> QTableWidget:
    widget = QTableWidget(0, len(columns))
    widget.setHorizontalHeaderLabels(list(columns))
    widget.setAccessibleName(name)
    widget.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    widget.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    widget.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    widget.horizontalHeader().setStretchLastSection(True)
    widget.verticalHeader().setVisible(False)
    return widget


def row(*items: QWidget | tuple[QWidget, int] | None) -> QHBoxLayout:
    """A row of widgets; (widget, stretch) stretches it, None is a stretchable gap."""
    layout = QHBoxLayout()
    for item in items:
        if item is None:
            layout.addStretch(1)
        elif isinstance(item, tuple):
            layout.addWidget(*item)
        else:
            layout.addWidget(item)
    return layout


def page(*items: QWidget | QHBoxLayout) -> QWidget:
    widget = QWidget()
    layout = QVBoxLayout(widget)
    for item in items:
        if isinstance(item, QWidget):
            layout.addWidget(item)
        else:
            layout.addLayout(item)
    return widget
