"""A model whose GGUF carries no chat template still answers, with the plain format."""

from __future__ import annotations

import shutil

from app.engine import events as ev
from app.models.gguf_file import read_gguf_info
from app.settings import RuntimeSettings, SamplingSettings

from helpers import load_engine, run_turn

TEMPLATE_KEY = b"tokenizer.chat_template"


def without_chat_template(source, target):
    """Copy the model with its template key renamed (same length, so offsets hold)."""
    shutil.copy(source, target)
    with open(target, "r+b") as f:
        header = f.read(4 * 2**20)  # metadata lives in the first few MiB
        at = header.index(TEMPLATE_KEY)
        f.seek(at + len(TEMPLATE_KEY) - 1)
        f.write(b"X")
    return target


def test_model_without_template_answers(bundled_model, tmp_path):
    model = without_chat_template(bundled_model, tmp_path / "no-template.gguf")
    assert not read_gguf_info(model).has_chat_template
    engine, loaded = load_engine(model, RuntimeSettings(n_ctx=512))
    try:
        assert loaded.has_chat_template is False
        assert loaded.chat_format == "plain"
        events = run_turn(
            engine,
            engine.submit(
                [
                    {"role": "system", "content": "You are helpful."},
                    {"role": "user", "content": "What is the capital of France?"},
                ],
                SamplingSettings(temperature=0.0, max_tokens=24),
            ),
        )
        finished = events[-1]
        assert isinstance(finished, ev.TurnFinished)
        assert finished.metrics.output_tokens > 0
        assert finished.text.strip()
        assert finished.metrics.stop_reason in ("eos", "length", "stop")
    finally:
        engine.close()
