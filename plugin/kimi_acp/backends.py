"""Backends: where a spawned Claude Code sends its API calls.

A :class:`Backend` is resolved configuration (presets from plugins, then
``openclaw.json`` providers, then our own ``backends`` section, merged field by
field). Its key is never held here in clear: only a reference (a literal from
the file, or the names of the variables to read), resolved on demand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import MissingKeyError, UnknownNameError

PASSTHROUGH = "passthrough"
DEFAULT_TIMEOUT_MS = 600_000

_VAR_REF = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)\}$")


ONE_M_SUFFIX = "[1m]"
"""Claude Code's convention for "this model with its 1M-token window" (``k3[1m]``). kimi-acp
reads it as a model ref and never sends it as a model id: Kimi refuses ``k3[1m]``."""

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class Cost:
    """What a model costs, in USD per million tokens (OpenClaw's model ``cost``:
    ``{input, output, cacheRead, cacheWrite}``)."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    @property
    def free(self) -> bool:
        """All four prices are zero: OpenClaw's way of saying "no per-token price" (a
        membership quota, as ``kimi-for-coding``)."""
        return not (self.input or self.output or self.cache_read or self.cache_write)

    def price(self, usage: Mapping[str, Any]) -> float:
        """The USD cost of ``usage`` (Claude Code's four token counts: ``input_tokens``,
        ``output_tokens``, ``cache_read_input_tokens``, ``cache_creation_input_tokens``)."""

        def n(key: str) -> int:
            v = usage.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

        return (
            n("input_tokens") * self.input
            + n("output_tokens") * self.output
            + n("cache_read_input_tokens") * self.cache_read
            + n("cache_creation_input_tokens") * self.cache_write
        ) / PER_MILLION

    def to_json(self) -> dict[str, float]:
        return {"input": self.input, "output": self.output, "cacheRead": self.cache_read, "cacheWrite": self.cache_write}


@dataclass(frozen=True)
class ModelInfo:
    """What kimi-acp knows of one model id on a backend (a preset, or the provider's
    ``models`` in ``openclaw.json``; the file's fields win)."""

    id: str
    name: str | None = None
    context_window: int | None = None
    context_tokens: int | None = None  # OpenClaw's cap on active input, when below the window
    max_tokens: int | None = None
    cost: Cost | None = None  # None: no price known (the run's cost is not shown)
    efforts: tuple[str, ...] | None = None  # output_config.effort values it accepts; None: unknown
    max_context_window: int | None = None  # the largest window a plan may give it (k3: 1,048,576)
    images: bool | None = None  # it takes image input (OpenClaw's model "input": ["text", "image"]); None: unknown
    legacy: bool = False  # accepted and sent as is, but no longer in the provider's lineup
    one_m_ref: bool = False  # this info was made for a ``<id>[1m]`` ref (see Backend.resolve_model)

    def merged(self, other: ModelInfo) -> ModelInfo:
        """This model with ``other``'s known (non-None) fields on top."""
        clean = {k: v for k, v in other.__dict__.items() if v is not None and k not in ("id", "legacy", "one_m_ref")}
        return replace(self, **clean)


@dataclass(frozen=True)
class Backend:
    """One backend. ``passthrough`` injects nothing and scrubs nothing."""

    name: str
    base_url: str | None = None
    api_key: str | None = None  # a literal or an unresolved "${VAR}" from the file
    api_key_env: tuple[str, ...] = ()
    model: str | None = None
    opus_model: str | None = None
    sonnet_model: str | None = None
    haiku_model: str | None = None
    subagent_model: str | None = None
    models: tuple[ModelInfo, ...] = ()
    context_window: int | None = None
    max_tokens: int | None = None
    timeout_ms: int | None = None
    auth_header: str = "x-api-key"
    env: Mapping[str, str] = field(default_factory=dict)
    max_concurrent: int | None = None
    quirks: Mapping[str, str] = field(default_factory=dict)  # extra env the preset always sets
    sources: tuple[str, ...] = ()
    probe_user_agent: str = "claude-cli/2.1.332 (external, cli)"
    # Other provider ids that name this backend in a model ref (OpenClaw's Kimi plugin owns
    # kimi, kimi-code and kimi-coding: all three are the Kimi backend).
    provider_aliases: tuple[str, ...] = ()
    # Legacy model ids and the id sent instead (Kimi: kimi-code, k2p5 -> kimi-for-coding).
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    # Model ids that belong to another provider: refused with the message given.
    foreign_models: Mapping[str, str] = field(default_factory=dict)
    # Where the backend answers its plan's quota windows (Kimi: <base>/v1/usages); None: unknown.
    quota_path: str | None = None

    @property
    def passthrough(self) -> bool:
        return self.name == PASSTHROUGH

    def model_info(self, model_id: str | None = None) -> ModelInfo | None:
        want = model_id or self.model
        for m in self.models:
            if m.id == want:
                return m
        return None

    def names(self) -> tuple[str, ...]:
        """Every provider id a model ref may use for this backend."""
        return (self.name, *self.provider_aliases)

    def resolve_model(self, requested: str | None = None) -> tuple[Backend, str | None]:
        """The model id to send for ``requested`` (default: the backend's model), and this
        backend as that model runs on it.

        Legacy ids become the id the provider serves (``k2p5`` -> ``kimi-for-coding``);
        ``<id>[1m]`` (Claude Code's convention) becomes ``<id>`` with the model's largest
        window, on a copy of the backend, and only for a model that has one (a ``[1m]``
        on a backend that knows no such model is left as written: Claude Code reads it);
        an id of another provider is an :class:`UnknownNameError` naming what to use.
        """
        want = (requested or self.model or "").strip()
        if not want:
            return self, None
        one_m = want.lower().endswith(ONE_M_SUFFIX)
        base = want[: -len(ONE_M_SUFFIX)] if one_m else want
        aliases = {k.lower(): v for k, v in self.model_aliases.items()}
        wire = aliases.get(base.lower(), base)
        known = self.model_info(wire)
        foreign = {k.lower(): v for k, v in self.foreign_models.items()}.get(wire.lower())
        if foreign and known is None:
            raise UnknownNameError(f"model '{want}' on backend '{self.name}': {foreign}")
        if not one_m:
            return self, wire
        if known is None or not known.max_context_window:
            if not any(m.max_context_window for m in self.models):
                return self, want  # not a backend kimi-acp knows windows of: Claude Code's own convention
            long = [m.id for m in self.models if m.max_context_window]
            raise UnknownNameError(
                f"model '{want}' on backend '{self.name}': {wire} has no larger window to ask for "
                f"(a [1m] ref works for: {', '.join(long)})"
            )
        big = replace(known, context_window=known.max_context_window, one_m_ref=True)
        return replace(self, models=tuple(big if m.id == wire else m for m in self.models)), wire

    def with_models(self, models: tuple[ModelInfo, ...]) -> Backend:
        """A copy whose models are this backend's, each updated by the same id in ``models``
        (the file's fields win), followed by the ones it did not know."""
        by_id = {m.id: m for m in models}
        merged = [m.merged(by_id.pop(m.id)) if m.id in by_id else m for m in self.models]
        return replace(self, models=(*merged, *by_id.values()))

    def key_variables(self) -> list[str]:
        """The variable names this backend's key can come from, in order."""
        names = []
        if self.api_key:
            m = _VAR_REF.match(self.api_key)
            if m:
                names.append(m.group(1))
        names.extend(n for n in self.api_key_env if n not in names)
        return names

    def resolve_key(self, environ: Mapping[str, str]) -> str:
        """The backend's API key, or :class:`MissingKeyError` naming the variable to set."""
        if self.api_key and not _VAR_REF.match(self.api_key):
            return self.api_key
        ref = _VAR_REF.match(self.api_key) if self.api_key else None
        if ref:  # the config names the variable: that one, and no silent fallback to another key
            value = environ.get(ref.group(1))
            if value:
                return value
            others = [n for n in self.api_key_env if n != ref.group(1)]
            also = f"; kimi-acp does not fall back to {', '.join(others)}" if others else ""
            raise MissingKeyError(
                f"no API key for backend '{self.name}': its apiKey is \"${{{ref.group(1)}}}\" and "
                f"{ref.group(1)} is not set; set {ref.group(1)}{also}",
                hint=f"export {ref.group(1)}=<your key>",
            )
        for name in self.key_variables():
            value = environ.get(name)
            if value:
                return value
        names = self.key_variables()
        if names:
            hint = f"set {names[0]}" + (f" (or {', '.join(names[1:])})" if names[1:] else "")
        else:
            hint = f'set plugins.entries.kimi-acp.config.backends.{self.name}.apiKeyEnv to the variable holding it'
        raise MissingKeyError(f"no API key for backend '{self.name}': {hint}",
                              hint=f"export {names[0]}=<your key>" if names else hint)

    def merged(self, **changes: Any) -> Backend:
        """A copy with the non-None ``changes`` applied."""
        clean = {k: v for k, v in changes.items() if v is not None}
        if "env" in clean:
            clean["env"] = {**self.env, **clean["env"]}
        if "sources" in clean:
            clean["sources"] = (*self.sources, *clean["sources"])
        return replace(self, **clean)


PASSTHROUGH_BACKEND = Backend(name=PASSTHROUGH, sources=("built-in",))

MIN_TIMEOUT_MS_DEFAULT = 120_000
"""Kimi needs at least 120 s per request; thinking turns run long."""
