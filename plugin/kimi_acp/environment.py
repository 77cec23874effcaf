"""The child's environment: the parent's, minus everything that could redirect or
re-authenticate Claude Code, plus the backend's, plus the spawn request's ``env``,
plus what plugins add.

``passthrough`` injects nothing and scrubs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .backends import MIN_TIMEOUT_MS_DEFAULT, Backend
from .redact import mask_env

# Variables that choose where Claude Code's requests go, how they authenticate, or which model
# answers. Scrubbed from a child's environment (below), and blanked in the run's --settings
# file (harness/override.py), since settings files could set them again.
REDIRECTING = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_DEFAULT_FABLE_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_BETAS",
    "ANTHROPIC_UNIX_SOCKET",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "ANTHROPIC_VERTEX_BASE_URL",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "ANTHROPIC_FOUNDRY_BASE_URL",
    "ANTHROPIC_FOUNDRY_API_KEY",
    "AWS_BEARER_TOKEN_BEDROCK",
    "CLAUDE_CODE_SUBAGENT_MODEL",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_API_KEY_HELPER_TTL_MS",
)

# Inherited variables that could send Claude Code elsewhere or log it in as someone else.
SCRUBBED = (
    *REDIRECTING,
    "CLAUDE_CODE_MAX_CONTEXT_TOKENS",
    "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
    "CLAUDE_CODE_AUTO_COMPACT_WINDOW",
    "API_TIMEOUT_MS",
    # kimi-acp's own secrets never reach the child under their own names.
    "KIMI_API_KEY",
    "KIMICODE_API_KEY",
    "MOONSHOT_API_KEY",
    "OPENCLAW_HOOKS_TOKEN",
    "OPENCLAW_GATEWAY_TOKEN",
)


CLAUDE_CODE_MAX_OUTPUT_CAP = 128_000
"""Claude Code clamps ``CLAUDE_CODE_MAX_OUTPUT_TOKENS`` to this (measured with 2.1.332)."""


@dataclass
class ChildEnv:
    """The environment to start the harness with, and what changed."""

    env: dict[str, str]
    set: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    def masked_set(self) -> dict[str, str]:
        return mask_env(self.set)


REQUEST_FORBIDDEN = frozenset({
    "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_BEDROCK_BASE_URL", "ANTHROPIC_VERTEX_BASE_URL", "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY", "CLAUDE_CONFIG_DIR",
})
"""What a spawn request's ``env`` may not set on a non-passthrough route: where the requests
and the key go. (Model variables such as ``ANTHROPIC_MODEL`` stay the request's to choose.)"""


def backend_variables(backend: Backend, key: str, model: str | None = None) -> dict[str, str]:
    """The variables a backend sets (its key included)."""
    model = model or backend.model
    out: dict[str, str] = {}
    if backend.base_url:
        out["ANTHROPIC_BASE_URL"] = backend.base_url.rstrip("/")
    if backend.auth_header == "bearer":
        out["ANTHROPIC_AUTH_TOKEN"] = key
    else:
        # Kimi wants x-api-key; never also send a Bearer token.
        out["ANTHROPIC_API_KEY"] = key
    if model:
        out["ANTHROPIC_MODEL"] = model
        out["ANTHROPIC_DEFAULT_OPUS_MODEL"] = backend.opus_model or model
        out["ANTHROPIC_DEFAULT_SONNET_MODEL"] = backend.sonnet_model or model
        haiku = backend.haiku_model or model
        out["ANTHROPIC_DEFAULT_HAIKU_MODEL"] = haiku
        out["ANTHROPIC_SMALL_FAST_MODEL"] = haiku
        out["CLAUDE_CODE_SUBAGENT_MODEL"] = backend.subagent_model or model
    info = backend.model_info(model)
    context = (info.context_window if info and info.context_window else None) or backend.context_window
    if context:
        # Claude Code takes an unknown model's window from here (else 1,000,000: far too late
        # to compact on a 256K plan), and compacts against the auto-compact window: the model's
        # window, or OpenClaw's cap on active input (contextTokens) when the provider sets one.
        out["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] = str(context)
        cap = info.context_tokens if info and info.context_tokens else None
        out["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] = str(min(cap, context) if cap else context)
    max_output = (info.max_tokens if info and info.max_tokens else None) or backend.max_tokens
    if max_output:  # the model's output limit, up to what Claude Code allows
        out["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(min(max_output, CLAUDE_CODE_MAX_OUTPUT_CAP))
    out["API_TIMEOUT_MS"] = str(max(backend.timeout_ms or 0, MIN_TIMEOUT_MS_DEFAULT))
    out["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
    out.update(backend.quirks)
    out.update(backend.env)
    return out


def build_child_env(
    parent: Mapping[str, str],
    backend: Backend,
    *,
    key: str | None,
    model: str | None = None,
    request_env: Mapping[str, str] | None = None,
    plugin_env: Iterable[Mapping[str, str | None]] = (),
    secret_names: Iterable[str] = (),
    secret_values: Iterable[str] = (),
) -> ChildEnv:
    """Build the harness environment. ``key`` must be resolved unless ``backend`` is passthrough.

    Besides :data:`SCRUBBED`, every variable named in ``secret_names`` (the config's
    :meth:`~kimi_acp.config.Config.secret_names`: the gateway's ``tokenEnv``, every backend's
    key variables) and every variable whose value is one of ``secret_values`` (inline keys,
    the gateway token) is removed; the chosen backend's key comes back only as the variable
    Claude Code reads it from.
    """
    env = dict(parent)
    unset: list[str] = []
    changed: dict[str, str] = {}
    secrets: list[str] = []
    if not backend.passthrough:
        if key is None:
            raise ValueError("a key is needed for a non-passthrough backend")
        values = {v for v in secret_values if v} | {key}
        doomed = {*SCRUBBED, *secret_names}
        for name in list(env):
            if name in doomed or env[name] in values:
                del env[name]
                unset.append(name)
        changed.update(backend_variables(backend, key, model))
        secrets.append(key)
    for name, value in (request_env or {}).items():
        if not backend.passthrough and (name in REQUEST_FORBIDDEN or name in backend.key_variables()):
            from .errors import KimiAcpError

            # An agent's spawn (a model's words) must not point the backend's key elsewhere.
            raise KimiAcpError(
                f"the spawn request's env sets {name}, which backend '{backend.name}' owns (where its key goes); "
                "remove it from env, or configure it on the backend (plugins.entries.kimi-acp.config.backends)"
            )
        changed[name] = value
    for extra in plugin_env:
        for name, value in (extra or {}).items():
            if value is None:
                changed.pop(name, None)
                if name in env:
                    del env[name]
                    if name not in unset:
                        unset.append(name)
            else:
                changed[name] = value
    env.update(changed)
    return ChildEnv(env=env, set=changed, unset=unset, secrets=secrets)
