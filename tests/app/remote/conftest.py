"""Fixtures for the remote engine: one real llama-cpp-python server and one stub per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from remote_servers import LlamaServer, StubHttpServer


@pytest.fixture(scope="module")
def llama_server(
    bundled_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    server = LlamaServer(bundled_model, tmp_path_factory.mktemp("llama-server"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stub() -> Iterator[StubHttpServer]:
    server = StubHttpServer(slots=True, metrics=True)
    yield server
    server.close()
