"""Reading the user's ``openclaw.json``: one source of truth.

JSON5 (comments, trailing commas), ``${VAR}`` substitution as OpenClaw does it
(uppercase names; ``$${VAR}`` is a literal ``${VAR}``), OpenClaw's own sections
read tolerantly, our section (``plugins.entries.kimi-acp.config``) strictly.
Every error names the file and the JSON path, and the line and column where
they are known.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import PASSTHROUGH, PASSTHROUGH_BACKEND, Backend, Cost, ModelInfo
from .errors import ConfigError, KimiAcpError, UnknownNameError

PLUGIN_ID = "kimi-acp"
SECTION_PATH = ("plugins", "entries", PLUGIN_ID, "config")
SECTION = ".".join(SECTION_PATH)

_SUBST = re.compile(r"\$(\$?)\{([A-Z_][A-Z0-9_]*)\}")


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    explicit = env.get("OPENCLAW_CONFIG_PATH")
    if explicit:
        return Path(explicit).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".openclaw" / "openclaw.json"


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


_TOKENS = {"comma": "','", "colon": "':'", "bracket": "']'", "brace": "'}'"}


def parse_json5(text: str, path: Path | str) -> Any:
    """Parse JSON5 text; a syntax error names the file, line and column."""
    import pyjson5

    try:
        return pyjson5.decode(text)
    except pyjson5.Json5Exception as exc:
        msg = str(exc.args[0]) if exc.args else str(exc)
        m = re.search(r"near (\d+)", msg)
        # pyjson5 reports the offset in characters read, just past the bad token.
        where = ""
        if m:
            line, col = line_col(text, max(0, int(m.group(1)) - 1))
            where = f":{line}:{col}"
            msg = msg[: m.start()].rstrip(" ,")
        msg = re.sub(r"^Stray b'(\w+)'", lambda t: f"unexpected {_TOKENS.get(t.group(1), t.group(1))}", msg)
        msg = re.sub(r"b'([^']*)'", r"'\1'", msg)
        raise ConfigError(f"{path}{where}: JSON5 syntax error: {msg}") from None


def substitute(value: Any, environ: Mapping[str, str], missing: set[str]) -> Any:
    """Replace ``${VAR}`` in every string; unknown variables stay as written (and are noted)."""
    if isinstance(value, str):
        if "$" not in value:
            return value

        def repl(m: re.Match[str]) -> str:
            if m.group(1):  # $${VAR} -> ${VAR}
                return "${" + m.group(2) + "}"
            name = m.group(2)
            if name in environ:
                return environ[name]
            missing.add(name)
            return m.group(0)

        return _SUBST.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute(v, environ, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, environ, missing) for v in value]
    return value


def find_key_line(text: str, path: Iterable[str | int]) -> int | None:
    """Best-effort line of a JSON path in the source: each key searched after the previous one."""
    pos = 0
    found = None
    for part in path:
        if isinstance(part, int):
            continue
        m = re.compile(r"""(?<![\w$-])(["']?)""" + re.escape(str(part)) + r"""\1\s*:""").search(text, pos)
        if not m:
            return found
        pos = m.end()
        found = text.count("\n", 0, m.start()) + 1
    return found


@dataclass(frozen=True)
class AgentInfo:
    """What kimi-acp reads of an OpenClaw agent entry."""

    id: str
    model: str | None = None
    subagent_model: str | None = None
    acp_agent: str | None = None
    runtime_type: str | None = None


@dataclass
class Config:
    path: Path
    exists: bool
    text: str
    data: dict[str, Any]
    settings: Any  # KimiAcpSettings
    backends: dict[str, Backend]
    aliases: dict[str, str]  # lower-cased alias -> "provider/model"
    agents: dict[str, AgentInfo]
    alias_names: dict[str, str] = field(default_factory=dict)  # lower-cased alias -> as written
    default_subagent_model: str | None = None
    missing_vars: set[str] = field(default_factory=set)
    environ: Mapping[str, str] = field(default_factory=dict)
    #: ``(st_mtime_ns, st_size, st_ino)`` of the file when it was read (``None``: no file);
    #: :func:`refresh_config` reloads only when it changes.
    signature: tuple[int, int, int] | None = None
    #: The signature of a later version :func:`refresh_config` could not use (said once).
    rejected: tuple[int, int, int] | None = field(default=None, compare=False)

    def where(self, *path: str | int) -> str:
        """``file:line`` (when known) for messages about a JSON path."""
        line = find_key_line(self.text, path) if self.text else None
        return f"{self.path}:{line}" if line else str(self.path)

    def error(self, path: Iterable[str | int], message: str, cls: type[ConfigError] = ConfigError) -> ConfigError:
        parts = list(path)
        dotted = ".".join(str(p) for p in parts)
        return cls(f"{self.where(*parts)}: {dotted}: {message}")

    def backend(self, name: str) -> Backend:
        if name == PASSTHROUGH:
            return PASSTHROUGH_BACKEND
        try:
            return self.backends[name]
        except KeyError:
            raise UnknownNameError(f"unknown backend '{name}' (known: {self.known_backends()})") from None

    def backend_caps(self) -> dict[str, int]:
        """Runs at once per backend: the backends' own ``maxConcurrent``, then ``limits.perBackend``."""
        caps = {n: b.max_concurrent for n, b in self.backends.items() if b.max_concurrent}
        caps.update(self.settings.limits.perBackend)
        return caps

    def secret_names(self) -> list[str]:
        """Every variable kimi-acp reads a secret from: the gateway's ``tokenEnv`` and every
        backend's key variables (they are scrubbed from every child's environment)."""
        names = [self.settings.report.gateway.tokenEnv]
        for b in self.backends.values():
            names.extend(b.key_variables())
        return list(dict.fromkeys(n for n in names if n))

    def secret_values(self) -> list[str]:
        """Every secret value kimi-acp knows: inline backend keys (``${VAR}`` already
        substituted), the inline gateway token, and the values of :meth:`secret_names`
        in the environment. A parent variable holding one of them is scrubbed, whatever
        its name."""
        values: list[str] = []
        for b in self.backends.values():
            if b.api_key and not b.api_key.startswith("${"):
                values.append(b.api_key)
        token = self.settings.report.gateway.token
        if token is not None:
            values.append(token.get_secret_value())
        values.extend(self.environ.get(n, "") for n in self.secret_names())
        return list(dict.fromkeys(v for v in values if v and len(v) >= 6))

    def known_backends(self) -> str:
        return ", ".join([*self.backends, PASSTHROUGH])

    def pass_env(self, *, backend: str | None = None, requester: str | None = None,
                 target: str | None = None) -> dict[str, str]:
        """The variables the config passes to a run's child by name (``passEnv``), each with
        where it is configured: the section's own, the backend's, the requesting agent's and
        the target agent's (see :func:`kimi_acp.environment.build_child_env`)."""
        settings = self.settings
        out: dict[str, str] = {}
        sources = [(f"{SECTION}.passEnv", getattr(settings, "passEnv", None))]
        for kind, name in (("backends", backend), ("agents", requester), ("targets", target)):
            entry = getattr(settings, kind, {}).get(name) if name else None
            if entry is not None:
                sources.append((f"{SECTION}.{kind}.{name}.passEnv", getattr(entry, "passEnv", None)))
        for where, names in sources:
            for var in names or ():
                out.setdefault(var, f"passed by name ({where})")
        return out

    @property
    def kimi_section_present(self) -> bool:
        return _dig(self.data, SECTION_PATH) is not None


def _dig(data: Any, path: Iterable[str]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _as_str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _as_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _key_ref(v: Any) -> tuple[str | None, tuple[str, ...]]:
    """An OpenClaw apiKey: a string (maybe "${VAR}") or a SecretRef {source: env, id}."""
    if isinstance(v, str):
        return v or None, ()
    if isinstance(v, dict) and v.get("source") == "env" and isinstance(v.get("id"), str):
        return None, (v["id"],)
    return None, ()


def _as_price(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None


def _cost(v: Any) -> Cost | None:
    """OpenClaw's model ``cost`` (USD per million tokens), or None when absent or not numbers."""
    if not isinstance(v, dict):
        return None
    prices = {k: _as_price(v.get(k)) for k in ("input", "output", "cacheRead", "cacheWrite")}
    if all(p is None for p in prices.values()):
        return None
    return Cost(input=prices["input"] or 0.0, output=prices["output"] or 0.0,
                cache_read=prices["cacheRead"] or 0.0, cache_write=prices["cacheWrite"] or 0.0)


def _model_infos(models: Any) -> tuple[ModelInfo, ...]:
    """A provider's ``models`` rows: ``contextWindow`` is the model's window (with
    ``contextTokens``, OpenClaw's cap on active input, when only that is given), ``maxTokens``
    its output limit, ``cost`` its prices, ``input`` whether it takes images (``["text", "image"]``)."""
    out = []
    if isinstance(models, list):
        for m in models:
            if isinstance(m, dict) and _as_str(m.get("id")):
                window = _as_int(m.get("contextWindow"))
                cap = _as_int(m.get("contextTokens"))
                out.append(
                    ModelInfo(
                        id=m["id"],
                        name=_as_str(m.get("name")),
                        context_window=window or cap,
                        context_tokens=cap if window and cap and cap < window else None,
                        max_tokens=_as_int(m.get("maxTokens")),
                        cost=_cost(m.get("cost")),
                        images=("image" in m["input"]) if isinstance(m.get("input"), list) else None,
                    )
                )
    return tuple(out)


def _is_kimi_provider(name: str, base_url: str | None) -> bool:
    """A provider of Kimi's coding endpoint: one of the provider ids of OpenClaw's Kimi plugin
    (``kimi``, ``kimi-code``, ``kimi-coding``), or its URL on api.kimi.com."""
    if name in ("kimi", "kimi-code", "kimi-coding"):
        return True
    return bool(base_url) and base_url.split("://", 1)[-1].split("/", 1)[0].lower() == "api.kimi.com"


def _file_backends(data: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(name, fields, source) for each Anthropic-compatible provider in the file."""
    found: list[tuple[str, dict[str, Any], str]] = []
    providers = _dig(data, ("models", "providers"))
    if isinstance(providers, dict):
        for pid, p in providers.items():
            if not isinstance(p, dict) or p.get("api") != "anthropic-messages":
                continue
            key, key_env = _key_ref(p.get("apiKey"))
            models = _model_infos(p.get("models"))
            first = models[0] if models else None
            timeout = _as_int(p.get("timeoutSeconds"))
            found.append(
                (
                    pid,
                    dict(
                        base_url=_as_str(p.get("baseUrl")),
                        api_key=key,
                        api_key_env=key_env or None,
                        models=models or None,
                        model=first.id if first else None,
                        context_window=first.context_window if first else None,
                        max_tokens=_as_int(p.get("maxTokens")),  # the provider's own; its models' in ModelInfo
                        timeout_ms=timeout * 1000 if timeout else None,
                    ),
                    f"models.providers.{pid}",
                )
            )
    seed = data.get("providers")
    if isinstance(seed, list):
        for i, p in enumerate(seed):
            if isinstance(p, dict) and _as_str(p.get("id")) and p.get("type") == "anthropic":
                key, key_env = _key_ref(p.get("apiKey"))
                found.append(
                    (
                        p["id"],
                        dict(base_url=_as_str(p.get("baseUrl")), api_key=key, api_key_env=key_env or None),
                        f"providers[{i}]",
                    )
                )
    return found


def _aliases(data: dict[str, Any], backends: Mapping[str, Backend]) -> tuple[dict[str, str], dict[str, str]]:
    """(lower-cased alias -> model ref, lower-cased alias -> the alias as written)."""
    aliases: dict[str, str] = {}
    names: dict[str, str] = {}

    def add(alias: str, ref: str, *, override: bool = True) -> None:
        if override or alias.lower() not in aliases:
            aliases[alias.lower()] = ref
            names[alias.lower()] = alias

    for b in backends.values():
        for m in b.models:
            if m.name:
                add(m.name, f"{b.name}/{m.id}", override=False)
    tables = [_dig(data, ("agents", "defaults", "models")), data.get("models")]
    for table in tables:
        if not isinstance(table, dict):
            continue
        for ref, spec in table.items():
            if "/" not in ref:
                continue
            if isinstance(spec, dict):
                alias = spec.get("alias")
                if isinstance(alias, str) and alias:
                    add(alias, ref)
                elif isinstance(alias, list):
                    for a in alias:
                        if isinstance(a, str) and a:
                            add(a, ref)
    return aliases, names


def _model_ref(v: Any) -> str | None:
    if isinstance(v, str):
        return v or None
    if isinstance(v, dict):
        return _as_str(v.get("primary"))
    return None


def _agents(data: dict[str, Any]) -> dict[str, AgentInfo]:
    agents: dict[str, AgentInfo] = {}

    def add(aid: str, entry: dict[str, Any]) -> None:
        runtime = entry.get("runtime") if isinstance(entry.get("runtime"), dict) else {}
        acp = runtime.get("acp") if isinstance(runtime.get("acp"), dict) else {}
        sub = entry.get("subagents") if isinstance(entry.get("subagents"), dict) else {}
        agents[aid] = AgentInfo(
            id=aid,
            model=_model_ref(entry.get("model")),
            subagent_model=_model_ref(sub.get("model")),
            acp_agent=_as_str(acp.get("agent")),
            runtime_type=_as_str(runtime.get("type")),
        )

    legacy = _dig(data, ("agents", "list"))
    if isinstance(legacy, list):
        for entry in legacy:
            if isinstance(entry, dict) and _as_str(entry.get("id")):
                add(entry["id"], entry)
    entries = _dig(data, ("agents", "entries"))
    if isinstance(entries, dict):
        for aid, entry in entries.items():
            if isinstance(entry, dict):
                add(aid, entry)
    return agents


def _validation_error(exc: Any, path: Path, text: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = [*SECTION_PATH, *[str(p) for p in err["loc"]]]
        line = find_key_line(text, loc)
        where = f"{path}:{line}" if line else str(path)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of kimi-acp's config; see docs/configuration.md)"
        lines.append(f"{where}: {'.'.join(loc)}: {msg}")
    return ConfigError("\n".join(lines))


_SECRET = "\u0000secret"


class _View(dict):  # type: ignore[type-arg]
    """Attribute access over validated settings (the cached fast path; see validate_settings)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Secret(str):
    def get_secret_value(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return "Secret('**********')"


def _settings_fingerprint(section: dict[str, Any]) -> str:
    import hashlib
    import json

    model_src = (Path(__file__).parent / "settings.py").read_bytes()
    h = hashlib.sha256(model_src)
    h.update(json.dumps(section, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _rebuild(dump: Any, raw: Any) -> Any:
    """The cached dump, with secrets put back from the live section, as attribute views."""
    if isinstance(dump, dict):
        raw = raw if isinstance(raw, dict) else {}
        return _View({k: _rebuild(v, raw.get(k)) for k, v in dump.items()})
    if isinstance(dump, list):
        return [_rebuild(v, None) for v in dump]
    if dump == _SECRET:
        return _Secret(raw) if isinstance(raw, str) else raw
    return dump


def _strip_secrets(obj: Any) -> Any:
    """The dump without secrets: SecretStr fields, and any value under a secret-looking name
    (``env: {GLM_TOKEN: ...}``), become a marker that :func:`_rebuild` fills from the live file."""
    from pydantic import SecretStr

    from .redact import is_secret_name

    if isinstance(obj, dict):
        return {k: _SECRET if isinstance(v, str) and is_secret_name(k) else _strip_secrets(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strip_secrets(v) for v in obj]
    if isinstance(obj, SecretStr):
        return _SECRET
    return obj


def validate_settings(section: dict[str, Any], path: Path, text: str, environ: Mapping[str, str]) -> Any:
    """Validate our section with pydantic (strict).

    Importing pydantic and building the models costs ~100 ms, more than the rest of
    ``kimi-acp env``. A section that validated before (same content, same model source)
    is taken from a small cache in the state dir: its validated form with the secrets
    left out (they are put back from the live section). The cache holds no secret.
    """
    import json

    cache = None
    fingerprint = _settings_fingerprint(section)
    if not environ.get("KIMI_ACP_NO_SETTINGS_CACHE"):
        from .sessions import read_cache, state_dir

        cache = state_dir(dict(environ)) / "settings-cache.json"
        cached = read_cache(cache)  # None unless the dir and the file are the user's own (see sessions.py)
        try:
            if isinstance(cached, dict) and cached.get("fingerprint") == fingerprint:
                return _rebuild(cached["settings"], section)
        except (KeyError, AttributeError):
            pass

    from pydantic import ValidationError

    from .settings import KimiAcpSettings

    try:
        settings = KimiAcpSettings.model_validate(section)
    except ValidationError as exc:
        raise _validation_error(exc, path, text) from None
    if cache is not None:
        from .sessions import write_cache

        write_cache(cache, {"fingerprint": fingerprint, "settings": _strip_secrets(settings.model_dump())})
    return settings


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    presets: Iterable[Backend] | None = None,
) -> Config:
    """Load and validate the config. ``presets`` default to the plugins' registered backends."""
    env = dict(os.environ if environ is None else environ)
    explicit = path is not None
    cfg_path = Path(path).expanduser() if explicit else default_config_path(env)
    text = ""
    data: dict[str, Any] = {}
    signature = config_signature(cfg_path)  # before reading: a write in between is seen next time
    exists = cfg_path.exists()
    if exists:
        try:
            text = cfg_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_path}: cannot read: {exc}") from None
        raw = parse_json5(text, cfg_path) if text.strip() else {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{cfg_path}:1:1: the top level must be an object, not {type(raw).__name__}")
        data = raw
    elif explicit:
        raise ConfigError(f"{cfg_path}: no such file (pass an existing openclaw.json or drop --config)")

    missing: set[str] = set()
    data = substitute(data, env, missing)

    section = _dig(data, SECTION_PATH)
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"{cfg_path}: {SECTION}: must be an object")
    settings = validate_settings(section or {}, cfg_path, text, env)

    if presets is None:
        from .plugins import registered_backends

        presets = registered_backends()
    backends: dict[str, Backend] = {b.name: b for b in presets}
    url_from: dict[str, tuple[str, ...]] = {}  # backend -> the JSON path its baseUrl came from
    for name, fields, source in _file_backends(data):
        base = backends.get(name)
        if base is None and "kimi" in backends and _is_kimi_provider(name, fields.get("base_url")):
            # Another provider of Kimi Code (an older kimi-acp install wrote `kimi-code`; a user may
            # name theirs `kimi-coding`): the Kimi preset (lineup, windows, prices, quirks) under its name.
            base = backends["kimi"].merged(name=name, provider_aliases=())
        models = fields.pop("models", None)
        if base is not None and base.models:
            # A preset's provider in the file: its rows update the preset's models by id (a row's
            # contextWindow, maxTokens and cost win); the preset keeps its default model and window.
            fields.pop("model", None)
            fields.pop("context_window", None)
            if models:
                base = base.with_models(models)
        elif models:
            fields["models"] = models
        backends[name] = (base or Backend(name=name)).merged(**fields, sources=(f"{cfg_path.name} {source}",))
        if fields.get("base_url"):
            url_from[name] = _source_path(source)
    for name, bs in settings.backends.items():
        if bs.baseUrl:
            url_from[name] = (*SECTION_PATH, "backends", name, "baseUrl")
        base = backends.get(name, Backend(name=name))
        backends[name] = base.merged(
            base_url=bs.baseUrl,
            api_key=bs.apiKey.get_secret_value() if bs.apiKey else None,
            api_key_env=(bs.apiKeyEnv,) if bs.apiKeyEnv else None,
            model=bs.model,
            opus_model=bs.opusModel,
            sonnet_model=bs.sonnetModel,
            haiku_model=bs.haikuModel,
            subagent_model=bs.subagentModel,
            context_window=bs.contextWindow,
            max_tokens=bs.maxTokens,
            timeout_ms=bs.timeoutMs,
            auth_header=bs.authHeader,
            env=bs.env or None,
            max_concurrent=bs.maxConcurrent,
            sources=(f"{cfg_path.name} {SECTION}.backends.{name}",),
        )
    for name, b in backends.items():
        if not b.passthrough and not b.base_url:
            raise ConfigError(
                f"{cfg_path}: backend '{name}' has no base URL: set {SECTION}.backends.{name}.baseUrl"
            )

    for name, b in backends.items():
        if b.passthrough or not b.base_url:
            continue
        problem = backend_url_problem(b.base_url)
        if problem:
            where = url_from.get(name)
            if where is None:  # a plugin's preset
                raise ConfigError(f"backend '{name}' ({', '.join(b.sources)}): baseUrl {b.base_url!r}: {problem}")
            line = find_key_line(text, where) if text else None
            raise ConfigError(
                f"{cfg_path}{f':{line}' if line else ''}: {_dotted(where)}: {b.base_url!r}: {problem}"
            )

    aliases, alias_names = _aliases(data, backends)
    cfg = Config(
        path=cfg_path,
        exists=exists,
        text=text,
        data=data,
        settings=settings,
        backends=backends,
        aliases=aliases,
        alias_names=alias_names,
        agents=_agents(data),
        default_subagent_model=_model_ref(_dig(data, ("agents", "defaults", "subagents", "model"))),
        missing_vars=missing,
        environ=env,
        signature=signature if exists else None,
    )
    _check_references(cfg)
    _check_pass_env(cfg)
    from .redact import redact

    for secret in cfg.secret_values():  # every printer, logger and the store mask them from now on
        redact.add(secret)
    if settings.mcpServers or any(getattr(r, "mcpServers", None) for r in (*settings.agents.values(), *settings.targets.values())):
        from .mcp import all_configured, secret_values

        for secret in secret_values(all_configured(settings)):  # MCP servers' tokens, likewise
            redact.add(secret)
    return cfg


BACKEND_URL_RULE = "a backend URL must be https://HOST[/path], or http:// on loopback (127.0.0.1, ::1, localhost)"


def backend_url_problem(url: str) -> str | None:
    """Why ``url`` may not be a backend's base URL (the key travels with every request), or
    None. Only the URL's shape is looked at; nothing is resolved or connected to."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        return f"not a URL; {BACKEND_URL_RULE}"
    if any(c.isspace() for c in url.strip()) or not host:
        return f"not a URL with a host; {BACKEND_URL_RULE}"
    if parts.username or parts.password:
        return f"credentials in the URL are not allowed (set the key with apiKeyEnv); {BACKEND_URL_RULE}"
    if parts.query or parts.fragment:
        return f"no query or fragment (Claude Code appends /v1/messages); {BACKEND_URL_RULE}"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        try:
            if host == "localhost" or ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return f"http is allowed on loopback only: the key would cross the network in clear; {BACKEND_URL_RULE}"
    return f"scheme {parts.scheme or '(none)'!r} is not allowed; {BACKEND_URL_RULE}"


def _source_path(source: str) -> tuple[str, ...]:
    """``models.providers.glm`` / ``providers[2]`` -> the JSON path of its ``baseUrl``."""
    m = re.match(r"^providers\[(\d+)\]$", source)
    if m:
        return ("providers", m.group(1), "baseUrl")
    return (*source.split("."), "baseUrl")


def _dotted(path: Iterable[str]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _check_references(cfg: Config) -> None:
    """Names used in our section must exist; the error lists the known ones."""
    s = cfg.settings
    known = set(cfg.backends) | {PASSTHROUGH}

    def check(path: tuple[str | int, ...], name: str | None) -> None:
        if name is not None and name not in known:
            raise cfg.error(
                (*SECTION_PATH, *path),
                f"unknown backend '{name}' (known: {cfg.known_backends()})",
                UnknownNameError,
            )

    check(("defaultBackend",), s.defaultBackend)
    for aid, route in s.agents.items():
        check(("agents", aid, "backend"), route.backend)
    for tid, route in s.targets.items():
        check(("targets", tid, "backend"), route.backend)
    for name in s.limits.perBackend:
        check(("limits", "perBackend", name), name)


ConfigLoader = Callable[..., Config]


# --------------------------------------------------------------------------- passEnv and refreshing


def _check_pass_env(cfg: Config) -> None:
    """``passEnv`` may not name a variable this config reads a secret from (the gateway's
    ``tokenEnv``, a backend's key variable): those never reach a child under their own name."""
    secret = set(cfg.secret_names())
    settings = cfg.settings
    places: list[tuple[tuple[str, ...], Any]] = [(("passEnv",), getattr(settings, "passEnv", None))]
    for kind in ("backends", "agents", "targets"):
        for name, entry in (getattr(settings, kind, None) or {}).items():
            places.append(((kind, name, "passEnv"), getattr(entry, "passEnv", None)))
    for where, names in places:
        bad = [n for n in names or () if n in secret]
        if bad:
            raise cfg.error((*SECTION_PATH, *where), f"{', '.join(bad)} holds a secret kimi-acp uses (a backend's key or "
                            "the gateway token) and cannot be passed to Claude Code; remove it from passEnv")


def config_signature(path: Path | str) -> tuple[int, int, int] | None:
    """``(st_mtime_ns, st_size, st_ino)`` of the config file, ``None`` when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def refresh_config(cfg: Config, *, environ: Mapping[str, str] | None = None) -> tuple[Config, str | None]:
    """The config a long-lived process should use now, and a note to log (``None``: nothing to say).

    Only a ``stat`` when nothing changed (a 50 MB ``openclaw.json`` is not read again for every
    turn). Returns

    - ``cfg`` itself when the file (``cfg.path``) has the same mtime, size and inode;
    - a newly loaded config when it changed and loads;
    - ``cfg`` (the last good one) with a note when the edit does not load, or when the file was
      deleted: a deleted config never silently turns Kimi-routed agents into passthrough.

    Each note is returned once per version of the file. ``environ`` (for ``${VAR}``) defaults to
    the one ``cfg`` was loaded with.
    """
    now = config_signature(cfg.path)
    if now == cfg.signature:
        cfg.rejected = None  # back as it was (moved away and back): a later change is news again
        return cfg, None
    if now is not None and now == cfg.rejected:
        return cfg, None
    if now is None:
        if cfg.rejected == (0, 0, 0):
            return cfg, None
        cfg.rejected = (0, 0, 0)  # "deleted", said once
        return cfg, (f"{cfg.path} was deleted (or cannot be read); kimi-acp keeps using the config it last read "
                     "until the file is back (to stop routing, remove kimi-acp's section instead)")
    try:
        fresh = load_config(cfg.path, environ=cfg.environ if environ is None else environ)
    except KimiAcpError as exc:
        cfg.rejected = now
        return cfg, f"{cfg.path} changed but does not load, keeping the previous one: {exc}"
    return fresh, f"config reloaded: {fresh.path}"
