"""`glassbox demo`: the real window, headless when needed, driven by a prompts file.

Sends each prompt as a turn of one new conversation, waits for each reply,
saves the window as a PNG, prints the per-turn metrics table and exits 0.
Uses a throwaway data directory so demos never touch the user's history.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from app.engine import events as ev
from app.errors import GlassboxError
from app.metrics import TurnMetrics

if TYPE_CHECKING:
    from ui.chrome.main_window import MainWindow
from app.metrics_table import render_table
from app.prompts_file import read_prompts


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise GlassboxError(f"--size must look like 1400x860, got {text!r}") from None
    if width < 400 or height < 300:
        raise GlassboxError(f"--size {text} is too small (at least 400x300)")
    return width, height


def run(args: argparse.Namespace) -> int:
    prompts = read_prompts(args.prompts)
    width, height = _parse_size(args.size)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # The demo drives the turns itself: a measurement starts only with --tune,
    # before the first prompt, never between turns.
    with (
        tempfile.TemporaryDirectory(prefix="glassbox-demo-") as home,
        _environ(GLASSBOX_HOME=home, GLASSBOX_AUTOTUNE="0"),
    ):
        return _run_window(args, prompts, width, height)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the block only; what was there before comes back."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_window(args: argparse.Namespace, prompts: list[str], width: int, height: int) -> int:
    from app.cli.common import runtime_from_args
    from app.gui_settings import GuiSettings
    from app.settings import SamplingSettings, gui_runtime_defaults
    from ui.infra.error_dialog import install_excepthook
    from ui.startup import build_window, create_application, resolve_model

    settings = GuiSettings(theme=args.theme)
    settings.runtime = runtime_from_args(args, gui_runtime_defaults())
    settings.sampling = SamplingSettings(
        temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens
    ).validate()
    model = resolve_model(args, None)
    app = create_application(args.theme)
    window = build_window(settings)
    try:
        install_excepthook(lambda: window)
        window.resize(width, height)
        window.show()
        driver = _DemoDriver(
            window,
            prompts,
            args.screenshot,
            args.timeout,
            tune=args.tune,
            switch_theme=getattr(args, "switch_theme", None),
        )
        window.start(model)
        code = app.exec()
    finally:
        window.close()  # stops the engine and closes the store, also after an error
    if driver.error:
        print(f"glassbox demo: {driver.error}", file=sys.stderr)
    return code if code else (1 if driver.error else 0)


class _DemoDriver:
    """Sends the next prompt whenever the previous reply is stored; screenshots at the end."""

    def __init__(
        self,
        window: MainWindow,
        prompts: list[str],
        screenshot: str,
        timeout_s: float,
        tune: bool = False,
        switch_theme: str | None = None,
    ) -> None:
        from PySide6.QtCore import QTimer

        self.window, self.prompts, self.screenshot = window, list(prompts), screenshot
        self.switch_theme = switch_theme
        self.error: str | None = None
        self.sent = 0
        self._started = False
        controller = window.controller
        controller.model_ready.connect(self._on_controller_model_ready)
        controller.conversation_opened.connect(self._on_controller_conversation_opened)
        controller.reply_finished.connect(self._on_controller_reply_finished)
        controller.turns_reloaded.connect(self._on_controller_turns_reloaded)
        window.bridge.engine_error.connect(self._on_bridge_engine_error)
        window.bridge.engine_crashed.connect(lambda e: self._fail(e.message))
        QTimer.singleShot(
            int(timeout_s * 1000), lambda: self._fail(f"timed out after {timeout_s:.0f} s")
        )
        self._ready = {"model": False, "conversation": False, "threads": not tune}
        self._tune = tune
        window.tuner.tuning_finished.connect(self._on_tuner_tuning_finished)

    def _on_controller_model_ready(self, _info: ev.ModelLoaded) -> None:
        self._ready["model"] = True
        if self._tune and not self._ready["threads"]:
            self.window.tuner.measure_now()
        self._maybe_begin()

    def _on_tuner_tuning_finished(self, event: ev.TuneFinished) -> None:
        if not self._tune or self._ready["threads"]:
            return
        from app.cli.tune_cmd import format_table
        from app.engine.thread_tuning import usable_cores

        print(format_table(event, usable_cores()), flush=True)
        self._ready["threads"] = True
        self._maybe_begin()

    def _on_controller_conversation_opened(self, _cid: int) -> None:
        self._ready["conversation"] = True
        self._maybe_begin()

    def _maybe_begin(self) -> None:
        if all(self._ready.values()) and not self._started:
            self._started = True
            self._send_next()

    def _send_next(self) -> None:
        prompt = self.prompts[self.sent]
        self.sent += 1
        print(f"> {prompt}", flush=True)
        self.window.controller.send(prompt)

    def _on_controller_reply_finished(self, event: ev.TurnFinished) -> None:
        if event.metrics.stop_reason == "error":
            self._fail("a turn ended with an error")

    def _on_controller_turns_reloaded(self, _cid: int) -> None:
        if self.error is not None:
            return
        if self.sent < len(self.prompts):
            self._send_next()
        else:
            self._finish()

    def _on_bridge_engine_error(self, event: ev.EngineError) -> None:
        self._fail(event.message)

    def _fail(self, message: str) -> None:
        if self.error is None and self.window.isVisible():
            self.error = message
            self.window.close()
            from PySide6.QtWidgets import QApplication

            QApplication.exit(1)

    def _finish(self) -> None:
        from PySide6.QtCore import QTimer

        window = self.window
        turns = window.panel.turns()
        if turns:  # show the selection highlight on the last turn, as a user would see it
            window.chat.select_message(turns[-1][0])
            window.panel.highlight_message(turns[-1][0])
        if self.switch_theme:  # a live switch, as View > Theme does it
            from PySide6.QtWidgets import QApplication

            from ui.infra.theme import apply_theme

            app = QApplication.instance()
            assert isinstance(app, QApplication)
            apply_theme(app, self.switch_theme)
        # Let the streaming renderer and the plot timer catch up before grabbing.
        QTimer.singleShot(300, lambda: self._grab(turns))

    def _grab(self, turns: list[tuple[int, TurnMetrics]]) -> None:
        from PySide6.QtWidgets import QApplication

        window = self.window
        window.panel.flush()
        QApplication.processEvents()
        Path(self.screenshot).parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(self.screenshot):
            self._fail(f"could not write {self.screenshot}")
            return
        print(render_table(m for _message_id, m in turns))  # as chat and bench print it
        info = window.engine.model_info
        if info is not None:
            batch = info.settings.get("n_threads_batch") or info.n_threads
            source = f" ({info.threads_source})" if info.threads_source else ""
            print(f"threads: {info.n_threads} decode / {batch} prefill{source}")
        print(f"screenshot: {self.screenshot} ({window.width()}x{window.height()})")
        window.close()
        QApplication.exit(0)
