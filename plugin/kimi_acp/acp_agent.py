"""The ACP agent door (acpx, editors, any ACP client): ``kimi-acp acp``'s sessions and prompts.

acpx, OpenClaw's acpx backend or an editor launches ``kimi-acp acp`` as an agent command.
Each ``session/prompt`` becomes a spawn request (``runtime="acp"``, ``agentId="kimi-acp"``)
run by ONE long-lived :class:`~kimi_acp.spawn.Spawner`; the run's events come back as
``session/update`` notifications (:mod:`.acp_updates`). A session keeps its Claude Code
conversation across prompts with ``--resume`` (same cwd), and its model choice (the ``model``
config option, which is what acpx's ``--model`` sets) picks the backend of its next prompt.

Methods: ``initialize``, ``session/new``, ``session/load``, ``session/prompt``,
``session/cancel``, ``session/set_config_option`` (``model``, thinking, ``timeout``), and the
OpenClaw door's ``_kimi-acp/*`` extension methods (:mod:`.openclaw_backend`). The wire and the
process's start-up are in :mod:`.acp_stdio`.

Each prompt's run is live (:mod:`.live`): Claude Code's permission questions become
``session/request_permission`` requests to the client (allow once, allow this exact call for the
session, deny), and a prompt with ``_meta.kimiAcp.mode == "steer"`` that arrives while the
session's turn runs goes into that same Claude Code process. Images in a prompt reach Claude
Code as image blocks.
"""

from __future__ import annotations

import os
from typing import Any

from .acp_sessions import (
    AGENT_NAME,
    DEFAULT_CHOICE,
    MODEL_OPTION,
    PERMISSION_OPTIONS,
    TARGET_AGENT,
    THINKING_OPTIONS,
    TIMEOUT_OPTION,
    AcpSession,
    SessionFiles,
    is_uuid,
    log,
    session_key,
)
from .acp_updates import RunEvents, UpdateMaker, context_window, prompt_images, prompt_text, prompt_usage
from .openclaw_backend import OPENCLAW_META, OpenClawBackend

PROTOCOL_VERSION = 1  # acp.PROTOCOL_VERSION (schema v1.19.0); a test keeps them equal


def initialize_result() -> dict[str, Any]:
    """The ``initialize`` answer (JSON, as the SDK serialises it: camelCase, explicit fields)."""
    from . import __version__

    return {
        "protocolVersion": PROTOCOL_VERSION,
        "agentCapabilities": {
            "loadSession": True,
            # Images reach Claude Code as image blocks; a model not marked as taking them refuses
            # the prompt with the fix (this answer comes before the config is read: see docs).
            "promptCapabilities": {"image": True, "audio": False, "embeddedContext": False},
            # MCP servers of session/new reach Claude Code (--mcp-config): stdio, http and sse
            "mcpCapabilities": {"http": True, "sse": True},
        },
        "agentInfo": {"name": AGENT_NAME, "title": "kimi-acp: Claude Code on Kimi", "version": __version__},
        "authMethods": [],
    }


async def _ended(turn_end: Any) -> None:
    """Wait for a prompt's end, however it ended."""
    import asyncio

    try:
        await asyncio.shield(turn_end)
    except asyncio.CancelledError:
        if not turn_end.cancelled():
            raise
    except Exception:  # noqa: BLE001 - its own caller got the error
        pass


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
        self.openclaw = OpenClawBackend(self)  # the OpenClaw runtime backend's door
        self.spawner: Any = None
        self._spawner_error: BaseException | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._owner: Any = None
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
                name = f"kimi_acp.acp_agent.{id(self)}"
                pm.register(self.events, name=name)
                # results an earlier process left undelivered (it died, the machine rebooted) get
                # their deliverer now, not at the next spawn
                from .deliverer import start_if_needed

                cfg = spawner.config
                start_if_needed(store=spawner.store, environ=spawner.environ, config_path=cfg.path if cfg.exists else None)
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
            log(f"cannot start: {exc}")
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
                log(f"shutdown: {exc!r}")

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
            session = self.files.load(session_id) if is_uuid(session_id) else None
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
        from .harness.command import CLAUDE_MODES

        return [
            schema.SessionConfigOptionSelect(
                id=MODEL_OPTION,
                name="Model",
                description="The backend (model ref) Claude Code runs on for this session's next prompts",
                category="model",
                type="select",
                current_value=current,
                options=options,
            ),
            schema.SessionConfigOptionSelect(
                id=PERMISSION_OPTIONS[0],
                name="Permission mode",
                description="Claude Code's permission mode for this session's next prompts",
                category="mode",
                type="select",
                current_value=session.permission_mode or self._default_mode(),
                options=[schema.SessionConfigSelectOption(value=m, name=m) for m in CLAUDE_MODES],
            ),
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
        servers = self._mcp_servers(mcp_servers)
        meta = kwargs.get(OPENCLAW_META)
        if isinstance(meta, dict):
            return self.openclaw.ensure(cwd, meta, mcp_servers=servers)
        if not cwd or not os.path.isdir(cwd):
            raise self.acp.RequestError.invalid_params({"message": f"cwd {cwd!r} is not a directory; pass an existing absolute path"})
        session = AcpSession(session_id=str(uuid.uuid4()), cwd=cwd, mcp_servers=servers)
        self.sessions[session.session_id] = session
        self._save(session)
        return self.acp.NewSessionResponse(session_id=session.session_id, config_options=self._config_options(session), modes=self._modes(session))

    def _mcp_servers(self, servers: Any) -> list[dict[str, Any]]:
        """The client's ``mcpServers``, checked now (a bad one is refused at session/new, not at
        the first prompt), in ACP's shape; their secrets join the redactor."""
        from .errors import KimiAcpError
        from .mcp import from_request, secret_values
        from .redact import redact

        items = [s.model_dump(by_alias=True, exclude_none=True) if hasattr(s, "model_dump") else s for s in servers or ()]
        try:
            checked = from_request(items)
        except KimiAcpError as exc:
            raise self.acp.RequestError.invalid_params({"message": str(exc)}) from None
        for value in secret_values(checked):
            redact.add(value)
        return items

    # -- permission modes (OpenClaw's /acp set-mode and /acp permissions; an ACP client's mode picker)

    def _default_mode(self) -> str:
        from .harness.command import claude_mode

        return claude_mode(self.spawner.config.settings.harness.permissionMode)

    def _modes(self, session: AcpSession) -> Any:
        from .harness.command import CLAUDE_MODES

        schema = self.acp.schema
        about = {
            "default": "asks before edits and commands (you answer; a turn with nobody to ask refuses them)",
            "acceptEdits": "edits files (and runs file commands in its folder) without asking; asks before other commands",
            "plan": "plans only: reads and proposes, changes nothing",
            "bypassPermissions": "runs every tool without asking (as root only with harness.allowRootBypass)",
            "dontAsk": "refuses everything that would need asking",
        }
        modes = [schema.SessionMode(id=m, name=m, description=about[m]) for m in CLAUDE_MODES]
        return schema.SessionModeState(current_mode_id=session.permission_mode or self._default_mode(), available_modes=modes)

    def _set_permission_mode(self, session: AcpSession, value: Any) -> None:
        from .errors import KimiAcpError
        from .harness.command import claude_mode, permission_args

        if not isinstance(value, str) or not value.strip():
            raise self.acp.RequestError.invalid_params({"message": "a permission mode is needed (default, acceptEdits, plan, bypassPermissions, dontAsk)"})
        try:
            mode = claude_mode(value.strip())
            permission_args(mode, allow_root_bypass=self.spawner.config.settings.harness.allowRootBypass)  # refused now, not at the next turn
        except (ValueError, KimiAcpError) as exc:
            raise self.acp.RequestError.invalid_params({"message": str(exc)}) from None
        session.permission_mode = mode
        log(f"session {session.session_id}" + (f" ({session.openclaw_key})" if session.openclaw_key else "") + f": permission mode {mode}")
        if session.mode != "oneshot":
            self._save(session)

    async def set_session_mode(self, session_id: str, mode_id: str, **kwargs: Any) -> Any:
        await self._get_spawner()
        self._set_permission_mode(self._session(session_id), mode_id)
        return self.acp.schema.SetSessionModeResponse()

    # -- OpenClaw's ACP runtime backend (openclaw_ext/index.js): one session per OpenClaw session key

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
            log(note)
        spawner.config = cfg
        return cfg

    async def load_session(self, cwd: str, session_id: str, mcp_servers: Any = None, additional_directories: Any = None, **kwargs: Any) -> Any:
        await self._get_spawner()
        session = self._session(session_id)
        session.mcp_servers = self._mcp_servers(mcp_servers)  # ACP: the client hands them over again
        if cwd and os.path.realpath(cwd) != os.path.realpath(session.cwd):
            # Claude Code resumes a conversation only from the cwd it started in.
            log(f"session {session_id}: keeping its cwd {session.cwd} (load asked for {cwd})")
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
        if config_id in PERMISSION_OPTIONS:
            self._set_permission_mode(session, value)
            return self.acp.schema.SetSessionConfigOptionResponse(config_options=self._config_options(session))
        if config_id != MODEL_OPTION:
            known = ", ".join([MODEL_OPTION, *THINKING_OPTIONS, TIMEOUT_OPTION, *PERMISSION_OPTIONS])
            raise self.acp.RequestError.invalid_params({"message": f"unknown config option {config_id!r}; kimi-acp has {known}"})
        if not isinstance(value, str) or not value.strip():
            raise self.acp.RequestError.invalid_params({"message": "the model option takes a model ref, e.g. kimi/k3 or kimi/kimi-for-coding"})
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
            log(f"cannot save session {session.session_id}: {exc}")

    async def prompt(self, prompt: list[Any], session_id: str, message_id: str | None = None, **kwargs: Any) -> Any:
        import asyncio

        acp = self.acp
        session = self._session(session_id)
        meta = kwargs.get(OPENCLAW_META) if isinstance(kwargs.get(OPENCLAW_META), dict) else {}
        steer = meta.get("mode") == "steer"
        task, images = prompt_text(prompt), prompt_images(prompt)
        if not task.strip():
            if not images:
                raise acp.RequestError.invalid_params({"message": "the prompt has no text"})
            task = "(see the attached image)" if len(images) == 1 else f"(see the {len(images)} attached images)"
        if session.busy:
            if not steer:
                raise acp.RequestError.invalid_request({"message": f"session {session_id} already has a prompt running; cancel it "
                                                                   "first, or send this one as a steer (OpenClaw's /acp steer)"})
            steered = await self._steer(session, task, images)
            if steered is not None:
                return steered
            while session.busy:  # the running turn was ending: this one runs next, as a turn of its own
                await _ended(session.turn_end)
        # OpenClaw's turns say whether someone can be asked (the turn has an onElicitation);
        # an ACP client always can (session/request_permission is part of the protocol).
        can_ask = meta.get("canAsk") is True if session.openclaw_key else True
        session.busy, session.cancelled = True, False
        session.turn_end = asyncio.get_running_loop().create_future()
        try:
            answer = await self._prompt(session, task, images=images, can_ask=can_ask, message_id=message_id)
        except BaseException as exc:
            if not session.turn_end.done():
                if isinstance(exc, Exception):
                    session.turn_end.set_exception(exc)
                    session.turn_end.exception()  # retrieved: a steer may never wait for it
                else:
                    session.turn_end.cancel()
            raise
        else:
            session.turn_end.set_result(answer)
            return answer
        finally:
            session.busy = False

    async def _steer(self, session: AcpSession, task: str, images: list[tuple[str, str]]) -> Any:
        """A steer into the running turn: its message goes into that turn's Claude Code process,
        and this prompt ends when that turn does (its output is the running turn's). ``None``
        when the running turn takes no more input (it is ending): the caller runs it next."""
        import asyncio

        acp = self.acp
        spawner = self.spawner
        run_id = session.run_id
        if spawner is None or run_id is None or session.turn_end is None:
            return None
        try:
            sent = spawner.send(run_id, task, images)
        except Exception as exc:  # noqa: BLE001 - images this run cannot take: refused like a prompt's
            raise self._error(str(exc)) from None
        if not sent:
            return None
        who = f"{session.session_id} ({session.openclaw_key})" if session.openclaw_key else session.session_id
        log(f"session {who}: steer sent into run {run_id}")
        meta = {OPENCLAW_META: {"steeredInto": run_id}}
        turn_end = session.turn_end
        try:
            answer = await asyncio.shield(turn_end)
        except asyncio.CancelledError:
            if turn_end.cancelled():  # the turn it went into was cancelled, not this prompt
                return acp.PromptResponse(stop_reason="cancelled", field_meta=meta)
            raise
        except Exception as exc:  # the turn it went into failed: so did this one
            raise self._error(f"the turn this steer went into failed: {getattr(exc, 'data', None) and exc.data.get('message') or exc}",
                              code="steered_turn_failed", runId=run_id) from None
        stop = getattr(answer, "stop_reason", "end_turn")
        return acp.PromptResponse(stop_reason="cancelled" if stop == "cancelled" else "end_turn", field_meta=meta)

    def _asker(self, session: AcpSession, message_id: str | None = None) -> Any:
        """How this session's live runs ask their permission questions: ACP's
        ``session/request_permission`` to the client (OpenClaw's extension turns it into the turn's
        chat question)."""
        from .live import Answer

        async def ask(question: Any) -> Any:
            acp = self.acp
            schema = acp.schema
            conn = self.conn
            if conn is None:
                return Answer("deny", by="nobody", reason="no client is connected to ask")
            options = [
                schema.PermissionOption(option_id="allow_once", name="Allow once", kind="allow_once"),
                schema.PermissionOption(option_id="allow_always", name="Allow this exact call for the session", kind="allow_always"),
                schema.PermissionOption(option_id="reject_once", name="Deny", kind="reject_once"),
            ]
            call = schema.ToolCallUpdate(tool_call_id=question.tool_use_id or question.request_id, title=question.title,
                                         kind=question.kind, status="pending", raw_input=question.input)
            if session.openclaw_key:
                notice = self.openclaw.question_notice(session, question)
                if notice is not None:
                    try:
                        await conn.ext_notification("kimi-acp/notice", notice)
                    except Exception as exc:  # noqa: BLE001 - the question is still asked where it belongs
                        log(f"session {session.session_id}: could not tell {notice['sessionKey']} about a question: {exc!r}")
            try:
                response = await conn.request_permission(session_id=session.session_id, tool_call=call, options=options,
                                                         **{OPENCLAW_META: {"question": question.text(), "tool": question.tool,
                                                                            **({"requestId": message_id} if message_id else {})}})
            except Exception as exc:  # noqa: BLE001 - the client failed the request: a denial that says so
                why = getattr(exc, "data", None) or exc
                return Answer("deny", by="error", reason=f"the question could not be asked ({why})")
            outcome = response.outcome
            said = (response.field_meta or {}).get(OPENCLAW_META, {}) if isinstance(response.field_meta, dict) else {}
            note = said.get("message") if isinstance(said, dict) and isinstance(said.get("message"), str) else None
            if getattr(outcome, "outcome", None) == "selected":
                if outcome.option_id in ("allow_once", "allow_always"):
                    return Answer(outcome.option_id)
                return Answer("deny", reason="the user denied it when asked" + (f" ({note})" if note else ""))
            return Answer("deny", by="cancelled", reason="the question was cancelled before anyone answered" + (f" ({note})" if note else ""))

        return ask

    async def _prompt(self, session: AcpSession, task: str, *, images: list[tuple[str, str]] | None = None,
                      can_ask: bool = True, message_id: str | None = None) -> Any:
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
        if session.mcp_servers:
            request["mcpServers"] = session.mcp_servers
        if session.timeout:
            request["runTimeoutSeconds"] = session.timeout
        if session.permission_mode:
            request["permissionMode"] = session.permission_mode
        if images:
            request["attachments"] = [{"name": f"image-{i + 1}", "content": data, "encoding": "base64", "mimeType": mime}
                                      for i, (mime, data) in enumerate(images)]
        if self.spawner is not None:
            self._fresh_config()
        context = {"requesterAgentId": self.args.agent, "requesterSessionKey": session_key(session.session_id)}
        door = self.openclaw if session.openclaw_key else None
        if door is not None:  # who asked, the session's own choices (the OpenClaw door)
            request, context = door.setup_turn(session, request, task)
        from .live import Live

        live = Live(ask=self._asker(session, message_id) if can_ask else None, allowed=session.allowed_calls)
        answer = await spawner.spawn(request, context, live=live)
        if answer.get("status") != "accepted":
            extra = door.failure_data("error") if door else {}
            raise self._error(str(answer.get("error") or answer), code=answer.get("errorCode"), runId=answer.get("runId"), **extra)
        run_id = answer["runId"]
        # No await between spawn() and watch(): the run cannot have produced events yet.
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.events.watch(run_id, queue)
        session.run_id = run_id
        maker = UpdateMaker(acp, context_window(spawner.config, answer.get("backend"), answer.get("model")), notes=session.notes)
        # OpenClaw's extension routes each update to the turn that asked for it (a steer that
        # runs as a turn of its own after the running one must not feed that one's stream)
        tag = {OPENCLAW_META: {"requestId": message_id}} if session.openclaw_key and message_id else {}
        sender = asyncio.create_task(self._send_updates(session.session_id, queue, maker, tag))
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
        log(f"session {who}: run {run_id} on {result.backend} ({result.reason}): {result.status} in {seconds}")
        session.history.append(run_id)
        if result.sessionId and (result.status in ("ok", "cancelled") or not session.claude_session_id or request.get("resumeSessionId") is None):
            session.claude_session_id = result.sessionId
            session.last_backend = result.backend
        if session.mode != "oneshot":
            self._save(session)
        meta = {OPENCLAW_META: door.turn_meta(session, result, maker.context_used)} if door is not None else None
        if result.status == "cancelled" or session.cancelled:
            return acp.PromptResponse(stop_reason="cancelled", field_meta=meta)
        if result.status != "ok":
            message = result.error or f"the run ended with status {result.status}"
            extra = {**door.failure_data(result.status), **(meta or {})} if door is not None else {}
            raise self._error(message, code=f"run_{result.status}", runId=run_id, status=result.status, backend=result.backend,
                              exitCode=result.exitCode, **extra)
        usage = prompt_usage(acp, result.usage)
        return acp.PromptResponse(stop_reason="end_turn", usage=usage, field_meta=meta)

    async def _send_updates(self, session_id: str, queue: Any, maker: UpdateMaker, tag: dict[str, Any] | None = None) -> None:
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
                log(f"session {session_id}: skipped an event ({type(event).__name__}): {exc!r}")
                continue
            try:
                for update in updates:
                    await self.conn.session_update(session_id=session_id, update=update, **(tag or {}))
            except Exception as exc:  # noqa: BLE001 - a gone client must not stop the run's bookkeeping
                broken = True
                log(f"session {session_id}: cannot send updates: {exc!r}")

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        session = self.sessions.get(session_id)
        if session is None or not session.busy:
            return
        session.cancelled = True
        if session.run_id is not None and self.spawner is not None:
            await self.spawner.cancel(session.run_id)

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """kimi-acp's extension methods, for the OpenClaw extension (``_kimi-acp/...``)."""
        return await self.openclaw.handle(method, params)

    async def ext_notification(self, method: str, params: dict[str, Any]) -> None:
        """kimi-acp's extension notifications, from the OpenClaw extension (``_kimi-acp/...``)."""
        await self.openclaw.notify(method, params)


