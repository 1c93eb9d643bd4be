"""What ModelLoaded says about the model: its name for people and its trained context."""

from __future__ import annotations

from app.cli.common import describe_loaded
from app.settings import RuntimeSettings

from helpers import load_engine


def test_the_loaded_model_has_a_clean_name_and_keeps_general_name(loaded_engine):
    _, loaded = loaded_engine
    assert loaded.model_name == "SmolLM2 135M Instruct · Q4_1"
    assert loaded.general_name == "Smollm2 135M 8k Lc100K Mix1 Ep2"
    assert loaded.context_note == ""  # n_ctx 2048 is within the trained 8192


def test_a_load_beyond_the_trained_context_says_so_naming_both(bundled_model):
    engine, loaded = load_engine(bundled_model, RuntimeSettings(n_ctx=9216, n_threads=1))
    try:
        assert loaded.n_ctx == 9216 and loaded.n_ctx_train == 8192
        assert "9216" in loaded.context_note and "8192" in loaded.context_note
        assert f"warning: {loaded.context_note}" in describe_loaded(loaded)  # the CLI's load line
    finally:
        engine.close()
