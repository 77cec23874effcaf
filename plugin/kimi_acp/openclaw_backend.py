"""The OpenClaw door: kimi-acp as OpenClaw's ACP runtime backend, seen from Python.

The gateway extension (``openclaw_ext/``) carries OpenClaw's ``AcpRuntime`` calls to the warm
``kimi-acp acp`` process: ``ensureSession`` arrives as ACP ``session/new`` with the runtime's
input in ``_meta.kimiAcp``; turns are ``session/prompt``; everything else is one of the
``_kimi-acp/*`` extension methods below (route, status, doctor, close, fresh). Each OpenClaw
session key has one ACP session (its id derived from the key), which keeps the session's Claude
Code conversation, its model choice, cwd and permission mode across turns and restarts.
Routing and policy stay in :mod:`.routing`, :mod:`.spawn` and :mod:`.environment`.
"""

from __future__ import annotations

import os
from typing import Any

from .acp_sessions import DEFAULT_CHOICE, TARGET_AGENT, AcpSession, is_uuid, session_key

OPENCLAW_META = "kimiAcp"  # the _meta key of session/new from OpenClaw's runtime backend (openclaw_ext)
_OPENCLAW_NS = "5d0e4b8e-3c1a-4f0e-9a59-6b6b2a6f1c01"  # uuid5 namespace: OpenClaw session key -> ACP session id


class OpenClawBackend:
    """The ``_kimi-acp/*`` methods and ``ensureSession``, on the shared :class:`~.acp_agent.KimiAcpAgent`."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.acp = agent.acp

    def ensure(self, cwd: str, meta: dict[str, Any]) -> Any:
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
        session = self.agent.sessions.get(sid) or self.agent.files.load(sid)
        fresh = session is None
        if session is None:
            # OpenClaw passes no cwd when the target's workspace does not exist yet (it drops its
            # own default then): use that workspace, as OpenClaw does once it exists, never the
            # gateway's own working directory.
            want = meta.get("cwd") if isinstance(meta.get("cwd"), str) and meta.get("cwd") else None
            if want is None:
                want = openclaw_workspace(self.agent._fresh_config(), meta.get("agentId") if isinstance(meta.get("agentId"), str) else TARGET_AGENT)
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
        resume = meta.get("resumeSessionId")
        if fresh and isinstance(resume, str) and resume:
            # One of our own sessions (its Claude Code conversation), else a Claude Code session id.
            earlier = self.agent.files.load(resume) if is_uuid(resume) else None
            session.claude_session_id = earlier.claude_session_id if earlier and earlier.claude_session_id else resume
        model = meta.get("model")
        applied: dict[str, Any] | None = None
        if isinstance(model, str) and model.strip():
            self.agent._set_model(session, model.strip())
            applied = {"kind": "applied", "model": session.model or DEFAULT_CHOICE}
        if session.mode != "oneshot":
            self.agent._save(session)
        info: dict[str, Any] = {"sessionKey": key, "created": fresh, "cwd": session.cwd}
        if applied:
            info["appliedModel"] = applied
        if session.thinking:
            info["appliedThinking"] = {"kind": "applied", "thinking": session.thinking}
        if session.claude_session_id:
            info["agentSessionId"] = session.claude_session_id
        return acp.NewSessionResponse(session_id=sid, config_options=self.agent._config_options(session), field_meta={OPENCLAW_META: info})

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
        """``getStatus``: what the session runs on and what it is doing."""
        from .errors import KimiAcpError
        from .routing import resolve

        spawner = await self.agent._get_spawner()
        sid = params.get("sessionId")
        session = self.agent._session(sid) if isinstance(sid, str) else None
        if session is None:
            raise self.acp.RequestError.invalid_params({"message": "getStatus needs a sessionId"})
        try:
            route = resolve(self.agent._fresh_config(), model=session.model or self.agent.args.backend, target=TARGET_AGENT)
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

