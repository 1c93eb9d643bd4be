"""The status bar names the model for people, says where its layers run, and warns
when n_ctx is beyond the trained context."""

from __future__ import annotations

from app.engine import events as ev
from app.models.fit import trained_context_warning
from ui.chrome.status_bar import EngineStatusBar


def _info(**changes) -> ev.ModelLoaded:
    base = {
        "model_path": "/m/SmolLM2-135M-Instruct.Q4_1.gguf",
        "model_name": "SmolLM2 135M Instruct · Q4_1",
        "general_name": "Smollm2 135M 8k Lc100K Mix1 Ep2",
        "n_layers": 30,
        "n_ctx": 2048,
        "n_ctx_train": 8192,
    }
    return ev.ModelLoaded(**{**base, **changes})


def test_the_model_name_and_where_its_layers_run_in_plain_words(qtbot):
    bar = EngineStatusBar()
    qtbot.addWidget(bar)
    bar.set_model_info(_info())
    assert bar.model_label.text() == "SmolLM2 135M Instruct · Q4_1"
    assert "Smollm2 135M 8k Lc100K Mix1 Ep2" in bar.model_label.toolTip()
    assert bar.backend_label.text() == "CPU only · 0 of 30 layers on GPU"
    bar.set_model_info(_info(backend="CUDA", n_layers_offloaded=12))
    assert bar.backend_label.text() == "CUDA · 12 of 30 layers on GPU"
    bar.set_model_info(_info(backend="CUDA", n_layers_offloaded=30))
    assert bar.backend_label.text() == "CUDA · all 30 layers on GPU"


def test_a_context_beyond_the_trained_length_is_announced_with_both_numbers(qtbot):
    bar = EngineStatusBar()
    qtbot.addWidget(bar)
    note = trained_context_warning(16384, 8192)
    bar.set_model_info(_info(n_ctx=16384, context_note=note))
    assert "16384" in bar.currentMessage() and "8192" in bar.currentMessage()
    assert bar.ctx_label.text() == "n_ctx 16384 ⚠ trained 8192"
    assert bar.ctx_label.toolTip() == note
    bar.set_model_info(_info())
    assert bar.ctx_label.text() == "n_ctx 2048" and bar.ctx_label.toolTip() != note


def test_parallel_sequences_are_shown_with_the_context_they_share(qtbot):
    bar = EngineStatusBar()
    qtbot.addWidget(bar)
    bar.set_model_info(_info(n_ctx=4096, settings={"n_parallel": 4}))
    assert bar.ctx_label.text() == "n_ctx 4096 · 4 sequences"
    assert "each with 1024 tokens" in bar.ctx_label.toolTip()
    bar.set_model_info(_info(n_ctx=4096, settings={"n_parallel": 1}))
    assert bar.ctx_label.text() == "n_ctx 4096"  # one sequence: nothing to say
