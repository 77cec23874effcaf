"""The spawn request and the spawner: the one-line story, as code.

A spawn request comes in (:class:`SpawnRequest`, modelled 1:1 on OpenClaw's
``sessions_spawn``, plus ``env``), a backend is chosen (:mod:`.routing`), a clean
environment is built (:mod:`.environment`), Claude Code runs under supervision
(:mod:`.supervisor`), and its result is committed to the store (:mod:`.store`)
before it goes back to the session that asked (:mod:`.report`).

``await spawner.spawn(request, context)`` answers at once with OpenClaw's shape
(``{"status": "accepted", "childSessionKey", "runId", ...}`` or
``{"status": "error"|"forbidden", "errorCode", "error"}``);
``await spawner.wait(run_id)`` gives the :class:`~.report.RunResult`.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
import uuid
from dataclasses import replace
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import KimiAcpError, MissingKeyError, SpawnBlocked, StateDirError, UnknownNameError
from .harness.command import PermissionMode
from .redact import redact
from .report import GatewayReporter, RunResult, flush_outbox, outbox_entries

#: A run's transcript stops (with a marker line) at this size; the result is unaffected.
MAX_TRANSCRIPT_BYTES = 64 * 2**20
#: The largest task accepted (UTF-8 bytes): it is stored with the run and written to stdin.
MAX_TASK_BYTES = 2 * 2**20
#: A stream line longer than this is dropped whole, and the run says so (see ``line_cut``).
MAX_LINE_BYTES = 8 * 2**20


def _transcript_failed(store: Any, run_id: str, exc: OSError) -> str:
    """A transcript write failed: stop writing it, and on a full disk remove it so the
    database still has room for the result. Returns what to say in the run's error."""
    path = store.transcript_path(run_id)
    try:
        store.close_transcript(run_id)
    except OSError:
        pass
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return f"the transcript could not be written ({exc.strerror}: {path}) and was removed to keep room for the result"
    return f"the transcript could not be written ({exc.strerror or exc}: {path}); it stops there"


#: Room kept under the transcript cap for the marker line that says the transcript stops.
_MARKER_ROOM = 512


def transcript_cap(settings: Any) -> int:
    """A run's transcript cap in bytes: ``limits.transcriptMaxMB``, else :data:`MAX_TRANSCRIPT_BYTES`."""
    mb = getattr(getattr(settings, "limits", None), "transcriptMaxMB", None)
    return int(mb) * 2**20 if mb else MAX_TRANSCRIPT_BYTES


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n} bytes"


def line_cut_message(size: int) -> str:
    """What a run says about a stream line it dropped for its size."""
    return (f"Claude Code wrote a stream line of {_size(size)} (one huge message or tool input or output), over "
            f"kimi-acp's {_size(MAX_LINE_BYTES)} limit per line: it was dropped, and what it said is missing "
            "from this run's stream and result")


def reaper_killed_message(outcome: Any) -> str:
    """The run's reaper died of a signal from outside while Claude Code still ran."""
    import signal as signals

    code = outcome.exit_code or 0
    try:
        how = signals.Signals(-code).name
    except ValueError:
        how = f"signal {-code}"
    return (f"the run's reaper (pid {outcome.pid}, the parent kimi-acp starts Claude Code under) was killed by {how} "
            "from outside kimi-acp; kimi-acp then stopped Claude Code and everything it started")


def _say(message: str) -> None:
    """One line on stderr (the warm process's log, the CLI's stderr), masked, then its
    ``hint:`` line when the message carries a ``fix:``."""
    import sys

    from .errors import split_hint

    head, hint = split_hint(redact(message))
    print(f"kimi-acp: {head}" + (f"\nhint: {hint}" if hint else ""), file=sys.stderr)


def _retry_hint(retries: list[str]) -> str:
    """For a timed-out run: what the transcript says about API retries (a dead backend)."""
    if retries:
        last = retries[-1]
        return (f"; Claude Code retried the API {len(retries)} times (last: {last}) — is the backend up? "
                "see `kimi-acp logs RUN_ID`")
    return ""


IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
"""The image types Claude Code sends on (the Anthropic Messages API's)."""

IMAGES_HINT = (
    "mark a model that takes images in openclaw.json: models.providers.<backend>.models[] entry with "
    '"input": ["text", "image"] (Kimi Code\'s own models take them)'
)

ACCEPTED_NOTE = "initial ACP task queued in isolated session; kimi-acp reports the result back to the requester session"


class Attachment(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    content: str
    encoding: Literal["utf8", "base64"] | None = None
    mimeType: str | None = None


class SpawnRequest(BaseModel):
    """OpenClaw's ``sessions_spawn`` arguments (unknown keys ignored), plus ``env``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task: str = Field(min_length=1, description=f"the task, at most {MAX_TASK_BYTES} bytes of UTF-8")
    runtime: Literal["subagent", "acp"] = "subagent"
    label: str | None = None
    taskName: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    agentId: str | None = None
    model: str | None = None
    thinking: str | None = None
    cwd: str | None = None
    runTimeoutSeconds: int | None = Field(None, ge=0)
    mode: Literal["run", "session"] = "run"
    cleanup: Literal["delete", "keep"] = "keep"
    expectsCompletionMessage: bool = True
    resumeSessionId: str | None = None
    streamTo: Literal["parent"] | None = None
    thread: bool | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=50)
    env: dict[str, str] = Field(default_factory=dict)
    # kimi-acp's own, beyond OpenClaw's schema (its doors set them):
    permissionMode: PermissionMode | None = Field(
        None, description="Claude Code's permission mode for this run; default: the requesting agent's, else harness.permissionMode"
    )
    failFast: bool = Field(
        False, description="stop at Claude Code's first rate-limit or outage retry before any output (the caller can fail over) "
        "instead of its ~3 minutes of retries"
    )
    # Set by the Spawner from spawn(live=...), for the harness hook; a caller's value is replaced.
    liveInput: bool = Field(False, description="Claude Code keeps reading stdin while it runs (more user messages, answers)")
    askPermissions: bool = Field(False, description="Claude Code asks its permission questions on stdout (someone can answer)")

    def images(self) -> list[tuple[str, str]]:
        """The image attachments, as ``(media type, base64 data)`` (OpenClaw: "ACP: images only")."""
        return [(a.mimeType or "", a.content) for a in self.attachments
                if a.encoding == "base64" and (a.mimeType or "").lower().startswith("image/")]
    mcpServers: list[dict[str, Any]] = Field(
        default_factory=list, max_length=64,
        description="MCP servers of the request (an ACP session's, ACP's shape), on top of the config's (see kimi_acp.mcp)",
    )

    @field_validator("task")
    @classmethod
    def _a_real_task(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the task is empty (only whitespace); say what Claude Code should do")
        try:
            size = len(v.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("the task is not valid UTF-8 text; convert it to UTF-8") from None
        if size > MAX_TASK_BYTES:
            raise ValueError(
                f"the task is {size} bytes, more than the {MAX_TASK_BYTES} allowed; "
                "put the details in a file in the run's cwd and point the task at it"
            )
        return v


class SpawnContext(BaseModel):
    """Who asked: the requester's agent id and session key, and its ``/model`` choice if known."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    requesterAgentId: str | None = None
    requesterSessionKey: str | None = None
    sessionModel: str | None = None  # OpenClaw's providerOverride/modelOverride for the requester session


def _check_images(images: list[tuple[str, str]], route: Any) -> None:
    """Images go only to a model that takes them (passthrough: Claude's own models all do)."""
    bad = sorted({mime or "(none)" for mime, _ in images if mime.lower() not in IMAGE_TYPES})
    if bad:
        raise KimiAcpError(f"image type {', '.join(bad)} cannot be sent to Claude Code; send {', '.join(IMAGE_TYPES)}")
    if route.backend.passthrough:
        return
    info = route.backend.model_info(route.model)
    if info is None or info.images is not True:
        said = "does not take images" if info is not None and info.images is False else "is not marked as taking images"
        raise KimiAcpError(f"model '{route.model}' of backend '{route.name}' {said}, and this prompt has "
                           f"{len(images)} image(s); fix: {IMAGES_HINT}, or send the prompt without them")


def _reads_stream_json(argv: list[str]) -> bool:
    """The harness command reads stream-json user messages on stdin (Claude Code's
    ``--input-format stream-json``)."""
    return any(a == "--input-format" and argv[i + 1 : i + 2] == ["stream-json"] for i, a in enumerate(argv)) \
        or "--input-format=stream-json" in argv


def error_answer(code: str, message: str, *, status: str = "error", run_id: str | None = None, child_key: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "errorCode": code, "error": redact(message)}
    if child_key:
        out["childSessionKey"] = child_key
    if run_id:
        out["runId"] = run_id
    return out


class Spawner:
    """Runs spawn requests. Use as ``async with Spawner() as spawner:``.

    Everything is injectable for embedding hosts and tests: the loaded config, the
    store, the plugin manager, the parent environment, the gateway transport.

    Durability (see docs/durability.md): every run is started under a reaper, so its processes
    die with it and with this process, even on SIGKILL — and the reaper then starts the
    detached deliverer of the state dir, which records the run ``lost`` and reports it;
    leaving the ``async with`` waits up to ``flush_timeout`` seconds for this spawner's results
    to be delivered, and starts the deliverer only for what is left. Nothing else runs on the
    happy path. ``deliverer=False`` or ``KIMI_ACP_NO_DELIVERER=1``: a host that delivers itself.
    """

    def __init__(
        self,
        *,
        config: Any = None,
        config_path: str | os.PathLike[str] | None = None,
        store: Any = None,
        pm: Any = None,
        environ: Mapping[str, str] | None = None,
        gateway_transport: Any = None,
        recover: bool = True,
        deliverer: bool | None = None,
        flush_timeout: float = 3.0,
    ) -> None:
        from .config import load_config
        from .plugins import get_plugin_manager

        self.environ = dict(os.environ if environ is None else environ)
        self.config = config if config is not None else load_config(config_path, environ=self.environ)
        self.pm = pm if pm is not None else get_plugin_manager()
        self._own_store = store is None
        if store is None:
            from .store import Store

            store = Store()
        self.store = store
        self._recover = recover
        self._config_path = config_path
        # The detached deliverer (kimi_acp.deliverer) outlives this process: it retries what is
        # not delivered when we exit and records our runs lost if we die. Off with
        # KIMI_ACP_NO_DELIVERER=1, or deliverer=False for a host that delivers itself.
        from .deliverer import disabled

        self._deliverer = (not disabled(self.environ) and not disabled()) if deliverer is None else deliverer
        self._flush_timeout = flush_timeout
        self._mine: set[str] = set()  # runs this spawner finished: flushed before it exits
        self._gateway_transport = gateway_transport
        self._events: dict[str, anyio.Event] = {}
        self._results: dict[str, RunResult] = {}
        self._tg: Any = None
        self._supervisor: Any = None
        self._reporter: GatewayReporter | None = None
        self._outbox_wakeup: anyio.Event | None = None
        self._harness: Any = None
        self._overridden: set[str] = set()  # runs started with the --settings override (harness/override.py)
        self._unrecorded: set[str] = set()  # runs whose progress the store could not take (said once)
        self._unsaved: dict[str, dict[str, Any]] = {}  # finished runs the store could not take: tried again at exit
        self._holds: dict[str, Any] = {}  # run id -> release of its watch (see supervisor.Launch)
        self._live: dict[str, Any] = {}  # run id -> its LiveRun (a run that takes input while it works)
        self._live_record: dict[str, Any] = {}  # run id -> how its live events are recorded (set by _run)
        self._closing = False
        self.admission: Any = None  # quota-aware admission (kimi_acp.admission), the supervisor's gate

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Spawner:
        from .default_plugins.claude_code import ClaudeCodeHarness
        from .report import check_gateway_url
        from .supervisor import ProcessSlots, Supervisor

        if self.config.settings.report.gateway.url:  # refuse now, not when the first result is due
            try:
                check_gateway_url(self.config.settings.report.gateway.url)
            except KimiAcpError:
                if self._own_store:
                    self.store.close()
                raise
        limits = self.config.settings.limits
        caps = self.config.backend_caps()
        self.admission = self._make_admission()
        self._supervisor = Supervisor(
            max_concurrent=limits.maxConcurrent,
            backend_caps=caps,
            default_backend_cap=limits.backendMaxConcurrent,
            grace=limits.graceSeconds,
            max_line_bytes=MAX_LINE_BYTES,
            # The /proc sweep for escaped descendants runs after the result is told (see _run).
            sweep_escaped=False,
            # The per-backend cap holds across every kimi-acp process on this state dir.
            slots=ProcessSlots(Path(self.store.state_dir) / "slots", caps, limits.backendMaxConcurrent),
            # If this process dies, each run's reaper starts the deliverer (it knows first).
            orphan_command=self._deliverer_command(),
            # A backend whose quota is used up, or that just answered 429, holds its queue.
            gate=self.admission,
        )
        self._harness = ClaudeCodeHarness(self.config.settings.harness)
        if not self.pm.is_registered(self._harness):
            self.pm.register(self._harness, name=f"kimi_acp.claude_code.{id(self)}")
        if not self.pm.is_registered(self.admission):  # its runs' 429s pause their backend
            self.pm.register(self.admission, name=f"kimi_acp.admission.{id(self)}")
        if self._recover:
            try:
                recover_runs(self.store, self.config.settings)
            except (sqlite3.Error, OSError) as exc:
                from .store import state_fault

                if self._own_store:
                    self.store.close()
                raise state_fault(self.store.state_dir, exc) from None
        self._flush_lock = anyio.Lock()  # the outbox loop and flush_outbox() never send the same item twice
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        if self.config.settings.report.gateway.url:
            self._reporter = GatewayReporter(self.config.settings, self.environ, transport=self._gateway_transport)
            self._outbox_wakeup = anyio.Event()
            self._tg.start_soon(self._outbox_loop)
        self._tg.start_soon(self._cancel_watch)
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        self._closing = True  # runs accepted but not yet started are cancelled, not started
        try:
            await self._supervisor.aclose()
            self._save_unsaved()
            await self._flush_before_exit()
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._flush_timeout):
                # The outbox loop starts no new item once closing; its POST in flight ends first,
                # then the loop is cancelled waiting for the lock, not in the middle of a POST
                # (one that hangs past the flush timeout is cut: the gateway deduplicates).
                await self._flush_lock.acquire()
            self._tg.cancel_scope.cancel()
            try:
                return await self._tg.__aexit__(*exc)
            except BaseExceptionGroup as group:
                # The body's own exception, wrapped by the task group: give it back as it was.
                if exc[1] is not None and all(e is exc[1] for e in group.exceptions):
                    raise exc[1] from None
                raise
        finally:
            if self._reporter is not None:
                with anyio.CancelScope(shield=True):
                    await self._reporter.aclose()
            if self.pm.is_registered(self._harness):
                self.pm.unregister(self._harness)
            if self.admission is not None and self.pm.is_registered(self.admission):
                self.pm.unregister(self.admission)
            if self._own_store:
                self.store.close()

    def _make_admission(self) -> Any:
        """The supervisor's gate: the backends' quota (read from their own base URL only, at most
        every ``limits.quotaCheckSeconds``) and 429 pauses, shared through the state dir."""
        from .admission import Admission

        def fetch(backend: str) -> list[Any]:
            from .admission import FETCH_TIMEOUT
            from .quota import quota_windows

            return quota_windows(self.config, backend, environ=self.environ, timeout=FETCH_TIMEOUT)

        return Admission(self.store.state_dir, fetch=fetch, ttl=lambda: self.config.settings.limits.quotaCheckSeconds)

    def _save_unsaved(self) -> None:
        """Try once more to record the runs whose result the store could not take."""
        for run_id, fields in list(self._unsaved.items()):
            try:
                self.store.finish_run(run_id, **fields)
                del self._unsaved[run_id]
            except (sqlite3.Error, OSError, KimiAcpError):
                pass

    async def _flush_before_exit(self) -> None:
        """Whoever commits a result sees it delivered: wait (at most ``flush_timeout`` seconds)
        until the results of the runs this spawner finished are delivered; what is left goes
        to the deliverer, which outlives us."""
        if not self._mine:
            return
        if self._reporter is not None:
            # Shielded: a Ctrl-C or a cancelled host scope still gets its result out (bounded).
            # No POST is cut off at the deadline: one cut off may have been received, and the
            # deliverer would send it again.
            deadline = time.monotonic() + self._flush_timeout
            with anyio.CancelScope(shield=True):
                while time.monotonic() < deadline and any(item.run_id in self._mine for item in self.store.outbox_pending()):
                    await self.flush_outbox(deadline=deadline)  # one in flight in the outbox loop is waited for
                    await anyio.sleep(0.01)
        try:
            pending = self.store.outbox_pending()
        except (sqlite3.Error, OSError):
            pending = []  # a broken state dir: nothing can be handed over (it was said when it broke)
        if pending:
            # What is left goes to the deliverer. This process may live on after this Spawner
            # (a host, a test): hand the runs over, or the deliverer would wait for it to exit.
            self.store.release_runs(sorted({item.run_id for item in pending if item.run_id in self._mine}))
            self._ensure_deliverer()
        for run_id in list(self._holds):  # delivered, or now the deliverer's
            self._release(run_id)

    def _deliverer_config_path(self) -> Any:
        config_path = self._config_path
        if config_path is None and getattr(self.config, "exists", False):
            config_path = self.config.path
        return config_path

    def _deliverer_command(self) -> dict[str, Any] | None:
        """What each run's reaper starts if this process dies (``None``: no deliverer)."""
        if not self._deliverer:
            return None
        from .deliverer import deliverer_command

        return deliverer_command(self.store.state_dir, environ=self.environ, config_path=self._deliverer_config_path())

    def _ensure_deliverer(self) -> None:
        if not self._deliverer:
            return
        from .deliverer import ensure_deliverer

        try:
            ensure_deliverer(self.store.state_dir, environ=self.environ, config_path=self._deliverer_config_path())
        except OSError as exc:  # the run goes on; only a crash of this process would be noticed later
            import sys

            print(f"kimi-acp: cannot start the deliverer: {exc}", file=sys.stderr)

    # ------------------------------------------------------------------ the front
    async def spawn(
        self,
        request: SpawnRequest | Mapping[str, Any],
        context: SpawnContext | Mapping[str, Any] | None = None,
        *,
        prestarted: Any = None,
        live: Any = None,
    ) -> dict[str, Any]:
        """Accept (or refuse) a spawn; returns at once, the run goes on in the background.

        ``prestarted`` (a :class:`kimi_acp.prestart.Prestarted`) is a harness process already
        started for this request; it is adopted when the prepared run matches it exactly
        (same argv, env, cwd), and left to its owner (who kills it) otherwise.

        ``live`` (a :class:`kimi_acp.live.Live`): the caller can talk to someone while the run
        works. Claude Code then keeps reading stdin: :meth:`send` adds user messages to the run,
        and its permission questions go to ``live.ask`` (see :mod:`.live`)."""
        if self._tg is None:
            raise RuntimeError("use the Spawner as `async with Spawner() as spawner:`")
        try:
            req = request if isinstance(request, SpawnRequest) else SpawnRequest.model_validate(dict(request))
            ctx = context if isinstance(context, SpawnContext) else SpawnContext.model_validate(dict(context or {}))
        except ValidationError as exc:
            msg = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg'].removeprefix('Value error, ')}"
                            for e in exc.errors())
            return error_answer("spawn_failed", f"invalid spawn request: {msg}")
        if req.runtime != "acp":
            return {"status": "ignored", "reason": f"runtime '{req.runtime}' is OpenClaw's own; kimi-acp acts on runtime='acp' only"}
        try:
            prepared = self.prepare(req, ctx, run_id=prestarted.run_id if prestarted is not None else None, live=live)
        except (sqlite3.Error, OSError, StateDirError) as exc:
            # The state dir cannot take the run (a full disk, a read-only or broken database):
            # an answer that says so, never an exception (the ACP door would say "Internal error").
            from .store import state_fault

            return error_answer("spawn_failed", f"kimi-acp cannot record the run: {state_fault(self.store.state_dir, exc)}")
        rec = prepared["record"]
        if "error" in prepared:
            return prepared["error"]
        spec = prepared["spec"]
        if prestarted is not None and prestarted.matches(spec):
            spec.process, spec.slot_fd, spec.release = prestarted.adopt()
        req = prepared["request"]  # as rewritten by kimi_acp_before_spawn hooks
        self._events[rec.run_id] = anyio.Event()
        if spec.keep_stdin:
            self._live[rec.run_id] = self._live_run(rec, live, prepared["route"])
        self._tg.start_soon(self._run, rec, spec, req, prepared["route"])
        return {
            "status": "accepted",
            "childSessionKey": rec.child_session_key,
            "runId": rec.run_id,
            "mode": req.mode,
            "runTimeoutSeconds": rec.run_timeout_seconds,
            "expectsCompletionMessage": req.expectsCompletionMessage,
            "backend": rec.backend,
            "model": rec.model,
            "reason": rec.reason,
            "note": ACCEPTED_NOTE,
        }

    def prepare(self, req: SpawnRequest, ctx: SpawnContext, *, run_id: str | None = None, live: Any = None) -> dict[str, Any]:
        """Hooks, routing, env and argv for one request; every failure is recorded in the store.
        ``live``: see :meth:`spawn`."""
        from .environment import build_child_env
        from .routing import check_agent, resolve
        from .store import RunRecord, current_owner
        from .supervisor import ProcessSpec

        # before_spawn hooks first: everything below (limits, label, target, record) follows a rewrite.
        blocked: str | None = None
        hook_error: KimiAcpError | None = None
        try:
            for impl in reversed(self.pm.hook.kimi_acp_before_spawn.get_hookimpls()):
                answer = impl.function(request=req, context=ctx)
                if isinstance(answer, str):
                    blocked = answer
                    break
                if isinstance(answer, SpawnRequest):
                    req = answer
        except KimiAcpError as exc:
            hook_error = exc

        settings = self.config.settings
        target = req.agentId or self._default_target()
        run_id = run_id or str(uuid.uuid4())
        owner_pid, owner_start = current_owner()
        timeout = req.runTimeoutSeconds if req.runTimeoutSeconds is not None else settings.limits.runTimeoutSeconds
        rec = RunRecord(
            run_id=run_id,
            child_session_key=f"agent:{target}:acp:{uuid.uuid4()}",
            status="queued",
            task=req.task,
            label=req.label or req.taskName,
            agent_id=target,
            requester_agent_id=ctx.requesterAgentId,
            requester_session_key=ctx.requesterSessionKey,
            cwd=req.cwd,
            mode=req.mode,
            run_timeout_seconds=min(timeout, 86_400),
            created_at=time.time(),
            owner_pid=owner_pid,
            owner_start=owner_start,
            expects_completion=req.expectsCompletionMessage,
        )

        def fail(code: str, message: str, status: str = "error") -> dict[str, Any]:
            rec.status = "error"
            rec.error = message
            rec.ended_at = time.time()
            self.store.create_run(rec)
            return {"record": rec, "error": error_answer(code, message, status=status, run_id=run_id, child_key=rec.child_session_key)}

        try:
            if blocked is not None:
                raise SpawnBlocked(blocked)
            if hook_error is not None:
                raise hook_error
            if ctx.requesterAgentId:
                check_agent(self.config, ctx.requesterAgentId)
            from .targets import check_target

            check_target(self.config, target)
            stored = None
            if ctx.requesterSessionKey:
                from .sessions import SessionModels

                with SessionModels(self.store.state_dir) as table:
                    stored = table.get(ctx.requesterSessionKey)
            route = resolve(
                self.config,
                model=req.model,
                requester_agent=ctx.requesterAgentId,
                target=target,
                session_key=ctx.requesterSessionKey,
                session_model=ctx.sessionModel,
                stored_session_model=stored,
            )
            rec.backend, rec.model, rec.reason = route.name, route.model, route.reason
            key = None if route.backend.passthrough else route.backend.resolve_key(self.environ)
            agent_rule = settings.agents.get(ctx.requesterAgentId or "")
            mode = req.permissionMode or (agent_rule.permissionMode if agent_rule else None)
            images = req.images()
            if images:
                _check_images(images, route)
            routed = req.model_copy(update={"model": route.model, "permissionMode": mode, "liveInput": live is not None,
                                            "askPermissions": live is not None and getattr(live, "ask", None) is not None})
            plugin_env = self.pm.hook.kimi_acp_spawn_env(request=routed, backend=route.backend)
            child = build_child_env(self.environ, route.backend, key=key, model=route.model, request_env=req.env, plugin_env=plugin_env,
                                    secret_names=self.config.secret_names(), secret_values=self.config.secret_values(),
                                    pass_names=self.config.pass_env(backend=route.name, requester=ctx.requesterAgentId, target=target))
            argv = self.pm.hook.kimi_acp_harness_command(request=routed, backend=route.backend)
            if not argv:
                raise KimiAcpError("no harness answered kimi_acp_harness_command")
            if req.cwd and not os.path.isdir(req.cwd):
                return fail("cwd_resolution_failed", f"cwd '{req.cwd}' is not a directory")
            servers = self._mcp_servers(req, ctx, target, route.backend)
            if servers and self._runs_claude(argv):
                # The run's MCP servers: --mcp-config <0600 file of this run> (see kimi_acp.mcp).
                from .mcp import apply as apply_mcp
                from .mcp import key_blanks
                from .mcp import secret_values as mcp_secrets

                for value in mcp_secrets(servers):
                    redact.add(value)
                try:
                    argv = apply_mcp(argv, servers, self.store.state_dir, run_id, blank=key_blanks(child.env, key))
                except OSError as exc:
                    return fail("spawn_failed", f"cannot write the run's MCP config in {self.store.state_dir}: {exc}")
            if not route.backend.passthrough and self._runs_claude(argv):
                # Claude Code's settings files must not redirect the run: see harness/override.py.
                from .harness.override import apply_override

                argv = apply_override(argv, child.env, child.set, self.store.state_dir, run_id)
                self._overridden.add(run_id)  # and its system/init must name the model set (see _run)
        except SpawnBlocked as exc:
            return fail("runtime_policy", f"blocked by a kimi_acp_before_spawn hook: {exc}", status="forbidden")
        except UnknownNameError as exc:
            code = "agent_forbidden" if "agent" in str(exc).split("'")[0] else "spawn_failed"
            return fail(code, str(exc))
        except MissingKeyError as exc:
            return fail("spawn_failed", str(exc))
        except KimiAcpError as exc:
            return fail("spawn_failed", str(exc))
        except OSError as exc:
            return fail("spawn_failed", f"cannot write Claude Code's settings override in {self.store.state_dir}: {exc}")
        if key:
            redact.add(key)  # every printer, logger, stream and the store mask it from now on
        from .redact import is_secret_name

        for name, value in child.env.items():  # the run's other secrets (a passthrough run's own key...)
            if is_secret_name(name):
                redact.add(value)
        from .harness.command import user_message

        # The built-in harness reads stream-json (the task as a user message, images with it);
        # a plugin's command without it gets the task as plain text, as before.
        json_input = _reads_stream_json(argv)
        if req.images() and not json_input:
            return fail("spawn_failed", "this run has images, but its harness command does not read stream-json "
                        "(--input-format stream-json), the only way Claude Code takes them")
        self.store.create_run(rec)
        spec = ProcessSpec(
            run_id=run_id,
            argv=list(argv),
            env=child.env,
            stdin=user_message(req.task, req.images()) if json_input else req.task.encode("utf-8"),
            cwd=req.cwd,
            timeout=rec.run_timeout_seconds or None,
            backend=route.name,
            keep_stdin=live is not None and json_input,
        )
        return {"record": rec, "spec": spec, "route": route, "request": req}

    def _mcp_servers(self, req: SpawnRequest, ctx: SpawnContext, target: str, backend: Any) -> list[Any]:
        """The run's MCP servers: the config's for who asked and the target, then the request's
        (checked: :func:`kimi_acp.mcp.from_request` raises for a bad one)."""
        from .mcp import configured, from_request, merged

        mine = configured(self.config.settings, requester=ctx.requesterAgentId, target=target)
        theirs = from_request(req.mcpServers, backend=backend) if req.mcpServers else []
        return merged(mine, theirs)

    def _runs_claude(self, argv: list[str]) -> bool:
        """True when ``argv`` starts Claude Code: the built-in harness answered (it is the only
        implementation), or a plugin's command runs a binary named ``claude``."""
        from .harness.override import is_claude_argv

        impls = self.pm.hook.kimi_acp_harness_command.get_hookimpls()
        return all(impl.plugin is self._harness for impl in impls) or is_claude_argv(argv)

    def _default_target(self) -> str:
        from .routing import default_target

        return default_target(self.config)

    # ------------------------------------------------------------------ running
    async def _run(self, rec: Any, spec: Any, req: SpawnRequest, route: Any = None) -> None:
        from .harness.claude_code import StreamState, summarize

        if route is None:
            state = StreamState()
        else:  # a refused key is reported with the backend's name and the variable to fix
            names = [] if route.backend.passthrough else route.backend.key_variables()
            fallback = "ANTHROPIC_API_KEY" if route.backend.passthrough else f"the apiKey of backend '{route.name}'"
            state = StreamState(backend=route.name, key_env=names[0] if names else fallback,
                                expected_model=route.model if rec.run_id in self._overridden else None,
                                fail_fast=req.failFast)
        if self._closing:
            self._end_live(rec.run_id)
            self._finish(rec, req, "cancelled", error="the spawner shut down before the run started", exit_code=None, state=state)
            return
        store = self.store
        hook = self.pm.hook
        if req.failFast and self.admission is not None:  # held: fail now, before any output (the caller fails over)
            held = await self.admission.check(spec.backend)
            if held is not None:
                self._finish(rec, req, "rate_limited", error=f"{held.describe()}; not started (fail-fast: another backend can take it)",
                             exit_code=None, state=state)
                return

        def on_hold(held: Any) -> None:
            """The run waits for its backend (a used-up quota, a 429's retry-after): say why."""
            event = {"type": "status", "status": "queued", "reason": held.describe() if held is not None else None}
            hook.kimi_acp_run_event(run=rec, event=event)

        def on_started(pid: int, pgid: int) -> None:
            rec.status, rec.pid, rec.pgid, rec.started_at = "running", pid, pgid, time.time()
            self._record(rec.run_id, status="running", pid=pid, pgid=pgid, started_at=rec.started_at)
            hook.kimi_acp_run_event(run=rec, event={"type": "status", "status": "running", "pid": pid})

        transcript: dict[str, Any] = {"bytes": 0, "error": None, "capped": False}
        retries: list[str] = []
        cap = transcript_cap(self.config.settings)

        def write_transcript(line: str) -> None:
            """Append one line unless the transcript is capped or failed; never more than ``cap``
            bytes (UTF-8) in all, the marker that says so included."""
            if transcript["error"] is not None or transcript["capped"]:
                return
            size = (len(line) if line.isascii() else len(line.encode("utf-8", "replace"))) + 1
            try:
                if transcript["bytes"] + size > cap - _MARKER_ROOM:
                    transcript["capped"] = True
                    store.append_transcript(rec.run_id, json.dumps({
                        "type": "kimi-acp", "subtype": "transcript_truncated",
                        "message": f"the transcript stops here: it reached its cap of {cap} bytes (limits.transcriptMaxMB)"}))
                else:
                    transcript["bytes"] += size
                    store.append_transcript(rec.run_id, line)
            except OSError as exc:  # disk full, I/O error: the run goes on, its result is kept
                transcript["error"] = _transcript_failed(store, rec.run_id, exc)

        live = self._live.get(rec.run_id)

        def record_live(event: dict[str, Any]) -> None:
            """A live run's own event (a question, its answer, a steer): masked, in the
            transcript, and to the run's watchers (a denial is said in the turn)."""
            line = redact(json.dumps(event, ensure_ascii=False))
            write_transcript(line)
            hook.kimi_acp_run_event(run=rec, event=json.loads(line))

        if live is not None:
            self._live_record[rec.run_id] = record_live

        def on_line(line: str) -> str | None:
            # Masked at the source: the transcript, the run's events (the ACP and OpenClaw
            # streams, CLI progress, plugins), its result and its report all read this line.
            line = redact(line)
            write_transcript(line)
            event = state.feed(line)
            if live is not None and event is not None:
                live.on_event(event)
            if state.claude_code_version and rec.claude_code_version is None:
                rec.claude_code_version = state.claude_code_version
                self._record(rec.run_id, claude_code_version=rec.claude_code_version)
            if event is not None:
                if getattr(event, "subtype", None) == "api_retry":
                    status_ = getattr(event, "error_status", None)
                    retries.append(f"{'HTTP ' + str(status_) if status_ else 'no answer'}"
                                   + (f", {event.error}" if getattr(event, "error", None) else ""))  # type: ignore[union-attr]
                hook.kimi_acp_run_event(run=rec, event=event)
            return state.fatal

        def on_line_cut(size: int) -> None:
            """A stream line over the supervisor's cut (one huge message or tool input) is dropped
            whole: say so in the transcript, in the run's record and to the run's watchers."""
            event = {"type": "kimi-acp", "subtype": "line_cut", "bytes": size, "message": line_cut_message(size)}
            write_transcript(json.dumps(event))
            hook.kimi_acp_run_event(run=rec, event=event)

        try:
            try:
                # hold: the run's watch stays until its result is recorded and delivered (see _release).
                outcome = await self._supervisor.run(spec, on_line=on_line, on_started=on_started, on_line_cut=on_line_cut,
                                                     hold=True, on_hold=on_hold)
            finally:
                self._end_live(rec.run_id)  # the process is gone: nobody waits for an answer or a message now
        except OSError as exc:
            if rec.started_at is None:  # the harness could not be started: this run fails, the spawner lives on
                msg = f"cannot start the harness {spec.argv[0]!r}: {exc}"
            else:  # it ran; something of ours failed (the store, the disk): say so, not "cannot start"
                msg = f"kimi-acp stopped the run: {type(exc).__name__}: {exc}"
            self._finish(rec, req, "error", error=msg, exit_code=None, state=state)
            return
        except Exception as exc:  # a hook or callback failed: the supervisor killed the run; it fails, the spawner lives on
            self._finish(rec, req, "error", error=f"kimi-acp stopped the run: {type(exc).__name__}: {exc}", exit_code=None, state=state)
            return
        except BaseException:
            with anyio.CancelScope(shield=True):
                self._finish(rec, req, "cancelled", error="the spawner shut down while the run was active", exit_code=None, state=state)
            raise
        summary = summarize(state, exit_code=outcome.exit_code, stderr_tail=outcome.stderr_tail)
        cancel_requested = outcome.cancelled or self._cancel_requested(rec.run_id)
        if cancel_requested:
            status, error = "cancelled", "cancelled on request"
        elif outcome.timed_out:
            status, error = "timeout", f"the run exceeded its time limit of {spec.timeout:g} s and was killed"
        elif outcome.killed_reason:
            status, error = ("rate_limited" if state.rate_limited else "error"), outcome.killed_reason.removeprefix("fatal: ")
        elif outcome.reaper_killed:
            status, error = "error", reaper_killed_message(outcome)
        else:
            status, error = summary.status, summary.error
        if status == "timeout":
            error = f"{error}{_retry_hint(retries)}"
        notes = [line_cut_message(size) for size in outcome.lines_cut]
        if transcript["error"]:
            notes.append(str(transcript["error"]))
        for note in notes:
            error = f"{error}; {note}" if error else note
        self._holds[rec.run_id] = outcome.release
        self._finish(rec, req, status, error=error, exit_code=outcome.exit_code, state=state, summary=summary,
                     started=outcome.started_at, ended=outcome.ended_at)
        # Descendants that left the process group (setsid) still carry KIMI_ACP_RUN_ID: no orphan survives.
        with anyio.CancelScope(shield=True):
            await self._supervisor.sweep(rec.run_id)

    def _release(self, run_id: str) -> None:
        """The run's result is recorded and delivered, or handed to the deliverer: its watch
        (which would start the deliverer if this process died) may exit."""
        release = self._holds.pop(run_id, None)
        if release is not None:
            release()

    def _release_delivered(self, failed: int) -> None:
        """After a delivery round: release the runs whose results are all delivered. When a
        delivery failed, the deliverer is started now (it takes over only once this process
        is gone) and every held run released: no watch lingers through a gateway outage."""
        if not self._holds:
            return
        if failed:
            self._ensure_deliverer()
            for run_id in list(self._holds):
                self._release(run_id)
            return
        try:
            waiting = {item.run_id for item in self.store.outbox_pending()}
        except (sqlite3.Error, OSError):
            return
        for run_id in list(self._holds):
            if run_id not in waiting:
                self._release(run_id)

    def _record(self, run_id: str, **fields: Any) -> bool:
        """Update a running run's record; a state-dir fault (a full disk) is said once on stderr
        and does not stop the run: its result is what must be recorded, at the end."""
        try:
            self.store.update_run(run_id, **fields)
            return True
        except (sqlite3.Error, OSError) as exc:
            if run_id not in self._unrecorded:
                self._unrecorded.add(run_id)
                from .store import state_fault

                _say(f"run {run_id}: its progress cannot be recorded: {state_fault(self.store.state_dir, exc)}")
            return False

    def _cancel_requested(self, run_id: str) -> bool:
        try:
            return bool(self.store.get_run(run_id).cancel_requested)
        except KimiAcpError:
            return False

    def _finish(self, rec: Any, req: SpawnRequest, status: str, *, error: str | None, exit_code: int | None,
                state: Any, summary: Any = None, started: float | None = None, ended: float | None = None) -> RunResult:
        ended = ended or time.time()
        duration = int((ended - started) * 1000) if started else None
        if summary is not None and summary.duration_ms and status == "ok":
            duration = duration or summary.duration_ms
        # The record's own fields (ids, task, requester, route) as result_from_record reads them,
        # plus what this run produced.
        result = replace(
            result_from_record(rec, self.store),
            status=status,
            result=(summary.text if summary is not None else "") or "",
            error=error,
            usage=(summary.usage if summary is not None else {}) or {},
            durationMs=duration,
            sessionId=(summary.session_id if summary is not None else None) or state.session_id,
            numTurns=summary.num_turns if summary is not None else state.turns,
            exitCode=exit_code,
        )
        from .pricing import run_cost

        result.costUsd, result.costSource = run_cost(  # Claude Code's figure prices every model as Claude
            self.config.backends.get(rec.backend or ""), rec.model, result.usage,
            summary.cost_usd if summary is not None else None)
        if req.cleanup == "delete":  # OpenClaw: drop the child session when done; no transcript is kept
            result.transcript = None
        entries = outbox_entries(result, self.config.settings, expects_completion=req.expectsCompletionMessage)
        # The result is committed (with its deliveries) before anyone is told.
        try:
            # On a full disk the store gives back its reserve, or records the status with an
            # error naming the disk (``short``): never a run left `running`, later called lost.
            short = self.store.finish_run(
                rec.run_id,
                status=status,
                exit_code=exit_code,
                result_text=result.result,
                error=error,
                usage=result.usage,
                cost_usd=result.costUsd,
                cost_source=result.costSource,
                duration_ms=duration,
                claude_session_id=result.sessionId,
                num_turns=result.numTurns,
                outbox=entries,
            )
            if short:
                entries = []  # the report was not saved: nothing to deliver
                result = replace(result, error=f"{error}; {short}" if error else short)
                _say(f"run {rec.run_id}: {short}")
        except (sqlite3.Error, OSError, KimiAcpError) as exc:
            # The database cannot take even the status (an I/O error, a read-only dir): the waiter
            # still gets the result, with what failed, and the record is tried again at exit.
            from .store import state_fault

            why = f"the result could not be saved: {state_fault(self.store.state_dir, exc)}"
            _say(f"run {rec.run_id}: {why}")
            self._unsaved[rec.run_id] = {"status": status, "exit_code": exit_code, "error": f"{error}; {why}" if error else why}
            entries = []
            result = replace(result, error=f"{error}; {why}" if error else why)
        from .harness.override import remove_override
        from .mcp import remove_config

        remove_override(self.store.state_dir, rec.run_id)  # the run's --settings file holds its key
        remove_config(self.store.state_dir, rec.run_id)  # its --mcp-config file, its servers' secrets
        self._overridden.discard(rec.run_id)
        try:
            self.store.close_transcript(rec.run_id)
            if req.cleanup == "delete":
                self.store.transcript_path(rec.run_id).unlink(missing_ok=True)
        except OSError:
            pass
        rec.status = status
        self._mine.add(rec.run_id)
        self._results[rec.run_id] = result
        try:
            if req.expectsCompletionMessage:
                self.pm.hook.kimi_acp_run_finished(run=rec, result=result)
        except Exception as exc:  # noqa: BLE001 - the result is committed; a reporter's bug must not hide it
            import sys

            print(f"kimi-acp: a kimi_acp_run_finished hook failed for run {rec.run_id}: {redact(repr(exc))}", file=sys.stderr)
        event = self._events.get(rec.run_id)
        if event is not None:
            event.set()
        if entries and self._outbox_wakeup is not None:
            self._outbox_wakeup.set()
        else:
            self._release(rec.run_id)  # recorded, nothing to deliver: the run's watch may go
        return result

    # ------------------------------------------------------------------ waiting and cancelling
    async def wait(self, run_id: str, timeout: float | None = None) -> RunResult:
        """The run's result, once it has one (from memory, or the store for other processes' runs)."""
        with anyio.fail_after(timeout):
            event = self._events.get(run_id)
            if event is not None:
                await event.wait()
                return self._results[run_id]
            return await wait_in_store(self.store, run_id)

    def send(self, run_id: str, text: str, images: list[tuple[str, str]] | None = None) -> bool:
        """One more user message into a live run (:meth:`spawn` with ``live``) that still takes
        input: Claude Code takes it into its running turn, or as the next turn of the same
        process. ``False`` when the run does not take input (any more): the caller runs the
        message as a new turn instead. Images follow the same rules as a spawn's."""
        live = self._live.get(run_id)
        if live is None or live.closed:
            return False
        if images:
            _check_images(images, live.route)  # KimiAcpError: the run's model does not take them
        from .harness.command import user_message

        if not live.send(user_message(text, images or ())):
            return False
        live.record({"type": "kimi-acp", "subtype": "user_message", "text": redact(text), "images": len(images or ())})
        return True

    def _end_live(self, run_id: str) -> None:
        live = self._live.pop(run_id, None)
        self._live_record.pop(run_id, None)
        if live is not None:
            live.finish()

    def _live_run(self, rec: Any, live: Any, route: Any) -> Any:
        from .live import LiveRun

        def record(event: dict[str, Any]) -> None:
            target = self._live_record.get(rec.run_id)
            if target is not None:
                target(event)

        run = LiveRun(rec.run_id, live,
                      write=lambda data: self._supervisor.write_stdin(rec.run_id, data),
                      close=lambda: self._supervisor.close_stdin(rec.run_id),
                      start_task=self._tg.start_soon, record=record)
        run.record = record  # type: ignore[attr-defined]
        run.route = route  # type: ignore[attr-defined]
        return run

    async def cancel(self, run_id: str) -> bool:
        """Cancel a queued or running run (its whole process group)."""
        self.store.request_cancel(run_id)
        return self._supervisor.cancel(run_id)

    async def _cancel_watch(self) -> None:
        """Honour ``kimi-acp kill`` from other processes: it sets cancel_requested in the store."""
        while True:
            await anyio.sleep(0.5)
            for run_id, event in list(self._events.items()):
                if not event.is_set() and self._supervisor.status(run_id) and self._cancel_requested(run_id):
                    self._supervisor.cancel(run_id)

    async def _outbox_loop(self) -> None:
        assert self._reporter is not None and self._outbox_wakeup is not None
        from .report import backoff

        attempt = 0
        while True:
            async with self._flush_lock:
                delivered, failed = await flush_outbox(self.store, self._reporter, only=lambda _item: not self._closing)
            self._release_delivered(failed)
            pending = self.store.outbox_pending()
            if failed:
                attempt += 1
            elif delivered:
                attempt = 0
            delay = backoff(attempt) if pending else 3600.0
            if pending:
                nxt = min(item.next_attempt_at for item in pending)
                delay = max(0.05, min(delay, nxt - time.time()))
            self._outbox_wakeup = anyio.Event()
            with anyio.move_on_after(delay):
                await self._outbox_wakeup.wait()

    async def flush_outbox(self, *, deadline: float | None = None) -> tuple[int, int]:
        """Deliver every due outbox item now (gateway reporter configured); with ``deadline``
        (``time.monotonic()``), start none after it."""
        if self._reporter is None:
            return (0, 0)
        async with self._flush_lock:
            delivered, failed = await flush_outbox(self.store, self._reporter, deadline=deadline)
        self._release_delivered(failed)
        return delivered, failed

    def result_of(self, run_id: str) -> RunResult:
        return result_from_record(self.store.get_run(run_id), self.store)


def result_from_record(rec: Any, store: Any) -> RunResult:
    return RunResult(
        runId=rec.run_id,
        childSessionKey=rec.child_session_key,
        status=rec.status,
        result=rec.result_text or "",
        error=rec.error,
        backend=rec.backend,
        model=rec.model,
        reason=rec.reason,
        usage=rec.usage or {},
        costUsd=rec.cost_usd,
        costSource=rec.cost_source,
        durationMs=rec.duration_ms,
        sessionId=rec.claude_session_id,
        numTurns=rec.num_turns,
        exitCode=rec.exit_code,
        claudeCodeVersion=rec.claude_code_version,
        task=rec.task,
        label=rec.label,
        requesterSessionKey=rec.requester_session_key,
        requesterAgentId=rec.requester_agent_id,
        transcript=str(store.transcript_path(rec.run_id)),
    )


def recover_runs(store: Any, settings: Any = None) -> list[Any]:
    """``store.recover`` with the supervisor's killer and the lost runs' completion events.

    ``settings`` (for the reporting target) default to the config at the usual place, read
    only when a run is actually lost; when it cannot be read, lost runs are still marked
    and killed, just not reported."""
    from .supervisor import kill_run_processes

    loaded: list[Any] = [settings]

    def outbox_for(rec: Any) -> list[tuple[str, dict[str, Any]]]:
        from .config import load_config

        try:
            if loaded[0] is None:
                loaded[0] = load_config().settings
            return outbox_entries(result_from_record(rec, store), loaded[0], expects_completion=bool(rec.expects_completion))
        except KimiAcpError:  # an unreadable config or a refused gateway URL: mark lost, report nothing
            return []

    from .harness.override import remove_override
    from .mcp import remove_config

    lost = store.recover(kill=lambda rec: kill_run_processes(rec.run_id, rec.pgid), outbox_for=outbox_for)
    for rec in lost:
        remove_override(store.state_dir, rec.run_id)
        remove_config(store.state_dir, rec.run_id)
    return lost


async def wait_in_store(store: Any, run_id: str, poll: float = 0.2) -> RunResult:
    """Poll the store until the run is terminal (runs owned by another process)."""
    from .store import TERMINAL

    while True:
        rec = store.get_run(run_id)
        if rec.status in TERMINAL:
            return result_from_record(rec, store)
        if rec.status in ("queued", "running"):
            recovered = recover_runs(store)
            if any(r.run_id == run_id for r in recovered):
                continue
        await anyio.sleep(poll)
