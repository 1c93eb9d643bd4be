"""Settings > Endpoints: models fetched off the GUI thread, endpoints saved without their key."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        raw = json.dumps({"data": [{"id": "qwen-7b"}, {"id": "llama-8b"}]}).encode()
        code = 200 if self.path == "/v1/models" else 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def models_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, name="models-stub", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_fetch_models_save_and_remove(qtbot, glassbox_home, models_server, monkeypatch) -> None:
    from app.endpoints import endpoints_path, load_endpoints
    from ui.dialogs.endpoint_page import EndpointPage

    monkeypatch.setenv("GB_PAGE_KEY", "sk-never-on-disk")
    page = EndpointPage()
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.tasks.pending() == 0)
    page.name.setText("lab")
    page.url.setText(models_server + "/v1")
    page.key_source.setCurrentIndex(page.key_source.findData("env"))
    page.key_env.setText("GB_PAGE_KEY")
    page.fetch_button.click()
    qtbot.waitUntil(lambda: page.model.count() == 2, timeout=10_000)
    assert page.model.currentText() == "qwen-7b"
    page.model.setCurrentIndex(1)
    page.save_button.click()
    qtbot.waitUntil(lambda: page.saved.count() == 1, timeout=10_000)
    (saved,) = load_endpoints()
    assert (saved.name, saved.model, saved.api_key_env) == ("lab", "llama-8b", "GB_PAGE_KEY")
    assert "sk-never-on-disk" not in endpoints_path().read_text(encoding="utf-8")
    page.saved.setCurrentRow(0)
    page.remove_button.click()
    qtbot.waitUntil(lambda: page.saved.count() == 0, timeout=10_000)
    assert load_endpoints() == []
    page.tasks.shutdown()


def test_unreachable_server_is_a_one_line_status(qtbot, glassbox_home) -> None:
    from ui.dialogs.endpoint_page import EndpointPage

    page = EndpointPage()
    qtbot.addWidget(page)
    page.url.setText("http://127.0.0.1:9")
    page.fetch_button.click()
    qtbot.waitUntil(lambda: page.fetch_button.isEnabled(), timeout=10_000)
    assert page.status.text().startswith("connection refused by 127.0.0.1:9")
    page.url.setText("not a url")
    page.fetch_button.click()
    assert "endpoint URL must look like" in page.status.text()
    page.tasks.shutdown()
