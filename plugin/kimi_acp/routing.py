"""Choosing the backend of a spawn, and saying why.

Precedence, first match wins (docs/configuration.md, "Backend resolution"):

1. ``explicit``  — the spawn request's ``model`` (a model ref naming a backend),
2. ``session``   — the requester session's ``/model`` choice,
3. ``agent``     — the requesting agent's default,
4. ``target``    — the target ACP agent's default,
5. ``global``    — the global default,
6. ``passthrough``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .backends import PASSTHROUGH, PASSTHROUGH_BACKEND, Backend
from .config import SECTION, Config
from .errors import UnknownNameError

Rule = Literal["explicit", "session", "agent", "target", "global", "passthrough"]


@dataclass(frozen=True)
class Route:
    backend: Backend
    model: str | None
    rule: Rule
    reason: str
    ref: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.backend.name


def known_refs(cfg: Config) -> list[str]:
    refs: list[str] = []
    for b in cfg.backends.values():
        ids = [m.id for m in b.models] or ([b.model] if b.model else [])
        refs.extend(f"{b.name}/{i}" for i in ids)
        refs.append(b.name)
    refs.extend(sorted(cfg.alias_names.get(a, a) for a in cfg.aliases))
    refs.append(PASSTHROUGH)
    return list(dict.fromkeys(refs))


def resolve_ref(cfg: Config, ref: str, *, _depth: int = 0) -> tuple[Backend, str | None] | None:
    """The backend and model a model ref names, or ``None`` if it names no backend."""
    ref = ref.strip()
    if not ref:
        return None
    if ref.lower() == PASSTHROUGH:
        return PASSTHROUGH_BACKEND, None
    alias = cfg.aliases.get(ref.lower())
    if alias and _depth < 3 and alias.lower() != ref.lower():
        return resolve_ref(cfg, alias, _depth=_depth + 1)
    lowered = {name.lower(): b for name, b in cfg.backends.items()}
    if "/" in ref:
        provider, model = ref.split("/", 1)
        b = lowered.get(provider.lower())
        if b is not None:
            return b, (model or b.model)
        return None
    if ref.lower() in lowered:
        b = lowered[ref.lower()]
        return b, b.model
    for b in cfg.backends.values():
        if ref == b.model or any(ref == m.id for m in b.models):
            return b, ref
    return None


def require_ref(cfg: Config, ref: str, what: str = "model") -> tuple[Backend, str | None]:
    found = resolve_ref(cfg, ref)
    if found is None:
        raise UnknownNameError(f"unknown {what} '{ref}' (known: {', '.join(known_refs(cfg))})")
    return found


DEFAULT_TARGET = "claude"


def default_target(cfg: Config) -> str:
    """The ACP agent a spawn without ``agentId`` targets: ``acp.defaultAgent``, else ``claude``."""
    acp = cfg.data.get("acp")
    target = acp.get("defaultAgent") if isinstance(acp, dict) else None
    return target if isinstance(target, str) and target else DEFAULT_TARGET


def known_agents(cfg: Config) -> list[str]:
    return sorted({"main", *cfg.agents, *cfg.settings.agents})


def check_agent(cfg: Config, agent_id: str) -> None:
    """An agent id must be one of OpenClaw's agents when openclaw.json lists them.

    kimi-acp's own ``agents`` section only routes: an agent without a rule there is not
    unknown, its spawns get the default (as they do inside OpenClaw)."""
    if agent_id in cfg.agents or agent_id in cfg.settings.agents or agent_id == "main":
        return
    if cfg.agents:
        raise UnknownNameError(f"unknown agent '{agent_id}' (known: {', '.join(known_agents(cfg))})")


def resolve(
    cfg: Config,
    *,
    model: str | None = None,
    requester_agent: str | None = None,
    target: str | None = None,
    session_key: str | None = None,
    session_model: str | None = None,
    stored_session_model: str | None = None,
) -> Route:
    """Resolve a spawn's backend.

    ``session_model`` is OpenClaw's own ``/model`` choice for the requester session
    (``providerOverride/modelOverride``, handed over by the OpenClaw extension);
    ``stored_session_model`` is kimi-acp's own session table (``kimi-acp model``).
    A session choice that names no backend (say an OpenAI chat model) is skipped with
    a note: it chose the chat's model, not a spawn backend.
    """
    s = cfg.settings
    notes: list[str] = []

    if model:
        b, m = require_ref(cfg, model)
        return Route(b, m, "explicit", f"explicit model '{model}' in the spawn request", model, tuple(notes))

    for ref, origin in ((session_model, "OpenClaw /model"), (stored_session_model, "kimi-acp model")):
        if not ref:
            continue
        found = resolve_ref(cfg, ref)
        if found:
            b, m = found
            return Route(b, m, "session", f"session {session_key or '?'} chose '{ref}' ({origin})", ref, tuple(notes))
        notes.append(f"session choice '{ref}' ({origin}) names no backend; ignored")

    if requester_agent:
        route = s.agents.get(requester_agent)
        if route and route.backend:
            b = cfg.backend(route.backend)
            return Route(
                b, route.model or b.model, "agent",
                f"agent '{requester_agent}' default ({SECTION}.agents.{requester_agent})", None, tuple(notes),
            )
        info = cfg.agents.get(requester_agent)
        if info and info.subagent_model:
            found = resolve_ref(cfg, info.subagent_model)
            if found:
                b, m = found
                return Route(
                    b, m, "agent",
                    f"agent '{requester_agent}' default (agents.entries.{requester_agent}.subagents.model = '{info.subagent_model}')",
                    info.subagent_model, tuple(notes),
                )

    if target:
        route = s.targets.get(target)
        if route and route.backend:
            b = cfg.backend(route.backend)
            return Route(b, route.model or b.model, "target", f"target '{target}' default ({SECTION}.targets.{target})", None, tuple(notes))
        info = cfg.agents.get(target)
        if info and info.runtime_type == "acp" and info.model:
            found = resolve_ref(cfg, info.model)
            if found:
                b, m = found
                return Route(b, m, "target", f"target '{target}' default (agents.entries.{target}.model = '{info.model}')", info.model, tuple(notes))

    if s.defaultBackend:
        b = cfg.backend(s.defaultBackend)
        return Route(b, b.model, "global", f"global default ({SECTION}.defaultBackend)", None, tuple(notes))
    if cfg.default_subagent_model:
        found = resolve_ref(cfg, cfg.default_subagent_model)
        if found:
            b, m = found
            return Route(b, m, "global", f"global default (agents.defaults.subagents.model = '{cfg.default_subagent_model}')", cfg.default_subagent_model, tuple(notes))

    return Route(PASSTHROUGH_BACKEND, None, "passthrough", "no rule matched: passthrough (the child keeps the gateway's environment)", None, tuple(notes))
