"""A scripted Anthropic Messages API that plays an OpenClaw agent's OWN chat model (demo, tests, benchmarks).

The gateway's agent (``main``, ``coder``, ...) talks to it through a custom provider with
``api: "anthropic-messages"``. It is scripted by the user message it answers:

- ``SPAWN <json>`` -> a ``tool_use`` of ``tool_call`` with ``{"id": "sessions_spawn", "args": <json>}``
  (OpenClaw 2026.9.x defers ``sessions_spawn`` behind ``tool_call``);
- a ``tool_result`` as the last user turn -> a short text that quotes it (``TOOL RESULT: ...``);
- anything holding ``[Internal task completion event]`` -> ``ACK COMPLETION``;
- anything else -> ``hello``.

Every request is recorded with its arrival time (``time.time()``), so tests and benchmarks can
wait for "the parent saw the completion event" and measure when it came.
Streaming (SSE) and plain JSON answers are both served. Loopback only.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SPAWN = re.compile(r"SPAWN\s+(\{.*\})", re.S)
COMPLETION = "[Internal task completion event]"


@dataclass
class Seen:
    at: float
    path: str
    body: dict[str, Any]

    def new_input(self) -> list[dict[str, Any]]:
        """The messages after the model's last answer: what this request asks about."""
        messages = self.body.get("messages") or []
        for i in range(len(messages) - 1, -1, -1):
            if messages[i].get("role") == "assistant":
                return messages[i + 1 :]
        return list(messages)

    def last_user_text(self) -> str:
        return "\n".join(_text(m.get("content")) for m in self.new_input() if m.get("role") == "user")

    def all_text(self) -> str:
        return "\n".join(_text(m.get("content")) for m in self.body.get("messages") or [])

    def tool_results(self) -> list[str]:
        out = []
        for message in self.new_input():
            content = message.get("content")
            if message.get("role") == "user" and isinstance(content, list):
                out.extend(_text(b.get("content")) for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
        return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                elif block.get("type") == "tool_result":
                    parts.append(_text(block.get("content")))
        return "\n".join(parts)
    return ""


class AgentModel:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Condition()
        self._n = 0
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle
    def __enter__(self) -> AgentModel:
        handler = type("H", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-model", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- recording
    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)
            self._lock.notify_all()

    def wait_for(self, predicate: Any, timeout: float, what: str) -> Seen:
        """The first recorded request matching ``predicate``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for seen in self.seen:
                    if predicate(seen):
                        return seen
                left = deadline - time.monotonic()
                if left <= 0:
                    texts = [s.last_user_text()[:200] for s in self.seen]
                    raise AssertionError(f"the fake model never saw {what} within {timeout} s; last user texts: {texts}")
                self._lock.wait(left)

    def next_id(self) -> str:
        with self._lock:
            self._n += 1
            return f"{self._n:04d}"

    # -- the script
    def answer(self, seen: Seen) -> list[dict[str, Any]]:
        results = seen.tool_results()
        if results:
            return [{"type": "text", "text": "TOOL RESULT: " + " | ".join(r[:2000] for r in results)}]
        text = seen.last_user_text()
        if COMPLETION in text:
            return [{"type": "text", "text": "ACK COMPLETION"}]
        match = SPAWN.search(text)
        if match:
            args = json.loads(match.group(1))
            return [{"type": "tool_use", "id": f"toolu_fake{self.next_id()}", "name": "tool_call", "input": {"id": "sessions_spawn", "args": args}}]
        return [{"type": "text", "text": "hello"}]


class _Handler(BaseHTTPRequestHandler):
    fake: AgentModel
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if not self.path.split("?")[0].endswith("/v1/messages"):
            if self.path.split("?")[0].endswith("/count_tokens"):
                self._json(200, {"input_tokens": 100})
                return
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
            return
        seen = Seen(at=time.time(), path=self.path, body=body if isinstance(body, dict) else {})
        self.fake.record(seen)
        blocks = self.fake.answer(seen)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        msg_id = f"msg_fake{self.fake.next_id()}"
        model = body.get("model", "fake-model") if isinstance(body, dict) else "fake-model"
        usage = {"input_tokens": 10, "output_tokens": 5}
        if not (isinstance(body, dict) and body.get("stream")):
            self._json(200, {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": blocks,
                             "stop_reason": stop, "stop_sequence": None, "usage": usage})
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()

        def event(name: str, data: dict[str, Any]) -> None:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        event("message_start", {"type": "message_start", "message": {"id": msg_id, "type": "message", "role": "assistant", "model": model,
                                                                     "content": [], "stop_reason": None, "stop_sequence": None,
                                                                     "usage": {"input_tokens": 10, "output_tokens": 1}}})
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                event("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
                event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": block["text"]}})
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                event("content_block_start", {"type": "content_block_start", "index": i, "content_block": start})
                event("content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
            event("content_block_stop", {"type": "content_block_stop", "index": i})
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 5}})
        event("message_stop", {"type": "message_stop"})
        self.wfile.flush()
        self.close_connection = True

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
