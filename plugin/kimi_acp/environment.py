"""The child's environment.

On a backend other than ``passthrough`` it is an allowlist (sudo's ``env_reset``, widened for a
coding agent): only what Claude Code and the tools it runs need (:data:`INHERITED`,
:data:`INHERITED_PREFIXES`), what the config passes by name (``passEnv``), then the backend's
variables, the spawn request's ``env`` (never a variable that could point the key elsewhere:
:func:`request_env_refusal`) and what plugins add. Nothing else of the gateway's environment —
other providers' keys, channel bot tokens — reaches a run.

``passthrough`` injects nothing and drops nothing (the request's ``env`` is checked there too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .backends import MIN_TIMEOUT_MS_DEFAULT, Backend
from .redact import is_secret_name, mask_env

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
    # thinking is the spawn's (its level, mapped onto the model's efforts), not the gateway's
    "CLAUDE_CODE_DISABLE_THINKING",
    "CLAUDE_CODE_EFFORT_LEVEL",
    "MAX_THINKING_TOKENS",
    # kimi-acp's own secrets never reach the child under their own names.
    "KIMI_API_KEY",
    "KIMICODE_API_KEY",
    "MOONSHOT_API_KEY",
    "OPENCLAW_HOOKS_TOKEN",
    "OPENCLAW_GATEWAY_TOKEN",
)


CLAUDE_CODE_MAX_OUTPUT_CAP = 128_000
"""Claude Code clamps ``CLAUDE_CODE_MAX_OUTPUT_TOKENS`` to this (measured with 2.1.332)."""


# --------------------------------------------------------------------------- the allowlist

_LOCALE = "the locale (language, encodings)"
_TERMINAL = "the terminal type (tools' output)"
_TEMP = "temporary files"
_XDG = "where tools keep their config, caches and sockets"
_PROXY = "a proxy the gateway's operator set (kimi-acp's own environment, never a request)"
_CA = "TLS certificates the gateway's operator trusts (e.g. a company proxy's)"
_CLAUDE = "a Claude Code setting (not one that chooses a provider, key or model)"
_TOOLCHAIN = "where a toolchain is installed"

#: Inherited by name on a non-passthrough route, with why (``kimi-acp env`` shows it).
INHERITED: dict[str, str] = {
    "PATH": "where programs are",
    "HOME": "the user's home (Claude Code's own files, tools' config)",
    "USER": "the user's name",
    "LOGNAME": "the user's name",
    "SHELL": "the shell Claude Code's Bash tool runs",
    "LANG": _LOCALE,
    "LANGUAGE": _LOCALE,
    "TZ": "the time zone",
    "TERM": _TERMINAL,
    "COLORTERM": _TERMINAL,
    "TERMINFO": _TERMINAL,
    "TERMINFO_DIRS": _TERMINAL,
    "NO_COLOR": _TERMINAL,
    "TMPDIR": _TEMP,
    "TMP": _TEMP,
    "TEMP": _TEMP,
    "XDG_RUNTIME_DIR": _XDG,
    "XDG_CONFIG_HOME": _XDG,
    "XDG_CACHE_HOME": _XDG,
    "XDG_DATA_HOME": _XDG,
    "XDG_STATE_HOME": _XDG,
    "XDG_CONFIG_DIRS": _XDG,
    "XDG_DATA_DIRS": _XDG,
    **{name: _PROXY for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") for name in (base, base.lower())},
    "NODE_EXTRA_CA_CERTS": _CA,
    "SSL_CERT_FILE": _CA,
    "SSL_CERT_DIR": _CA,
    "REQUESTS_CA_BUNDLE": _CA,
    "CURL_CA_BUNDLE": _CA,
    "GIT_SSL_CAINFO": _CA,
    "GIT_SSL_CAPATH": _CA,
    "PIP_CERT": _CA,
    "NIX_SSL_CERT_FILE": _CA,
    "CARGO_HTTP_CAINFO": _CA,
    "IS_SANDBOX": "lets Claude Code's bypassPermissions run as root (the operator's choice)",
    "CLAUDE_CONFIG_DIR": "where Claude Code keeps its user settings",
    "MCP_TIMEOUT": _CLAUDE,
    "MCP_TOOL_TIMEOUT": _CLAUDE,
    "MAX_MCP_OUTPUT_TOKENS": _CLAUDE,
    "BASH_DEFAULT_TIMEOUT_MS": _CLAUDE,
    "BASH_MAX_TIMEOUT_MS": _CLAUDE,
    "BASH_MAX_OUTPUT_LENGTH": _CLAUDE,
    "USE_BUILTIN_RIPGREP": _CLAUDE,
    **{name: _TOOLCHAIN for name in (
        "JAVA_HOME", "GOPATH", "GOROOT", "GOBIN", "GOCACHE", "GOMODCACHE", "CARGO_HOME", "RUSTUP_HOME",
        "PYENV_ROOT", "VIRTUAL_ENV", "CONDA_PREFIX", "PIPX_HOME", "PIPX_BIN_DIR", "NVM_DIR", "NVM_BIN",
        "PNPM_HOME", "BUN_INSTALL", "DENO_DIR", "VOLTA_HOME", "ASDF_DIR", "ASDF_DATA_DIR", "GEM_HOME",
        "GEM_PATH", "DOTNET_ROOT", "ANDROID_HOME", "ANDROID_SDK_ROOT",
    )},
}

#: Inherited by prefix (names that end like a secret — ``_TOKEN``, ``_KEY`` … — excepted).
INHERITED_PREFIXES: dict[str, str] = {
    "LC_": _LOCALE,
    "KIMI_ACP_": "kimi-acp's own",
    "CLAUDE_CODE_": _CLAUDE,
    "DISABLE_": "a Claude Code switch (DISABLE_TELEMETRY, DISABLE_AUTOUPDATER, ...)",
}


def inherited_reason(name: str) -> str | None:
    """Why a variable of the parent is passed to a non-passthrough child (``None``: it is not,
    unless the config names it in ``passEnv``)."""
    why = INHERITED.get(name)
    if why is not None:
        return why
    for prefix, why in INHERITED_PREFIXES.items():
        if name.startswith(prefix) and not is_secret_name(name) and name not in SCRUBBED:
            return why
    return None


# --------------------------------------------------------------------------- what a request may not set

#: TLS switches and certificate stores: a request could make Claude Code trust an interceptor.
TLS_VARIABLES = frozenset({
    "NODE_TLS_REJECT_UNAUTHORIZED", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_NO_VERIFY", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
})


REQUEST_FORBIDDEN = frozenset({*REDIRECTING, *(n for n in SCRUBBED if is_secret_name(n)), "CLAUDE_CONFIG_DIR"})
"""Names a spawn request's ``env`` may not set (besides the families of
:func:`request_env_refusal`): where the requests and the key go, which model answers, kimi-acp's
secrets, and where Claude Code's user settings are."""


def request_env_refusal(name: str, backend: Backend | None = None) -> str | None:
    """Why a spawn request's ``env`` may not set ``name``, or ``None`` when it may.

    A request's env comes from an agent (a model's words) or an ACP client, not from the
    gateway's operator: it must not choose where Claude Code's requests (and the key in them)
    go, what they trust, or what code runs inside Claude Code. Checked on every route."""
    up = name.upper()
    if up.endswith("_PROXY"):
        return "a proxy sees every request to the backend, the key included"
    if up in TLS_VARIABLES or "CA_BUNDLE" in up:
        return "it changes which TLS certificates are trusted (an interceptor could read the key)"
    if up.startswith("NODE_"):
        return "NODE_* options change how Claude Code runs (preloaded code, TLS)"
    if up.startswith(("LD_", "DYLD_")):
        return "it loads code into Claude Code's process"
    if up.startswith("BUN_"):
        return "Bun's own switches (Claude Code is a Bun program) can log or redirect its requests"
    if up == "PATH":
        return "it chooses which programs run, Claude Code itself included"
    if up.startswith("ANTHROPIC_") or name in REDIRECTING or name in REQUEST_FORBIDDEN \
            or (backend is not None and name in backend.key_variables()):
        return "it chooses where Claude Code's requests and the key go, or which model answers"
    return None


@dataclass
class ChildEnv:
    """The environment to start the harness with, and what changed.

    ``set``: what kimi-acp (the backend, the request, plugins) set; ``unset``: the parent's
    variables the child does not get; ``passed``: the parent's variables it does get, each with
    why (empty on passthrough, where everything is inherited)."""

    env: dict[str, str]
    set: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    passed: dict[str, str] = field(default_factory=dict)

    def masked_set(self) -> dict[str, str]:
        return mask_env(self.set)


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


def check_request_env(request_env: Mapping[str, str] | None, backend: Backend | None = None) -> None:
    """Refuse a spawn request's ``env`` that sets a variable of :func:`request_env_refusal`:
    a :class:`~kimi_acp.errors.RequestEnvError`, one line naming the variable and why."""
    for name in request_env or {}:
        why = request_env_refusal(name, backend)
        if why is not None:
            from .errors import RequestEnvError

            raise RequestEnvError(
                f"the spawn request's env sets {name}, which a request may not set: {why}; fix: remove {name} from the "
                "request's env (kimi-acp passes on the proxy and certificate settings of its own environment; "
                "other variables by name with passEnv in plugins.entries.kimi-acp.config)"
            )


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
    pass_names: Mapping[str, str] | None = None,
) -> ChildEnv:
    """Build the harness environment. ``key`` must be resolved unless ``backend`` is passthrough.

    On a non-passthrough backend the parent's variables are kept only when
    :func:`inherited_reason` or ``pass_names`` (name -> where the config passes it, from
    :meth:`~kimi_acp.config.Config.pass_env`) allow them; even then :data:`SCRUBBED`, every
    variable named in ``secret_names`` (the config's
    :meth:`~kimi_acp.config.Config.secret_names`: the gateway's ``tokenEnv``, every backend's
    key variables) and every variable whose value is one of ``secret_values`` (inline keys,
    the gateway token) is dropped; the chosen backend's key comes back only as the variable
    Claude Code reads it from. ``request_env`` is checked first (:func:`check_request_env`).
    """
    check_request_env(request_env, backend)
    env = dict(parent)
    unset: list[str] = []
    changed: dict[str, str] = {}
    secrets: list[str] = []
    passed: dict[str, str] = {}
    if not backend.passthrough:
        if key is None:
            raise ValueError("a key is needed for a non-passthrough backend")
        values = {v for v in secret_values if v} | {key}
        doomed = {*SCRUBBED, *secret_names}
        by_config = pass_names or {}
        for name in list(env):
            why = by_config.get(name) or inherited_reason(name)
            if why is None or name in doomed or env[name] in values:
                del env[name]
                unset.append(name)
            else:
                passed[name] = why
        changed.update(backend_variables(backend, key, model))
        secrets.append(key)
    for name, value in (request_env or {}).items():
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
    for name in changed:
        passed.pop(name, None)  # set by kimi-acp, not inherited
    return ChildEnv(env=env, set=changed, unset=unset, secrets=secrets, passed=passed)
