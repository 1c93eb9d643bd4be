"""A fake Hugging Face Hub on 127.0.0.1 for the models and CLI tests.

It speaks the part of the Hub protocol huggingface_hub uses for us: model
search (/api/models), the repository tree (/api/models/{repo}/tree/{rev}) with
LFS hashes, and file resolve (HEAD/GET /{repo}/resolve/{rev}/{file}) with the
X-Repo-Commit, X-Linked-Etag and X-Linked-Size headers and Range requests.
app.models.hub reads HF_ENDPOINT at call time and passes it to huggingface_hub
explicitly, so tests only set the variable (monkeypatch.setenv).

It sits in tests/ next to helpers.py: that folder is on sys.path (pytest puts the
top conftest's folder there), so any test can `from fake_hub import running_fake_hub`.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class FakeHubFile:
    data: bytes
    sha256: str  # advertised LFS hash; differs from the data's for a corrupted file
    size: int  # advertised size
    drops: int = 0  # how many GETs from byte 0 are cut off mid-body
    drop_after: int = 0
    hold_after: int = 0  # with release set: pause the body here until release is set
    release: threading.Event | None = None


@dataclass
class FakeHub:
    url: str
    repos: dict[str, dict[str, FakeHubFile]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    commit: str = "0123456789abcdef0123456789abcdef01234567"

    def add_file(
        self,
        repo_id: str,
        filename: str,
        data: bytes,
        *,
        sha256: str | None = None,
        size: int | None = None,
    ) -> FakeHubFile:
        entry = FakeHubFile(
            data=data,
            sha256=sha256 or hashlib.sha256(data).hexdigest(),
            size=len(data) if size is None else size,
        )
        self.repos.setdefault(repo_id, {})[filename] = entry
        return entry

    def add_repo(self, repo_id: str) -> None:
        self.repos.setdefault(repo_id, {})


class _HubHandler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_found(self, code: str) -> None:
        self._json(404, {"error": code}, {"X-Error-Code": code, "X-Error-Message": code})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.hub.requests.append((self.command, path, self.headers.get("Range")))
        if path == "/api/models":
            query = parse_qs(url.query)
            search = query.get("search", [""])[0].lower()
            models = [
                {"id": repo, "modelId": repo, "downloads": 100 - i, "likes": i, "gated": False,
                 "private": False, "tags": ["gguf"], "lastModified": "2025-01-01T00:00:00.000Z"}
                for i, repo in enumerate(sorted(self.hub.repos))
                if search in repo.lower()
            ]  # fmt: skip
            return self._json(200, models[: int(query.get("limit", ["1000"])[0])])
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path)
        if match:
            return self._tree(match.group(1))
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            return self._resolve(match.group(1), match.group(3))
        self._not_found("NotFound")

    def _tree(self, repo_id: str) -> None:
        files = self.hub.repos.get(repo_id)
        if files is None:
            return self._not_found("RepoNotFound")
        listing: list[dict[str, object]] = [
            {"type": "file", "oid": "1" * 40, "size": 12, "path": "README.md"}
        ]
        for name, f in sorted(files.items()):
            lfs = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
            listing.append(
                {"type": "file", "oid": "2" * 40, "size": f.size, "path": name, "lfs": lfs}
            )
        self._json(200, listing)

    def _resolve(self, repo_id: str, filename: str) -> None:
        files = self.hub.repos.get(repo_id)
        if files is None:
            return self._not_found("RepoNotFound")
        f = files.get(filename)
        if f is None:
            return self._not_found("EntryNotFound")
        start = 0
        byte_range = self.headers.get("Range")
        if byte_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", byte_range).group(1))  # type: ignore[union-attr]
        body = f.data[start:]
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", self.hub.commit)
        self.send_header("X-Linked-Etag", f'"{f.sha256}"')
        self.send_header("X-Linked-Size", str(f.size))
        self.send_header("ETag", f'"{f.sha256}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body) if self.command == "GET" else f.size))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(f.data) - 1}/{len(f.data)}")
        self.end_headers()
        if self.command == "HEAD":
            return
        if f.drops and start == 0:
            f.drops -= 1
            self.wfile.write(body[: f.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            if f.release is not None and start == 0:
                self.wfile.write(body[: f.hold_after])
                self.wfile.flush()
                f.release.wait(60)
                body = body[f.hold_after :]
            for i in range(0, len(body), 1 << 20):
                self.wfile.write(body[i : i + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a cancelled download)


@contextmanager
def running_fake_hub() -> Iterator[FakeHub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    server.daemon_threads = True
    hub = FakeHub(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = type("Handler", (_HubHandler,), {"hub": hub})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
