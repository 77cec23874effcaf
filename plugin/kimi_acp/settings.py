"""The pydantic model of kimi-acp's own config section, ``plugins.entries.kimi-acp.config``.

Strict (``extra="forbid"``, ``strict=True``): a typo in our section is an error that names the
key, and a value of the wrong type is one too (``"8"`` is not a number, ``true`` is not 1).
``manifest.json``'s ``configSchema`` is generated from :class:`KimiAcpSettings`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

PermissionMode = Literal[
    "approve-all", "approve-edits", "approve-reads", "deny-all",
    "default", "acceptEdits", "plan", "bypassPermissions", "dontAsk",
]

MIN_TIMEOUT_MS = 120_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PASS_ENV_HELP = (
    "Variables of kimi-acp's own environment passed to Claude Code by name (e.g. GITHUB_TOKEN for gh), beyond "
    "what a coding agent needs (PATH, HOME, locale, proxies, ...; see docs/configuration.md). Never the "
    "variables that choose where Claude Code's requests and key go, nor kimi-acp's own secrets."
)


def _passable(names: list[str]) -> list[str]:
    """``passEnv`` may not name a variable kimi-acp sets or drops for a reason."""
    from .environment import SCRUBBED

    refused = [n for n in names if n in SCRUBBED or n.startswith("ANTHROPIC_")]
    if refused:
        raise ValueError(
            f"{', '.join(refused)} cannot be passed: kimi-acp sets the backend's own variables (its URL, key and "
            "model) and keeps its secrets from the child; remove them from passEnv"
        )
    return names


_MCP_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
ToolName = Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9_-]{1,128})$")]


def _names(v: dict[str, object], pattern: str, what: str) -> dict[str, object]:
    """Map keys that are valid names (the schema keeps plain string keys; checked here)."""
    import re

    bad = [k for k in v if not re.match(pattern, k)]
    if bad:
        raise ValueError(f"{', '.join(repr(b) for b in bad)}: not {what}")
    return v


def _mcp_names(v: dict[str, object]) -> dict[str, object]:
    return _names(v, _MCP_NAME, "an MCP server name (letters, digits, '_' and '-', at most 64; it becomes mcp__<name>__<tool>)")


class McpServerSettings(_Strict):
    """An MCP server for Claude Code: one it starts (``stdio``) or connects to (``http``, ``sse``).

    It reaches each run through ``--mcp-config`` (a 0600 file, removed when the run ends); its
    ``env`` and ``headers`` values are secrets: never in argv or logs, masked in every display."""

    type: Literal["stdio", "http", "sse"] | None = Field(
        None, description="stdio (Claude Code starts command), http (streamable HTTP) or sse; default: stdio with command, http with url."
    )
    command: str | None = Field(None, description="stdio: the program to start (a path or a command on PATH).")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments, each passed unchanged.")
    env: dict[str, SecretStr] = Field(
        default_factory=dict, description='stdio: extra environment for the server (values are secret; "${VAR}" reads kimi-acp\'s own).'
    )
    url: str | None = Field(None, description="http/sse: the server's URL (https://, or http:// on loopback).")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description='http/sse: request headers, e.g. Authorization: "Bearer ${DOCS_TOKEN}" (values are secret).'
    )
    alwaysAllow: list[ToolName] = Field(
        default_factory=list,
        description='Tools of this server Claude Code may call without asking (its --allowedTools mcp__<server>__<tool>); "*" for all. '
        "Others follow the run's permission mode.",
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return _names(v, _ENV_NAME, "a variable name")  # type: ignore[return-value]

    @field_validator("headers")
    @classmethod
    def _header_names(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return _names(v, _HEADER_NAME, "an HTTP header name")  # type: ignore[return-value]

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        kind = self.type or ("http" if self.url is not None and self.command is None else "stdio")
        if kind == "stdio":
            if not self.command or not self.command.strip():
                raise ValueError("a stdio MCP server needs command (the program Claude Code starts); "
                                 "for a server at a URL set url (and type: http or sse)")
            if self.url is not None or self.headers:
                raise ValueError("url and headers are for http/sse servers; a stdio server has command, args and env")
        else:
            if self.command is not None or self.args or self.env:
                raise ValueError(f"command, args and env are for stdio servers; an {kind} server has url and headers")
            from .mcp import url_problem

            problem = url_problem(self.url, headers=bool(self.headers))
            if problem:
                raise ValueError(problem)
        self.type = kind
        return self


class BackendSettings(_Strict):
    """A backend defined (or overridden field by field) in our section."""

    baseUrl: str | None = Field(None, description="Anthropic-compatible base URL; Claude Code appends /v1/messages (do not add /v1).")
    apiKey: SecretStr | None = Field(None, description='The key itself or a reference like "${KIMI_API_KEY}". Prefer apiKeyEnv.')
    apiKeyEnv: str | None = Field(None, description="Name of the environment variable that holds the key.")
    model: str | None = Field(None, description="Model id sent in requests (ANTHROPIC_MODEL), e.g. kimi-for-coding or k3.")
    opusModel: str | None = Field(None, description="ANTHROPIC_DEFAULT_OPUS_MODEL; defaults to model.")
    sonnetModel: str | None = Field(None, description="ANTHROPIC_DEFAULT_SONNET_MODEL; defaults to model.")
    haikuModel: str | None = Field(None, description="ANTHROPIC_DEFAULT_HAIKU_MODEL and ANTHROPIC_SMALL_FAST_MODEL; defaults to model.")
    subagentModel: str | None = Field(None, description="CLAUDE_CODE_SUBAGENT_MODEL; defaults to model.")
    contextWindow: int | None = Field(None, ge=1024, description="CLAUDE_CODE_MAX_CONTEXT_TOKENS.")
    maxTokens: int | None = Field(None, ge=1, description="CLAUDE_CODE_MAX_OUTPUT_TOKENS.")
    timeoutMs: int | None = Field(None, ge=MIN_TIMEOUT_MS, description="API_TIMEOUT_MS (at least 120000).")
    authHeader: Literal["x-api-key", "bearer"] | None = Field(
        None, description="x-api-key sets ANTHROPIC_API_KEY (Kimi); bearer sets ANTHROPIC_AUTH_TOKEN."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for the child.")
    maxConcurrent: int | None = Field(None, ge=1, description="Concurrent runs on this backend (plans rate-limit).")
    passEnv: list[EnvName] = Field(default_factory=list, description=PASS_ENV_HELP + " For runs on this backend.")

    @field_validator("passEnv")
    @classmethod
    def _pass_env(cls, v: list[str]) -> list[str]:
        return _passable(v)


class RouteSettings(_Strict):
    """Which backend an agent's spawns use, and in which permission mode Claude Code runs them."""

    backend: str | None = Field(None, description="Backend name (e.g. kimi, anthropic, passthrough); unset: the next routing rule decides.")
    model: str | None = Field(None, description="Model id on that backend; defaults to the backend's model.")
    permissionMode: PermissionMode | None = Field(
        None, description="Claude Code's permission mode for this agent's runs (default, acceptEdits, plan, bypassPermissions, dontAsk); "
        "unset: harness.permissionMode. A session's /acp set-mode wins."
    )
    passEnv: list[EnvName] = Field(default_factory=list, description=PASS_ENV_HELP + " For this agent's runs.")
    mcpServers: dict[str, McpServerSettings | None] = Field(
        default_factory=dict,
        description="MCP servers for this agent's runs, by name, on top of the section's mcpServers (the same name replaces "
        "that one; null removes it for this agent).",
    )

    @field_validator("passEnv")
    @classmethod
    def _pass_env(cls, v: list[str]) -> list[str]:
        return _passable(v)

    @field_validator("mcpServers")
    @classmethod
    def _mcp(cls, v: dict[str, McpServerSettings | None]) -> dict[str, McpServerSettings | None]:
        return _mcp_names(v)  # type: ignore[return-value]

    @model_validator(mode="after")
    def _model_needs_backend(self) -> RouteSettings:
        if self.model is not None and self.backend is None:
            raise ValueError("model is set without backend: name the backend the model belongs to (e.g. backend: kimi)")
        return self


class LimitSettings(_Strict):
    maxConcurrent: int = Field(8, ge=1, description="Runs at once over all backends (OpenClaw's default is 8).")
    backendMaxConcurrent: int = Field(2, ge=1, description="Default runs at once per backend.")
    perBackend: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, description="Per-backend overrides of backendMaxConcurrent (each at least 1)."
    )
    runTimeoutSeconds: int = Field(1800, ge=0, description="Default wall-clock limit of a run; 0 means none.")
    graceSeconds: float = Field(5.0, ge=0, le=120, description="Wait between SIGTERM and SIGKILL.")
    transcriptMaxMB: int | None = Field(
        None, ge=1, le=4096, description="A run's transcript stops (with a marker line) at this size in MB; default 64."
    )
    quotaCheckSeconds: int = Field(
        60, ge=0, le=3600,
        description="How often, at most, kimi-acp reads a backend's plan quota (Kimi's <baseUrl>/v1/usages) so that spawns wait "
        "while a window is used up instead of starting into 429s; 0: never read it (a 429's retry-after still pauses the backend).",
    )


class HarnessSettings(_Strict):
    command: str | None = Field(None, description="Path of the claude binary; default: KIMI_ACP_CLAUDE, PATH, local installs.")
    args: list[str] = Field(default_factory=list, description="Extra arguments for Claude Code.")
    permissionMode: PermissionMode = Field(
        "approve-edits",
        description="Claude Code's permission mode (default, acceptEdits, plan, bypassPermissions, dontAsk), or acpx's names: "
        "approve-all=bypassPermissions, approve-edits=acceptEdits, approve-reads=default, deny-all=dontAsk.",
    )
    allowRootBypass: bool = Field(
        False, description="Set IS_SANDBOX=1 so approve-all works as root. Only on machines that are sandboxes."
    )
    targets: list[str] = Field(
        default_factory=lambda: ["claude", "kimi-acp", "claude-kimi"],
        description="ACP agent ids (harness aliases) that kimi-acp handles.",
    )


class GatewayReportSettings(_Strict):
    url: str | None = Field(None, description="Gateway base URL, e.g. http://127.0.0.1:18789 (loopback or https).")
    path: str = Field("/hooks/agent", description="Hook path on the gateway.")
    token: SecretStr | None = Field(None, description="Hooks bearer token; default from tokenEnv.")
    tokenEnv: str = Field("OPENCLAW_HOOKS_TOKEN", description="Variable holding the hooks token.")
    deliver: bool = Field(True, description="Ask the gateway to deliver the parent's reply to its channel.")

    @field_validator("path")
    @classmethod
    def _a_path(cls, v: str) -> str:
        import re

        if (
            not v.startswith("/")
            or v.startswith("//")
            or "://" in v
            or re.search(r"[?#\\\s\x00-\x1f\x7f]", v)
            or ".." in v.split("/")
        ):
            raise ValueError(
                f"{v!r} is not a path: it must start with one '/', with no scheme, host, query, fragment, "
                "'..' or whitespace (e.g. /hooks/agent); set the gateway's address in report.gateway.url"
            )
        return v

    @field_validator("url")
    @classmethod
    def _loopback_or_https(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from .errors import ConfigError
        from .report import check_gateway_url

        try:
            return check_gateway_url(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class ReportSettings(_Strict):
    gateway: GatewayReportSettings = Field(default_factory=GatewayReportSettings)


class ExtensionSettings(_Strict):
    command: list[str] | None = Field(
        None,
        description="The kimi-acp program the OpenClaw extension runs, as an absolute argv (written by kimi-acp install).",
    )


class KimiAcpSettings(_Strict):
    """kimi-acp's section: ``plugins.entries.kimi-acp.config`` in openclaw.json."""

    defaultBackend: str | None = Field(None, description="Global default backend for ACP spawns (e.g. kimi).")
    agents: dict[str, RouteSettings] = Field(default_factory=dict, description="Per requesting agent: its spawns' backend.")
    targets: dict[str, RouteSettings] = Field(
        default_factory=dict, description="Per target ACP agent (harness alias): its default backend."
    )
    backends: dict[str, BackendSettings] = Field(default_factory=dict, description="Extra or overriding backends.")
    passEnv: list[EnvName] = Field(default_factory=list, description=PASS_ENV_HELP + " For every run.")
    mcpServers: dict[str, McpServerSettings] = Field(
        default_factory=dict,
        description="MCP servers for every run, by name (like acpx's mcpServers); agents.<id>.mcpServers and "
        "targets.<id>.mcpServers add to them per agent.",
    )
    limits: LimitSettings = Field(default_factory=LimitSettings)
    harness: HarnessSettings = Field(default_factory=HarnessSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    extension: ExtensionSettings = Field(default_factory=ExtensionSettings)

    @field_validator("passEnv")
    @classmethod
    def _pass_env(cls, v: list[str]) -> list[str]:
        return _passable(v)

    @field_validator("mcpServers")
    @classmethod
    def _mcp(cls, v: dict[str, McpServerSettings]) -> dict[str, McpServerSettings]:
        return _mcp_names(v)  # type: ignore[return-value]

    @field_validator("backends")
    @classmethod
    def _no_passthrough_override(cls, v: dict[str, BackendSettings]) -> dict[str, BackendSettings]:
        if "passthrough" in v:
            raise ValueError("'passthrough' is reserved: it means inject nothing and scrub nothing")
        return v


SENSITIVE_FIELDS = ["backends.*.apiKey", "report.gateway.token"]
