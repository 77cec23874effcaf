"""A stand-in for the OpenClaw gateway's ``POST /hooks/agent`` on 127.0.0.1.

Used by the demo and the tests: it checks the bearer token, records every
delivery, answers ``{"ok": true, "runId": ...}``, and can be stopped and
started again on the same port (a gateway that goes down and comes back).
Faults on demand: ``fail_next`` requests answered ``fail_status`` (503), ``hang_next``
requests read and then never answered (the connection is dropped when
:meth:`GatewayStub.release` is called or the stub stops). ``requests`` counts every
POST received; ``deliveries`` only the ones answered 200 (what a real gateway acts on).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float = field(default_factory=time.time)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away (killed mid-request, closed its keep-alive): not news
        super().handle_error(request, client_address)


class GatewayStub:
    def __init__(self, *, token: str | None = "hooks-token-local", host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.deliveries: list[Delivery] = []
        self.failures = 0
        self.fail_next = 0  # answer the next N requests with fail_status
        self.fail_status = 503
        self.echo_next = 0  # answer the next N requests with 500 and a body echoing their Authorization header
        self.hang_next = 0  # read the next N requests and never answer them
        self.requests = 0
        self.hung = 0
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._delivered = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> GatewayStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if not self.path.startswith("/hooks/"):
                    return self._answer(404, {"ok": False, "error": "not found"})
                if stub.token and self.headers.get("authorization") != f"Bearer {stub.token}":
                    return self._answer(401, {"ok": False, "error": "unauthorized"})
                with stub._lock:
                    echo = stub.echo_next > 0
                    if echo:
                        stub.echo_next -= 1
                        stub.failures += 1
                if echo:  # a misbehaving gateway (or a proxy) that echoes the credentials it got
                    return self._answer(500, {"ok": False, "error": f"internal error for {self.headers.get('authorization')}"})
                with stub._lock:
                    stub.requests += 1
                    hang = stub.hang_next > 0
                    if hang:
                        stub.hang_next -= 1
                        stub.hung += 1
                        stub._delivered.notify_all()
                    fail = not hang and stub.fail_next > 0
                    if fail:
                        stub.fail_next -= 1
                        stub.failures += 1
                if hang:
                    stub._release.wait()
                    self.close_connection = True
                    return None
                if fail:
                    return self._answer(stub.fail_status, {"ok": False, "error": "gateway busy"})
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._answer(400, {"ok": False, "error": "invalid json"})
                with stub._lock:
                    stub.deliveries.append(Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    stub._delivered.notify_all()
                return self._answer(200, {"ok": True, "runId": str(uuid.uuid4())})

        self._release = threading.Event()
        server = _QuietServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Drop the connections of hung requests, unanswered."""
        self._release.set()

    def wait_for_hung(self, n: int = 1, timeout: float = 10.0) -> None:
        with self._lock:
            if not self._delivered.wait_for(lambda: self.hung >= n, timeout=timeout):
                raise TimeoutError(f"expected {n} hung requests, got {self.hung}")

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Delivery]:
        with self._lock:
            if not self._delivered.wait_for(lambda: len(self.deliveries) >= n, timeout=timeout):
                raise TimeoutError(f"expected {n} deliveries, got {len(self.deliveries)}")
            return list(self.deliveries)

    def __enter__(self) -> GatewayStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
