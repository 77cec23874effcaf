"""``kimi-acp acp``'s wire: the Agent Client Protocol on stdio, and its cold-start tricks.

One process serves both doors (:mod:`.acp_agent` for acpx and editors,
:mod:`.openclaw_backend` for OpenClaw's runtime backend); this module only moves bytes.

Start-up: the ``acp`` package builds ~280 pydantic models at import (about a second), so
the first message, ``initialize``, is answered before anything heavy is imported (see
:func:`run`); its answer is :func:`~.acp_agent.initialize_result`, the same data the SDK path
returns (a test checks both against ``acp.InitializeResponse``). Everything after it goes
through ``acp.run_agent``. Stdout carries the protocol only: fd 1 is moved to a private fd and
pointed at stderr, where diagnostics go (never secrets: library log lines are masked too).
Every input line is checked against JSON-RPC's rules first (:func:`check_message`): a bad line
is answered (with its id when it has one) and the server stays up.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

_LINE_LIMIT = 50 * 1024 * 1024  # the SDK's stdio line limit


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
    from .acp_agent import initialize_result  # light: no SDK, no pydantic

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
    for handler in logging.getLogger().handlers:  # a library's log line (the SDK's) is masked like ours
        handler.addFilter(_RedactingFilter())
    acp = _import_acp()
    # pydantic is loaded now (the SDK's models): the validated-settings cache, a cold-start trick
    # for short commands, no longer pays here; this long-lived process always validates.
    os.environ["KIMI_ACP_NO_SETTINGS_CACHE"] = "1"
    from .acp_agent import KimiAcpAgent

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


class _RedactingFilter:
    """A logging filter that masks secrets in a record's message (and its traceback text)."""

    def filter(self, record: Any) -> bool:
        from .redact import redact

        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep the record as it is
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return True


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


_ID_IN_PREFIX = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.){0,200}")')
_PREFIX_KEPT = 4096  # of an oversized line: enough to find its id (clients write it first)


async def _lines(raw: Any, limit: int) -> Any:
    """The lines of ``raw``; a line over ``limit`` bytes comes as ``(prefix, size)``: its first
    bytes (to find its id) and its size, the rest read and dropped without being kept."""
    buf = bytearray()
    dropping: tuple[bytes, int] | None = None
    while True:
        chunk = await raw.read(1 << 16)
        if not chunk:
            if dropping is not None:
                yield (dropping[0], dropping[1] + len(buf))
            elif buf:
                yield bytes(buf)
            return
        buf += chunk
        while True:
            cut = buf.find(b"\n")
            if dropping is not None:
                if cut < 0:
                    dropping = (dropping[0], dropping[1] + len(buf))
                    buf.clear()
                    break
                yield (dropping[0], dropping[1] + cut + 1)
                dropping = None
                del buf[: cut + 1]
                continue
            if cut < 0:
                if len(buf) > limit:
                    dropping = (bytes(buf[:_PREFIX_KEPT]), len(buf))
                    buf.clear()
                break
            if cut + 1 > limit:
                yield (bytes(buf[:_PREFIX_KEPT]), cut + 1)
            else:
                yield bytes(buf[: cut + 1])
            del buf[: cut + 1]


def oversized_reply(prefix: bytes, size: int, limit: int) -> bytes:
    """The answer to a message over the line limit: -32600 with the request's own id when its
    first bytes name one (so the client's request fails at once instead of waiting forever)."""
    found = _ID_IN_PREFIX.search(prefix)
    msg_id: Any = None
    if found:
        try:
            msg_id = json.loads(found.group(1))
        except ValueError:
            msg_id = None
    return _rpc_error(-32600, f"Invalid request: the message is {size} bytes, over the {limit}-byte limit of kimi-acp's stdio", msg_id)


async def _guard_input(raw: Any, reader: Any, writer: Any, limit: int = _LINE_LIMIT) -> None:
    """Feed ``reader`` (the SDK's) with the valid lines of ``raw``; answer the others."""
    try:
        async for line in _lines(raw, limit):
            if isinstance(line, tuple):
                writer.write(oversized_reply(*line, limit))
                continue
            ok, reply = check_message(line)
            if ok:
                reader.feed_data(line if line.endswith(b"\n") else line + b"\n")
            elif reply is not None:
                writer.write(reply)
    finally:
        reader.feed_eof()
