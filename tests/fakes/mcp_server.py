"""A tiny stdio MCP server: a TEST STAND-IN for a real one (a user's own MCP servers).

It speaks the part of the Model Context Protocol Claude Code uses to list and call tools, as
newline-delimited JSON-RPC 2.0 on stdin/stdout: ``initialize`` (answers the protocol version it
was asked for), ``notifications/initialized``, ``ping``, ``tools/list`` and ``tools/call``.

Tools:
  echo        {"text": str} -> "echo: <text>"
  whoami      {} -> "token=<$DEMO_TOKEN> marker=<$DEMO_MARKER>" (what the server's env holds: the
              tests check that an MCP server's env reaches it, and that its secret is masked in
              everything kimi-acp writes or streams)

Every request is appended to ``$DEMO_LOG`` (when set) as one JSON line, so a test can see that
Claude Code started this server and called its tool.

``--http`` serves the same on 127.0.0.1 instead (the port is printed as the first stdout line):
MCP's streamable HTTP transport at ``/mcp`` (a POST answered with JSON) and the older SSE
transport at ``/sse`` (an event stream naming the ``/messages`` endpoint the client POSTs to,
answers on the stream). A request without the ``authorization`` header given with
``--token`` gets 401.
"""

from __future__ import annotations

import json
import os
import sys


def _log(message: dict) -> None:
    path = os.environ.get("DEMO_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            entry = {"pid": os.getpid(), "method": message.get("method"), "params": message.get("params")}
            if message.get("method") == "initialize":
                entry["envNames"] = sorted(os.environ)  # names only: what Claude Code handed this server
                entry["backendKey"] = os.environ.get("ANTHROPIC_API_KEY", "<unset>") != ""  # did it get the run's key?
                entry["parent"] = _parent()
            f.write(json.dumps(entry) + "\n")


def _parent() -> dict:
    """What this server sees of the Claude Code that started it: whether its argv names an
    ``--mcp-config`` file, that file's and its directory's modes, and whether a secret of ours
    is in its argv (it must not be)."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return {}
    out: dict = {"argvHasToken": bool(os.environ.get("DEMO_TOKEN")) and any(os.environ["DEMO_TOKEN"] in a for a in argv)}
    if "--mcp-config" in argv:
        path = argv[argv.index("--mcp-config") + 1]
        out["mcpConfig"] = path
        try:
            out["mode"] = oct(os.stat(path).st_mode & 0o777)
            out["dirMode"] = oct(os.stat(os.path.dirname(path)).st_mode & 0o777)
        except OSError as exc:
            out["error"] = str(exc)
    return out


TOOLS = [
    {
        "name": "echo",
        "description": "Echo the given text back (kimi-acp test stand-in)",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
    {
        "name": "whoami",
        "description": "Say what this server's environment holds (kimi-acp test stand-in)",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def _answer(message: dict) -> dict | None:
    method = message.get("method")
    params = message.get("params") or {}
    if "id" not in message:  # a notification
        return None
    if method == "initialize":
        result = {
            "protocolVersion": params.get("protocolVersion") or "2025-06-18",
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "kimi-acp-test-mcp", "version": "0.1"},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        name = params.get("name")
        args = params.get("arguments") or {}
        if name == "echo":
            text = f"echo: {args.get('text', '')}"
        elif name == "whoami":
            text = f"token={os.environ.get('DEMO_TOKEN', '')} marker={os.environ.get('DEMO_MARKER', '')}"
        else:
            return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32602, "message": f"unknown tool {name}"}}
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    else:
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": f"method not found: {method}"}}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def _http(token: str | None) -> int:
    import queue
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    streams: dict[str, queue.Queue] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _authorized(self) -> bool:
            if token is not None and self.headers.get("authorization") != f"Bearer {token}":
                self._send(401, b'{"error": "unauthorized"}')
                return False
            return True

        def _send(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if not self._authorized():
                return
            if not self.path.startswith("/sse"):
                self._send(405)  # streamable HTTP: no server-initiated stream here
                return
            sid = str(len(streams) + 1)
            box: queue.Queue = queue.Queue()
            streams[sid] = box
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(f"event: endpoint\ndata: /messages?session={sid}\n\n".encode())
            self.wfile.flush()
            try:
                while True:
                    try:
                        answer = box.get(timeout=15)
                    except queue.Empty:
                        self.wfile.write(b": keep-alive\n\n")
                    else:
                        self.wfile.write(f"event: message\ndata: {json.dumps(answer)}\n\n".encode())
                    self.wfile.flush()
            except OSError:
                return

        def do_POST(self) -> None:  # noqa: N802
            if not self._authorized():
                return
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                message = json.loads(raw)
            except ValueError:
                self._send(400)
                return
            _log(message)
            answer = _answer(message) if isinstance(message, dict) else None
            if self.path.startswith("/messages"):
                sid = self.path.partition("session=")[2]
                if answer is not None and sid in streams:
                    streams[sid].put(answer)
                self._send(202)
            elif answer is None:
                self._send(202)
            else:
                self._send(200, json.dumps(answer).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the test closes our stdin (or we are killed)
    server.shutdown()
    return 0


def main() -> int:
    if "--http" in sys.argv:
        token = sys.argv[sys.argv.index("--token") + 1] if "--token" in sys.argv else None
        return _http(token)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        _log(message)
        answer = _answer(message)
        if answer is not None:
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
