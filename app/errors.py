"""Errors that carry a one-line message meant for the user.

Anything raised as a GlassboxError is shown as its message alone (CLI: one
line on stderr and a non-zero exit; GUI: a dialog or banner), never as a
traceback.
"""


class GlassboxError(Exception):
    """Base class: str(error) is a complete one-line message for the user."""


class ModelFileError(GlassboxError):
    """The model file is missing, not GGUF, truncated or corrupted."""


class SettingsError(GlassboxError):
    """A runtime or sampling setting is out of range."""


class ContextOverflowError(GlassboxError):
    """One message alone does not fit in the context window."""


class EngineUnavailableError(GlassboxError):
    """The engine is closed or has no model loaded."""


class EngineTimeoutError(GlassboxError):
    """The engine sent no event for longer than a caller was willing to wait."""
