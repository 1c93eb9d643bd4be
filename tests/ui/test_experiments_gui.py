"""Tools menu in the real window: the Experiments dialog runs an A/B on the bundled model off the
GUI thread; Replay last reply says whether the reply came out the same."""

from __future__ import annotations

from app.experiments import RATIO_FIELDS

TIMEOUT = 240_000


def test_experiments_dialog_overlays_both_sides_and_fills_the_ratio_table(qtbot, window):
    tools = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Tools")
    assert [a.text() for a in tools.actions()] == ["&Experiments…", "&Replay last reply"]
    dialog = window.file_actions.open_experiments()
    dialog.prompts.setPlainText("Name a fruit.\nName a colour.")
    dialog.config_a.setText("threads=1")
    dialog.config_b.setText("threads=2 ctx=1024")
    dialog.max_tokens.setValue(8)
    with qtbot.waitSignal(dialog.finished_run, timeout=TIMEOUT) as blocker:
        dialog.start_run()
        assert dialog.running and not dialog.run_button.isEnabled()
    result = blocker.args[0]
    assert [s.loaded.n_threads for s in result.sides] == [1, 2]
    assert [len(s.turns) for s in result.sides] == [2, 2]
    for curve, side in zip(dialog.decode_plot.curves, result.sides):
        assert list(curve.getData()[1]) == [m.decode_tok_s for m in side.turns]
    row = list(RATIO_FIELDS).index("decode_tok_s")
    ratio = dialog.table.item(row, 2).text()  # B / A
    expected = result.median_ratios(1)["decode_tok_s"]
    assert ratio == f"{expected:.2f}x"
    assert dialog.run_button.isEnabled() and not dialog.running
    dialog.close()


def test_a_bad_configuration_is_a_message_not_a_run(qtbot, window):
    dialog = window.file_actions.open_experiments()
    dialog.config_b.setText("speed=11")
    with qtbot.waitSignal(dialog.failed_run, timeout=5000) as blocker:
        dialog.start_run()
    assert "unknown key 'speed'" in blocker.args[0] and not dialog.running
    dialog.close()


def test_replay_last_reply_reproduces_a_greedy_turn(qtbot, window):
    with qtbot.waitSignal(window.controller.turns_reloaded, timeout=60_000):
        window.controller.send("Say hello.")
    with qtbot.waitSignal(window.file_actions.replayed, timeout=TIMEOUT) as blocker:
        window.file_actions.replay_last()
    result = blocker.args[0]
    assert result.reproduced, (result.text, result.plan.message.content)
    assert result.summary().startswith("reproduced: turn 1 came out the same")
