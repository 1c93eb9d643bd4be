"""`glassbox` (the GUI, default command) and `glassbox demo`, registered as CLI plugins.

Registered through the "glassbox.commands" entry-point group so app/ never
imports Qt: `register(subparsers)` adds the commands, each with run(args) -> int.
"""

from __future__ import annotations

import argparse
import os
import sys

NO_DISPLAY_MESSAGE = (
    "glassbox: no display found (DISPLAY and WAYLAND_DISPLAY are unset); for a headless run use "
    "`glassbox demo --prompts FILE --screenshot OUT.png`"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from app.cli.common import add_common_flags
    from app.cli.remote_session import add_endpoint_flags
    from ui.infra.plot_export import register_export_formats

    register_export_formats()  # `glassbox export --format png` draws with pyqtgraph
    gui = subparsers.add_parser("gui", help="open the desktop window (the default command)")
    add_common_flags(gui)
    add_endpoint_flags(gui)
    gui.add_argument(
        "--self-test",
        action="store_true",
        help="start offscreen, load the model, answer one prompt, exit 0 (packaging check)",
    )
    gui.set_defaults(run=run_gui)

    demo = subparsers.add_parser(
        "demo", help="open the window headless, send prompts, save a screenshot, print metrics"
    )
    add_common_flags(demo)
    demo.add_argument("--prompts", required=True, metavar="FILE", help="one prompt a line")
    demo.add_argument(
        "--screenshot", required=True, metavar="OUT.png", help="where to save the window"
    )
    demo.add_argument(
        "--size", default="1400x860", metavar="WxH", help="window size (default 1400x860)"
    )
    demo.add_argument(
        "--max-tokens", type=int, default=160, metavar="N", help="per reply (default 160)"
    )
    demo.add_argument(
        "--temperature", type=float, default=0.7, metavar="T", help="sampling temperature"
    )
    demo.add_argument(
        "--seed", type=int, default=42, metavar="S", help="random seed, so runs repeat"
    )
    demo.add_argument(
        "--theme", choices=("light", "dark", "system"), default="light", help="window colours"
    )
    demo.add_argument(
        "--switch-theme",
        choices=("light", "dark"),
        default=None,
        help="switch to this theme while the window runs, after the prompts and before the "
        "screenshot: shows a live switch (default: no switch)",
    )
    demo.add_argument(
        "--tune",
        action="store_true",
        help="measure threads in the window first (stored; used while threads are auto)",
    )
    demo.add_argument(
        "--timeout", type=float, default=600.0, metavar="SECONDS", help="give up after this long"
    )
    demo.set_defaults(run=run_demo)


def display_missing() -> bool:
    """True on Linux without a display server and without an explicit Qt platform."""
    if not sys.platform.startswith("linux"):
        return False
    env = os.environ
    return not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM"))


def run_gui(args: argparse.Namespace) -> int:
    if getattr(args, "self_test", False):
        from ui.self_test import run_self_test

        return run_self_test(args)
    if display_missing():
        print(NO_DISPLAY_MESSAGE, file=sys.stderr)
        return 2
    from app.cli.common import runtime_from_args
    from app.cli.remote_session import endpoint_from_args
    from app.gui_settings import GuiSettings
    from app.run_marker import mark_clean_exit
    from ui.infra.error_dialog import install_excepthook
    from ui.startup import (
        build_window,
        create_application,
        model_after_last_exit,
        offer_model,
        report_startup_times,
        resolve_model,
        startup_times_requested,
    )

    settings = GuiSettings.load()
    endpoint = endpoint_from_args(args)  # --endpoint: a server's model instead of a file
    engine = None
    offer = None
    if endpoint is None:
        settings.runtime = runtime_from_args(args, settings.runtime)
        # After an unclean exit the last model is offered, not loaded (no crash loop).
        model, offer = model_after_last_exit(args, resolve_model(args, settings.model_path))
    else:
        from app.engine.remote import RemoteEngine

        engine, model = RemoteEngine(endpoint), endpoint.root

    app = create_application(settings.theme)
    window = build_window(settings, engine)
    install_excepthook(lambda: window)
    window.show()
    if startup_times_requested():
        report_startup_times(app, window)
    window.start(model)
    if offer:
        offer_model(window, offer)
    try:
        return int(app.exec())
    finally:
        window.close()  # the engine and the store close with the window
        mark_clean_exit()


def run_demo(args: argparse.Namespace) -> int:
    from ui.demo import run

    return run(args)
