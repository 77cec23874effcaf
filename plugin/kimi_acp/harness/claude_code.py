"""Everything kimi-acp knows about the Claude Code CLI (built against 2.1.332).

* how to find the binary and ask its version (:func:`find_claude`, :func:`claude_version`);
* how to start it (:func:`build_argv`, :func:`permission_args`): always ``-p --output-format
  stream-json --verbose``; the task is written to **stdin**, never put in argv (ARG_MAX, and
  ``ps`` shows argv to every user);
* how to read it (:func:`parse_line`, :class:`StreamState`, :func:`summarize`): one JSON object
  per stdout line, tolerant of event types this code does not know and of non-JSON lines.

The facts behind the rules are in ``facts/claude-code.md`` §2.5–§2.9; the notable ones:
``result.subtype`` is ``"success"`` even on API errors (only ``is_error`` tells), a run can
print two ``result`` lines (the last wins), and a refused key costs 10 silent retries unless
the supervisor stops the run at the first ``api_retry`` with 401/403.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError

from ..redact import Redactor, redact
from .command import (  # noqa: F401 - re-exported: the harness's public API
    PermissionMode,
    CLAUDE_CODE_VERSION,
    INSTALL_HINT,
    ROOT_BYPASS_MESSAGE,
    EFFORT_BY_THINKING,
    permission_args,
    build_argv,
    find_claude,
    claude_version,
)

# --------------------------------------------------------------------------- stream-json events


class _Open(BaseModel):
    """Base of every event model: unknown keys are kept, never rejected (the CLI adds keys often)."""

    model_config = ConfigDict(extra="allow", defer_build=True)  # built on first parse, while the CLI starts up


def _int_or_none(value: Any) -> int | None:
    """Numbers from the CLI, read leniently: a float or numeric string is rounded, anything
    else is None. A surprising number must never cost us a ``result`` line."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return round(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


OptInt = Annotated[int | None, BeforeValidator(_int_or_none)]
OptFloat = Annotated[float | None, BeforeValidator(_float_or_none)]
Count = Annotated[int, BeforeValidator(lambda v: _int_or_none(v) or 0)]


class Usage(_Open):
    """Token counts of one API message (synthetic error messages carry nulls: read as 0)."""

    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_input_tokens: Count = 0
    cache_creation_input_tokens: Count = 0


class TextBlock(_Open):
    type: Literal["text"] = "text"
    text: str = ""


class ThinkingBlock(_Open):
    type: Literal["thinking"] = "thinking"
    thinking: str = ""
    signature: str | None = None


class ToolUseBlock(_Open):
    type: Literal["tool_use"] = "tool_use"
    id: str = ""
    name: str = ""
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(_Open):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str = ""
    content: Any = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The result as plain text (content is a string or a list of text blocks)."""
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return "".join(c.get("text", "") for c in self.content if isinstance(c, dict))
        return ""


class OtherBlock(_Open):
    """A content block of a type this code does not model (e.g. ``redacted_thinking``, ``image``)."""

    type: str = "unknown"


_BLOCK_TYPES = {"text", "thinking", "tool_use", "tool_result"}


def _block_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in _BLOCK_TYPES else "other"


ContentBlock = Annotated[
    Union[
        Annotated[TextBlock, Tag("text")],
        Annotated[ThinkingBlock, Tag("thinking")],
        Annotated[ToolUseBlock, Tag("tool_use")],
        Annotated[ToolResultBlock, Tag("tool_result")],
        Annotated[OtherBlock, Tag("other")],
    ],
    Discriminator(_block_tag),
]


class AssistantMessage(_Open):
    id: str | None = None
    model: str | None = None
    role: str = "assistant"
    content: list[ContentBlock] = Field(default_factory=list)
    usage: Usage | None = None
    stop_reason: str | None = None


class AssistantEvent(_Open):
    """One content block of an API message (the CLI prints one line per block, same ``message.id``).

    API errors arrive as a *synthetic* assistant message (``message.model == "<synthetic>"``)
    whose text is the error, with ``api_error_status`` at top level.
    """

    type: Literal["assistant"] = "assistant"
    message: AssistantMessage = Field(default_factory=AssistantMessage)
    parent_tool_use_id: str | None = None
    session_id: str | None = None
    api_error_status: OptInt = None
    error: str | None = None

    @property
    def synthetic(self) -> bool:
        return self.message.model == "<synthetic>"

    @property
    def texts(self) -> list[str]:
        return [b.text for b in self.message.content if isinstance(b, TextBlock)]

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [b for b in self.message.content if isinstance(b, ToolUseBlock)]


class UserMessage(_Open):
    role: str = "user"
    content: str | list[ContentBlock] = Field(default_factory=list)


class UserEvent(_Open):
    """Tool results going back to the model (``tool_use_result`` has stdout/stderr for Bash)."""

    type: Literal["user"] = "user"
    message: UserMessage = Field(default_factory=UserMessage)
    parent_tool_use_id: str | None = None
    session_id: str | None = None
    tool_use_result: Any = None

    @property
    def tool_results(self) -> list[ToolResultBlock]:
        content = self.message.content
        return [b for b in content if isinstance(b, ToolResultBlock)] if isinstance(content, list) else []


class SystemInit(_Open):
    type: Literal["system"] = "system"
    subtype: Literal["init"] = "init"
    session_id: str | None = None
    model: str | None = None
    cwd: str | None = None
    tools: list[str] = Field(default_factory=list)
    permissionMode: str | None = None
    apiKeySource: str | None = None
    claude_code_version: str | None = None


class ApiRetry(_Open):
    """Claude Code is about to retry an API call. ``error_status`` is None for timeouts and
    connection errors."""

    type: Literal["system"] = "system"
    subtype: Literal["api_retry"] = "api_retry"
    attempt: OptInt = None
    max_retries: OptInt = None
    retry_delay_ms: OptFloat = None
    error_status: OptInt = None
    error: str | None = None
    session_id: str | None = None


class PermissionDenied(_Open):
    type: Literal["system"] = "system"
    subtype: Literal["permission_denied"] = "permission_denied"
    tool_name: str | None = None
    tool_use_id: str | None = None
    message: str | None = None
    session_id: str | None = None


class ResultEvent(_Open):
    """The end of one turn. ``is_error`` is the truth; ``subtype`` says "success" on API errors."""

    type: Literal["result"] = "result"
    subtype: str | None = None
    is_error: bool = False
    result: str | None = None
    session_id: str | None = None
    duration_ms: OptInt = None
    duration_api_ms: OptInt = None
    num_turns: OptInt = None
    stop_reason: str | None = None
    terminal_reason: str | None = None
    api_error_status: OptInt = None
    total_cost_usd: OptFloat = None
    usage: dict[str, Any] = Field(default_factory=dict)
    modelUsage: dict[str, Any] = Field(default_factory=dict)
    permission_denials: list[dict[str, Any]] = Field(default_factory=list)


class UnknownEvent(_Open):
    """A JSON object of a type (or system subtype) not modelled here, or one whose known shape
    did not validate; kept whole in ``raw``."""

    type: str
    subtype: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Garbage:
    """A stdout line that is not a stream-json object (a warning, a crash message, ...)."""

    line: str


Event = Union[SystemInit, AssistantEvent, UserEvent, ApiRetry, PermissionDenied, ResultEvent, UnknownEvent]

_MODELS: dict[tuple[str, str | None], type[BaseModel]] = {
    ("system", "init"): SystemInit,
    ("system", "api_retry"): ApiRetry,
    ("system", "permission_denied"): PermissionDenied,
    ("assistant", None): AssistantEvent,
    ("user", None): UserEvent,
    ("result", None): ResultEvent,
}


def parse_line(line: str) -> Event | Garbage | None:
    """Parse one stdout line. Blank -> None; not a JSON object with a ``type`` -> :class:`Garbage`;
    a type not modelled (or not valid) -> :class:`UnknownEvent`. Never raises."""
    text = line.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return Garbage(text)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return Garbage(text)
    kind = data["type"]
    subtype = data.get("subtype") if isinstance(data.get("subtype"), str) else None
    model = _MODELS.get((kind, subtype if kind == "system" else None))
    if model is not None:
        try:
            return model.model_validate(data)  # type: ignore[return-value]
        except ValidationError:
            pass
    return UnknownEvent(type=kind, subtype=subtype, raw=data)


# --------------------------------------------------------------------------- following a run


def _fatal_message(status: int, backend: str, key_env: str, detail: str | None) -> str:
    """A clear message for a refused key (401) or client (403), with what to do."""
    kimi = "kimi" in backend.lower()
    name = "Kimi" if kimi else backend
    if status == 401:
        msg = f"{name} refused the API key (401): check {key_env}"
        if kimi:
            msg += " — a Moonshot platform key (api.moonshot.ai) does not work on api.kimi.com/coding"
    else:
        msg = f"{name} refused the client (403): "
        msg += (
            "Kimi For Coding only serves coding agents; check that the base URL is https://api.kimi.com/coding "
            f"and that {key_env} is a Kimi For Coding key"
            if kimi
            else f"check that {key_env} may use this API and model"
        )
    if detail:
        msg += f" (Claude Code said: {detail.strip()[:300]})"
    return msg


CLAUDE_MODEL_ALIASES = frozenset({"default", "best", "sonnet", "opus", "haiku", "opusplan", "sonnet[1m]", "opus[1m]"})
"""Claude Code's own model aliases: it resolves them itself, so its init event shows another name."""


def model_matches(got: str, expected: str | None) -> bool:
    """Whether the model a run's ``system``/``init`` names is the one kimi-acp set. Nothing set,
    or a Claude Code alias set, matches anything; ``[1m]``-style suffixes are ignored."""
    if not expected or expected.lower() in CLAUDE_MODEL_ALIASES:
        return True
    return got == expected or got.split("[", 1)[0] == expected.split("[", 1)[0]


def model_mismatch_message(got: str, expected: str, backend: str) -> str:
    """The error of a run whose ``system``/``init`` names another model than kimi-acp set."""
    return (
        f"Claude Code was about to use model '{got}', not '{expected}' as kimi-acp set for backend '{backend}'; "
        "kimi-acp stopped the run. Something outranks kimi-acp's settings: managed settings "
        "(/etc/claude-code/managed-settings.json), or a --model/--settings in harness.args. "
        "Run `kimi-acp doctor` to see the settings files that set a model"
    )


def _unavailable_message(status: int | None, backend: str, error: Any) -> str | None:
    """For a run that may fail over: why the backend cannot take it now, in words OpenClaw's
    failover recognises (rate limit, quota, temporarily unavailable, overloaded). None for a
    status that is not about availability (a 400 is the request's own fault)."""
    stop = "before any output; kimi-acp stopped Claude Code's retries so the turn can move to another backend (acp.fallbacks)"
    if status == 429:
        return f"{backend} rate limit reached (HTTP 429) {stop}"
    if status == 529 or (isinstance(error, str) and "overloaded" in error.lower()):
        return f"{backend} is overloaded, temporarily unavailable (HTTP {status or 529}) {stop}"
    if status is None or status >= 500:
        what = f"HTTP {status}" if status else "no answer"
        return f"{backend} is temporarily unavailable ({what}) {stop}"
    return None


class StreamState:
    """Everything the supervisor, the progress display and the ACP door need from a run's
    stdout. Feed it every line, in order, with :meth:`feed`.

    ``fatal`` is set at the first sign the key or client is refused (an ``api_retry``, a
    synthetic error message or a result with status 401/403): the supervisor should kill the
    run then rather than wait out Claude Code's ten retries (about three minutes).
    """

    def __init__(self, *, backend: str = "kimi", key_env: str = "KIMI_API_KEY", expected_model: str | None = None,
                 fail_fast: bool = False) -> None:
        self.backend = backend
        self.fail_fast = fail_fast  # a rate limit or outage before any output is fatal (the caller fails over)
        self.key_env = key_env
        self.expected_model = expected_model
        self.session_id: str | None = None
        self.model: str | None = None
        self.cwd: str | None = None
        self.claude_code_version: str | None = None
        self.turns = 0
        self.tool_calls = 0
        self.texts: list[str] = []
        self.api_errors: list[str] = []
        self.denials: list[PermissionDenied] = []
        self.last_result: ResultEvent | None = None
        self.results = 0
        self.retry_statuses: list[int | None] = []
        self.events = 0
        self.garbage_lines = 0
        self.garbage_sample: list[str] = []
        self.fatal: str | None = None
        self.rate_limited = False
        self._usage: dict[str, Usage] = {}  # API message id -> its latest usage

    # -- token counts: live from assistant lines, never below the (cumulative) result's.

    def _total(self, key: str) -> int:
        live = sum(getattr(u, key) for u in self._usage.values())
        final = self.last_result.usage.get(key) if self.last_result else None
        return max(live, final if isinstance(final, int) else 0)

    @property
    def tokens_in(self) -> int:
        """Prompt tokens so far, cached ones included (input + cache read + cache creation)."""
        return sum(
            self._total(k) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        )

    @property
    def tokens_out(self) -> int:
        return self._total("output_tokens")

    def usage(self) -> dict[str, int]:
        """The four token counts, as in the result's ``usage``."""
        keys = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        return {k: self._total(k) for k in keys}

    # -- feeding

    def feed(self, line: str) -> Event | None:
        """Take one stdout line; return its event (None for blank and garbage lines)."""
        event = parse_line(line)
        if event is None:
            return None
        if isinstance(event, Garbage):
            self.garbage_lines += 1
            if len(self.garbage_sample) < 3:
                self.garbage_sample.append(event.line[:200])
            return None
        self.events += 1
        sid = getattr(event, "session_id", None)
        if isinstance(sid, str) and sid and self.session_id is None:
            self.session_id = sid
        if isinstance(event, SystemInit):
            self.session_id = event.session_id or self.session_id
            self.model = event.model or self.model
            self.cwd = event.cwd
            self.claude_code_version = event.claude_code_version
            if self.fatal is None and event.model and not model_matches(event.model, self.expected_model):
                self.fatal = model_mismatch_message(event.model, self.expected_model or "", self.backend)
        elif isinstance(event, AssistantEvent):
            self._on_assistant(event)
        elif isinstance(event, ApiRetry):
            self.retry_statuses.append(event.error_status)
            self._note_status(event.error_status, None)
            if self.fail_fast and self.fatal is None and self.turns == 0 and self.tool_calls == 0:
                self.fatal = _unavailable_message(event.error_status, self.backend, getattr(event, "error", None))
        elif isinstance(event, PermissionDenied):
            self.denials.append(event)
        elif isinstance(event, ResultEvent):
            self.last_result = event
            self.results += 1
            self.session_id = event.session_id or self.session_id
            self._note_status(event.api_error_status, event.result if event.is_error else None)
        return event

    def _on_assistant(self, event: AssistantEvent) -> None:
        if event.synthetic:
            text = "\n".join(event.texts)
            self.api_errors.append(text)
            self._note_status(event.api_error_status, text)
            return
        message = event.message
        main_thread = event.parent_tool_use_id is None
        if message.id is not None:
            if message.id not in self._usage and main_thread:
                self.turns += 1
            if message.usage is not None:
                self._usage[message.id] = message.usage
        if self.model is None and message.model:
            self.model = message.model
        self.tool_calls += len(event.tool_uses)
        if main_thread:
            self.texts.extend(t for t in event.texts if t)

    def _note_status(self, status: int | None, detail: str | None) -> None:
        if status == 429:
            self.rate_limited = True
        elif status in (401, 403) and self.fatal is None:
            self.fatal = _fatal_message(status, self.backend, self.key_env, detail)


# --------------------------------------------------------------------------- the outcome


@dataclass
class HarnessOutcome:
    """What one Claude Code run came to, ready for the store and the report."""

    ok: bool
    status: Literal["ok", "error", "rate_limited"]
    text: str
    error: str | None
    session_id: str | None
    num_turns: int
    duration_ms: int | None
    cost_usd: float | None
    usage: dict[str, int] = field(default_factory=dict)


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "Claude Code ended"
    if exit_code < 0:
        try:
            return f"Claude Code was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"Claude Code was killed by signal {-exit_code}"
    return f"Claude Code exited with code {exit_code}"


def summarize(
    state: StreamState, *, exit_code: int | None, stderr_tail: str, redactor: Redactor | None = None
) -> HarnessOutcome:
    """Decide a run's outcome from its stream and exit code.

    ``ok`` needs a last ``result`` with ``is_error`` false, a zero (or unknown) exit code and
    no fatal refusal; ``subtype`` is ignored because it says "success" on API errors. Every
    error message says what happened, and is passed through ``redactor`` (default: mask
    anything shaped like a key).
    """
    clean = redactor or redact
    result = state.last_result
    ok = result is not None and not result.is_error and exit_code in (0, None) and state.fatal is None
    tail = stderr_tail.strip()[-2000:]
    text = (result.result if result is not None and result.result else None) or (state.texts[-1] if state.texts else "")

    error: str | None = None
    if not ok:
        if state.fatal:
            error = state.fatal
        elif result is not None and result.is_error:
            error = result.result or (
                f"Claude Code reported an error (subtype {result.subtype}, terminal_reason {result.terminal_reason})"
            )
        elif result is not None:
            error = f"{_describe_exit(exit_code)} after its result" + (f": {tail}" if tail else "")
        elif state.events == 0 and state.garbage_lines:
            shown = " | ".join(state.garbage_sample)
            error = f"Claude Code printed no stream-json ({state.garbage_lines} unparseable lines): {shown}"
            if tail:
                error += f"; stderr: {tail}"
        else:
            error = f"{_describe_exit(exit_code)} without a result: " + (tail or "(stderr was empty)")
            if state.api_errors:
                error += f"; last API error: {state.api_errors[-1]}"
        error = clean(error)

    return HarnessOutcome(
        ok=ok,
        status="ok" if ok else ("rate_limited" if state.rate_limited and not state.fatal else "error"),
        text=clean(text),
        error=error,
        session_id=(result.session_id if result is not None else None) or state.session_id,
        num_turns=result.num_turns if result is not None and result.num_turns is not None else state.turns,
        duration_ms=result.duration_ms if result is not None else None,
        cost_usd=result.total_cost_usd if result is not None else None,
        usage=state.usage(),
    )
