"""Settings opened on a loaded model warns when n_ctx goes beyond its trained context."""

from __future__ import annotations


def test_settings_warns_past_the_loaded_models_trained_context(qtbot, glassbox_home):
    from app.engine.fake import FakeEngine
    from app.gui_settings import GuiSettings
    from app.settings import RuntimeSettings
    from ui.startup import build_window

    win = build_window(GuiSettings(runtime=RuntimeSettings(n_threads=1)), engine=FakeEngine())
    qtbot.addWidget(win)
    win.show()
    try:
        with qtbot.waitSignal(win.controller.model_ready, timeout=10_000) as loaded:
            win.start("fake.gguf")
        trained = loaded.args[0].n_ctx_train  # the fake was "trained" on its n_ctx
        assert trained > 0
        dialog = win.open_settings()
        form = dialog.runtime_form
        form.n_ctx.setValue(trained)
        assert not form.context_warning.text()
        form.n_ctx.setValue(trained * 2)
        assert str(trained) in form.context_warning.text()
        assert str(trained * 2) in form.context_warning.text()
        dialog.close()
    finally:
        win.close()
