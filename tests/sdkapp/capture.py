"""A tiny HTTP server standing in for our Inngest server's endpoints the SDK calls
(``/e/<key>``, ``/fn/register``), recording every request. HTTP/1.1 with keep-alive, so the
transport tests can also see which requests shared a connection (same client port)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int

    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[int, dict[str, str], bytes]
#: A responder header (never sent) asking the server to close the connection after answering.
HANG_UP = "X-Test-Hang-Up"
Responder = Callable[[Captured], Answer]


def json_answer(status: int, body: object, headers: dict[str, str] | None = None) -> Answer:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


def _default(request: Captured) -> Answer:
    if request.path.startswith("/e/"):
        events = request.json()
        return json_answer(200, {"ids": [f"evt-{i}" for i in range(len(events))], "status": 200})
    if request.path.startswith("/fn/register"):
        return json_answer(200, {"ok": True, "modified": True})
    return json_answer(404, {"error": f"no route {request.path}"})


@dataclass
class CaptureServer:
    requests: list[Captured] = field(default_factory=list)
    responders: dict[str, Responder] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> CaptureServer:
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Captured(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                    client_port=self.client_address[1],
                )
                capture.requests.append(request)
                responder = next(
                    (r for prefix, r in capture.responders.items() if self.path.startswith(prefix)),
                    _default,
                )
                status, headers, body = responder(request)
                # Lets a test close a keep-alive connection without telling the client, the
                # way an idle timeout on the server side does.
                hang_up = headers.pop(HANG_UP, None) is not None
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if hang_up:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def reset(self) -> None:
        self.requests.clear()
        self.responders.clear()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def matching(self, prefix: str) -> list[Captured]:
        return [r for r in self.requests if r.path.startswith(prefix)]
