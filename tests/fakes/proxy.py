"""A loopback HTTP forward proxy that records what goes through it.

A real (tiny) proxy, so that a run that is wrongly sent through it still works — the test
then fails on what the proxy saw (the request, the key in its headers), not on a hang.
Plain-HTTP requests in absolute form (``POST http://127.0.0.1:P/v1/messages``) are forwarded;
``CONNECT`` is recorded and refused. Loopback targets only.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _record(self) -> None:
        self.server.seen.append({"method": self.command, "url": self.path, "headers": dict(self.headers)})

    def do_CONNECT(self) -> None:  # noqa: N802 - http.server's naming
        self._record()
        self.send_error(403, "this test proxy does not tunnel")

    def _forward(self) -> None:
        self._record()
        target = urlsplit(self.path)
        if target.hostname not in ("127.0.0.1", "localhost", "::1"):
            self.send_error(403, "loopback only")
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection", "host")}
        conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=60)
        try:
            conn.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _forward  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, Any]] = []


class RecordingProxy:
    """``with RecordingProxy() as proxy:`` — ``proxy.url``, and ``proxy.seen`` (every request)."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def seen(self) -> list[dict[str, Any]]:
        return self._server.seen

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
