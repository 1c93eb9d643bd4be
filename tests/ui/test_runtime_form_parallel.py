"""Settings > Runtime > Parallel sequences: N for batched decode, checked as it is typed."""

from __future__ import annotations

from app.settings import RuntimeSettings, SamplingSettings


def test_parallel_sequences_are_edited_and_an_invalid_n_says_why_in_one_line(qtbot):
    from ui.dialogs.settings import SettingsDialog

    dialog = SettingsDialog(RuntimeSettings(), SamplingSettings())
    qtbot.addWidget(dialog)
    form = dialog.runtime_form
    assert form.n_parallel.value() == 1 and dialog.ok_button.isEnabled()
    assert "n_ctx / N" in form.n_parallel.toolTip()
    form.n_parallel.setValue(4)
    assert dialog.runtime().n_parallel == 4 and dialog.ok_button.isEnabled()
    form.n_parallel.setValue(9)
    assert not dialog.ok_button.isEnabled()
    assert dialog.error_label.text() == "parallel sequences must be 1..8, got 9"
    form.n_parallel.setValue(2)
    assert dialog.ok_button.isEnabled() and dialog.runtime().n_parallel == 2
