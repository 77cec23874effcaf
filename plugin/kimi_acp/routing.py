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

from .backends import ONE_M_SUFFIX, PASSTHROUGH, PASSTHROUGH_BACKEND, Backend
from .config import SECTION, Config
from .default_plugins.kimi import MOONSHOT_REFUSAL
from .errors import UnknownNameError

MOONSHOT_PROVIDER_IDS = ("moonshot", "moonshotai", "moonshot-ai")
"""OpenClaw's Moonshot provider and its aliases: Moonshot's OpenAI-compatible API, not Kimi Code."""

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

    @property
    def model_ref(self) -> str:
        """A model ref that routes to exactly this backend and model again (what the OpenClaw
        hook hands on as the spawn's ``model``): ``kimi/k3``, ``kimi/k3[1m]`` for a 1M-window
        route, the backend's name when it has no model, ``passthrough``."""
        if self.backend.passthrough:
            return PASSTHROUGH
        if not self.model:
            return self.name
        info = self.backend.model_info(self.model)
        return f"{self.name}/{self.model}" + (ONE_M_SUFFIX if info is not None and info.one_m_ref else "")


def known_refs(cfg: Config) -> list[str]:
    """The refs to list when a ref is unknown: each backend's models (legacy ids last), its
    name, the aliases, ``passthrough``."""
    refs: list[str] = []
    for b in cfg.backends.values():
        current = [m.id for m in b.models if not m.legacy]
        legacy = [m.id for m in b.models if m.legacy]
        ids = [*current, *legacy] or ([b.model] if b.model else [])
        refs.extend(f"{b.name}/{i}" for i in ids)
        refs.append(b.name)
    refs.extend(sorted(cfg.alias_names.get(a, a) for a in cfg.aliases))
    refs.append(PASSTHROUGH)
    return list(dict.fromkeys(refs))


def _provider(cfg: Config, name: str) -> Backend | None:
    """The backend a ref's provider part names: a backend's own name first, then the other
    provider ids it answers to (``kimi-coding/…`` and ``kimi-code/…`` are the Kimi backend)."""
    lowered = name.lower()
    for b in cfg.backends.values():
        if b.name.lower() == lowered:
            return b
    for b in cfg.backends.values():
        if lowered in (a.lower() for a in b.provider_aliases):
            return b
    return None


def _on(backend: Backend, model: str | None) -> tuple[Backend, str | None]:
    """``model`` on ``backend`` as it is sent (legacy ids mapped, ``[1m]`` made a window)."""
    return backend.resolve_model(model) if model else backend.resolve_model(None)


def resolve_ref(cfg: Config, ref: str, *, _depth: int = 0) -> tuple[Backend, str | None] | None:
    """The backend and model id a model ref names, or ``None`` if it names no backend.

    The model id is the one sent to the backend (``kimi/k2p5`` -> ``kimi-for-coding``); the
    backend is the configured one, or a copy of it for this model (``kimi/k3[1m]``: ``k3``
    with its 1M window). A model of another provider (``kimi/kimi-k2.7-code``) is an
    :class:`UnknownNameError` saying what to use.
    """
    ref = ref.strip()
    if not ref:
        return None
    if ref.lower() == PASSTHROUGH:
        return PASSTHROUGH_BACKEND, None
    alias = cfg.aliases.get(ref.lower())
    if alias and _depth < 3 and alias.lower() != ref.lower():
        return resolve_ref(cfg, alias, _depth=_depth + 1)
    if "/" in ref:
        provider, model = ref.split("/", 1)
        b = _provider(cfg, provider)
        if b is not None:
            return _on(b, model or None)
        return None
    b = _provider(cfg, ref)
    if b is not None:
        return _on(b, None)
    bare = ref[: -len(ONE_M_SUFFIX)] if ref.lower().endswith(ONE_M_SUFFIX) else ref
    for b in cfg.backends.values():
        if bare == b.model or any(bare == m.id for m in b.models) or bare.lower() in (a.lower() for a in b.model_aliases):
            return _on(b, ref)
    return None


def foreign_ref(cfg: Config, ref: str) -> str | None:
    """Why ``ref`` names a model kimi-acp cannot run Claude Code on (a ``moonshot/…`` ref:
    Moonshot's OpenAI-compatible API is not Kimi Code), or None."""
    provider = ref.strip().split("/", 1)[0].lower() if "/" in ref else ""
    if provider in MOONSHOT_PROVIDER_IDS and _provider(cfg, provider) is None:
        return MOONSHOT_REFUSAL.format(ref=ref.strip())
    return None


def require_ref(cfg: Config, ref: str, what: str = "model") -> tuple[Backend, str | None]:
    found = resolve_ref(cfg, ref)
    if found is None:
        why = foreign_ref(cfg, ref)
        if why:
            raise UnknownNameError(why, hint="name a Kimi Code model, e.g. kimi/k3")
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
        try:
            found = resolve_ref(cfg, ref)
        except UnknownNameError as exc:  # the chat's model, not a spawn's: say why, route on
            notes.append(f"session choice '{ref}' ({origin}) is not used for spawns: {exc}")
            continue
        if found:
            b, m = found
            return Route(b, m, "session", f"session {session_key or '?'} chose '{ref}' ({origin})", ref, tuple(notes))
        why = foreign_ref(cfg, ref)
        notes.append(f"session choice '{ref}' ({origin}) " + (f"is not used for spawns: {why}" if why else "names no backend; ignored"))

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
