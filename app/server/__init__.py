"""A local OpenAI-compatible API server (`glassbox serve`, and the GUI's toggle)."""

from app.server.runner import DEFAULT_HOST, DEFAULT_PORT, ApiServer

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ApiServer"]
