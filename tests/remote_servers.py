"""Servers for the remote tests: llama-cpp-python's real one in a child process, and a stub.

The stub (http.server on 127.0.0.1) stands in only for what the real server
cannot produce: an API key check (401), 404 for a listed model, 429, 5xx, a
malformed event stream, a connection closed mid-reply, keep-alive pings
without tokens, vLLM-style usage, llama-server-style timings, /slots and a
Prometheus /metrics. The requested model's name picks the behaviour.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

SERVE_SCRIPT = Path(__file__).parent / "app" / "remote" / "serve_llama.py"
SERVER_START_TIMEOUT_S = 120.0
STUB_MODELS = (
    "vllm", "llamacpp", "malformed", "ratelimit", "overloaded", "gone", "midclose", "pings",
    "stall", "forbidden", "old",
)  # fmt: skip
WORDS = ["Hello", " there", ",", " friend"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server with the bundled model, repacking off."""

    def __init__(self, model: Path, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"llama-server-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVE_SCRIPT), str(model), str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/v1/models", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not start: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def _chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> bytes:
    delta = {"content": content} if content is not None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"object": "chat.completion.chunk", "choices": [choice], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    server: StubHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass  # keep test output clean

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _authorised(self) -> bool:
        key = self.server.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_json(401, {"error": {"message": "Invalid API key", "type": "auth"}})
        return False

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == "/v1/models":
            self._send_json(200, {"data": [{"id": name} for name in STUB_MODELS]})
        elif self.path == "/slots" and self.server.slots:
            self._send_json(200, [{"id": 0, "n_ctx": 2048}])
        elif self.path == "/metrics" and self.server.metrics:
            text = (
                b"# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
                b"# TYPE vllm:kv_cache_usage_perc gauge\n"
                b'vllm:kv_cache_usage_perc{engine="0",model_name="vllm"} 0.25\n'
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        else:
            self._send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.bodies.append(body)
        if not self._authorised():
            return
        if self.path != "/v1/chat/completions":
            self._send_json(404, {"detail": "Not Found"})
            return
        model = body.get("model")
        if model == "ratelimit":
            self._send_json(
                429, {"error": {"message": "Too many requests, slow down"}}, {"Retry-After": "7"}
            )
        elif model == "overloaded":
            self._send_json(503, {"error": {"message": "Engine overloaded, try later"}})
        elif model == "forbidden":
            self._send_json(403, {"error": {"message": "This key may not use this model"}})
        elif model == "old" and "stream_options" in body:
            # An older server's validation error for a field it does not know.
            self._send_json(422, {"detail": [{"loc": ["body", "stream_options"], "msg": "extra"}]})
        elif model == "gone":
            self._send_json(404, {"error": {"message": "The model `gone` does not exist."}})
        else:
            self._stream(model)

    def _stream(self, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")  # the body ends when we close
        self.end_headers()
        self.close_connection = True
        out = self.wfile
        if model == "stall":
            out.write(_chunk(WORDS[0]))
            out.flush()
            self.server.closing.wait(1.0)  # silence, not even a ping
            return
        if model == "pings":
            out.write(_chunk(WORDS[0]))
            out.flush()
            for _ in range(40):  # 2 s of pings, never a token
                if self.server.closing.wait(0.05):
                    return
                out.write(b": ping\n\n")
                out.flush()
            return
        for index, word in enumerate(WORDS):
            out.write(_chunk(word))
            out.flush()
            if model == "midclose" and index == 1:
                return  # the connection closes: no finish_reason, no [DONE]
            if model == "malformed" and index == 1:
                out.write(b'data: {"choices": [\n\n')
                out.flush()
                return
        if model == "llamacpp":
            timings = {
                "prompt_n": 10, "cache_n": 5, "prompt_ms": 20.0, "prompt_per_second": 500.0,
                "predicted_n": 4, "predicted_ms": 30.0,
            }  # fmt: skip
            out.write(_chunk(finish="stop", timings=timings))
        else:
            out.write(_chunk(finish="length"))
            usage = {
                "prompt_tokens": 12,
                "completion_tokens": 4,
                "total_tokens": 16,
                "prompt_tokens_details": {"cached_tokens": 8},
            }
            out.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
        out.write(b"data: [DONE]\n\n")
        out.flush()


class StubHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, api_key: str | None = None, slots: bool = False, metrics: bool = False):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key, self.slots, self.metrics = api_key, slots, metrics
        self.bodies: list[dict[str, Any]] = []
        self.closing = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, name="stub-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()
        self._thread.join(5)
