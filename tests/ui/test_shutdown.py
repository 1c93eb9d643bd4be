"""Closing the window: background work drains, then the engine, then the store; dialogs do not pile up."""

from __future__ import annotations

import time

import pytest
import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent

from app.storage.schema import StorageError


def test_close_drains_background_jobs_then_closes_engine_then_store(qtbot, window, monkeypatch):
    order: list[str] = []
    engine_close, store_close = window.engine.close, window.store.close

    def close_engine() -> None:
        order.append("engine")
        engine_close()

    def close_store() -> None:
        order.append("store")
        store_close()

    monkeypatch.setattr(window.engine, "close", close_engine)
    monkeypatch.setattr(window.store, "close", close_store)

    def slow_store_write() -> None:
        time.sleep(0.3)
        window.store.list_conversations()  # would fail on a closed store
        order.append("job")

    window.tasks.run(slow_store_write)
    window.close()
    assert order == ["job", "engine", "store"]
    with pytest.raises(StorageError, match="closed database"):
        window.store.list_conversations()
    window.close()  # a second close (the fixture's) does nothing more
    assert order == ["job", "engine", "store"]


def test_settings_dialog_is_deleted_when_closed_and_models_dialog_reused(qtbot, window):
    from ui.dialogs.settings import SettingsDialog

    first = window.open_settings()
    assert window.open_settings() is first  # already open: raised, not made again
    first.reject()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not shiboken6.isValid(first)
    second = window.open_settings()
    second.reject()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert window.findChildren(SettingsDialog) == []

    models = window.open_models_dialog()
    models.reject()
    window.settings.runtime = window.settings.runtime.with_changes(n_ctx=1024)
    assert window.open_models_dialog() is models
    assert models.ctx_spin.value() == 1024
    models.reject()


def test_background_callback_of_a_deleted_widget_is_dropped(qtbot):
    from PySide6.QtWidgets import QLabel

    from ui.infra.tasks import BackgroundTasks

    tasks = BackgroundTasks()
    label = QLabel()
    failures: list[str] = []
    tasks.failed.connect(failures.append)
    tasks.run(lambda: time.sleep(0.1) or "late", on_done=label.setText)
    label.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    with qtbot.waitSignal(tasks.idle, timeout=5000):
        pass
    assert not shiboken6.isValid(label) and failures == []
    tasks.shutdown()
