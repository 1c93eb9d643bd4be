"""Settings > Runtime warns while n_ctx is beyond the model's trained context."""

from __future__ import annotations

from app.settings import RuntimeSettings
from ui.dialogs.runtime_form import RuntimeForm


def test_the_warning_names_both_numbers_and_follows_the_field(qtbot):
    form = RuntimeForm(RuntimeSettings(n_ctx=4096), n_layers=30, n_ctx_train=8192)
    qtbot.addWidget(form)
    assert form.context_warning.isHidden()
    form.n_ctx.setValue(100_000)
    assert not form.context_warning.isHidden()
    assert "100000" in form.context_warning.text() and "8192" in form.context_warning.text()
    form.n_ctx.setValue(8192)
    assert form.context_warning.isHidden()


def test_the_trained_context_can_come_after_the_form_is_built(qtbot):
    form = RuntimeForm(RuntimeSettings(n_ctx=16384))
    qtbot.addWidget(form)
    assert form.context_warning.isHidden()  # no model known yet: nothing to compare with
    form.set_trained_context(8192)
    assert "16384" in form.context_warning.text()
