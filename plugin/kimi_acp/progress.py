"""Live progress of one run, on stderr, that never freezes.

On a terminal: one status line redrawn every 0.25 s by a small thread, so the elapsed time
ticks even while Claude Code waits on the API: what is happening now (thinking, the current
tool, "retrying after 429 (3/10, next in 9.7 s)" from Claude Code's ``system/api_retry``
events), turns and tokens so far. Tool calls and retries also get a permanent line above it.

Not a terminal (a log file, CI): plain lines only for things that happened (start, each tool
call, each retry, the end), plus a "still running" line after 30 s of silence.

Stdlib only: a thread and ANSI ``\\r\\033[K`` cost nothing at import, where rich would cost
tens of milliseconds of start-up for one line of text.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from .harness.tools import tool_title
from .hookspecs import hookimpl

SPIN = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of an event: a dict key, an attribute, or a pydantic extra."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    value = getattr(obj, name, None)
    if value is None:
        extra = getattr(obj, "model_extra", None) or {}
        value = extra.get(name)
    return default if value is None else value


def _usage_tokens(usage: Any) -> int:
    if usage is None:
        return 0
    if not isinstance(usage, dict):
        usage = usage.model_dump() if hasattr(usage, "model_dump") else {}
    return sum(int(usage.get(k) or 0) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))


def _fmt_tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 10_000 else str(n)


class Progress:
    """A pluggy plugin (``kimi_acp_run_event``) that shows one run's progress on ``stream``."""

    TICK = 0.25
    QUIET = 30.0  # not a TTY: a "still running" line after this long without output

    def __init__(self, stream: Any = None, *, tty: bool | None = None, clock: Any = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty()) if tty is None else tty
        self.clock = clock
        self.start = clock()
        self.turns = 0
        self.tools = 0
        self.tokens = 0
        self.now = "starting Claude Code"
        self.retry_until: float | None = None
        self.retry_of = ""
        self._messages: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_output = clock()
        self._frame = 0
        self._started = False

    # -- the line ---------------------------------------------------------------

    def elapsed(self) -> float:
        return self.clock() - self.start

    def status(self) -> str:
        doing = self.now
        if self.retry_until is not None:
            left = max(0.0, self.retry_until - self.clock())
            doing = f"{self.now} ({self.retry_of}, next in {left:.1f} s)"
        return (f"{self.elapsed():5.1f}s · {doing} · turn {self.turns} · {self.tools} tool call{'s' if self.tools != 1 else ''}"
                f" · {_fmt_tokens(self.tokens)} tokens")

    def line(self) -> str:  # kept for callers of the old Progress
        return f"[{self.elapsed():5.1f}s] turns {self.turns} · tool calls {self.tools} · tokens {self.tokens}"

    def _draw(self) -> None:
        if not self.tty or not self._started:
            return
        self._frame = (self._frame + 1) % len(SPIN)
        self.stream.write(f"\r\033[K{SPIN[self._frame]} {self.status()}")
        self.stream.flush()

    def _say(self, text: str) -> None:
        """A permanent line (above the status line on a TTY)."""
        with self._lock:
            if self.tty:
                self.stream.write("\r\033[K" + text + "\n")
                self._draw()
            else:
                self.stream.write(f"[{self.elapsed():5.1f}s] {text}\n")
            self.stream.flush()
            self._last_output = self.clock()

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK):
            with self._lock:
                if self.tty:
                    self._draw()
                elif self.clock() - self._last_output >= self.QUIET:
                    self.stream.write(f"[{self.elapsed():5.1f}s] still running: {self.now}\n")
                    self.stream.flush()
                    self._last_output = self.clock()

    def begin(self) -> None:
        self._started = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._tick, name="kimi-acp-progress", daemon=True)
            self._thread.start()

    def end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with self._lock:
            if self.tty and self._started:
                self.stream.write("\r\033[K")
                self.stream.flush()
        self._started = False

    # -- events -----------------------------------------------------------------

    @hookimpl
    def kimi_acp_run_event(self, run: Any, event: Any) -> None:
        kind, sub = _get(event, "type"), _get(event, "subtype")
        if kind == "status" and _get(event, "status") == "queued":
            reason = _get(event, "reason")
            if reason:  # waits for its backend (a used-up quota, a 429's retry-after)
                self.begin()
                self.now = f"queued: {reason}"
                self._say(f"run {run.run_id} waits: {reason}")
            return
        if kind == "status":
            self.begin()
            self._say(f"run {run.run_id} started on {run.backend}" + (f" ({run.model})" if run.model else "") + f": {run.reason}")
            self.now = "waiting for the model"
            return
        if kind == "system" and sub == "api_retry":
            status = _get(event, "error_status") or _get(event, "error") or "an error"
            attempt, most = _get(event, "attempt", "?"), _get(event, "max_retries", "?")
            delay = float(_get(event, "retry_delay_ms", 0) or 0) / 1000
            self.now, self.retry_of = f"retrying after {status}", f"{attempt}/{most}"
            self.retry_until = self.clock() + delay
            self._say(f"API {status}: retry {attempt}/{most} in {delay:.1f} s")
            return
        if kind == "system" and sub == "init":
            self.now = "thinking"
            return
        self.retry_until = None
        if kind == "assistant":
            msg = _get(event, "message")
            mid = _get(msg, "id") if msg is not None else None
            if mid and mid not in self._messages:
                self._messages.add(mid)
                self.turns += 1
                self.tokens += _usage_tokens(_get(msg, "usage"))
            for block in _get(msg, "content", []) or []:
                btype = _get(block, "type")
                if btype == "tool_use":
                    self.tools += 1
                    name = _get(block, "name", "?")
                    self.now = f"running {name}"
                    tool_input = _get(block, "input", {})
                    title = tool_title(name, tool_input) if isinstance(tool_input, dict) and tool_input else ""
                    self._say(f"tool {name}" + (f": {title[:120]}" if title and title != name else ""))
                elif btype == "text":
                    self.now = "writing"
                elif btype == "thinking":
                    self.now = "thinking"
        elif kind == "user":
            self.now = "thinking"
        elif kind == "result":
            total = _usage_tokens(_get(event, "usage"))
            if total:
                self.tokens = total
            self.now = "done"
            self.end()
            self._say(f"done: {self.turns} turn{'s' if self.turns != 1 else ''}, {self.tools} tool calls, {self.tokens} tokens")
