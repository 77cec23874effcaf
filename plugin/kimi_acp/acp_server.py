"""``kimi-acp acp``: the Agent Client Protocol front door, on stdio.

acpx, OpenClaw's acpx backend or an editor launches ``kimi-acp acp`` as an agent command.
Each ``session/prompt`` becomes a spawn request (``runtime="acp"``, ``agentId="kimi-acp"``)
run by ONE long-lived :class:`~kimi_acp.spawn.Spawner`; the run's stream-json events come
back through the ``kimi_acp_run_event`` hook and go out as ``session/update`` notifications
(agent message and thought chunks, ``tool_call`` / ``tool_call_update``, ``usage_update``).
A session keeps its Claude Code conversation across prompts with ``--resume`` (same cwd),
and its model choice (the ``model`` config option, which is what acpx's ``--model`` sets)
picks the backend of its next prompt.

Methods: ``initialize``, ``session/new``, ``session/load``, ``session/prompt``,
``session/cancel``, ``session/set_config_option`` (``model``).

Start-up: the ``acp`` package builds ~280 pydantic models at import (about a second), so
the first message, ``initialize``, is answered before anything heavy is imported (see
:func:`run`); its answer is :func:`initialize_result`, the same data the SDK path returns
(a test checks both against ``acp.InitializeResponse``). Everything after it goes through
``acp.run_agent``. Stdout carries the protocol only: fd 1 is moved to a private fd and
pointed at stderr, where diagnostics go (never secrets).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from .hookspecs import hookimpl

AGENT_NAME = "kimi-acp"
TARGET_AGENT = "kimi-acp"  # the spawn request's agentId (a harness alias kimi-acp handles)
PROTOCOL_VERSION = 1  # acp.PROTOCOL_VERSION (schema v1.19.0); a test keeps them equal
MODEL_OPTION = "model"  # the config option id acpx's --model sets (session/set_config_option)
THINKING_OPTIONS = ("thinking", "effort", "reasoning_effort", "thought_level")  # OpenClaw's thinking aliases
TIMEOUT_OPTION = "timeout"  # OpenClaw's runTimeoutSeconds, in seconds
DEFAULT_CHOICE = "default"  # the model option value meaning "no session choice: routing decides"
SESSION_PREFIX = "acp:"  # requester session key of an ACP session: "acp:<session id>"
OPENCLAW_META = "kimiAcp"  # the _meta key of session/new from OpenClaw's runtime backend (openclaw_ext)
_OPENCLAW_NS = "5d0e4b8e-3c1a-4f0e-9a59-6b6b2a6f1c01"  # uuid5 namespace: OpenClaw session key -> ACP session id
_LINE_LIMIT = 50 * 1024 * 1024  # the SDK's stdio line limit
_DEFAULT_CONTEXT = 200_000


def session_key(session_id: str) -> str:
    return SESSION_PREFIX + session_id


def initialize_result() -> dict[str, Any]:
    """The ``initialize`` answer (JSON, as the SDK serialises it: camelCase, explicit fields)."""
    from . import __version__

    return {
        "protocolVersion": PROTOCOL_VERSION,
        "agentCapabilities": {
            "loadSession": True,
            "promptCapabilities": {"image": False, "audio": False, "embeddedContext": False},
            "mcpCapabilities": {"http": False, "sse": False},
        },
        "agentInfo": {"name": AGENT_NAME, "title": "kimi-acp: Claude Code on Kimi", "version": __version__},
        "authMethods": [],
    }


def _log(message: str) -> None:
    from .redact import redact

    print(f"kimi-acp acp: {redact(message)}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- start-up


def _take_stdout() -> int:
    """Move the protocol's stdout to a private fd; fd 1 (and ``sys.stdout``) become stderr,
    so a stray print (ours, a plugin's, a library's) cannot corrupt the JSON-RPC stream."""
    proto = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _read_first_message(fd: int = 0) -> tuple[bytes, bytes]:
    """Read stdin up to the first newline: (first line, bytes read after it)."""
    buf = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            return bytes(buf), b""
        buf += chunk
        cut = buf.find(b"\n")
        if cut >= 0:
            return bytes(buf[: cut + 1]), bytes(buf[cut + 1 :])
        if len(buf) > _LINE_LIMIT:
            return bytes(buf), b""


def _early_initialize(line: bytes, out_fd: int) -> dict[str, Any] | None:
    """Answer ``line`` if it is an ``initialize`` request; returns its params, else None
    (the line is then handed to the SDK untouched)."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    if not isinstance(msg, dict) or msg.get("method") != "initialize" or "id" not in msg:
        return None
    params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
    if not isinstance(params.get("protocolVersion"), int):
        return None  # let the SDK answer with its own validation error
    reply = {"jsonrpc": "2.0", "id": msg["id"], "result": initialize_result()}
    data = (json.dumps(reply, separators=(",", ":")) + "\n").encode()
    while data:
        data = data[os.write(out_fd, data) :]
    return params


def run(args: Any) -> int:
    """Serve ACP on stdio until the client closes stdin (or SIGTERM/SIGINT/SIGHUP)."""
    proto_out = _take_stdout()
    first, rest = _read_first_message()
    if not first.strip():
        return 0
    early = _early_initialize(first, proto_out)
    pending = rest if early is not None else first + rest
    import asyncio

    try:
        return asyncio.run(_serve(args, proto_out, pending, early))
    except KeyboardInterrupt:
        return 130


def _import_acp() -> Any:
    """``import acp``, about 3x faster: its ~280 models are built with ``defer_build`` (each
    schema is built on first use) and without ``use_attribute_docstrings`` (field
    descriptions from docstrings, only used for JSON Schema output). Validation and
    serialisation are unchanged. Only the import of ``acp`` sees the patch."""
    if "acp" in sys.modules:
        return sys.modules["acp"]
    import pydantic

    original = pydantic.ConfigDict

    def quick(**kwargs: Any) -> Any:
        kwargs.setdefault("defer_build", True)
        kwargs["use_attribute_docstrings"] = False
        return original(**kwargs)

    pydantic.ConfigDict = quick  # type: ignore[assignment,misc]
    try:
        import acp
    finally:
        pydantic.ConfigDict = original  # type: ignore[misc]
    return acp


class _WriteProtocol:
    """Flow control for the protocol's stdout pipe (what ``StreamWriter.drain`` needs)."""

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._paused = False
        self._waiter: Any = None

    def connection_made(self, transport: Any) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        self.resume_writing()

    def pause_writing(self) -> None:
        self._paused = True
        if self._waiter is None:
            self._waiter = self._loop.create_future()

    def resume_writing(self) -> None:
        self._paused = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None

    async def _drain_helper(self) -> None:
        if self._paused and self._waiter is not None:
            await self._waiter


class _FdWriteTransport:
    """Blocking writes to a file that is not a pipe (stdout redirected to a file)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._closing = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._closing:
            view = view[os.write(self._fd, view) :]

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def abort(self) -> None:
        self.close()

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _feed_from_thread(loop: Any, reader: Any, fd: int) -> None:
    """Feed ``reader`` from ``fd`` in a thread (stdin is a file, not a pipe)."""
    import threading

    def pump() -> None:
        try:
            while chunk := os.read(fd, 65536):
                loop.call_soon_threadsafe(reader.feed_data, chunk)
        except OSError:
            pass
        finally:
            loop.call_soon_threadsafe(reader.feed_eof)

    threading.Thread(target=pump, name="kimi-acp stdin", daemon=True).start()


async def _streams(out_fd: int, pending: bytes) -> tuple[Any, Any]:
    """The SDK's stdio streams, with the bytes read before it took over put back first."""
    import asyncio

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_LINE_LIMIT)
    if pending:
        reader.feed_data(pending)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0, closefd=False))
    except ValueError:
        _feed_from_thread(loop, reader, 0)
    protocol = _WriteProtocol(loop)
    try:
        transport, _ = await loop.connect_write_pipe(lambda: protocol, os.fdopen(out_fd, "wb", buffering=0, closefd=False))
    except ValueError:
        transport = _FdWriteTransport(out_fd)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)  # type: ignore[arg-type]
    return reader, writer


async def _serve(args: Any, out_fd: int, pending: bytes, early: dict[str, Any] | None) -> int:
    import asyncio
    import logging
    import signal

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="kimi-acp acp: %(levelname)s %(name)s: %(message)s")
    acp = _import_acp()
    # pydantic is loaded now (the SDK's models): the validated-settings cache, a cold-start trick
    # for short commands, no longer pays here; this long-lived process always validates.
    os.environ["KIMI_ACP_NO_SETTINGS_CACHE"] = "1"
    agent = KimiAcpAgent(args, acp)
    if early is not None:
        agent.client_info = early.get("clientInfo")
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    stopping: list[int] = []

    def stop(signum: int) -> None:
        stopping.append(signum)
        if main is not None:
            main.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (ValueError, RuntimeError, NotImplementedError):
            pass
    agent.start()
    try:
        raw, writer = await _streams(out_fd, pending)
        reader = asyncio.StreamReader(limit=_LINE_LIMIT)
        guard = asyncio.create_task(_guard_input(raw, reader, writer), name="kimi-acp input guard")
        try:
            await acp.run_agent(agent, writer, reader)
        finally:
            guard.cancel()
    except asyncio.CancelledError:
        if not stopping:
            raise
    finally:
        await asyncio.shield(agent.aclose())
    return 0


def _rpc_error(code: int, message: str, msg_id: Any = None) -> bytes:
    reply = {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
    return (json.dumps(reply, separators=(",", ":")) + "\n").encode()


def check_message(line: bytes) -> tuple[bool, bytes | None]:
    """JSON-RPC 2.0's rules for one input line: ``(pass it on, error reply to send)``.

    Unparsable → -32700; valid JSON that is not a request object (a number, a string,
    ``null``, an array: batches are not part of ACP) → -32600. The server stays up.
    """
    text = line.strip()
    if not text:
        return False, None
    try:
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return False, _rpc_error(-32700, "Parse error: the line is not JSON")
    if isinstance(msg, list):
        return False, _rpc_error(-32600, "Invalid request: JSON-RPC batches are not supported; send one object per line")
    if not isinstance(msg, dict):
        return False, _rpc_error(-32600, "Invalid request: a message must be a JSON object")
    method = msg.get("method")
    if method is not None and not isinstance(method, str):
        return False, _rpc_error(-32600, "Invalid request: method must be a string", msg.get("id"))
    if method is None and "id" not in msg:
        return False, _rpc_error(-32600, "Invalid request: no method and no id")
    return True, None


async def _guard_input(raw: Any, reader: Any, writer: Any) -> None:
    """Feed ``reader`` (the SDK's) with the valid lines of ``raw``; answer the others."""
    try:
        while True:
            try:
                line = await raw.readline()
            except ValueError:  # a line over the limit: dropped by the stream
                writer.write(_rpc_error(-32600, f"Invalid request: message over {_LINE_LIMIT} bytes"))
                continue
            if not line:
                break
            ok, reply = check_message(line)
            if ok:
                reader.feed_data(line if line.endswith(b"\n") else line + b"\n")
            elif reply is not None:
                writer.write(reply)
    finally:
        reader.feed_eof()


# --------------------------------------------------------------------------- sessions


@dataclass
class AcpSession:
    """One ACP session: where its runs work, its Claude Code conversation, its model choice."""

    session_id: str
    cwd: str
    claude_session_id: str | None = None
    model: str | None = None  # the session's model ref; None = no choice (--backend or routing)
    run_id: str | None = None  # the active run
    busy: bool = False  # a prompt is being answered
    cancelled: bool = False  # session/cancel arrived for the active prompt
    # Sessions of OpenClaw's ACP runtime backend (the gateway extension):
    openclaw_key: str | None = None  # OpenClaw's session key (agent:kimi-acp:acp:<uuid>)
    mode: str | None = None  # "oneshot" | "persistent" (OpenClaw's ensureSession mode)
    thinking: str | None = None  # the spawn's thinking level (Claude Code --effort)
    env: dict[str, str] | None = None  # the spawn request's env: kept in memory only, never written
    last_status: str | None = None  # the last run's status, for getStatus
    timeout: int | None = None  # seconds (OpenClaw's timeout config option)
    thinking_explicit: bool = False  # the spawn named a thinking level (OpenClaw's thinkingExplicit)

    def to_json(self) -> dict[str, Any]:
        out = {
            "sessionId": self.session_id,
            "cwd": self.cwd,
            "claudeSessionId": self.claude_session_id,
            "model": self.model,
            "updatedAt": time.time(),
        }
        for key, value in (("openclawKey", self.openclaw_key), ("mode", self.mode), ("thinking", self.thinking)):
            if value is not None:
                out[key] = value
        return out


class SessionFiles:
    """ACP sessions survive the agent process (acpx starts a new one per queue owner):
    ``<state dir>/acp-sessions/<session id>.json``, 0600, written atomically."""

    def __init__(self, directory: Any = None) -> None:
        from pathlib import Path

        from .sessions import state_dir

        self.dir = Path(directory) if directory is not None else state_dir() / "acp-sessions"

    def _path(self, session_id: str) -> Any:
        import uuid

        return self.dir / f"{uuid.UUID(session_id)}.json"  # only uuids name files

    def save(self, session: AcpSession) -> None:
        from .sessions import ensure_state_dir

        ensure_state_dir(self.dir)
        path = self._path(session.session_id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(session.to_json(), f)
        os.replace(tmp, path)

    def load(self, session_id: str) -> AcpSession | None:
        try:
            data = json.loads(self._path(session_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("cwd"), str):
            return None
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return AcpSession(
            session_id=session_id,
            cwd=data["cwd"],
            claude_session_id=text("claudeSessionId"),
            model=text("model"),
            openclaw_key=text("openclawKey"),
            mode=text("mode"),
            thinking=text("thinking"),
        )

    def delete(self, session_id: str) -> None:
        try:
            self._path(session_id).unlink(missing_ok=True)
        except (OSError, ValueError):
            pass


# --------------------------------------------------------------------------- run events -> updates


class RunEvents:
    """The pluggy plugin that routes a watched run's events to its prompt's queue.

    ``kimi_acp_run_event`` is synchronous and runs on the event loop: it only enqueues;
    the prompt's sender task turns events into ``session/update``s, in order.
    """

    def __init__(self) -> None:
        self.watched: dict[str, Any] = {}

    def watch(self, run_id: str, queue: Any) -> None:
        self.watched[run_id] = queue

    def unwatch(self, run_id: str) -> None:
        self.watched.pop(run_id, None)

    @hookimpl
    def kimi_acp_run_event(self, run: Any, event: Any) -> None:
        queue = self.watched.get(getattr(run, "run_id", None))  # type: ignore[arg-type]
        if queue is not None:
            queue.put_nowait(event)


_TOOL_KINDS = {
    "Bash": "execute", "BashOutput": "execute", "KillShell": "execute",
    "Read": "read", "NotebookRead": "read",
    "Write": "edit", "Edit": "edit", "MultiEdit": "edit", "NotebookEdit": "edit",
    "Glob": "search", "Grep": "search", "LS": "search", "ToolSearch": "search",
    "WebFetch": "fetch", "WebSearch": "fetch",
    "Agent": "think", "Task": "think", "TodoWrite": "think",
}


def tool_title(name: str, tool_input: dict[str, Any]) -> str:
    """A short title for a tool call, like claude-agent-acp shows them."""
    if name == "Bash":
        return str(tool_input.get("command") or tool_input.get("description") or "Terminal")[:200]
    path = tool_input.get("file_path") or tool_input.get("notebook_path") or tool_input.get("path")
    if path:
        return f"{name} {path}"
    for key in ("pattern", "url", "query", "description"):
        if tool_input.get(key):
            return f"{name} {str(tool_input[key])[:200]}"
    return name or "tool"


class UpdateMaker:
    """Turns one run's stream-json events into ACP session updates."""

    def __init__(self, acp: Any, context_window: int | None) -> None:
        self.acp = acp
        self.context_window = context_window or _DEFAULT_CONTEXT
        self.context_used: int | None = None

    def updates(self, event: Any) -> list[Any]:
        from .harness.claude_code import (
            AssistantEvent,
            ResultEvent,
            TextBlock,
            ThinkingBlock,
            ToolUseBlock,
            UserEvent,
        )

        acp = self.acp
        out: list[Any] = []
        if isinstance(event, AssistantEvent):
            if event.synthetic:  # an API error: it comes back as the prompt's error
                return out
            usage = event.message.usage
            if usage is not None and event.parent_tool_use_id is None:
                self.context_used = (
                    usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens + usage.output_tokens
                )
            main = event.parent_tool_use_id is None
            for block in event.message.content:
                if isinstance(block, TextBlock) and block.text:
                    out.append(acp.update_agent_message_text(block.text) if main else acp.update_agent_thought_text(block.text))
                elif isinstance(block, ThinkingBlock) and block.thinking:
                    out.append(acp.update_agent_thought_text(block.thinking))
                elif isinstance(block, ToolUseBlock) and block.id:
                    path = block.input.get("file_path") or block.input.get("notebook_path")
                    locations = [acp.schema.ToolCallLocation(path=str(path))] if isinstance(path, str) and path else None
                    out.append(
                        acp.start_tool_call(
                            block.id,
                            tool_title(block.name, block.input),
                            kind=_TOOL_KINDS.get(block.name, "other"),
                            status="in_progress",
                            locations=locations,
                            raw_input=block.input,
                        )
                    )
        elif isinstance(event, UserEvent):
            for result in event.tool_results:
                if not result.tool_use_id:
                    continue
                text = result.text
                raw = event.tool_use_result if isinstance(event.tool_use_result, dict) else {"output": text}
                out.append(
                    acp.update_tool_call(
                        result.tool_use_id,
                        status="failed" if result.is_error else "completed",
                        content=[acp.tool_content(acp.text_block(text))] if text else None,
                        raw_output=raw,
                    )
                )
        elif isinstance(event, ResultEvent):
            size = self.context_window
            for info in event.modelUsage.values():
                window = info.get("contextWindow") if isinstance(info, dict) else None
                if isinstance(window, int) and window > 0:
                    size = window
            if self.context_used is not None:
                out.append(acp.schema.UsageUpdate(session_update="usage_update", used=self.context_used, size=size))
        return out


def prompt_usage(acp: Any, usage: dict[str, Any]) -> Any:
    """The run's token counts as the prompt response's ``usage`` (None when unknown)."""

    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) and value >= 0 else 0

    fresh, out = count("input_tokens"), count("output_tokens")
    read, write = count("cache_read_input_tokens"), count("cache_creation_input_tokens")
    if not (fresh or out or read or write):
        return None
    return acp.schema.Usage(
        total_tokens=fresh + out + read + write,
        input_tokens=fresh,
        output_tokens=out,
        cached_read_tokens=read,
        cached_write_tokens=write,
    )


def prompt_text(blocks: list[Any]) -> str:
    """The task text of an ACP prompt: its text blocks, plus resource links and embedded text
    resources written out (only text is advertised; images and audio are dropped)."""
    parts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource_link":
            parts.append(f"[{block.name}]({block.uri})")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            if isinstance(text, str):
                parts.append(f"<resource uri={resource.uri!r}>\n{text}\n</resource>")
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------- the agent


class KimiAcpAgent:
    """The ACP agent (``acp.Agent``): sessions, prompts as supervised runs, model choice."""

    def __init__(self, args: Any, acp: Any, *, files: SessionFiles | None = None) -> None:
        import asyncio

        self.args = args
        self.acp = acp
        self.conn: Any = None
        self.client_info: Any = None
        self.sessions: dict[str, AcpSession] = {}
        self.files = files or SessionFiles()
        self.events = RunEvents()
        self.spawner: Any = None
        self._spawner_error: BaseException | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._owner: Any = None
        self._bad_config: str | None = None
        self._claude_version: tuple[str, str] | None = None

    def on_connect(self, conn: Any) -> None:
        self.conn = conn

    # -- the Spawner lives in its own task (anyio task groups must exit where they entered)

    def start(self) -> None:
        import asyncio

        if self._owner is None or (self._owner.done() and self._spawner_error is not None):
            self._ready.clear()
            self._spawner_error = None
            self._owner = asyncio.create_task(self._own_spawner(), name="kimi-acp spawner")

    async def _own_spawner(self) -> None:
        try:
            from .plugins import get_plugin_manager
            from .spawn import Spawner

            pm = get_plugin_manager()
            async with Spawner(config_path=self.args.config, pm=pm) as spawner:
                if self.args.backend:
                    from .routing import require_ref

                    require_ref(spawner.config, self.args.backend, "backend (--backend)")
                name = f"kimi_acp.acp_server.{id(self)}"
                pm.register(self.events, name=name)
                try:
                    self.spawner = spawner
                    self._ready.set()
                    await self._stop.wait()
                finally:
                    self.spawner = None
                    if pm.is_registered(self.events):
                        pm.unregister(self.events)
        except Exception as exc:  # config errors etc.: answered on every request until fixed
            self._spawner_error = exc
            _log(f"cannot start: {exc}")
        finally:
            self._ready.set()

    async def _get_spawner(self) -> Any:
        self.start()
        await self._ready.wait()
        if self.spawner is None:
            exc = self._spawner_error
            raise self._error(str(exc) if exc else "kimi-acp is shutting down", code=type(exc).__name__ if exc else None)
        return self.spawner

    async def aclose(self) -> None:
        """Stop the Spawner: every active run's process group is killed and reaped."""
        self._stop.set()
        if self._owner is not None:
            try:
                await self._owner
            except BaseException as exc:  # noqa: BLE001 - shutting down; say it, don't raise
                _log(f"shutdown: {exc!r}")

    # -- helpers

    def _error(self, message: str, *, code: str | None = None, **data: Any) -> Any:
        from .redact import redact

        clean = redact(message)
        payload: dict[str, Any] = {"message": clean}
        if code:
            payload["errorCode"] = code
        payload.update({k: v for k, v in data.items() if v is not None})
        return self.acp.RequestError(-32603, clean, payload)

    def _session(self, session_id: str) -> AcpSession:
        session = self.sessions.get(session_id)
        if session is None:
            session = self.files.load(session_id) if _is_uuid(session_id) else None
            if session is None:
                raise self.acp.RequestError.invalid_params({"message": f"unknown session {session_id!r}; create one with session/new"})
            self.sessions[session_id] = session
        return session

    def _config_options(self, session: AcpSession) -> list[Any]:
        from .routing import known_refs, resolve_ref

        schema = self.acp.schema
        cfg = self.spawner.config
        refs = known_refs(cfg)
        options = [schema.SessionConfigSelectOption(value=DEFAULT_CHOICE, name=DEFAULT_CHOICE, description=self._default_description(cfg))]
        for ref in refs:
            found = resolve_ref(cfg, ref)
            detail = None
            if found is not None:
                backend, model = found
                detail = "the parent's own environment (inject nothing)" if backend.passthrough else f"backend {backend.name}" + (f", model {model}" if model else "")
            options.append(schema.SessionConfigSelectOption(value=ref, name=ref, description=detail))
        current = session.model or self.args.backend or DEFAULT_CHOICE
        if current not in {o.value for o in options}:
            options.append(schema.SessionConfigSelectOption(value=current, name=current))
        return [
            schema.SessionConfigOptionSelect(
                id=MODEL_OPTION,
                name="Model",
                description="The backend (model ref) Claude Code runs on for this session's next prompts",
                category="model",
                type="select",
                current_value=current,
                options=options,
            )
        ]

    def _default_description(self, cfg: Any) -> str:
        if self.args.backend:
            return f"--backend {self.args.backend}"
        from .errors import KimiAcpError
        from .routing import resolve

        try:
            route = resolve(cfg, requester_agent=self.args.agent, target=TARGET_AGENT)
        except KimiAcpError:
            return "kimi-acp's routing rules"
        return f"{route.name}: {route.reason}"

    # -- ACP methods

    async def initialize(self, protocol_version: int, client_capabilities: Any = None, client_info: Any = None, **kwargs: Any) -> Any:
        self.client_info = client_info
        return self.acp.InitializeResponse.model_validate(initialize_result())

    async def authenticate(self, method_id: str, **kwargs: Any) -> Any:
        return self.acp.schema.AuthenticateResponse()

    async def new_session(self, cwd: str, mcp_servers: Any = None, additional_directories: Any = None, **kwargs: Any) -> Any:
        import uuid

        await self._get_spawner()
        meta = kwargs.get(OPENCLAW_META)
        if isinstance(meta, dict):
            return self._ensure_openclaw(cwd, meta)
        if not cwd or not os.path.isdir(cwd):
            raise self.acp.RequestError.invalid_params({"message": f"cwd {cwd!r} is not a directory; pass an existing absolute path"})
        session = AcpSession(session_id=str(uuid.uuid4()), cwd=cwd)
        self.sessions[session.session_id] = session
        self._save(session)
        return self.acp.NewSessionResponse(session_id=session.session_id, config_options=self._config_options(session))

    # -- OpenClaw's ACP runtime backend (openclaw_ext/index.js): one session per OpenClaw session key

    def _ensure_openclaw(self, cwd: str, meta: dict[str, Any]) -> Any:
        """``ensureSession``: the session of an OpenClaw session key, made or found again.

        Idempotent: the ACP session id is derived from the key, so re-ensuring a session
        (OpenClaw does it for a finished oneshot session only to close it) costs no new
        state and no process. Nothing starts until a prompt arrives.
        """
        acp = self.acp
        key = meta.get("sessionKey")
        if not isinstance(key, str) or not key:
            raise acp.RequestError.invalid_params({"message": "ensureSession needs a sessionKey"})
        sid = openclaw_session_id(key)
        session = self.sessions.get(sid) or self.files.load(sid)
        fresh = session is None
        if session is None:
            # OpenClaw passes no cwd when the target's workspace does not exist yet (it drops its
            # own default then): use that workspace, as OpenClaw does once it exists, never the
            # gateway's own working directory.
            want = meta.get("cwd") if isinstance(meta.get("cwd"), str) and meta.get("cwd") else None
            if want is None:
                want = openclaw_workspace(self._fresh_config(), meta.get("agentId") if isinstance(meta.get("agentId"), str) else TARGET_AGENT)
            if not want or not os.path.isabs(want):
                raise acp.RequestError.invalid_params({"message": f"cwd {want!r} is not an absolute path"})
            if not os.path.isdir(want):
                # OpenClaw's default is the agent's workspace (<state>/workspace-<agent>), which it
                # creates only for its own embedded runs.
                try:
                    os.makedirs(want, mode=0o700, exist_ok=True)
                except OSError as exc:
                    raise acp.RequestError.invalid_params({"message": f"cwd {want} does not exist and cannot be made: {exc.strerror}"}) from None
            session = AcpSession(session_id=sid, cwd=want, openclaw_key=key)
        self.sessions[sid] = session
        mode = meta.get("mode")
        if mode in ("oneshot", "persistent"):
            session.mode = mode
        thinking = meta.get("thinking")
        if meta.get("thinkingExplicit") is True:
            session.thinking_explicit = True
        if isinstance(thinking, str) and thinking.strip() and session.thinking_explicit:
            # Only a level the spawn asked for: OpenClaw also hands over its model's default
            # ("off" for most), which must not turn Claude Code's own effort down.
            session.thinking = thinking.strip()
        env = meta.get("env")
        if isinstance(env, dict):
            bad = [k for k, v in env.items() if not isinstance(k, str) or not isinstance(v, str)]
            if bad:
                raise acp.RequestError.invalid_params({"message": f"env values must be strings (bad: {', '.join(map(str, bad))})"})
            session.env = dict(env)
        resume = meta.get("resumeSessionId")
        if fresh and isinstance(resume, str) and resume:
            # One of our own sessions (its Claude Code conversation), else a Claude Code session id.
            earlier = self.files.load(resume) if _is_uuid(resume) else None
            session.claude_session_id = earlier.claude_session_id if earlier and earlier.claude_session_id else resume
        model = meta.get("model")
        applied: dict[str, Any] | None = None
        if isinstance(model, str) and model.strip():
            self._set_model(session, model.strip())
            applied = {"kind": "applied", "model": session.model or DEFAULT_CHOICE}
        if session.mode != "oneshot":
            self._save(session)
        info: dict[str, Any] = {"sessionKey": key, "created": fresh, "cwd": session.cwd}
        if applied:
            info["appliedModel"] = applied
        if session.thinking:
            info["appliedThinking"] = {"kind": "applied", "thinking": session.thinking}
        if session.claude_session_id:
            info["agentSessionId"] = session.claude_session_id
        return acp.NewSessionResponse(session_id=sid, config_options=self._config_options(session), field_meta={OPENCLAW_META: info})

    def _set_model(self, session: AcpSession, value: str) -> None:
        """Validate a model ref (or ``default``) and make it the session's choice."""
        from .errors import KimiAcpError
        from .routing import require_ref

        spawner = self.spawner
        if value == DEFAULT_CHOICE:
            chosen = None
        else:
            try:
                require_ref(self._fresh_config(), value)
            except KimiAcpError as exc:
                raise self.acp.RequestError.invalid_params({"message": str(exc)}) from None
            chosen = value
        if chosen != session.model or chosen is None:
            self._switch_model(session, chosen, spawner)

    def _fresh_config(self) -> Any:
        """The Spawner's config, reloaded when ``openclaw.json`` changed since it was read
        (a long-lived process must follow the user's edits; a stat when it did not). A broken
        edit, or a deleted file, keeps the last good config and says so once."""
        from .config import refresh_config

        spawner = self.spawner
        cfg, note = refresh_config(spawner.config, environ=spawner.environ)
        if note:
            _log(note)
        spawner.config = cfg
        return cfg

    async def _route(self, payload: Any) -> dict[str, Any]:
        """``before_tool_call`` of ``sessions_spawn``, answered by the warm process."""
        from .commands.hook import _block, before_tool_call
        from .errors import KimiAcpError

        await self._get_spawner()
        try:
            return before_tool_call(payload, cfg=self._fresh_config())
        except KimiAcpError as exc:
            return _block(str(exc))
        except Exception as exc:  # noqa: BLE001 - the extension must get an answer; it fails closed
            return _block(f"kimi-acp route failed: {type(exc).__name__}: {exc}")

    async def _close(self, params: dict[str, Any]) -> dict[str, Any]:
        """``close``: stop the session's run; forget a oneshot (or discarded) session."""
        from .sessions import SessionModels

        sid = params.get("sessionId")
        if not isinstance(sid, str):
            raise self.acp.RequestError.invalid_params({"message": "close needs a sessionId"})
        session = self.sessions.get(sid) or (self.files.load(sid) if _is_uuid(sid) else None)
        if session is None:
            return {"closed": False}
        if session.busy:
            await self.cancel(sid)
        if session.mode == "oneshot" or params.get("discardPersistentState") is True:
            self.sessions.pop(sid, None)
            self.files.delete(sid)
            if self.spawner is not None:
                with SessionModels(self.spawner.store.state_dir) as table:
                    table.clear(session_key(sid))
        return {"closed": True}

    async def _fresh_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """``prepareFreshSession``: the next ensure of this key starts a new conversation."""
        key = params.get("sessionKey")
        if not isinstance(key, str) or not key:
            raise self.acp.RequestError.invalid_params({"message": "prepareFreshSession needs a sessionKey"})
        sid = openclaw_session_id(key)
        session = self.sessions.get(sid)
        if session is not None and session.busy:
            await self.cancel(sid)
        self.sessions.pop(sid, None)
        self.files.delete(sid)
        return {"sessionId": sid}

    async def _status(self, params: dict[str, Any]) -> dict[str, Any]:
        """``getStatus``: what the session runs on and what it is doing."""
        from .errors import KimiAcpError
        from .routing import resolve

        spawner = await self._get_spawner()
        sid = params.get("sessionId")
        session = self._session(sid) if isinstance(sid, str) else None
        if session is None:
            raise self.acp.RequestError.invalid_params({"message": "getStatus needs a sessionId"})
        try:
            route = resolve(self._fresh_config(), model=session.model or self.args.backend, target=TARGET_AGENT)
            backend = f"{route.name}" + (f"/{route.model}" if route.model else "")
        except KimiAcpError as exc:
            backend = f"unknown ({exc})"
        state = "running" if session.busy else "idle"
        details: dict[str, Any] = {
            "backend": backend,
            "model": session.model or DEFAULT_CHOICE,
            "state": state,
            "runId": session.run_id,
            "lastStatus": session.last_status,
            "claudeSessionId": session.claude_session_id,
            "cwd": session.cwd,
            "mode": session.mode,
        }
        if session.run_id:
            try:
                pid = getattr(spawner.store.get_run(session.run_id), "pid", None)
            except Exception:  # noqa: BLE001 - status is best effort
                pid = None
            if pid:
                details["pid"] = pid
        summary = f"kimi-acp: {state} on {backend}" + (f", run {session.run_id}" if session.run_id else "")
        out: dict[str, Any] = {"summary": summary, "backendSessionId": session.session_id, "details": {k: v for k, v in details.items() if v is not None}}
        if session.claude_session_id:
            out["agentSessionId"] = session.claude_session_id  # OpenClaw checks resumeSessionId against it
        return out

    async def _doctor(self) -> dict[str, Any]:
        """``doctor`` (OpenClaw's ``/acp doctor``): config, Claude Code, and the keys routed to."""
        from .errors import KimiAcpError

        lines: list[str] = []
        try:
            await self._get_spawner()
            cfg = self._fresh_config()
        except Exception as exc:  # noqa: BLE001 - RequestError from _get_spawner: the config's message
            message = getattr(exc, "data", None) or {}
            text = message.get("message") if isinstance(message, dict) else None
            return {"ok": False, "code": "config", "message": text or str(exc)}
        lines.append(f"config: {cfg.path}" + ("" if cfg.exists else " (not found: built-in presets only)"))
        try:
            from .harness.command import claude_version, find_claude

            path = find_claude(cfg.settings.harness.command)
            if self._claude_version is None or self._claude_version[0] != path:
                self._claude_version = (path, claude_version(path))
            lines.append(f"claude: {path} ({self._claude_version[1]})")
        except KimiAcpError as exc:
            return {
                "ok": False,
                "code": "claude_missing",
                "message": str(exc),
                "installCommand": "npm install -g @anthropic-ai/claude-code",
                "details": lines,
            }
        problems: list[str] = []
        for name in routed_backends(cfg):
            try:
                backend = cfg.backend(name)
            except KimiAcpError as exc:
                problems.append(str(exc))
                continue
            if backend.passthrough:
                continue
            try:
                from .redact import mask

                key = backend.resolve_key(self.spawner.environ)
                lines.append(f"backend {name}: {backend.base_url}, key {mask(key)}")
            except KimiAcpError as exc:
                problems.append(f"backend {name}: {exc}")
        if problems:
            return {"ok": False, "code": "backend", "message": "; ".join(problems), "details": lines}
        return {"ok": True, "message": "kimi-acp is ready: " + ", ".join(lines), "details": lines}

    async def load_session(self, cwd: str, session_id: str, mcp_servers: Any = None, additional_directories: Any = None, **kwargs: Any) -> Any:
        await self._get_spawner()
        session = self._session(session_id)
        if cwd and os.path.realpath(cwd) != os.path.realpath(session.cwd):
            # Claude Code resumes a conversation only from the cwd it started in.
            _log(f"session {session_id}: keeping its cwd {session.cwd} (load asked for {cwd})")
        return self.acp.LoadSessionResponse(config_options=self._config_options(session))

    async def set_config_option(self, config_id: str, session_id: str, value: Any, **kwargs: Any) -> Any:
        await self._get_spawner()
        session = self._session(session_id)
        if config_id in THINKING_OPTIONS and isinstance(value, str) and value.strip():
            # OpenClaw replays the spawn's thinking level this way; a default it did not ask for
            # (no thinkingExplicit at ensureSession) leaves Claude Code's effort alone.
            if session.thinking_explicit or session.openclaw_key is None:
                session.thinking = value.strip()
            return self.acp.schema.SetSessionConfigOptionResponse(config_options=self._config_options(session))
        if config_id == TIMEOUT_OPTION:
            try:
                seconds = int(str(value).strip())
            except ValueError:
                seconds = -1
            if seconds < 0:
                raise self.acp.RequestError.invalid_params({"message": f"the timeout option takes whole seconds (got {value!r})"})
            session.timeout = seconds or None
            return self.acp.schema.SetSessionConfigOptionResponse(config_options=self._config_options(session))
        if config_id != MODEL_OPTION:
            known = ", ".join([MODEL_OPTION, *THINKING_OPTIONS, TIMEOUT_OPTION])
            raise self.acp.RequestError.invalid_params({"message": f"unknown config option {config_id!r}; kimi-acp has {known}"})
        if not isinstance(value, str) or not value.strip():
            raise self.acp.RequestError.invalid_params({"message": "the model option takes a model ref, e.g. kimi/kimi-k2.5"})
        self._set_model(session, value.strip())
        return self.acp.schema.SetSessionConfigOptionResponse(config_options=self._config_options(session))

    def _switch_model(self, session: AcpSession, ref: str | None, spawner: Any) -> None:
        from .sessions import SessionModels

        session.model = ref
        self._save(session)
        key = session_key(session.session_id)
        with SessionModels(spawner.store.state_dir) as table:
            if ref is None:
                table.clear(key)
            else:
                table.set(key, ref)
        spawner.pm.hook.kimi_acp_model_switched(session_key=key, model_ref=ref)

    def _save(self, session: AcpSession) -> None:
        try:
            self.files.save(session)
        except OSError as exc:
            _log(f"cannot save session {session.session_id}: {exc}")

    async def prompt(self, prompt: list[Any], session_id: str, message_id: str | None = None, **kwargs: Any) -> Any:
        acp = self.acp
        session = self._session(session_id)
        if session.busy:
            raise acp.RequestError.invalid_request({"message": f"session {session_id} already has a prompt running; cancel it first"})
        task = prompt_text(prompt)
        if not task.strip():
            raise acp.RequestError.invalid_params({"message": "the prompt has no text"})
        session.busy, session.cancelled = True, False
        try:
            return await self._prompt(session, task)
        finally:
            session.busy = False

    async def _prompt(self, session: AcpSession, task: str) -> Any:
        import asyncio

        acp = self.acp
        spawner = await self._get_spawner()
        if session.cancelled:
            return acp.PromptResponse(stop_reason="cancelled")
        request: dict[str, Any] = {
            "task": task,
            "runtime": "acp",
            "agentId": TARGET_AGENT,
            "cwd": session.cwd,
            # The answer goes back on this connection, not to a gateway session.
            "expectsCompletionMessage": False,
        }
        model = session.model or self.args.backend
        if model:
            request["model"] = model
        if session.claude_session_id:
            request["resumeSessionId"] = session.claude_session_id
        if session.thinking:
            request["thinking"] = session.thinking
        if session.env:
            request["env"] = session.env
        if session.timeout:
            request["runTimeoutSeconds"] = session.timeout
        if session.openclaw_key:
            request["label"] = session.openclaw_key  # `kimi-acp ps` / `show` name OpenClaw's child session
        if self.spawner is not None:
            self._fresh_config()
        context = {"requesterAgentId": self.args.agent, "requesterSessionKey": session_key(session.session_id)}
        answer = await spawner.spawn(request, context)
        if answer.get("status") != "accepted":
            raise self._error(str(answer.get("error") or answer), code=answer.get("errorCode"), runId=answer.get("runId"))
        run_id = answer["runId"]
        # No await between spawn() and watch(): the run cannot have produced events yet.
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.events.watch(run_id, queue)
        session.run_id = run_id
        maker = UpdateMaker(acp, _context_window(spawner.config, answer.get("backend"), answer.get("model")))
        sender = asyncio.create_task(self._send_updates(session.session_id, queue, maker))
        finished = False
        try:
            if session.cancelled:
                await spawner.cancel(run_id)
            result = await spawner.wait(run_id)
            finished = True
        finally:
            self.events.unwatch(run_id)
            session.run_id = None
            queue.put_nowait(None)
            if not finished:  # the prompt itself was cancelled (connection gone): stop the run
                await asyncio.shield(spawner.cancel(run_id))
            await asyncio.shield(sender)  # every update is out before the response
        session.last_status = result.status
        seconds = f"{result.durationMs / 1000:.1f} s" if result.durationMs is not None else "?"
        who = f"{session.session_id} ({session.openclaw_key})" if session.openclaw_key else session.session_id
        _log(f"session {who}: run {run_id} on {result.backend} ({result.reason}): {result.status} in {seconds}")
        if result.sessionId and (result.status in ("ok", "cancelled") or not session.claude_session_id):
            session.claude_session_id = result.sessionId
            if session.mode != "oneshot":
                self._save(session)
        if result.status == "cancelled" or session.cancelled:
            return acp.PromptResponse(stop_reason="cancelled")
        if result.status != "ok":
            message = result.error or f"the run ended with status {result.status}"
            raise self._error(message, code=f"run_{result.status}", runId=run_id, status=result.status, backend=result.backend, exitCode=result.exitCode)
        usage = prompt_usage(acp, result.usage)
        return acp.PromptResponse(stop_reason="end_turn", usage=usage) if usage else acp.PromptResponse(stop_reason="end_turn")

    async def _send_updates(self, session_id: str, queue: Any, maker: UpdateMaker) -> None:
        broken = False
        while True:
            event = await queue.get()
            if event is None:
                return
            if broken or self.conn is None:
                continue
            try:
                updates = maker.updates(event)
            except Exception as exc:  # noqa: BLE001 - one odd event must not stop the stream
                _log(f"session {session_id}: skipped an event ({type(event).__name__}): {exc!r}")
                continue
            try:
                for update in updates:
                    await self.conn.session_update(session_id=session_id, update=update)
            except Exception as exc:  # noqa: BLE001 - a gone client must not stop the run's bookkeeping
                broken = True
                _log(f"session {session_id}: cannot send updates: {exc!r}")

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        session = self.sessions.get(session_id)
        if session is None or not session.busy:
            return
        session.cancelled = True
        if session.run_id is not None and self.spawner is not None:
            await self.spawner.cancel(session.run_id)

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """kimi-acp's extension methods, for the OpenClaw extension (``_kimi-acp/...``)."""
        if method == "kimi-acp/route":
            return await self._route(params)
        if method == "kimi-acp/close":
            return await self._close(params)
        if method == "kimi-acp/fresh":
            return await self._fresh_session(params)
        if method == "kimi-acp/status":
            return await self._status(params)
        if method == "kimi-acp/doctor":
            return await self._doctor()
        raise self.acp.RequestError.method_not_found(f"_{method}")

    async def ext_notification(self, method: str, params: dict[str, Any]) -> None:
        return None


def openclaw_session_id(key: str) -> str:
    """The ACP session id of an OpenClaw session key (stable across restarts)."""
    import uuid

    return str(uuid.uuid5(uuid.UUID(_OPENCLAW_NS), key))


def openclaw_workspace(cfg: Any, agent_id: str) -> str:
    """OpenClaw's workspace of an agent: ``agents.entries.<id>.workspace``, else
    ``$OPENCLAW_STATE_DIR/workspace-<id>`` (``~/.openclaw`` without the variable)."""
    from pathlib import Path

    entries = (cfg.data.get("agents") or {}).get("entries") if isinstance(cfg.data.get("agents"), dict) else None
    entry = entries.get(agent_id) if isinstance(entries, dict) else None
    configured = entry.get("workspace") if isinstance(entry, dict) else None
    if isinstance(configured, str) and configured.strip():
        return str(Path(configured).expanduser().absolute())
    state = os.environ.get("OPENCLAW_STATE_DIR") or str(Path.home() / ".openclaw")
    return str(Path(state).expanduser().absolute() / f"workspace-{agent_id}")


def routed_backends(cfg: Any) -> list[str]:
    """Every backend the config routes something to (agents, targets, the global default)."""
    s = cfg.settings
    names = [r.backend for r in s.agents.values()] + [r.backend for r in s.targets.values()]
    if s.defaultBackend:
        names.append(s.defaultBackend)
    return list(dict.fromkeys(names))


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _context_window(cfg: Any, backend_name: Any, model: Any) -> int | None:
    backend = cfg.backends.get(backend_name) if isinstance(backend_name, str) else None
    if backend is None:
        return None
    info = backend.model_info(model if isinstance(model, str) else None)
    return (info.context_window if info else None) or backend.context_window
