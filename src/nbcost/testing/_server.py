"""A loopback HTTP server that answers like the LLM providers do, in JSON and SSE.

Only the standard library: it runs wherever nbcost does, offline. Each scenario gets its own URL
prefix (``/s/<id>``), so clients with different behaviours can share one server.
"""

from __future__ import annotations

import itertools
import socket
import json
import re
import threading
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import _wire
from ._wire import Scenario

__all__ = ["LoopbackServer", "ReceivedRequest"]

_PREFIX = re.compile(r"^/s/(?P<sid>[0-9a-z]+)(?P<rest>/.*)$")
_GEMINI = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)")
#: Where each SDK expects its API root relative to the server.
_ROOTS = {"openai": "/v1", "litellm": "/v1", "anthropic": "", "google": "", "mistral": ""}


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the server answered (for tests: what reached the wire)."""

    provider: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class LoopbackServer:
    """Serves OpenAI, Anthropic, Gemini and Mistral wire formats on 127.0.0.1.

    Example::

        with nbcost.testing.llm_server() as srv:
            client = openai.OpenAI(base_url=srv.base_url("openai"), api_key="sk-test")
            client.chat.completions.create(model="gpt-4o", messages=[...])
            assert srv.requests[-1].path.endswith("/chat/completions")
    """

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.default = scenario or Scenario()
        self.requests: list[ReceivedRequest] = []
        self._scenarios: dict[str, tuple[str, Scenario]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="nbcost-loopback",
                                        daemon=True)

    @property
    def root(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def base_url(self, provider: str = "openai", **options: Any) -> str:
        """The ``base_url`` to give ``provider``'s client; ``options`` set :class:`Scenario` fields."""
        if provider not in _ROOTS:
            raise ValueError(f"unknown provider {provider!r}; one of {sorted(_ROOTS)}")
        sid = format(next(self._ids), "x")
        self._scenarios[sid] = (provider, replace(self.default, **options))
        return f"{self.root}/s/{sid}{_ROOTS[provider]}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def route(self, path: str) -> tuple[str, Scenario, str]:
        match = _PREFIX.match(path)
        if match and match["sid"] in self._scenarios:
            provider, scenario = self._scenarios[match["sid"]]
            return provider, scenario, match["rest"]
        return "openai", self.default, path

    def remember(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):  # a client hung up
            super().handle_error(request, client_address)


def answer(provider: str, s: Scenario, path: str, req: dict[str, Any]) -> tuple[dict | None, list]:
    """The JSON body or SSE events for one request."""
    path = path.split("?", 1)[0]
    if gemini := _GEMINI.search(path):
        return _wire.gemini_generate(s, gemini["model"], gemini["method"] == "streamGenerateContent")
    if path.endswith("/messages"):
        return _wire.anthropic_messages(s, req)
    if path.endswith("/embeddings"):
        if provider == "mistral":
            return _wire.mistral_embeddings(s, req), []
        return _wire.openai_embeddings(s, req), []
    if path.endswith("/responses"):
        return _wire.openai_responses(s, req)
    if path.endswith("/chat/completions"):
        if provider == "mistral":
            return _wire.mistral_chat(s, req)
        return _wire.openai_chat(s, req)
    raise LookupError(path)


def sse_bytes(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(out).encode()


def _make_handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between header and body

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            # A fixed Date header: the same request gets byte-identical answers (SDKs expose
            # headers on their objects, and tests compare what user code saw, run to run).
            return "Thu, 27 Nov 2025 00:00:00 GMT"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                req = json.loads(raw or b"{}")
            except ValueError:
                req = {}
            provider, scenario, path = server.route(self.path)
            server.remember(ReceivedRequest(provider, path, req, dict(self.headers)))
            if scenario.fail_status:
                error = {"error": {"message": "loopback failure", "type": "server_error",
                                   "code": "server_error"}}
                return self._json(scenario.fail_status, error)
            try:
                body, events = answer(provider, scenario, path, req)
            except LookupError:
                return self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            if body is not None:
                return self._json(200, body)
            data = sse_bytes(events)
            if scenario.abort_after_bytes is not None:
                return self._sse(data[:scenario.abort_after_bytes], scenario.split_bytes, end=False)
            self._sse(data, scenario.split_bytes)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-request-id", "req_loop1")
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, data: bytes, split_bytes: int | None, end: bool = True) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            step = split_bytes or len(data)
            try:
                for start in range(0, len(data), step):  # events cut at arbitrary byte boundaries
                    piece = data[start:start + step]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                if not end:  # hang up mid-stream, as a dropped connection does
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):  # the client closed the stream early
                self.close_connection = True

    return Handler
