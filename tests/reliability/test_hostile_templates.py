"""Hostile chat templates: nothing dangerous renders, the model falls back to the plain format.

The template is code from the model file. Escape attempts, syntax errors, endless loops
and memory bombs each end in TemplateError in the parent (fast, many cases) and, for a
real GGUF carrying them, in a worker that loads the model with the plain format and a
note, then answers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.engine import events as ev
from app.engine.chat_template import ChatTemplate, TemplateError, checked_template
from app.models.gguf_file import read_gguf_info
from app.settings import RuntimeSettings, SamplingSettings

from helpers import load_engine, run_turn, wait_for

CANARY = "CANARY_PATH"

# Each tries to reach os/subprocess/builtins or write the canary file. {CANARY} is
# replaced by the test's canary path.
ESCAPES = {
    "mro-subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler-globals-os": "{{ cycler.__init__.__globals__.os.popen('touch CANARY_PATH').read() }}",
    "joiner-globals": "{{ joiner.__init__.__globals__['__builtins__']['open']('CANARY_PATH','w') }}",
    "namespace-globals": "{{ namespace.__init__.__globals__.os.system('touch CANARY_PATH') }}",
    "lipsum-globals": "{{ lipsum.__globals__['os'].popen('touch CANARY_PATH') }}",
    "attr-filter": "{{ (''|attr('__class__')|attr('__base__')|attr('__subclasses__'))() }}",
    "format-walk": "{{ '{0.__class__.__base__.__subclasses__}'.format('') }}",
    "format-map": "{{ '{x.__class__}'.format_map({'x': ''}) }}",
    "raise-exception-globals": "{{ raise_exception.__globals__['os'].system('touch CANARY_PATH') }}",
    "strftime-globals": "{{ strftime_now.__globals__['__builtins__'] }}",
    "messages-mutation": "{% set _ = messages.append({'role': 'user'}) %}{{ messages }}",
    "dict-update": "{% set _ = messages[0].update({'content': 'x'}) %}x",
    "self-context": "{{ self._TemplateReference__context.environment }}",
    "func-code": "{{ raise_exception.__code__ }}",
    "gi-frame": "{% for x in range(1) %}{{ loop.__class__.__init__.__globals__ }}{% endfor %}",
}
BROKEN = {
    "syntax-error": "{% for message in messages %}{{ message.content }",
    "unknown-tag": "{% include 'os.py' %}",
    "nested-range-loops": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "nested-string-loops": "{% for i in 'x' * 99999 %}{% for j in 'x' * 99999 %}{% endfor %}{% endfor %}",
    "repeat-bomb": "{{ 'x' * 10000000000 }}",
    "ljust-bomb": "{{ 'x'.ljust(10000000000) }}",
    "recursion": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "raises": "{{ raise_exception('this template refuses everything') }}",
    "undefined-call": "{{ nothing() }}",
}


def _template(source: str, canary: Path) -> str:
    return source.replace(CANARY, str(canary))


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escape_attempts_render_nothing_dangerous(name: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    template, note = checked_template(_template(ESCAPES[name], canary))
    if template is None:
        # Refused: the model then uses the plain format, and says so in one line.
        assert note.endswith("using the plain prompt format instead")
        assert "\n" not in note
    else:
        # A few attempts render harmlessly (the sandbox answers them with nothing).
        output = template.render([{"role": "user", "content": "hi"}])
        for leak in ("<class", "<module", "<function", "<built-in", "__builtins__", "os."):
            assert leak not in output, f"{name} rendered {output!r}"
    assert not canary.exists()


def test_most_escape_attempts_are_refused_outright(tmp_path: Path) -> None:
    refused = [
        name
        for name, source in ESCAPES.items()
        if checked_template(_template(source, tmp_path / "canary"))[0] is None
    ]
    print(f"{len(refused)} of {len(ESCAPES)} escape attempts refused, the rest render nothing")
    assert len(refused) >= len(ESCAPES) - 2


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_templates_fall_back_with_one_line(name: str) -> None:
    template, note = checked_template(BROKEN[name])
    assert template is None
    assert note.startswith(("the chat template", "the template")) and "\n" not in note


def test_the_time_limit_ends_a_loop_that_no_budget_bounds() -> None:
    # String loops bypass the range() budget; only the CPU-time limit stops them.
    template = ChatTemplate(BROKEN["nested-string-loops"], cpu_limit_s=0.2)
    with pytest.raises(TemplateError, match="CPU time"):
        template.render([{"role": "user", "content": "hi"}])


def test_a_real_template_still_renders(bundled_model: Path) -> None:
    source = read_gguf_info(bundled_model).chat_template
    assert source
    template, note = checked_template(source, eos_token="<|im_end|>")
    assert template is not None and note == ""
    prompt = template.render([{"role": "user", "content": "Hi there"}])
    assert "<|im_start|>user\nHi there<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def with_template(source_model: Path, target: Path, template: str) -> Path:
    """Copy the model with its chat template replaced by one of the same byte length
    (padded with a Jinja comment), so every offset in the file holds."""
    original = read_gguf_info(source_model).chat_template
    assert original
    old, new = original.encode(), template.encode()
    padding = len(old) - len(new) - len("{##}")
    assert padding >= 0, "the hostile template must be shorter than the model's"
    new += b"{#" + b" " * padding + b"#}"
    shutil.copy(source_model, target)
    with target.open("r+b") as f:
        header = f.read(4 * 2**20)
        at = header.index(old)
        f.seek(at)
        f.write(new)
    return target


# One thread: spinning decode threads crawl on a busy machine; speed is not the point here.
SETTINGS = RuntimeSettings(n_ctx=512, n_threads=1, repack="off")

# One real GGUF per kind of failure: an escape that would write the canary, a syntax
# error, and an endless loop that only the time limit stops.
REAL_CASES = ("cycler-globals-os", "syntax-error", "nested-string-loops")


def test_real_models_with_hostile_templates_load_plain_and_answer(
    bundled_model: Path, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    cases = {**ESCAPES, **BROKEN}
    engine = None
    try:
        for name in REAL_CASES:
            model = with_template(
                bundled_model, tmp_path / f"{name}.gguf", _template(cases[name], canary)
            )
            if engine is None:
                engine, loaded = load_engine(model, SETTINGS)
            else:
                engine.load(model, SETTINGS)
                loaded = wait_for(engine, ev.ModelLoaded | ev.EngineError)[-1]  # type: ignore[operator]
            assert isinstance(loaded, ev.ModelLoaded), f"{name}: {loaded}"
            assert loaded.chat_format == "plain", name
            assert "using the plain prompt format" in loaded.chat_template_note, name
            request = engine.submit(
                [{"role": "user", "content": "Say hi."}], SamplingSettings(max_tokens=4)
            )
            events = run_turn(engine, request)
            errors = [e for e in events if isinstance(e, ev.EngineError | ev.EngineCrashed)]
            assert not errors, f"{name}: {errors}"
            assert events[-1].metrics.stop_reason in ("eos", "length", "stop"), name
            assert events[-1].metrics.output_tokens >= 1
            model.unlink()
        assert not canary.exists()
    finally:
        if engine is not None:
            engine.close()
