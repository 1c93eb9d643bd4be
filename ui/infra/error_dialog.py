"""Unhandled exceptions in slots become an error dialog instead of a dead window.

PySide6 hands exceptions raised in slots and virtual overrides to sys.excepthook
and carries on; our hook prints the traceback (for bug reports) and shows it in
a non-modal dialog, so the event loop keeps running.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from app.errors import GlassboxError

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], None]

_open_dialogs: list[QMessageBox] = []


def show_error(
    parent: QWidget | None, title: str, message: str, details: str | None = None
) -> QMessageBox:
    """A non-modal warning box (never blocks the event loop)."""
    box = QMessageBox(
        QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent
    )
    box.setAccessibleName(title)
    if details:
        box.setDetailedText(details)
    box.setModal(False)
    _open_dialogs.append(box)
    box.finished.connect(lambda _r, b=box: _open_dialogs.remove(b) if b in _open_dialogs else None)
    box.show()
    return box


def open_error_dialogs() -> list[QMessageBox]:
    return [box for box in _open_dialogs if box.isVisible()]


def install_excepthook(parent: Callable[[], QWidget | None] = lambda: None) -> ExceptHook:
    """Route uncaught exceptions to an error dialog; returns the previous hook."""
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt) or QApplication.instance() is None:
            previous(exc_type, exc, tb)
            return
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(details)
        if isinstance(exc, GlassboxError):
            message = str(exc)
        else:
            message = f"Something went wrong: {exc_type.__name__}: {exc}".splitlines()[0]
            message += "\n\nThe window keeps running; the details below help a bug report."
        show_error(parent(), "Glassbox error", message, details)

    sys.excepthook = hook
    return previous
