"""A local stand-in for Kimi's Anthropic-compatible endpoint (``https://api.kimi.com/coding``).

Stdlib only, so it imports fast and runs anywhere: the demo, the end-to-end tests
(the real Claude Code CLI is pointed at ``StubServer.base_url``) and offline users.

It speaks the Anthropic Messages API the way Kimi does:

* ``POST <base>/v1/messages[?beta=true]`` (``<base>`` is the base path, ``/coding`` like Kimi's)
  needs ``x-api-key`` (a Bearer token alone is a 401)
  and a coding-agent User-Agent (``claude-cli/``, ``claude-code/``, ``Kilo-Code/``), else 403
  ``access_terminated_error``. The response ``model`` is always ``kimi-for-coding``.
* ``POST <base>/v1/messages/count_tokens`` answers ``{"input_tokens": N}``.
* ``GET <base>/v1/usages`` answers the plan's quota windows in the shape Kimi's clients read
  (see ``kimi_acp/quota.py``), with ``Authorization: Bearer <key>`` (else 401);
  ``StubServer.usages`` sets the answer (default: a weekly window and a 5-hour one).
* ``HEAD`` anything answers 200; every other path is a 404 with an Anthropic error body, as
  Kimi answers it: ``/v1/messages`` without the base path, or ``<base>/v1/v1/messages`` (a
  base URL that ends in ``/v1``), are 404s, so a wrong base URL fails here as it would there.
* ``GET /_stub/requests`` lists what was received (keys masked), for debugging.

Scenarios (server default, or ``[[stub:NAME]]`` in the latest user text of a request, which wins):
``text``, ``tool_use``, ``error:<status>``, ``hang``, ``stall``, ``slow:<seconds>``, ``busy:<n>``
(429 with ``retry-after: 1`` (``StubServer.retry_after``) for the next n requests that carry it,
then ``text``: Claude Code's API retries, seen from its side), ``leak`` (a model that repeats the API key it was called with,
as one that ran ``env`` would: in a thinking block, in a Bash ``echo`` tool call, and in its
final text; for the tests that check every channel masks it), ``progress-then-hang`` (some
text and a Bash ``echo`` call, then the next request hangs: a run with output to cancel),
``progress-then-429`` (the same, then 429s: a run that fails after it has shown output),
``touch:<path>`` (a Bash ``touch <path>`` call, which Claude Code asks permission for in every
mode but bypassPermissions; then the tool's result as text).
``tool:<name>`` (a call of the tool named, e.g. ``mcp__demo__echo`` of an MCP server, with
``{"text": "stub-tool-ok"}``; then the tool's answer as text).
A text reply says how many images the prompt's user message carried (``[images: N]``).

``StubServer.usages`` sets the quota answer; :meth:`StubServer.exhaust_quota` makes a window
used up until a time, after which it answers with room again (a window that resets).
"""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_KEY = "sk-kimi-stub-local-key-0000"
"""The built-in test key: the only key the CLI banner prints in full."""

MODEL = "kimi-for-coding"
"""What Kimi reports as the model of every response, whatever was requested."""

AGENT_PREFIXES = ("claude-cli/", "claude-code/", "Kilo-Code/")

SCENARIOS = ("text", "tool_use", "leak", "progress-then-hang", "progress-then-429", "error:<status>", "hang", "stall", "slow:<seconds>", "busy:<n>",
             "touch:<path>", "tool:<name>")

TOOL_NAME = "Bash"
TOOL_INPUT = {"command": "echo stub-tool-ok", "description": "Print a marker"}
NAMED_TOOL_INPUT = {"text": "stub-tool-ok"}
"""The input of ``tool:<name>`` (an MCP tool with a ``text`` argument)."""
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

_MARKER = re.compile(r"\[\[stub:([^\]\s]+)\]\]")
_SECRET_HEADERS = {"x-api-key", "authorization", "proxy-authorization"}

AUTH_MESSAGE = "The API Key appears to be invalid or may have expired. Please check your API Key"
AGENT_MESSAGE = (
    "Kimi For Coding is currently only available for Coding Agents such as Kimi CLI, "
    "Claude Code, Roo Code, Kilo Code, etc."
)

_ERROR_TYPES = {
    400: ("invalid_request_error", "Invalid request Error"),
    401: ("authentication_error", AUTH_MESSAGE),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found: the requested resource does not exist (stub scenario)"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "API rate limit reached, please try again later (stub scenario)"),
    500: ("api_error", "Internal server error (stub scenario)"),
    529: ("overloaded_error", "The engine is currently overloaded, please try again later (stub scenario)"),
}


def mask_key(key: str | None) -> str:
    """``sk-kimi-abcdef…1234`` style masking; never returns the secret part."""
    if not key:
        return ""
    m = re.match(r"^(sk-[a-z]{1,8}-|sk-)", key)
    prefix = m.group(1) if m else ""
    tail = key[-4:] if len(key) - len(prefix) > 8 else ""
    return f"{prefix}…{tail}"


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def error_for_status(status: int) -> dict[str, Any]:
    etype, message = _ERROR_TYPES.get(status, ("api_error", f"Stub error {status}"))
    return error_body(etype, message)


def parse_scenario(scenario: str) -> tuple[str, float | int | str | None]:
    """Validate a scenario name; returns (kind, argument). Raises ValueError when unknown."""
    s = scenario.strip()
    if s in ("text", "tool_use", "leak", "progress-then-hang", "progress-then-429", "hang", "stall"):
        return s, None
    kind, _, arg = s.partition(":")
    if kind == "error" and arg:
        try:
            status = int(arg)
        except ValueError:
            raise ValueError(f"bad stub scenario {scenario!r}: status must be a number") from None
        if not 400 <= status <= 599:
            raise ValueError(f"bad stub scenario {scenario!r}: status must be 400-599")
        return "error", status
    if kind == "busy" and arg:
        try:
            n = int(arg)
        except ValueError:
            raise ValueError(f"bad stub scenario {scenario!r}: n must be a whole number") from None
        if n < 1:
            raise ValueError(f"bad stub scenario {scenario!r}: n must be >= 1")
        return "busy", n
    if kind == "touch" and arg:
        return "touch", arg  # type: ignore[return-value]
    if kind == "tool" and arg:
        if not _TOOL_NAME.match(arg):
            raise ValueError(f"bad stub scenario {scenario!r}: a tool name is letters, digits, '_' and '-'")
        return "tool", arg
    if kind == "slow" and arg:
        try:
            seconds = float(arg)
        except ValueError:
            raise ValueError(f"bad stub scenario {scenario!r}: seconds must be a number") from None
        if seconds < 0:
            raise ValueError(f"bad stub scenario {scenario!r}: seconds must be >= 0")
        return "slow", seconds
    raise ValueError(f"unknown stub scenario {scenario!r}; known: {', '.join(SCENARIOS)}")


# --------------------------------------------------------------------------- requests


@dataclass
class RecordedRequest:
    method: str
    path: str
    """Including the query string, e.g. ``/coding/v1/messages?beta=true``."""
    headers: dict[str, str]
    """Lower-cased names; repeated headers are joined with ", "."""
    body: dict[str, Any] | None
    """The parsed JSON body, or None when absent or not a JSON object."""
    raw_body: bytes = field(repr=False)
    received_at: float = field(default_factory=time.time, repr=False)
    """When it arrived (``time.time()``): benchmarks measure "sent -> the stub saw it"."""

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]

    def to_debug(self) -> dict[str, Any]:
        """A JSON-able view with secrets masked."""
        headers = {k: (mask_key(v) if k in _SECRET_HEADERS else v) for k, v in self.headers.items()}
        if "authorization" in self.headers:
            scheme, _, token = self.headers["authorization"].partition(" ")
            headers["authorization"] = f"{scheme} {mask_key(token)}" if token else mask_key(scheme)
        return {"method": self.method, "path": self.path, "headers": headers, "body": self.body}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def _is_reminder(text: str) -> bool:
    return text.lstrip().startswith("<system-reminder>")


def _tool_result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content.strip()
    parts = [b.get("text", "") for b in _blocks(content) if b.get("type") == "text"]
    return "\n".join(p for p in parts if p).strip()


class Conversation:
    """What the stub needs to know about a Messages request body."""

    def __init__(self, body: dict[str, Any] | None) -> None:
        messages = body.get("messages") if isinstance(body, dict) else None
        self.messages: list[dict[str, Any]] = [
            m for m in (messages if isinstance(messages, list) else []) if isinstance(m, dict)
        ]

    def _user_messages(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        for i, m in enumerate(self.messages):
            if m.get("role") == "user":
                yield i, _blocks(m.get("content"))

    def marker(self) -> str | None:
        """The ``[[stub:NAME]]`` in the latest user text that has one."""
        for _, blocks in reversed(list(self._user_messages())):
            for b in reversed(blocks):
                if b.get("type") == "text" and isinstance(b.get("text"), str):
                    found = _MARKER.findall(b["text"])
                    if found:
                        return found[-1]
        return None

    def _prompt_index(self) -> tuple[int, str]:
        """Index and text of the latest user message that carries a real prompt
        (a text block that is not a ``<system-reminder>``, in a message without tool_result)."""
        for i, blocks in reversed(list(self._user_messages())):
            if any(b.get("type") == "tool_result" for b in blocks):
                continue
            texts = [
                b["text"]
                for b in blocks
                if b.get("type") == "text" and isinstance(b.get("text"), str) and not _is_reminder(b["text"])
                and not b["text"].startswith("[Image: source:")  # Claude Code's note on where it kept an image
            ]
            if texts:
                return i, texts[-1]
        return -1, ""

    def prompt(self) -> str:
        """The user's prompt with markers removed, stripped."""
        return _MARKER.sub("", self._prompt_index()[1]).strip()

    def images(self) -> int:
        """How many image blocks the latest prompt's user message carries."""
        at, _ = self._prompt_index()
        if at < 0:
            return 0
        return sum(1 for b in _blocks(self.messages[at].get("content")) if b.get("type") == "image")

    def pending_tool_result(self) -> str | None:
        """The text of the latest tool_result when it came after the latest prompt, else None."""
        prompt_at, _ = self._prompt_index()
        for i in range(len(self.messages) - 1, prompt_at, -1):
            m = self.messages[i]
            if m.get("role") != "user":
                continue
            results = [b for b in _blocks(m.get("content")) if b.get("type") == "tool_result"]
            if results:
                return _tool_result_text(results[-1])
        return None


# --------------------------------------------------------------------------- HTTP


class _Stopped(Exception):
    """The server is stopping or the client went away."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], stub: StubServer) -> None:
        self.stub = stub
        self.active: set[socket.socket] = set()
        self.active_lock = threading.Condition()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.active_lock:
            self.active.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            self._forget(request)

    def _forget(self, request: Any) -> None:
        with self.active_lock:
            self.active.discard(request)
            self.active_lock.notify_all()

    def close_active(self, wait: float) -> None:
        with self.active_lock:
            sockets = list(self.active)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        with self.active_lock:
            while self.active and time.monotonic() < deadline:
                self.active_lock.wait(0.05)
            leftovers = list(self.active)
            self.active.clear()
        for s in leftovers:
            try:
                s.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Library mode prints nothing; a client that hung up is not news.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kimi-stub/1"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- plumbing ------------------------------------------------------------------

    @property
    def stub(self) -> StubServer:
        return self.server.stub

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(size)
                self.rfile.readline(65537)
            return bytes(out)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record(self) -> RecordedRequest:
        raw = self._read_body() if self.command not in ("GET", "HEAD") else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body: dict[str, Any] | None = None
        if raw:
            try:
                parsed = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                parsed = None
            body = parsed if isinstance(parsed, dict) else None
        rec = RecordedRequest(self.command, self.path, headers, body, raw)
        self.stub._record(rec)
        return rec

    def _send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", self.stub._next_id("req_stub_"))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True
        return False

    def _hold(self, seconds: float | None = None) -> None:
        """Wait until the server stops (raise _Stopped), the client leaves (raise _Stopped)
        or ``seconds`` pass (return). Checks every 0.1 s."""
        deadline = None if seconds is None else time.monotonic() + seconds
        stop = self.stub._stop_event
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            if stop.wait(0.1 if remaining is None else min(0.1, remaining)):
                raise _Stopped
            if self._client_gone():
                raise _Stopped

    # -- SSE -----------------------------------------------------------------------

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", self.stub._next_id("req_stub_"))
        self.end_headers()
        self.wfile.flush()

    def _event(self, name: str, data: dict[str, Any]) -> None:
        chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.flush()

    def _end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- dispatch ------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            rec = self._record()
            route = rec.route.rstrip("/") or "/"
            if self.command == "HEAD":
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.command == "GET" and route == "/_stub/requests":
                self._send_json(200, [r.to_debug() for r in self.stub.requests])
            elif self.command == "GET" and route in self.stub.routes("/v1/usages"):
                self._usages(rec)
            elif self.command == "POST" and route in self.stub.routes("/v1/messages/count_tokens"):
                if self._gate(rec):
                    self._send_json(200, {"input_tokens": _estimate_tokens(rec.raw_body)})
            elif self.command == "POST" and route in self.stub.routes("/v1/messages"):
                if self._gate(rec):
                    self._messages(rec)
            else:
                self._send_json(404, error_body("not_found_error", f"Not found: {rec.path}"))
        except (_Stopped, OSError, ValueError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _dispatch

    def _gate(self, rec: RecordedRequest) -> bool:
        """Kimi's checks: x-api-key, then the coding-agent User-Agent."""
        key = self.stub.key
        if key is not None and rec.headers.get("x-api-key") != key:
            self._send_json(401, error_body("authentication_error", AUTH_MESSAGE))
            return False
        if self.stub.require_agent and not rec.headers.get("user-agent", "").startswith(AGENT_PREFIXES):
            self._send_json(403, error_body("access_terminated_error", AGENT_MESSAGE))
            return False
        return True

    def _usages(self, rec: RecordedRequest) -> None:
        """Kimi's quota endpoint: a Bearer key (as Kimi's clients send it), then the windows."""
        key = self.stub.key
        scheme, _, token = rec.headers.get("authorization", "").partition(" ")
        if key is not None and (scheme.lower() != "bearer" or token != key):
            self._send_json(401, error_body("authentication_error", AUTH_MESSAGE))
            return
        self._send_json(200, self.stub.usages_answer())

    def _messages(self, rec: RecordedRequest) -> None:
        if rec.body is None:
            self._send_json(400, error_body("invalid_request_error", "Invalid request Error: body is not JSON"))
            return
        conv = Conversation(rec.body)
        scenario = conv.marker() or self.stub.scenario
        try:
            kind, arg = parse_scenario(scenario)
        except ValueError as e:
            self._send_json(400, error_body("invalid_request_error", str(e)))
            return
        stream = rec.body.get("stream") is True

        if kind == "error":
            status = int(arg or 500)
            self._send_json(status, error_for_status(status), {"retry-after": str(self.stub.retry_after)} if status == 429 else None)
            return
        if kind == "busy":
            if self.stub._count(f"busy:{scenario}") <= int(arg or 1):
                self._send_json(429, error_for_status(429), {"retry-after": str(self.stub.retry_after)})
                return
            kind = "text"
        if kind == "hang":
            self.close_connection = True
            self._hold()
            return
        if kind == "slow":
            self._hold(float(arg or 0))

        msg_id = self.stub._next_id("msg_stub_")
        input_tokens = _estimate_tokens(rec.raw_body)
        if kind == "tool":
            result = conv.pending_tool_result()
            if result is None:
                block = {"type": "tool_use", "id": self.stub._next_id("toolu_stub_"), "name": str(arg), "input": dict(NAMED_TOOL_INPUT)}
                self._reply(stream, msg_id, input_tokens, [block], "tool_use")
                return
            self._reply(stream, msg_id, input_tokens, [{"type": "text", "text": f"Tool said: {result}"}], "end_turn")
            return
        if kind in ("tool_use", "leak", "progress-then-hang", "progress-then-429", "touch"):
            result = conv.pending_tool_result()
            if result is not None and kind == "progress-then-hang":
                self.close_connection = True
                self._hold()
                return
            if result is not None and kind == "progress-then-429":
                self._send_json(429, error_for_status(429), {"retry-after": str(self.stub.retry_after)})
                return
            if result is None:
                blocks: list[dict[str, Any]] = []
                tool_input = dict(TOOL_INPUT)
                if kind == "touch":
                    tool_input = {"command": f"touch {arg}", "description": "Create the marker file"}
                if kind.startswith("progress-then-"):
                    blocks.append({"type": "text", "text": "Progress so far: the first step is done."})
                if kind == "leak":
                    key = rec.headers.get("x-api-key") or rec.headers.get("authorization", "").removeprefix("Bearer ")
                    blocks.append({"type": "thinking", "thinking": f"My API key is {key}.", "signature": "stub-signature"})
                    tool_input = {"command": f"echo {key}", "description": "Print the API key"}
                blocks.append({"type": "tool_use", "id": self.stub._next_id("toolu_stub_"), "name": TOOL_NAME, "input": tool_input})
                self._reply(stream, msg_id, input_tokens, blocks, "tool_use")
                return
            text = f"Tool said: {result}"
        else:
            text = self._text_reply(conv)
        self._reply(stream, msg_id, input_tokens, [{"type": "text", "text": text}], "end_turn", stall=kind == "stall")

    def _text_reply(self, conv: Conversation) -> str:
        if self.stub.reply is not None:
            return self.stub.reply
        images = conv.images()
        return f"Hello from the Kimi stub. You said: {conv.prompt()[:60].strip()}" + (f" [images: {images}]" if images else "")

    def _reply(
        self, stream: bool, msg_id: str, input_tokens: int, blocks: list[dict[str, Any]], stop_reason: str,
        *, stall: bool = False,
    ) -> None:
        payloads = [self._payload(b) for b in blocks]
        output_tokens = sum(_estimate_tokens(p.encode()) for p in payloads)
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message: dict[str, Any] = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        if not stream:
            # 'stall' only affects streams: Claude Code's non-stream fallback gets a normal answer.
            self._send_json(200, message)
            return

        self._start_sse()
        start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
        self._event("message_start", {"type": "message_start", "message": start})
        if stall:
            self.close_connection = True
            self._hold()
        self._event("ping", {"type": "ping"})
        for index, (block, payload) in enumerate(zip(blocks, payloads)):
            if block["type"] == "tool_use":
                head = dict(block, input={})
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(payload, 12)]
            elif block["type"] == "thinking":
                head = {"type": "thinking", "thinking": ""}
                deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(payload, 8)]
                deltas.append({"type": "signature_delta", "signature": block.get("signature", "")})
            else:
                head = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in _pieces(payload, 8)]
            self._event("content_block_start", {"type": "content_block_start", "index": index, "content_block": head})
            for d in deltas:
                self._event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            self._event("content_block_stop", {"type": "content_block_stop", "index": index})
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        self._event("message_stop", {"type": "message_stop"})
        self._end_sse()

    @staticmethod
    def _payload(block: dict[str, Any]) -> str:
        if block["type"] == "tool_use":
            return json.dumps(block.get("input"))
        if block["type"] == "thinking":
            return str(block.get("thinking", ""))
        return str(block.get("text", ""))


def _estimate_tokens(data: bytes) -> int:
    return max(1, len(data) // 4)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# --------------------------------------------------------------------------- public API


class StubServer:
    """A Kimi-flavoured Anthropic Messages server on a background daemon thread.

    >>> with StubServer() as stub:          # doctest: +SKIP
    ...     env = {"ANTHROPIC_BASE_URL": stub.base_url, "ANTHROPIC_API_KEY": stub.key}
    """

    def __init__(
        self,
        *,
        key: str | None = DEFAULT_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        scenario: str = "text",
        reply: str | None = None,
        require_agent: bool = True,
        base_path: str = "/coding",
        extra_base_paths: tuple[str, ...] = (),
    ) -> None:
        """``base_path`` is where the API lives (Kimi's ``/coding``; ``""`` for the root);
        ``extra_base_paths`` serve the same API under more paths (two "backends" on one stub)."""
        parse_scenario(scenario)
        self.base_paths = tuple(_norm_base(p) for p in (base_path, *extra_base_paths))
        self.key = key
        self.host = host
        self.port = port
        self.scenario = scenario.strip()
        self.reply = reply
        self.require_agent = require_agent
        self.usages: Any = None  # the answer of GET <base>/v1/usages; None: quota.usages_payload()
        self.retry_after = 1  # seconds, the retry-after header of every 429
        self._exhausted: tuple[str, float] | None = None  # (window, until): see exhaust_quota
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Condition()
        self._counters: dict[str, int] = {}
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> StubServer:
        if self._httpd is not None:
            return self
        self._stop_event.clear()
        httpd = _HTTPServer((self.host, self.port), self)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"kimi-stub:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stop_event.set()
        httpd.shutdown()
        httpd.close_active(wait=1.0)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=2)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What ANTHROPIC_BASE_URL should be, like ``https://api.kimi.com/coding``."""
        return self.url + self.base_paths[0]

    def routes(self, endpoint: str) -> frozenset[str]:
        """The exact paths (no query) that serve ``endpoint`` (e.g. ``/v1/messages``)."""
        return frozenset((base + endpoint) for base in self.base_paths)

    # -- the quota ------------------------------------------------------------------

    def exhaust_quota(self, seconds: float, window: str = "5h") -> float:
        """Make the quota's ``window`` (``5h`` or ``weekly``) used up for ``seconds`` from now; it
        then resets (the answer has room again). Returns the reset time (epoch seconds, whole:
        Kimi's reset times have no fraction)."""
        import math

        if window not in ("5h", "weekly"):
            raise ValueError(f"unknown quota window {window!r}; known: 5h, weekly")
        until = float(math.ceil(time.time() + seconds))
        with self._lock:
            self.usages = None
            self._exhausted = (window, until)
        return until

    def usages_answer(self) -> Any:
        """What ``GET <base>/v1/usages`` answers now: :attr:`usages` when set, else the default
        windows (with the window of :meth:`exhaust_quota` used up until its reset)."""
        from ..quota import usages_payload

        with self._lock:
            payload, exhausted = self.usages, self._exhausted
        if payload is not None:
            return payload
        now = time.time()
        if exhausted is not None and now < exhausted[1]:
            window, until = exhausted
            if window == "5h":
                return usages_payload(five_hour_used=100, five_hour_reset=until, now=now)
            return usages_payload(weekly_used=100, weekly_reset=until, five_hour_used=10, now=now)
        if exhausted is not None:  # reset: a fresh window
            return usages_payload(five_hour_used=0, now=now)
        return usages_payload(now=now)

    # -- scenarios and records -----------------------------------------------------

    def set_scenario(self, scenario: str) -> None:
        parse_scenario(scenario)
        self.scenario = scenario.strip()

    def messages_requests(self) -> list[RecordedRequest]:
        """Only the POSTs to ``…/v1/messages`` (not count_tokens)."""
        with self._lock:
            served = self.routes("/v1/messages")
            return [r for r in self.requests if r.method == "POST" and r.route.rstrip("/") in served]

    def wait_for_requests(self, n: int, timeout: float = 10) -> list[RecordedRequest]:
        """Block until at least ``n`` requests (of any kind) were received; returns a copy of them.
        Raises TimeoutError when they don't come."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"kimi stub: {len(self.requests)} of {n} requests after {timeout} s")
                self._lock.wait(remaining)
            return list(self.requests)

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)
            self._lock.notify_all()

    def _count(self, name: str) -> int:
        """How many times ``name`` was counted, this time included."""
        with self._lock:
            n = self._counters.get(name, 0) + 1
            self._counters[name] = n
        return n

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            n = self._counters.get(prefix, 0) + 1
            self._counters[prefix] = n
        return f"{prefix}{n}"

    def __repr__(self) -> str:
        state = "running" if self._httpd else "stopped"
        return f"<StubServer {self.base_url} scenario={self.scenario!r} key={mask_key(self.key) or None} {state}>"


def _norm_base(path: str) -> str:
    path = "/" + path.strip().strip("/")
    return "" if path == "/" else path


def serve(port: int = 0, key: str | None = DEFAULT_KEY, scenario: str = "text", host: str = "127.0.0.1",
          base_path: str = "/coding", as_json: bool = False) -> int:
    """Run the stub in the foreground (``kimi-acp stub``) until SIGINT/SIGTERM; returns 0."""
    done = threading.Event()
    stub = StubServer(key=key, host=host, port=port, scenario=scenario, base_path=base_path).start()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: done.set())
    try:
        if key is None:
            shown = "<any> (the stub does not check keys)"
        elif key == DEFAULT_KEY:
            shown = key
        else:
            shown = mask_key(key)
        if as_json:
            print(json.dumps({"baseUrl": stub.base_url, "apiKey": None if key is None else shown, "scenario": stub.scenario}),
                  flush=True)
            while not done.wait(0.5):
                pass
            return 0
        print(f"kimi stub listening on {stub.base_url}", flush=True)
        print(f"ANTHROPIC_BASE_URL={stub.base_url}")
        print(f"ANTHROPIC_API_KEY={shown}")
        print(f"scenario: {stub.scenario}  (override per prompt with [[stub:NAME]]); Ctrl-C to stop", flush=True)
        sys.stdout.flush()
        while not done.wait(0.5):
            pass
    finally:
        stub.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
