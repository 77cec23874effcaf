"""``kimi-acp hook before-tool-call``: the Python side of the OpenClaw extension's bridge.

The extension (``openclaw_ext/index.js``) asks the warm ``kimi-acp acp`` process (ACP
extension method ``_kimi-acp/route``, same function) or, when that process is not up, runs
this command, for every ``sessions_spawn`` with
``runtime: "acp"`` and passes, on stdin::

    {"event":   {"toolName": "sessions_spawn", "params": {...the spawn arguments...}},
     "context": {"agentId": <requester agent>, "sessionKey": <requester session>, "sessionId": ...},
     "session": {"providerOverride": ..., "modelOverride": ...}}   # the session's /model, if known

and prints one JSON object, OpenClaw's ``before_tool_call`` result:

- ``{}`` — leave the spawn alone (not ``runtime: "acp"``, a harness kimi-acp does not
  handle, or the route is ``passthrough`` and kimi-acp's ACP runtime backend is not
  registered, so the gateway's own ACP backend runs it);
- ``{"params": {...params, "agentId": "kimi-acp", "model": "<backend>/<model>"}}`` — send
  the spawn to kimi-acp (agent ``kimi-acp``, served by kimi-acp's ACP runtime backend, or by
  the acpx alias of the same name) with the chosen model ref, which kimi-acp routes on;
  ``"model": "passthrough"`` when the route is passthrough and the backend is registered;
- ``{"block": true, "blockReason": "..."}`` — refuse it: an unknown model, a bad config, a
  ``kimi_acp_before_spawn`` hook said no, or the input could not be read.

It always exits 0 with JSON on stdout; the extension decides. No secret is ever printed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..install import ACP_ALIAS  # the acpx agent alias `kimi-acp install` adds


def _block(reason: str) -> dict[str, Any]:
    from ..redact import redact

    return {"block": True, "blockReason": redact(reason)}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def session_choice(session: Any) -> str | None:
    """OpenClaw's ``/model`` choice as a model ref: ``providerOverride/modelOverride``."""
    if not isinstance(session, dict):
        return None
    provider, model = _str(session.get("providerOverride")), _str(session.get("modelOverride"))
    if provider and model:
        return f"{provider}/{model}"
    return None


def _run_before_spawn(params: dict[str, Any], context: dict[str, Any], session_model: str | None) -> tuple[dict[str, Any], str | None]:
    """The ``kimi_acp_before_spawn`` hook chain, as the spawner runs it.

    Returns the (maybe rewritten) params and a block reason (``None`` when not blocked).
    """
    from pydantic import ValidationError

    from ..plugins import get_plugin_manager
    from ..spawn import SpawnContext, SpawnRequest

    try:
        request = SpawnRequest.model_validate(params)
    except ValidationError as exc:
        msg = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors())
        return params, f"invalid spawn request: {msg}"
    ctx = SpawnContext(
        requesterAgentId=_str(context.get("agentId")),
        requesterSessionKey=_str(context.get("sessionKey")),
        sessionModel=session_model,
    )
    original = request
    for impl in reversed(get_plugin_manager().hook.kimi_acp_before_spawn.get_hookimpls()):
        answer = impl.function(request=request, context=ctx)
        if isinstance(answer, str):
            return params, f"blocked by a kimi_acp_before_spawn hook: {answer}"
        if isinstance(answer, SpawnRequest):
            request = answer
    if request is original:
        return params, None
    # Carry a plugin's rewrite over to OpenClaw's arguments (OpenClaw has no per-spawn env).
    before, after = original.model_dump(exclude={"env"}), request.model_dump(exclude={"env"})
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    if request.env != original.env:
        print("kimi-acp hook: a kimi_acp_before_spawn plugin set env; OpenClaw's sessions_spawn cannot carry it", file=sys.stderr)
    return {**params, **changed}, None


def before_tool_call(payload: Any, config_path: str | None = None, *, cfg: Any = None) -> dict[str, Any]:
    """The answer to one ``before_tool_call`` event (see the module docstring).

    ``cfg`` is an already loaded config (the warm ACP process passes its own); without it
    the config is loaded from ``config_path``. ``payload["backend"]`` is true when
    kimi-acp's ACP runtime backend is registered in the gateway: then every Claude Code
    spawn goes to it, passthrough included (as model ``passthrough``), since no other
    backend may be there to run it.
    """
    from ..config import load_config
    from ..routing import default_target, resolve

    # Fail closed: what cannot be read is refused, never waved through unrouted.
    if not isinstance(payload, dict):
        return _block("kimi-acp hook: the input is not a JSON object")
    event = payload.get("event")
    params = event.get("params") if isinstance(event, dict) else None
    if not isinstance(params, dict):
        return _block("kimi-acp hook: the input has no event.params object (the spawn's arguments); this extension and kimi-acp may not match: reinstall with `kimi-acp install`")
    if params.get("runtime") != "acp":
        return {}
    context = payload.get("context", {})
    if not isinstance(context, dict):
        return _block("kimi-acp hook: the input's context is not an object (the requester's agent and session)")
    if not isinstance(payload.get("session", {}), dict):
        return _block("kimi-acp hook: the input's session is not an object (the requester session's /model choice)")
    session_model = session_choice(payload.get("session"))

    if cfg is None:
        cfg = load_config(config_path)
    served = payload.get("backend") is True
    target = _str(params.get("agentId")) or default_target(cfg)
    if target not in cfg.settings.harness.targets:
        return {}  # a harness kimi-acp does not run (codex, gemini, ...): not ours

    params, blocked = _run_before_spawn(params, context, session_model)
    if blocked:
        return _block(blocked)

    session_key = _str(context.get("sessionKey"))
    stored = None
    if session_key:
        from ..sessions import SessionModels, state_dir

        if (state_dir() / "sessions.sqlite").exists():
            with SessionModels() as table:
                stored = table.get(session_key)

    route = resolve(
        cfg,
        model=_str(params.get("model")),
        requester_agent=_str(context.get("agentId")),
        target=_str(params.get("agentId")) or target,
        session_key=session_key,
        session_model=session_model,
        stored_session_model=stored,
    )
    if route.backend.passthrough and not served:
        return {}
    ref = route.model_ref  # kimi/k3, kimi/k3[1m] (a 1M-window route), passthrough
    print(f"kimi-acp hook: {target} -> {ACP_ALIAS} on {ref}: {route.reason}", file=sys.stderr)
    return {"params": {**params, "agentId": ACP_ALIAS, "model": ref}}


def run(args: Any) -> int:
    from ..errors import KimiAcpError

    try:
        raw = sys.stdin.read()
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            answer = _block(f"kimi-acp hook: the input is not JSON ({exc})")
        else:
            answer = before_tool_call(payload, getattr(args, "config", None))
    except KimiAcpError as exc:
        answer = _block(str(exc))
    except Exception as exc:  # the bridge must answer JSON whatever happens; the extension fails closed
        answer = _block(f"kimi-acp hook failed: {type(exc).__name__}: {exc}")
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0
