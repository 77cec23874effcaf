"""The OpenClaw door: kimi-acp as OpenClaw's ACP runtime backend, seen from Python.

The gateway extension (``openclaw_ext/``) carries OpenClaw's ``AcpRuntime`` calls to the warm
``kimi-acp acp`` process. This module is where an OpenClaw session lives, from first to last:

* ``ensureSession`` arrives as ACP ``session/new`` with the runtime's input in ``_meta.kimiAcp``
  (:meth:`OpenClawBackend.ensure`). Each OpenClaw session key has one ACP session (its id derived
  from the key), which keeps the session's Claude Code conversation, its model choice, cwd,
  permission mode and *who asked for it* across turns, re-ensures and restarts.
* Who asked decides the backend (the same rule as every spawn: explicit model, the requester
  session's ``/model``, the requesting agent, the target agent, global, passthrough; see
  :mod:`.routing`). OpenClaw records it on the child's session row for ``sessions_spawn`` (the
  extension reads it); for ``/acp spawn`` it records nothing, so the extension hands over each
  ``/acp spawn …`` command as it is sent (:meth:`OpenClawBackend.note_command`) and the next new
  session of that agent claims it; a configured ACP binding's session belongs to the binding's
  agent.
* Turns are ``session/prompt`` on the shared prompt path (:mod:`.acp_agent`), with this door's
  request and context (:meth:`OpenClawBackend.setup_turn`) and what the gateway should record
  when it ends (:meth:`OpenClawBackend.turn_meta`: token counts for OpenClaw's Stats line, a
  notice to the requester when a turn is cancelled).
* Everything else is one of the ``_kimi-acp/*`` extension methods: route (the spawn hook),
  status, doctor, close, fresh.

Routing and policy stay in :mod:`.routing`, :mod:`.spawn` and :mod:`.environment`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from .acp_sessions import DEFAULT_CHOICE, TARGET_AGENT, AcpSession, is_uuid, log, session_key

OPENCLAW_META = "kimiAcp"  # the _meta key of session/new and session/prompt from the extension (openclaw_ext)
_OPENCLAW_NS = "5d0e4b8e-3c1a-4f0e-9a59-6b6b2a6f1c01"  # uuid5 namespace: OpenClaw session key -> ACP session id
NOTE_TTL = 120.0  # seconds an "/acp spawn" note waits for the session it opens (OpenClaw: ~2 s)
NOTICE_CHARS = 4000  # of a cancelled turn's output, told to the requester
SEED_CHARS = 24_000  # of the earlier turns, handed to a new conversation when the backend changes
TURN_MARGIN_S = 300  # a turn's bound beyond its run's own time limit


@dataclass
class SpawnNote:
    """An ``/acp spawn`` command as it was sent: the session it came from and what it asked for."""

    target: str | None  # the agent named in the command (None: acp.defaultAgent)
    session_key: str | None
    agent_id: str | None
    model: str | None  # that session's /model choice (provider/model)
    at: float  # time.monotonic() when it arrived


def parse_acp_spawn(text: str) -> str | None:
    """The agent an ``/acp spawn [agent] [--flag value …]`` command names (None: the default)."""
    words = text.split()
    if len(words) < 2 or words[0] != "/acp" or words[1] != "spawn":
        raise ValueError("not an /acp spawn command")
    takes_value = {"--mode", "--thread", "--bind", "--cwd", "--label", "--model", "--agent"}
    i = 2
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            i += 1 if "=" in word or word not in takes_value else 2
            continue
        return word
    return None


def _agent_of(key: Any) -> str | None:
    if isinstance(key, str) and key.startswith("agent:"):
        parts = key.split(":")
        return parts[1] if len(parts) > 1 and parts[1] else None
    return None


def _choice(session: Any) -> str | None:
    from .commands.hook import session_choice

    return session_choice(session)


class OpenClawBackend:
    """The ``_kimi-acp/*`` methods, ``ensureSession`` and the OpenClaw side of each turn, on the
    shared :class:`~.acp_agent.KimiAcpAgent`."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.acp = agent.acp
        self.notes: list[SpawnNote] = []

    # ------------------------------------------------------------------ who asked

    def note_command(self, params: Any) -> None:
        """``_kimi-acp/command`` (a notification): an ``/acp spawn …`` just sent in a chat."""
        if not isinstance(params, dict) or not isinstance(params.get("text"), str):
            return
        try:
            target = parse_acp_spawn(params["text"])
        except ValueError:
            return
        key = params.get("sessionKey") if isinstance(params.get("sessionKey"), str) else None
        now = time.monotonic()
        self.notes = [n for n in self.notes if now - n.at < NOTE_TTL]
        self.notes.append(SpawnNote(target, key, _agent_of(key), _choice(params.get("session")), now))

    def _claim_note(self, target: str | None) -> SpawnNote | None:
        """The oldest fresh ``/acp spawn`` note for ``target`` (first come, first served)."""
        from .routing import default_target

        now = time.monotonic()
        self.notes = [n for n in self.notes if now - n.at < NOTE_TTL]
        default = default_target(self.agent._fresh_config())
        for note in self.notes:
            if (note.target or default) == target:
                self.notes.remove(note)
                return note
        return None

    def _learn_requester(self, session: AcpSession, key: str, meta: dict[str, Any], fresh: bool) -> None:
        requester = meta.get("requester")
        if isinstance(requester, dict) and (requester.get("sessionKey") or requester.get("agentId")):
            # sessions_spawn: OpenClaw wrote it on the child's row before ensureSession
            session.requester_session = requester.get("sessionKey") if isinstance(requester.get("sessionKey"), str) else None
            session.requester_agent = requester.get("agentId") if isinstance(requester.get("agentId"), str) else _agent_of(session.requester_session)
            session.requester_model = _choice(requester.get("session"))
            session.requester_via = "spawn" if requester.get("via") in (None, "spawn") else str(requester.get("via"))
            return
        if not fresh or session.requester_via:
            return
        if ":acp:binding:" in key:
            # a configured ACP binding: the session belongs to the agent that owns the conversation
            session.requester_agent, session.requester_via = _agent_of(key), "binding"
            return
        note = self._claim_note(session.target)
        if note is not None:
            session.requester_agent, session.requester_session = note.agent_id, note.session_key
            session.requester_model, session.requester_via = note.model, "acp-spawn"

    # ------------------------------------------------------------------ ensureSession

    def _workspace_default(self, agent_id: str | None) -> str:
        return openclaw_workspace(self.agent._fresh_config(), agent_id or TARGET_AGENT)

    def _directory(self, want: str | None, agent_id: str | None) -> str:
        """The directory a session runs in: OpenClaw's cwd, resolved, which must exist; without
        one, the agent's workspace (made if missing, as OpenClaw makes it for its own runs)."""
        acp = self.acp
        if want is None:
            want = self._workspace_default(agent_id)
            if not os.path.isdir(want):
                try:
                    os.makedirs(want, mode=0o700, exist_ok=True)
                except OSError as exc:
                    raise acp.RequestError.invalid_params({"message": f"the workspace {want} does not exist and cannot be made: {exc.strerror}"}) from None
        if not os.path.isabs(want):
            raise acp.RequestError.invalid_params({"message": f"cwd {want!r} is not an absolute path; give the full path of an existing directory"})
        resolved = os.path.realpath(want)
        if not os.path.isdir(resolved):
            if resolved == os.path.realpath(self._workspace_default(agent_id)):
                try:  # OpenClaw's own default for this agent: made as OpenClaw would
                    os.makedirs(resolved, mode=0o700, exist_ok=True)
                    return resolved
                except OSError:
                    pass
            what = "does not exist" if not os.path.exists(resolved) else "is not a directory"
            raise acp.RequestError.invalid_params({"message": f"cwd {want} {what}; give an existing directory (e.g. /acp cwd /path/to/project)"})
        return resolved

    def _move(self, session: AcpSession, cwd: str) -> None:
        """Move a session to another directory; its Claude Code conversation follows it."""
        if os.path.realpath(session.cwd) == cwd:
            return
        if session.claude_session_id:
            from .harness.conversations import move_conversation

            home = (self.agent.spawner.environ if self.agent.spawner else os.environ).get("HOME") or os.path.expanduser("~")
            if not move_conversation(home, session.claude_session_id, cwd):
                session.notes.append(f"this session moved to {cwd}; its Claude Code conversation could not follow it, so a new one starts here")
                session.claude_session_id = None
        log(f"session {session.session_id} ({session.openclaw_key}): cwd {session.cwd} -> {cwd}")
        session.cwd = cwd

    def _resume(self, resume: str, session: AcpSession) -> None:
        """``resumeSessionId``: one of kimi-acp's sessions, or a Claude Code conversation one of
        its runs had; anything else is refused (it would become ``claude --resume <it>``)."""
        if not is_uuid(resume):
            raise self.acp.RequestError.invalid_params({"message": f"resumeSessionId {resume!r} is not a session id (a UUID kimi-acp or Claude Code issued)"})
        earlier = self.agent.files.load(resume)
        if earlier is not None and earlier.claude_session_id:
            session.claude_session_id, session.last_backend = earlier.claude_session_id, earlier.last_backend
            if earlier.cwd != session.cwd:
                self._move_conversation_only(session)
            return
        spawner = self.agent.spawner
        rec = spawner.store.find_by_claude_session(resume) if spawner is not None else None
        if rec is None:
            raise self.acp.RequestError.invalid_params({
                "message": f"unknown resumeSessionId {resume}: no kimi-acp session or run of kimi-acp's has it "
                "(`kimi-acp ps --all --json` lists each run's sessionId)"})
        session.claude_session_id, session.last_backend = resume, rec.backend
        self._move_conversation_only(session)

    def _move_conversation_only(self, session: AcpSession) -> None:
        from .harness.conversations import move_conversation

        home = (self.agent.spawner.environ if self.agent.spawner else os.environ).get("HOME") or os.path.expanduser("~")
        move_conversation(home, session.claude_session_id or "", session.cwd)

    def ensure(self, cwd: str, meta: dict[str, Any], *, mcp_servers: list[dict[str, Any]] | None = None) -> Any:
        """``ensureSession``: the session of an OpenClaw session key, made or found again.

        Idempotent: the ACP session id is derived from the key, so re-ensuring a session
        (OpenClaw does it for a finished oneshot session only to close it, after ``/acp cwd``,
        and after a restart) costs no new state and no process. Nothing starts until a prompt
        arrives. A new cwd moves the session there (its conversation follows).
        """
        acp = self.acp
        key = meta.get("sessionKey")
        if not isinstance(key, str) or not key:
            raise acp.RequestError.invalid_params({"message": "ensureSession needs a sessionKey"})
        agent_id = meta.get("agentId") if isinstance(meta.get("agentId"), str) and meta.get("agentId") else _agent_of(key)
        sid = openclaw_session_id(key)
        session = self.agent.sessions.get(sid) or self.agent.files.load(sid)
        fresh = session is None
        want = meta.get("cwd") if isinstance(meta.get("cwd"), str) and meta.get("cwd") else None
        directory = self._directory(want, agent_id)
        if session is None:
            session = AcpSession(session_id=sid, cwd=directory, openclaw_key=key)
        else:
            self._move(session, directory)
        session.openclaw_key = key
        # the harness OpenClaw asked for (runtime.acp.agent, /acp spawn's agent), else the agent id
        harness = meta.get("agent") if isinstance(meta.get("agent"), str) and meta.get("agent") else None
        session.target = harness or agent_id or session.target
        self.agent.sessions[sid] = session
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
        if mcp_servers is not None:  # session/new's own (OpenClaw 2026.9.6 sends none); in memory only
            session.mcp_servers = list(mcp_servers)
        self._learn_requester(session, key, meta, fresh)
        resume = meta.get("resumeSessionId")
        if isinstance(resume, str) and resume and resume not in (session.claude_session_id, sid):
            self._resume(resume, session)
        model = meta.get("model")
        applied: dict[str, Any] | None = None
        if isinstance(model, str) and model.strip() and meta.get("modelExplicit") is not False:
            # An explicit model (sessions_spawn's, which kimi-acp's spawn hook sets to the routed
            # one, or /acp model's). One OpenClaw inherited from an agent's defaults is not: the
            # routing rules see that agent anyway.
            self.agent._set_model(session, model.strip())
            applied = {"kind": "applied", "model": session.model or DEFAULT_CHOICE}
        if session.mode != "oneshot":
            self.agent._save(session)
        info: dict[str, Any] = {"sessionKey": key, "created": fresh, "cwd": session.cwd, "turnTimeoutMs": self._turn_bound_ms(session)}
        if applied:
            info["appliedModel"] = applied
        if session.thinking:
            info["appliedThinking"] = {"kind": "applied", "thinking": session.thinking}
        if session.claude_session_id:
            info["agentSessionId"] = session.claude_session_id
        if fresh:
            route = self._route_of(session)
            log(f"session {sid} ({key}) for agent {session.target or '?'}: asked by "
                f"{session.requester_session or session.requester_agent or 'an unknown requester'}"
                f" ({session.requester_via or 'not recorded by OpenClaw'}); runs on {route}")
        return acp.NewSessionResponse(
            session_id=sid, config_options=self.agent._config_options(session), modes=self.agent._modes(session),
            field_meta={OPENCLAW_META: info},
        )

    def _turn_bound_ms(self, session: AcpSession) -> int:
        limits = self.agent._fresh_config().settings.limits
        seconds = session.timeout or limits.runTimeoutSeconds or 86_400
        return int((min(seconds, 86_400) + TURN_MARGIN_S) * 1000)

    # ------------------------------------------------------------------ turns

    def _routing_inputs(self, session: AcpSession) -> dict[str, Any]:
        return {
            "model": session.model or self.agent.args.backend,
            "requester_agent": session.requester_agent,
            "target": session.target or TARGET_AGENT,
            "session_key": session.requester_session,
            "session_model": session.requester_model,
        }

    def _route(self, session: AcpSession) -> Any:
        """The route this session's next turn takes (what the Spawner will decide)."""
        from .routing import resolve
        from .sessions import SessionModels

        inputs = self._routing_inputs(session)
        stored = None
        spawner = self.agent.spawner
        if session.requester_session and spawner is not None and (spawner.store.state_dir / "sessions.sqlite").exists():
            with SessionModels(spawner.store.state_dir) as table:
                stored = table.get(session.requester_session)
        return resolve(self.agent._fresh_config(), stored_session_model=stored, **inputs)

    def _route_of(self, session: AcpSession) -> str:
        from .errors import KimiAcpError

        try:
            route = self._route(session)
        except KimiAcpError as exc:
            return f"nothing yet ({exc})"
        return f"{route.name}" + (f"/{route.model}" if route.model else "") + f" ({route.reason})"

    def setup_turn(self, session: AcpSession, request: dict[str, Any], text: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The spawn request and context of one turn of an OpenClaw session: who asked, the
        session's own choices, and a new conversation when the backend changed (see docs)."""
        from .errors import KimiAcpError

        inputs = self._routing_inputs(session)
        request["agentId"] = inputs["target"]
        if inputs["model"]:
            request["model"] = inputs["model"]
        if session.permission_mode:
            request["permissionMode"] = session.permission_mode
        if self._can_fail_over():
            request["failFast"] = True
        request["label"] = session.openclaw_key
        context = {
            "requesterAgentId": session.requester_agent,
            "requesterSessionKey": session.requester_session,
            "sessionModel": session.requester_model,
        }
        try:
            route = self._route(session)
        except KimiAcpError:
            route = None  # the Spawner refuses it with the same message
        if route is not None and session.claude_session_id and session.last_backend and route.name != session.last_backend:
            # Another provider must not be handed this one's thinking blocks (their signatures
            # are the provider's own): a new Claude Code conversation, told what came before.
            request.pop("resumeSessionId", None)
            request["task"] = self._seed(session, route.name) + text
            session.notes.append(f"this session moved from backend {session.last_backend} to {route.name}: a new Claude Code "
                                 "conversation continues it from the earlier prompts and answers (text only)")
        return request, context

    def _seed(self, session: AcpSession, new_backend: str) -> str:
        """The earlier turns of a session (prompts and final answers, newest kept first)."""
        from .errors import KimiAcpError

        spawner = self.agent.spawner
        parts: list[str] = []
        used = 0
        for run_id in reversed(session.history):
            try:
                rec = spawner.store.get_run(run_id)
            except KimiAcpError:
                continue
            piece = f"User: {rec.task.strip()}\n\nAssistant: {(rec.result_text or '(no answer)').strip()}\n"
            if used + len(piece) > SEED_CHARS:
                break
            parts.append(piece)
            used += len(piece)
        if not parts:
            return ""
        return ("[Earlier in this conversation, on another backend (its thinking and tool calls are not carried over):]\n\n"
                + "\n".join(reversed(parts)) + f"\n[The conversation continues here, on {new_backend}.]\n\n")

    def _can_fail_over(self) -> bool:
        """OpenClaw's acp.fallbacks names another backend: a turn Kimi cannot take now (429,
        outage) should fail at once, before any output, so OpenClaw moves it there."""
        acp = self.agent._fresh_config().data.get("acp")
        fallbacks = acp.get("fallbacks") if isinstance(acp, dict) else None
        return isinstance(fallbacks, list) and any(isinstance(f, str) and f and f != "kimi-acp" for f in fallbacks)

    def turn_meta(self, session: AcpSession, result: Any, context_used: int | None) -> dict[str, Any]:
        """What the gateway should record when a turn ends: the child row's token counts (for
        OpenClaw's Stats line) and, for a cancelled turn, a notice to the requester with what the
        child had produced."""
        out: dict[str, Any] = {}
        usage = result.usage or {}

        def count(name: str) -> int:
            value = usage.get(name)
            return value if isinstance(value, int) and value >= 0 else 0

        fresh_in, out_tokens = count("input_tokens"), count("output_tokens")
        cache_read, cache_write = count("cache_read_input_tokens"), count("cache_creation_input_tokens")
        if fresh_in or out_tokens or cache_read or cache_write:
            patch: dict[str, Any] = {
                "inputTokens": fresh_in + cache_read + cache_write,
                "outputTokens": out_tokens,
                "cacheRead": cache_read,
                "cacheWrite": cache_write,
                "totalTokens": context_used if context_used else fresh_in + cache_read + cache_write + out_tokens,
                "totalTokensFresh": True,
                "totalTokensVersion": 1,
            }
            if result.backend:
                patch["modelProvider"] = result.backend
            if result.model:
                patch["model"] = result.model
            if getattr(result, "costSource", None) == "kimi-acp" and result.costUsd is not None:
                patch["estimatedCostUsd"] = result.costUsd  # priced by kimi-acp from the model's cost, never Claude Code's Anthropic figure
            out["sessionPatch"] = patch
        if result.status == "cancelled" and session.requester_session:
            seconds = f"{result.durationMs / 1000:.0f} s" if result.durationMs is not None else "a while"
            produced = (result.result or "").strip()
            if len(produced) > NOTICE_CHARS:
                produced = produced[:NOTICE_CHARS] + f"\n… ({len(produced) - NOTICE_CHARS} more characters: kimi-acp show {result.runId})"
            body = f"What it had produced:\n{produced}" if produced else "It had produced no output yet."
            out["notice"] = {
                "sessionKey": session.requester_session,
                "text": f"[kimi-acp] The Claude Code session {session.openclaw_key} was cancelled after {seconds} "
                        f"(run {result.runId} on {result.backend or '?'}). {body}",
            }
        return out

    def question_notice(self, session: AcpSession, question: Any) -> dict[str, Any] | None:
        """For a spawned child (``sessions_spawn``): the words that take its permission question
        to the session that spawned it. OpenClaw 2026.9.6 asks the question in the child's own
        session (the turn's ``onElicitation`` registers it there), where the requester's chat
        never shows it; this notice (a system event, with a wake) says what is asked and where
        to answer. ``None`` for sessions the user talks to directly (``/acp spawn``, bindings)."""
        if session.requester_via != "spawn" or not session.requester_session or session.requester_session == session.openclaw_key:
            return None
        choices = '"Allow once", "Allow this exact call for the session" or "Deny"'
        text = (f"[kimi-acp] Claude Code in {session.openclaw_key} (spawned by this session) asks before a tool call: "
                f"{question.text()}. It waits for an answer in that session (OpenClaw's question, 15 min; no answer is a "
                f"denial): reply there with {choices}, or answer it in the Control UI or TUI of that session.")
        return {"sessionKey": session.requester_session, "text": text, "childSessionKey": session.openclaw_key,
                "toolCallId": question.tool_use_id}

    def failure_data(self, status: str) -> dict[str, Any]:
        """How a failed turn reads to OpenClaw: ACP_TURN_FAILED (OpenClaw keeps only its own
        codes; kimi-acp's travels as detailCode), retryable when a later try may work."""
        return {"acpCode": "ACP_TURN_FAILED", "retryable": status in ("rate_limited", "lost")}

    # ------------------------------------------------------------------ the extension methods

    async def route(self, payload: Any) -> dict[str, Any]:
        """``before_tool_call`` of ``sessions_spawn``, answered by the warm process."""
        from .commands.hook import _block, before_tool_call
        from .errors import KimiAcpError

        await self.agent._get_spawner()
        try:
            return before_tool_call(payload, cfg=self.agent._fresh_config())
        except KimiAcpError as exc:
            return _block(str(exc))
        except Exception as exc:  # noqa: BLE001 - the extension must get an answer; it fails closed
            return _block(f"kimi-acp route failed: {type(exc).__name__}: {exc}")

    async def close(self, params: dict[str, Any]) -> dict[str, Any]:
        """``close``: stop the session's run; forget a oneshot (or discarded) session."""
        from .sessions import SessionModels

        sid = params.get("sessionId")
        if not isinstance(sid, str):
            raise self.acp.RequestError.invalid_params({"message": "close needs a sessionId"})
        session = self.agent.sessions.get(sid) or (self.agent.files.load(sid) if is_uuid(sid) else None)
        if session is None:
            return {"closed": False}
        if session.busy:
            await self.agent.cancel(sid)
        if session.mode == "oneshot" or params.get("discardPersistentState") is True:
            self.agent.sessions.pop(sid, None)
            self.agent.files.delete(sid)
            if self.agent.spawner is not None:
                with SessionModels(self.agent.spawner.store.state_dir) as table:
                    table.clear(session_key(sid))
        return {"closed": True}

    async def fresh_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """``prepareFreshSession``: the next ensure of this key starts a new conversation."""
        key = params.get("sessionKey")
        if not isinstance(key, str) or not key:
            raise self.acp.RequestError.invalid_params({"message": "prepareFreshSession needs a sessionKey"})
        sid = openclaw_session_id(key)
        session = self.agent.sessions.get(sid)
        if session is not None and session.busy:
            await self.agent.cancel(sid)
        self.agent.sessions.pop(sid, None)
        self.agent.files.delete(sid)
        return {"sessionId": sid}

    async def status(self, params: dict[str, Any]) -> dict[str, Any]:
        """``getStatus`` (``/acp status``): the backend and the rule that chose it, who asked,
        the run, Claude Code's pid and process tree. ``status: "no-session"`` tells OpenClaw a
        session kimi-acp no longer has (it then ensures it again)."""
        from .errors import KimiAcpError

        spawner = await self.agent._get_spawner()
        sid = params.get("sessionId")
        if not isinstance(sid, str):
            raise self.acp.RequestError.invalid_params({"message": "getStatus needs a sessionId"})
        session = self.agent.sessions.get(sid) or (self.agent.files.load(sid) if is_uuid(sid) else None)
        if session is None:
            key = params.get("sessionKey") or sid
            return {"summary": f"kimi-acp: no session {key} (status=no-session)", "details": {"status": "no-session"}}
        self.agent.sessions[sid] = session
        try:
            route = self._route(session)
            backend, rule = f"{route.name}" + (f"/{route.model}" if route.model else ""), route.reason
        except KimiAcpError as exc:
            route = None
            backend, rule = "none", str(exc)
        state = "running" if session.busy else "idle"
        details: dict[str, Any] = {
            "status": state,
            "backend": backend,
            "rule": rule,
            "model": session.model or DEFAULT_CHOICE,
            "requester": session.requester_session or session.requester_agent,
            "requesterVia": session.requester_via,
            "runId": session.run_id,
            "lastStatus": session.last_status,
            "claudeSessionId": session.claude_session_id,
            "cwd": session.cwd,
            "mode": session.mode,
            "permissionMode": session.permission_mode or "default (config)",
            "turns": len(session.history),
        }
        summary = f"kimi-acp: {state} on {backend}"
        waiting = None
        if session.run_id:
            from .supervisor import process_tree

            try:
                rec = spawner.store.get_run(session.run_id)
            except KimiAcpError:
                rec = None
            claude_pid = None
            if rec is not None and rec.pid:
                tree = process_tree(session.run_id, rec.pgid)
                details["processes"] = tree  # the run's reaper (its group leader), Claude Code, what it started
                claude_pid = next((p["pid"] for p in tree if p["command"].startswith("claude")), None)
                details["pid"] = claude_pid or rec.pid
            summary += f", run {session.run_id}" + (f" (Claude Code pid {claude_pid})" if claude_pid else "")
            if rec is not None and rec.status == "queued":  # why it has not started (quota, 429, a busy backend)
                from .admission import waiting_reason

                waiting = waiting_reason(spawner.store.state_dir, rec)
                details["status"] = "queued"
                details["waiting"] = waiting
                summary = summary.replace(f"kimi-acp: {state} ", "kimi-acp: queued ", 1) + f"; waiting: {waiting}"
        if waiting is None and route is not None and not session.run_id:
            from .admission import hold_now

            hold = hold_now(spawner.store.state_dir, route.name)
            if hold is not None:  # the next turn would wait: say so before it is sent
                details["backendHold"] = hold.describe()
                summary += f"; the next turn waits: {hold.describe()}"
        out: dict[str, Any] = {"summary": summary, "backendSessionId": session.session_id,
                               "details": {k: v for k, v in details.items() if v is not None}}
        if session.claude_session_id:
            out["agentSessionId"] = session.claude_session_id  # OpenClaw checks resumeSessionId against it
        return out

    async def doctor(self) -> dict[str, Any]:
        """``doctor`` (OpenClaw's ``/acp doctor``): config, Claude Code, and the keys routed to."""
        from .errors import KimiAcpError

        lines: list[str] = []
        try:
            await self.agent._get_spawner()
            cfg = self.agent._fresh_config()
        except Exception as exc:  # noqa: BLE001 - RequestError from _get_spawner: the config's message
            message = getattr(exc, "data", None) or {}
            text = message.get("message") if isinstance(message, dict) else None
            return {"ok": False, "code": "config", "message": text or str(exc)}
        lines.append(f"config: {cfg.path}" + ("" if cfg.exists else " (not found: built-in presets only)"))
        try:
            from .harness.command import claude_version, find_claude

            path = find_claude(cfg.settings.harness.command)
            if self.agent._claude_version is None or self.agent._claude_version[0] != path:
                self.agent._claude_version = (path, claude_version(path))
            lines.append(f"claude: {path} ({self.agent._claude_version[1]})")
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

                key = backend.resolve_key(self.agent.spawner.environ)
                lines.append(f"backend {name}: {backend.base_url}, key {mask(key)}")
            except KimiAcpError as exc:
                problems.append(f"backend {name}: {exc}")
        if problems:
            return {"ok": False, "code": "backend", "message": "; ".join(problems), "details": lines}
        return {"ok": True, "message": "kimi-acp is ready: " + ", ".join(lines), "details": lines}

    async def handle(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One ``_kimi-acp/<name>`` extension method (the SDK strips the leading underscore)."""
        if method == "kimi-acp/route":
            return await self.route(params)
        if method == "kimi-acp/close":
            return await self.close(params)
        if method == "kimi-acp/fresh":
            return await self.fresh_session(params)
        if method == "kimi-acp/status":
            return await self.status(params)
        if method == "kimi-acp/doctor":
            return await self.doctor()
        raise self.acp.RequestError.method_not_found(f"_{method}")

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """One ``_kimi-acp/<name>`` notification."""
        if method == "kimi-acp/command":
            self.note_command(params)


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
    names = [r.backend for r in s.agents.values() if r.backend] + [r.backend for r in s.targets.values() if r.backend]
    if s.defaultBackend:
        names.append(s.defaultBackend)
    return list(dict.fromkeys(names))
