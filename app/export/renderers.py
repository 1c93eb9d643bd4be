"""Export formats that need the GUI toolkit (PNG plot images), registered by ui/.

ui/ registers its renderer when the CLI builds its commands (the
"glassbox.commands" entry points), so `glassbox export --format png` works where
the GUI is installed and says why not elsewhere, and app/ never imports Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.export.document import ConversationDocument, ExportError

# (document, output path) -> None
Renderer = Callable[[ConversationDocument, Path], None]

_RENDERERS: dict[str, Renderer] = {}


def register_renderer(fmt: str, renderer: Renderer) -> None:
    _RENDERERS[fmt] = renderer


def renderer_for(fmt: str) -> Renderer:
    try:
        return _RENDERERS[fmt]
    except KeyError:
        raise ExportError(
            f"--format {fmt} needs the desktop GUI's plotting (PySide6, pyqtgraph), which is "
            "not installed; --format html or svg draws the plots without it"
        ) from None
