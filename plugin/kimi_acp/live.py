"""A Claude Code run that takes input while it works: an ACP turn's steers and the answers to
Claude Code's permission questions.

A door that can talk to someone while its run works (an ACP prompt: an editor, acpx, OpenClaw's
turn with its ``onElicitation``) hands the Spawner a :class:`Live`. The run then starts with its
stdin open (``claude -p --input-format stream-json --replay-user-messages``, see
:func:`~kimi_acp.harness.command.build_argv`), and :class:`LiveRun` keeps it:

* **more user messages** (:meth:`LiveRun.send`, a steer): written as stream-json user messages.
  Claude Code takes one that arrives between two API calls of the turn into that turn, and one
  that arrives as the turn ends as a turn of its own; it echoes each message when it takes it
  (``isReplay``). stdin is closed at a ``result`` once every message written has been echoed:
  the run then ends as a ``-p`` run does, and every turn it owes has had its result. (A message
  that is never echoed, which should not happen, is given :data:`UNECHOED_GRACE` seconds of
  silence before stdin closes all the same.)
* **permission questions** (``--permission-prompt-tool stdio`` when :attr:`Live.ask` is given and
  the mode asks): each ``control_request`` ``can_use_tool`` becomes one :class:`Question` for the
  door, asked one at a time, and its :class:`Answer` goes back as the matching
  ``control_response`` (allow: the tool runs; deny: it does not, and Claude Code shows the model
  the message). No answer within :data:`QUESTION_TIMEOUT` seconds, or a question the door cannot
  put to anyone, is a denial that says so. "Allow for the session" remembers this tool with this
  exact input (:attr:`Live.allowed`): the same call later in the session is allowed without
  asking, nothing broader.

Questions and answers are recorded with the run (its transcript) and told to its watchers as
``kimi-acp`` events; a denial is said in the turn's own words. Everything here reads lines that
were masked at the source (:mod:`.spawn`): a question never carries a key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from .harness.tools import TOOL_KINDS, tool_title

QUESTION_TIMEOUT = 16 * 60.0
"""Seconds a permission question waits for its answer (OpenClaw's chat questions expire after
15 minutes and answer ``cancel`` then: its own word comes first)."""

UNECHOED_GRACE = 10.0
"""Seconds of silence after a ``result`` with a message not yet echoed before stdin is closed."""


@dataclass(frozen=True)
class Question:
    """One of Claude Code's permission questions (a ``can_use_tool`` control request), masked."""

    run_id: str
    request_id: str
    tool: str
    input: dict[str, Any]
    tool_use_id: str | None = None
    description: str | None = None
    blocked_path: str | None = None

    @property
    def title(self) -> str:
        return tool_title(self.tool, self.input)

    @property
    def kind(self) -> str:
        return TOOL_KINDS.get(self.tool, "other")

    def key(self) -> str:
        """This tool with this exact input: what "allow for the session" remembers."""
        return json.dumps([self.tool, self.input], sort_keys=True, ensure_ascii=False)

    def text(self) -> str:
        """One line for a person: what Claude Code wants to do."""
        what = f"run `{self.input['command']}`" if self.tool == "Bash" and self.input.get("command") else f"use {self.title}"
        why = f" ({self.description})" if self.description and self.description not in what else ""
        return f"Claude Code wants to {what}{why}"


Decision = Literal["allow_once", "allow_always", "deny"]


@dataclass(frozen=True)
class Answer:
    """What the door got for a question: ``allow_once``, ``allow_always`` (this exact call for the
    rest of the session) or ``deny``; ``reason`` says why a denial happened (shown to the model
    and said in the turn); ``by`` who decided (``user``, ``session``, ``timeout``, ``cancelled``,
    ``nobody``)."""

    decision: Decision
    by: str = "user"
    reason: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision != "deny"


Ask = Callable[[Question], Awaitable[Answer]]


@dataclass
class Live:
    """A door's side of a live turn: ``ask`` puts a question to someone (``None``: nobody can be
    asked in this turn, so the run keeps the static permission mode); ``allowed`` is the
    session's memory of "allow for the session" answers (kept by the door across its turns)."""

    ask: Ask | None = None
    allowed: set[str] = field(default_factory=set)
    timeout: float = QUESTION_TIMEOUT


Record = Callable[[dict[str, Any]], None]


class LiveRun:
    """The live side of one run (see the module docstring). Created by the Spawner; fed every
    parsed event of the run's stdout (:meth:`on_event`); its tasks run in ``start_task``."""

    def __init__(self, run_id: str, live: Live, *, write: Callable[[bytes], bool], close: Callable[[], None],
                 start_task: Callable[..., Any], record: Record) -> None:
        self.run_id = run_id
        self.live = live
        self._write = write
        self._close = close
        self._start_task = start_task
        self._record = record
        self.written = 1  # user messages written (the task is the first)
        self.echoed = 0
        self.closed = False
        self.ended = False
        self.results = 0
        self._lock = anyio.Lock()  # one question at a time
        self._scopes: set[anyio.CancelScope] = set()
        self._grace: anyio.CancelScope | None = None

    # ------------------------------------------------------------------ input

    def send(self, data: bytes) -> bool:
        """Write one more user message (a stream-json line); ``False`` once stdin is closed (the
        run is ending: the caller runs its message as the next turn instead)."""
        if self.closed or self.ended or not self._write(data):
            return False
        self.written += 1
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close()

    # ------------------------------------------------------------------ output

    def on_event(self, event: Any) -> None:
        """One parsed stdout event, in order (after it was recorded)."""
        kind = getattr(event, "type", None)
        if kind == "user" and _is_echo(event):
            self.echoed += 1
            if self._grace is not None:  # it took the message: its turn ends with a result of its own
                self._grace.cancel()
                self._grace = None
        elif kind == "result":
            self.results += 1
            if self.echoed >= self.written:
                self.close()
            else:  # a message it has not taken (yet): it should, at once; if it never does, close anyway
                if self._grace is not None:
                    self._grace.cancel()
                self._grace = self._spawn(self._close_when_silent)
        elif kind == "control_request":
            raw = getattr(event, "raw", None) or {}
            self._spawn(self._answer, raw)

    def finish(self) -> None:
        """The run is over: stop every question still waiting (nobody can use its answer)."""
        self.ended = True
        self.closed = True
        for scope in list(self._scopes):
            scope.cancel()

    # ------------------------------------------------------------------ tasks

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> anyio.CancelScope:
        scope = anyio.CancelScope()
        self._scopes.add(scope)

        async def task() -> None:
            try:
                with scope:
                    await fn(*args)
            except Exception as exc:  # noqa: BLE001 - a door's failure must never take the spawner down
                self._record({"type": "kimi-acp", "subtype": "live_error", "message": f"kimi-acp could not handle the run's input: {exc!r}"})
            finally:
                self._scopes.discard(scope)

        self._start_task(task)
        return scope

    async def _close_when_silent(self) -> None:
        await anyio.sleep(UNECHOED_GRACE)
        self._grace = None
        self.close()

    async def _answer(self, raw: dict[str, Any]) -> None:
        request_id = raw.get("request_id")
        request = raw.get("request") if isinstance(raw.get("request"), dict) else {}
        if not isinstance(request_id, str):
            return
        if request.get("subtype") != "can_use_tool":
            self._respond({"subtype": "error", "request_id": request_id,
                           "error": f"kimi-acp does not handle {request.get('subtype')!r} requests"})
            return
        tool_input = request.get("input") if isinstance(request.get("input"), dict) else {}
        question = Question(
            run_id=self.run_id,
            request_id=request_id,
            tool=str(request.get("tool_name") or "tool"),
            input=tool_input,
            tool_use_id=request.get("tool_use_id") if isinstance(request.get("tool_use_id"), str) else None,
            description=request.get("description") if isinstance(request.get("description"), str) else None,
            blocked_path=request.get("blocked_path") if isinstance(request.get("blocked_path"), str) else None,
        )
        async with self._lock:
            try:
                answer = await self._decide(question)
            except Exception as exc:  # noqa: BLE001 - Claude Code waits for an answer: it always gets one
                answer = Answer("deny", by="error", reason=f"kimi-acp could not ask ({type(exc).__name__}: {exc})")
        said = None if answer.allowed else f"Claude Code asked to {question.text().removeprefix('Claude Code wants to ')}: denied — {answer.reason}"
        self._record({"type": "kimi-acp", "subtype": "permission_answer", "toolUseId": question.tool_use_id,
                      "tool": question.tool, "decision": answer.decision, "by": answer.by,
                      **({"reason": answer.reason} if answer.reason else {}), **({"message": said} if said else {})})
        if answer.allowed:
            self._respond({"subtype": "success", "request_id": request_id, "response": {"behavior": "allow"}})
        else:
            self._respond({"subtype": "success", "request_id": request_id,
                           "response": {"behavior": "deny", "message": f"Permission denied: {answer.reason}"}})

    async def _decide(self, question: Question) -> Answer:
        if question.key() in self.live.allowed:
            return Answer("allow_always", by="session")
        self._record({"type": "kimi-acp", "subtype": "permission_question", "toolUseId": question.tool_use_id,
                      "tool": question.tool, "input": question.input, "question": question.text()})
        if self.live.ask is None:
            return Answer("deny", by="nobody", reason="kimi-acp has nobody to ask in this turn")
        minutes = self.live.timeout / 60
        answer: Answer | None = None
        with anyio.move_on_after(self.live.timeout if math.isfinite(self.live.timeout) else None):
            answer = await self.live.ask(question)
        if answer is None:
            return Answer("deny", by="timeout", reason=f"nobody answered the question within {minutes:g} minutes")
        if answer.decision == "allow_always":
            self.live.allowed.add(question.key())
        return answer

    def _respond(self, response: dict[str, Any]) -> None:
        line = json.dumps({"type": "control_response", "response": response}, ensure_ascii=False) + "\n"
        self._write(line.encode("utf-8"))


def _is_echo(event: Any) -> bool:
    """A user message Claude Code echoes as it takes it from stdin (``--replay-user-messages``)."""
    extra = getattr(event, "model_extra", None) or {}
    return extra.get("isReplay") is True
