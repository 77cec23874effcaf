"""MCP servers for Claude Code runs: from the config and from ACP ``session/new``, to ``--mcp-config``.

Where a run's servers come from, later winning by name:

1. ``plugins.entries.kimi-acp.config.mcpServers.<name>`` (every run),
2. ``targets.<target agent>.mcpServers`` (that ACP agent's runs),
3. ``agents.<requesting agent>.mcpServers`` (the runs that agent asks for; ``null`` removes one),
4. the request's own (ACP ``session/new``/``session/load`` ``mcpServers`` of the session).

They reach Claude Code as ``--mcp-config <state dir>/mcp-config/<run id>.json``: a 0600 file in a
0700 directory, written for the run and removed when it ends (like the ``--settings`` override,
:mod:`.harness.override`), never inline JSON in argv. A server's ``env`` and ``headers`` values
are secrets: never logged, masked in displays (:func:`describe`), and the secret-named ones join
the redactor (:func:`secret_values`) so the stream masks them. A request's server may not set in
its ``env`` what a spawn request's ``env`` may not (:func:`~.environment.request_env_refusal`).

Claude Code hands a stdio server its own environment plus the server's ``env``; the backend's key
kimi-acp gave Claude Code is blanked for the server (it does not need it) unless the server's
``env`` sets that variable itself. ``alwaysAllow`` (config only) becomes ``--allowedTools``
(``mcp__<server>__<tool>``, or ``mcp__<server>`` for all its tools); other tools follow the run's
permission mode.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runfiles import remove_run_file, run_file, write_run_file

MCP_DIR = "mcp-config"
"""The directory under the state dir that holds the runs' ``--mcp-config`` files."""


_REQUEST_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


@dataclass(frozen=True)
class McpServer:
    """One MCP server of a run, as Claude Code gets it. ``env``/``headers`` hold secrets."""

    name: str
    type: str  # "stdio" | "http" | "sse"
    source: str  # where it was configured (a JSON path, or "session/new")
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    always_allow: tuple[str, ...] = ()

    def to_claude(self, blank: Mapping[str, str] | None = None) -> dict[str, Any]:
        """This server in Claude Code's ``mcpServers`` shape. ``blank``: variables to set for a
        stdio server unless its own ``env`` sets them (the backend's key, as ``""``)."""
        if self.type == "stdio":
            env = {k: v for k, v in (blank or {}).items() if k not in self.env}
            env.update(self.env)
            return {"type": "stdio", "command": self.command, "args": list(self.args), "env": dict(sorted(env.items()))}
        return {"type": self.type, "url": self.url, "headers": dict(self.headers)}

    def to_json(self, *, reveal: bool = False) -> dict[str, Any]:
        """For displays (``kimi-acp env``, ``doctor``): env and header values masked."""
        from .redact import mask

        out: dict[str, Any] = {"name": self.name, "type": self.type, "source": self.source}
        if self.type == "stdio":
            out.update(command=self.command, args=list(self.args),
                       env={k: (v if reveal else mask(v)) for k, v in self.env.items()})
        else:
            out.update(url=self.url, headers={k: (v if reveal else mask(v)) for k, v in self.headers.items()})
        if self.always_allow:
            out["alwaysAllow"] = list(self.always_allow)
        return out

    def describe(self, *, reveal: bool = False) -> str:
        """One line for a person: ``docs (http): https://…/mcp, headers Authorization=…abcd``
        (values masked unless ``reveal``)."""
        from .redact import mask, redact

        def shown(v: str) -> str:
            return v if reveal else mask(v)

        if self.type == "stdio":
            text = f"{self.name} (stdio): {' '.join([self.command or '', *self.args])}"
            if self.env:
                text += ", env " + ", ".join(f"{k}={shown(v)}" for k, v in self.env.items())
        else:
            text = f"{self.name} ({self.type}): {self.url}"
            if self.headers:
                text += ", headers " + ", ".join(f"{k}={shown(v)}" for k, v in self.headers.items())
        if self.always_allow:
            text += f"; always allowed: {', '.join(self.always_allow)}"
        return (text if reveal else redact(text)) + f"  [{self.source}]"


def url_problem(url: str | None, *, headers: bool = False) -> str | None:
    """Why ``url`` cannot be an http/sse MCP server's URL (with ``headers``: secret ones), or None."""
    from urllib.parse import urlsplit

    if not url or not url.strip():
        return "an http or sse MCP server needs url (e.g. https://example.com/mcp)"
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        host = None
    if not host or parts.scheme not in ("http", "https"):
        return f"url {url!r} is not an http(s) URL with a host (e.g. https://example.com/mcp)"
    if parts.username or parts.password:
        return "the url has credentials in it (user:password@); put them in headers (e.g. Authorization), which are kept secret"
    if headers and parts.scheme == "http" and not _loopback(url):
        return f"headers over plain http to {url} would cross the network in clear; use https (http is for loopback only)"
    return None


def _loopback(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret_header(name: str) -> bool:
    from .redact import is_secret_name

    return name.lower() in _SECRET_HEADERS or is_secret_name(name.replace("-", "_"))


# --------------------------------------------------------------------------- from the config


def _from_settings(name: str, s: Any, source: str) -> McpServer:
    def plain(v: Any) -> str:
        return v.get_secret_value() if hasattr(v, "get_secret_value") else str(v)

    env = {k: plain(v) for k, v in (s.env or {}).items()}
    headers = {k: plain(v) for k, v in (s.headers or {}).items()}
    return McpServer(name=name, type=s.type or "stdio", source=source, command=s.command, args=tuple(s.args or ()),
                     env=env, url=s.url, headers=headers, always_allow=tuple(s.alwaysAllow or ()))


def configured(settings: Any, *, requester: str | None = None, target: str | None = None) -> dict[str, McpServer]:
    """The config's servers for a run asked for by ``requester`` of ``target``, by name."""
    from .config import SECTION

    out: dict[str, McpServer] = {}
    for name, s in (getattr(settings, "mcpServers", None) or {}).items():
        out[name] = _from_settings(name, s, f"{SECTION}.mcpServers.{name}")
    for kind, who in (("targets", target), ("agents", requester)):
        entry = (getattr(settings, kind, None) or {}).get(who) if who else None
        for name, s in (getattr(entry, "mcpServers", None) or {}).items():
            if s is None:
                out.pop(name, None)
            else:
                out[name] = _from_settings(name, s, f"{SECTION}.{kind}.{who}.mcpServers.{name}")
    return out


def all_configured(settings: Any) -> list[McpServer]:
    """Every server the config names, wherever (for the redactor and ``doctor``)."""
    from .config import SECTION

    out = [_from_settings(n, s, f"{SECTION}.mcpServers.{n}") for n, s in (getattr(settings, "mcpServers", None) or {}).items()]
    for kind in ("targets", "agents"):
        for who, entry in (getattr(settings, kind, None) or {}).items():
            for name, s in (getattr(entry, "mcpServers", None) or {}).items():
                if s is not None:
                    out.append(_from_settings(name, s, f"{SECTION}.{kind}.{who}.mcpServers.{name}"))
    return out


# --------------------------------------------------------------------------- from a request (ACP)


def _pairs(value: Any, where: str) -> dict[str, str]:
    """ACP's ``[{name, value}]`` (or a plain mapping) as a dict of strings."""
    from .errors import McpServerError

    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise McpServerError(f"{where}[{i}] is not a {{name, value}} object")
            items.append((item.get("name"), item.get("value")))
    else:
        raise McpServerError(f"{where} is not a list of {{name, value}} objects")
    out: dict[str, str] = {}
    for name, v in items:
        if not isinstance(name, str) or not name or not isinstance(v, str):
            raise McpServerError(f"{where}: every entry needs a name and a string value (bad: {name!r})")
        out[name] = v
    return out


def from_request(servers: Iterable[Any] | None, *, backend: Any = None, where: str = "mcpServers") -> list[McpServer]:
    """Servers handed over by a client (ACP ``session/new`` ``mcpServers``: stdio ``{name,
    command, args, env: [{name, value}]}``, http/sse ``{type, name, url, headers: [{name,
    value}]}``; pydantic models or dicts), checked. Raises
    :class:`~.errors.McpServerError` (a bad shape) or :class:`~.errors.RequestEnvError` (an
    ``env`` variable a request may not set), each naming the server."""
    from .environment import request_env_refusal
    from .errors import McpServerError, RequestEnvError

    out: list[McpServer] = []
    seen: set[str] = set()
    for i, raw in enumerate(servers or ()):
        item = raw.model_dump(by_alias=True, exclude_none=True) if hasattr(raw, "model_dump") else raw
        if not isinstance(item, Mapping):
            raise McpServerError(f"{where}[{i}] is not an object")
        name = item.get("name")
        at = f"{where}[{i}]"
        if not isinstance(name, str) or not _REQUEST_NAME.match(name) or not name.strip():
            raise McpServerError(f"{at}: name must be a non-empty string of at most 64 characters")
        if name in seen:
            raise McpServerError(f"{at}: two servers are named {name!r}; give each its own name")
        seen.add(name)
        kind = item.get("type") or ("stdio" if "command" in item else None)
        if kind == "stdio":
            command = item.get("command")
            if not isinstance(command, str) or not command.strip():
                raise McpServerError(f"{at} ({name}): a stdio server needs command")
            args = item.get("args") or []
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise McpServerError(f"{at} ({name}): args must be a list of strings")
            env = _pairs(item.get("env"), f"{at}.env")
            for var in env:
                why = request_env_refusal(var, backend)
                if why is not None:
                    raise RequestEnvError(
                        f"MCP server {name!r} ({at}) sets {var} in its env, which a request may not set: {why}; "
                        f"fix: remove {var} from that server's env")
            out.append(McpServer(name=name, type="stdio", source="session/new", command=command, args=tuple(args), env=env))
        elif kind in ("http", "sse"):
            url = item.get("url")
            headers = _pairs(item.get("headers"), f"{at}.headers")
            problem = url_problem(url if isinstance(url, str) else None, headers=bool(headers))
            if problem:
                raise McpServerError(f"{at} ({name}): {problem}")
            out.append(McpServer(name=name, type=kind, source="session/new", url=url, headers=headers))
        else:
            raise McpServerError(f"{at} ({name}): unknown type {kind!r}; kimi-acp takes stdio, http and sse servers")
    return out


def merged(config: Mapping[str, McpServer], request: Sequence[McpServer]) -> list[McpServer]:
    """The run's servers: the config's, then the request's (the same name replaces one)."""
    out = dict(config)
    for server in request:
        out[server.name] = server
    return list(out.values())


# --------------------------------------------------------------------------- to Claude Code


def claude_config(servers: Sequence[McpServer], *, blank: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``--mcp-config`` file's content."""
    return {"mcpServers": {s.name: s.to_claude(blank) for s in servers}}


def allowed_tools(servers: Sequence[McpServer]) -> list[str]:
    """``--allowedTools`` rules for the servers' ``alwaysAllow``."""
    rules: list[str] = []
    for s in servers:
        if "*" in s.always_allow:
            rules.append(f"mcp__{s.name}")
        else:
            rules.extend(f"mcp__{s.name}__{tool}" for tool in s.always_allow)
    return rules


def secret_values(servers: Iterable[McpServer]) -> list[str]:
    """What the redactor must mask for these servers: secret-named ``env`` values (as the run's
    env, see :mod:`.spawn`) and the values of secret headers (``Authorization``, ``X-Api-Key`` …)."""
    from .redact import is_secret_name

    out: list[str] = []
    for s in servers:
        out.extend(v for k, v in s.env.items() if is_secret_name(k))
        out.extend(v for k, v in s.headers.items() if _secret_header(k))
    return [v for v in dict.fromkeys(out) if v]


def config_path(state_dir: Path | str, run_id: str) -> Path:
    """Where run ``run_id``'s ``--mcp-config`` file lives."""
    return run_file(state_dir, MCP_DIR, run_id)


def write_config(state_dir: Path | str, content: Mapping[str, Any], run_id: str) -> Path:
    """Write ``content`` to run ``run_id``'s file (0600, in a 0700 directory of the state dir,
    replaced atomically: :mod:`kimi_acp.runfiles`) and return its path."""
    return write_run_file(state_dir, MCP_DIR, run_id, content)


def remove_config(state_dir: Path | str, run_id: str) -> None:
    """Remove run ``run_id``'s ``--mcp-config`` file (its secrets go with it). Never raises."""
    remove_run_file(state_dir, MCP_DIR, run_id)


def apply(argv: Sequence[str], servers: Sequence[McpServer], state_dir: Path | str, run_id: str,
          *, blank: Mapping[str, str] | None = None) -> list[str]:
    """``argv`` with the run's servers: ``--mcp-config <file>`` (and ``--allowedTools`` for their
    ``alwaysAllow``). Nothing changes without servers. The options go before anything the
    caller appends later (the ``--settings`` override stays last)."""
    if not servers:
        return list(argv)
    path = write_config(state_dir, claude_config(servers, blank=blank), run_id)
    out = [*argv, "--mcp-config", str(path)]
    rules = allowed_tools(servers)
    if rules:
        out += ["--allowedTools", ",".join(rules)]
    return out


def key_blanks(child_env: Mapping[str, str], key: str | None) -> dict[str, str]:
    """The variables that carry the backend's key in the child's env, as ``""`` (for stdio
    servers: the key is Claude Code's, not theirs)."""
    if not key:
        return {}
    return {name: "" for name, value in child_env.items() if value == key}
