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

from .errors import MissingKeyError

PASSTHROUGH = "passthrough"
DEFAULT_TIMEOUT_MS = 600_000

_VAR_REF = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)\}$")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str | None = None
    context_window: int | None = None
    max_tokens: int | None = None


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

    @property
    def passthrough(self) -> bool:
        return self.name == PASSTHROUGH

    def model_info(self, model_id: str | None = None) -> ModelInfo | None:
        want = model_id or self.model
        for m in self.models:
            if m.id == want:
                return m
        return None

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
