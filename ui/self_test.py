"""`glassbox --self-test`: start the real window offscreen, load the model, answer one prompt.

For packaging checks (packaging/smoke_test.sh runs it from the built bundle): it
proves the bundle has Qt and its platform plugins, llama.cpp's libraries, the
worker process start-up and a model. It runs in a temporary GLASSBOX_HOME, so
the user's conversations and settings are neither read nor touched, and
prints one line saying what passed or failed. Exit status 0 on success.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

PROMPT = "Reply with one short sentence: what is 2 + 2?"
TIMEOUT_S = 300.0


def run_self_test(args: argparse.Namespace) -> int:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before the QApplication exists
    from ui.demo import _environ

    with (
        tempfile.TemporaryDirectory(prefix="glassbox-self-test-") as home,
        _environ(GLASSBOX_HOME=home, GLASSBOX_AUTOTUNE="0"),
    ):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QTimer

    from app.cli.common import runtime_from_args
    from app.gui_settings import GuiSettings
    from app.settings import SamplingSettings, gui_runtime_defaults
    from ui.startup import build_window, create_application, resolve_model

    started = time.monotonic()
    settings = GuiSettings()
    settings.runtime = runtime_from_args(args, gui_runtime_defaults())
    settings.sampling = SamplingSettings(temperature=0.0, seed=0, max_tokens=16)
    model = resolve_model(args, None)
    app = create_application("light")
    window = build_window(settings)
    outcome: dict[str, str] = {}

    def finish(result: str, code: int) -> None:
        if "result" not in outcome:
            outcome["result"] = result
            app.exit(code)

    def on_model_ready(_info: object) -> None:
        outcome.setdefault("loaded", f"{time.monotonic() - started:.1f} s")
        if "sent" not in outcome:
            outcome["sent"] = "yes"
            window.controller.send(PROMPT)

    def on_turn_finished(event: object) -> None:
        metrics = getattr(event, "metrics", None)
        text = str(getattr(event, "text", "")).strip()
        stop = getattr(metrics, "stop_reason", None)
        if stop in ("eos", "length", "stop") and text:
            tokens = getattr(metrics, "output_tokens", None)
            finish(f"answered with {tokens} tokens ({stop}): {text[:60]!r}", 0)
        else:
            finish(f"the turn ended without an answer (stop reason {stop})", 1)

    def on_engine_failed(event: object) -> None:
        finish(f"engine error: {getattr(event, 'message', event)}", 1)

    window.controller.model_ready.connect(on_model_ready)
    window.bridge.turn_finished.connect(on_turn_finished)
    window.bridge.engine_error.connect(on_engine_failed)
    window.bridge.engine_crashed.connect(on_engine_failed)
    QTimer.singleShot(int(TIMEOUT_S * 1000), lambda: finish(f"no answer in {TIMEOUT_S:.0f} s", 1))
    try:
        window.show()
        window.start(model)
        code = app.exec()
    finally:
        window.close()
    verdict = "passed" if code == 0 else "FAILED"
    print(
        f"glassbox self-test {verdict}: model {os.path.basename(model)} loaded in "
        f"{outcome.get('loaded', '-')}, {outcome.get('result', 'no result')}, "
        f"{time.monotonic() - started:.1f} s in all",
        file=sys.stderr if code else sys.stdout,
    )
    return code
