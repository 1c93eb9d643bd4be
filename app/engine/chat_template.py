"""A GGUF's Jinja chat template, rendered so that a hostile or broken one cannot hurt.

The template comes from the model file, so it is untrusted code. It renders in
Jinja's ImmutableSandboxedEnvironment (no attribute walking to os or
subprocess, no mutation of what it is given), with limits the sandbox lacks:

- a CPU-time limit on each render (a timer signal, in the process's main
  thread: the worker renders there), so nested loops of 99,999 end in an error
  instead of hanging the worker where Stop cannot reach it;
- a budget on range() items per render, which bounds range loops even where
  the timer cannot run (another thread, Windows);
- no huge repetition ("x" * 10**10) or huge integer arguments to calls.

Every failure (syntax error, sandbox violation, time or size limit, an
exception the template raises) comes out as TemplateError; the worker then
uses the plain format and says why (ModelLoaded.chat_template_note).

No llama_cpp import: the parent and the tests render templates too.
"""

from __future__ import annotations

import json
import operator
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from app.errors import GlassboxError

Message = dict[str, str]

# CPU seconds one render may take; real templates take well under 10 ms.
RENDER_CPU_LIMIT_S = 2.0
# range() items per render, all ranges together; a template walks each message a few times.
RANGE_BUDGET = 1_000_000
# The longest string or list a template may build by repetition, and the largest
# integer it may pass to a call (str.ljust(10**10) allocates 10 GB).
MAX_REPEAT_LEN = 1_000_000
MAX_CALL_INT = 1_000_000
# The conversation the load-time check renders: what every chat template must accept.
PROBE_MESSAGES: tuple[Message, ...] = ({"role": "user", "content": "Hello"},)


class TemplateError(GlassboxError):
    """The model's chat template cannot be used (one line, for the user)."""


class _RenderTimeout(BaseException):
    # BaseException: Jinja and template code catch Exception in places, and must not
    # swallow the time limit.
    pass


class _GenerationTag(jinja2.ext.Extension):
    """Hugging Face's {% generation %} tag: its body renders as is."""

    tags = {"generation"}  # noqa: RUF012 - Jinja reads a class attribute

    def parse(self, parser: Any) -> Any:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _LimitedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus limits on repetition and call arguments."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * max(times, 0) > MAX_REPEAT_LEN:
                    raise SecurityError("the template builds an oversized sequence")
            return operator.mul(left, right)
        if isinstance(right, int) and abs(right) > 64:
            raise SecurityError("the template raises a number to an oversized power")
        return operator.pow(left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_CALL_INT:
                raise SecurityError("the template passes an oversized number to a call")
        return super().call(__context, __obj, *args, **kwargs)


def _budgeted_range() -> Callable[..., range]:
    """range() for one render: each range's length counts against RANGE_BUDGET when
    it is made, so nested loops run out after a few outer steps (and range objects
    keep len() and indexing, which templates use)."""
    left = [RANGE_BUDGET]

    def limited_range(*args: int) -> range:
        made = range(*args)
        left[0] -= len(made)
        if left[0] < 0:
            raise SecurityError(f"the template loops more than {RANGE_BUDGET} times")
        return made

    return limited_range


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, sort_keys: bool = False
) -> str:
    # Transformers' chat-template tojson: no HTML escaping, Unicode kept.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise TemplateError(f"the template refused the conversation: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@contextmanager
def cpu_time_limit(seconds: float) -> Iterator[None]:
    """Raise _RenderTimeout in this thread after `seconds` of process CPU time.

    Only in the main thread with setitimer (Linux, macOS): Python runs signal
    handlers there. Elsewhere it does nothing and RANGE_BUDGET is the bound.
    ITIMER_VIRTUAL counts CPU time, so a busy machine does not cut a render
    short, and it leaves SIGALRM to others (pytest-timeout uses it).
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_timer(_signum: int, _frame: Any) -> None:
        raise _RenderTimeout

    previous_handler = signal.signal(signal.SIGVTALRM, on_timer)
    previous_timer = signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, *previous_timer)
        signal.signal(signal.SIGVTALRM, previous_handler)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


class ChatTemplate:
    """A compiled chat template; render() gives the prompt text or raises TemplateError."""

    def __init__(
        self,
        source: str,
        bos_token: str = "",
        eos_token: str = "",
        cpu_limit_s: float = RENDER_CPU_LIMIT_S,
    ) -> None:
        self.bos_token, self.eos_token, self.cpu_limit_s = bos_token, eos_token, cpu_limit_s
        env = _LimitedEnvironment(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_GenerationTag, jinja2.ext.loopcontrols],
        )
        env.filters["tojson"] = _tojson
        self._env = env
        try:
            with cpu_time_limit(cpu_limit_s):
                self._template = env.from_string(source)
        except _RenderTimeout:
            raise TemplateError("the chat template took too long to compile") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"the chat template has a syntax error (line {exc.lineno}): {_one_line(exc)}"
            ) from None
        except Exception as exc:
            raise TemplateError(f"the chat template cannot be compiled: {_one_line(exc)}") from None

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        try:
            with cpu_time_limit(self.cpu_limit_s):
                return self._template.render(
                    messages=[dict(m) for m in messages],
                    bos_token=self.bos_token,
                    eos_token=self.eos_token,
                    add_generation_prompt=add_generation_prompt,
                    raise_exception=_raise_exception,
                    strftime_now=_strftime_now,
                    range=_budgeted_range(),
                    tools=None,
                    functions=None,
                )
        except _RenderTimeout:
            raise TemplateError(
                f"the chat template ran for over {self.cpu_limit_s:g} s of CPU time"
            ) from None
        except TemplateError:
            raise
        except SecurityError as exc:
            raise TemplateError(
                f"the chat template tried something the sandbox forbids: {_one_line(exc)}"
            ) from None
        except RecursionError:
            raise TemplateError("the chat template recursed too deeply") from None
        except Exception as exc:
            raise TemplateError(
                f"the chat template failed: {type(exc).__name__}: {_one_line(exc)}"
            ) from None


def checked_template(
    source: str, bos_token: str = "", eos_token: str = ""
) -> tuple[ChatTemplate | None, str]:
    """The template, once it compiled and rendered a one-message conversation; else
    (None, why), and the caller uses the plain format."""
    try:
        template = ChatTemplate(source, bos_token, eos_token)
        template.render(PROBE_MESSAGES)
    except TemplateError as exc:
        return None, f"{exc}; using the plain prompt format instead"
    return template, ""
