"""``kimi-acp doctor``: is everything in place for a spawn to work?

Checks, in order: the config loads; the backend resolves; its key is present;
Claude Code is found (and its version); and, unless ``--offline``, a live probe
of the backend: a tiny streaming ``POST {baseUrl}/v1/messages`` sent the way
Claude Code sends it (Kimi refuses other user agents with 403).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import KimiAcpError
from ..redact import mask, redact
from .common import print_json, route_for


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    skipped: bool = False
    warning: bool = False  # passes, but the user should know (printed with "!")


def state_checks() -> list[Check]:
    """The state dir must be safe (yours, not group/other-writable); nothing to check before it exists."""
    from ..errors import ConfigError
    from ..sessions import ensure_state_dir, state_dir

    path = state_dir()
    if not path.is_dir():
        return []
    try:
        ensure_state_dir(path)
    except ConfigError as exc:
        return [Check("state", False, str(exc).split(": fix: ")[0], str(exc).split(": fix: ")[-1])]
    return [Check("state", True, f"{path} (yours, 0700)" if (path.stat().st_mode & 0o077) == 0 else f"{path} (yours)")]


def settings_checks(backend: Any, cwd: str | None) -> list[Check]:
    """A warning per Claude Code settings file that sets ANTHROPIC_*, CLAUDE_CODE_* model or
    auth variables or apiKeyHelper, naming the file and what kimi-acp does about it."""
    from ..harness.override import scan_settings

    out = []
    for layer in scan_settings(cwd or os.getcwd(), os.environ):
        where = f"{layer['file']} ({layer['layer']} settings)"
        if layer.get("error"):
            out.append(Check("settings", True, f"{where}: {layer['error']}", warning=True))
            continue
        sets = ", ".join(layer["sets"])  # type: ignore[arg-type]
        if backend.passthrough:
            out.append(Check("settings", True, f"{where} sets {sets}: applies to passthrough runs", warning=True))
        elif layer["outranks"]:
            out.append(Check("settings", False, f"{where} sets {sets}: managed settings outrank kimi-acp's --settings, "
                             "so runs may go elsewhere (a run whose model changes fails)",
                             f"remove those keys from {layer['file']} or use the passthrough backend"))
        else:
            out.append(Check("settings", True, f"{where} sets {sets}: overridden for kimi-acp runs by their --settings file",
                             "nothing to do for kimi-acp; plain `claude` runs still use them (a provider switcher's block?)",
                             warning=True))
    return out


def _error_summary(resp: Any, key: str) -> str:
    """What an error answer says, without its raw body (which may echo the key, whole, in
    part or encoded): the Anthropic error type and message, masked; otherwise its size."""
    from ..redact import Redactor

    clean = Redactor([key])
    try:
        data = resp.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        kind = error.get("type") if isinstance(error.get("type"), str) else "error"
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        return clean(redact(f"{kind}: {message[:200]}" if message else kind))
    size = len(resp.content)
    return f"a {resp.headers.get('content-type') or 'non-JSON'} body of {size} bytes (not shown: it may echo the key)"


def probe(backend: Any, key: str, model: str | None, *, timeout: float = 30.0, transport: Any = None) -> Check:
    """One streaming request to the backend, with its outcome explained."""
    import httpx

    base = (backend.base_url or "").rstrip("/")
    url = f"{base}/v1/messages"
    headers = {
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "user-agent": backend.probe_user_agent,
        "x-app": "cli",
    }
    if backend.auth_header == "bearer":
        headers["authorization"] = f"Bearer {key}"
    else:
        headers["x-api-key"] = key
    body = {
        "model": model or backend.model or "claude-sonnet-4-5",
        "max_tokens": 16,
        "stream": True,
        "messages": [{"role": "user", "content": "Reply with the single word: pong"}],
    }
    fix_404 = "check the base URL: it must be the part before /v1/messages (Kimi: https://api.kimi.com/coding, no /v1)"
    if base.endswith("/v1"):
        fix_404 = f"remove the trailing /v1 from the base URL ({base} -> {base[:-3]}): Claude Code appends /v1/messages itself"
    explain = {
        401: ("the backend refused the key (401)",
              "check the key: Kimi For Coding keys (sk-kimi-…) come from the Kimi Code console; a Moonshot platform key (api.moonshot.ai) does not work on api.kimi.com/coding"),
        403: ("the backend refused this client (403)",
              "Kimi For Coding only serves coding agents (Claude Code, Kimi CLI, …); if Claude Code itself gets 403, the key's plan may have ended or Kimi is having an outage"),
        404: (f"{url} does not exist (404)", fix_404),
        429: ("rate limited (429)", "your plan's rate window is exhausted: wait, or lower limits.perBackend for this backend"),
    }
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), transport=transport) as client:
            with client.stream("POST", url, headers=headers, json=body) as resp:
                status = resp.status_code
                if status == 200:
                    first = ""
                    for line in resp.iter_lines():
                        if line.startswith("event:"):
                            first = line.split(":", 1)[1].strip()
                            break
                    if first != "message_start":
                        return Check("probe", False, f"{url}: 200 but no SSE message_start (got {first or 'nothing'})",
                                     "the base URL answers, but not as an Anthropic Messages API")
                    return Check("probe", True, f"{url}: 200, streaming (model {body['model']})")
                resp.read()
                text = _error_summary(resp, key)
    except httpx.TimeoutException:
        return Check("probe", False, f"{url}: no answer within {timeout:g} s",
                     "the backend is slow or unreachable; Kimi turns can take minutes, so keep API timeouts at 120 s or more")
    except httpx.HTTPError as exc:
        return Check("probe", False, f"{url}: {type(exc).__name__}: {redact(str(exc))}",
                     "check the base URL and your network")
    what, fix = explain.get(status, (f"HTTP {status}", "see docs/troubleshooting.md"))
    return Check("probe", False, f"{url}: {what}: {text}", fix)


def run(args: Any) -> int:
    checks: list[Check] = []
    cfg = route = key = None
    try:
        from ..config import load_config

        cfg = load_config(args.config)
        checks.append(Check("config", True, str(cfg.path) if cfg.exists else f"{cfg.path} not found: built-in presets only"))
    except KimiAcpError as exc:
        checks.append(Check("config", False, redact(str(exc)), "fix the file at the place named"))
    if cfg is not None:
        try:
            route = route_for(cfg, args)
            checks.append(Check("backend", True, f"{route.name}" + (f" (model {route.model})" if route.model else "") + f": {route.reason}"))
        except KimiAcpError as exc:
            checks.append(Check("backend", False, str(exc)))
    if route is not None:
        b = route.backend
        if b.passthrough:
            checks.append(Check("key", True, "passthrough: the child uses the parent's own credentials", skipped=True))
        else:
            try:
                key = b.resolve_key(os.environ)
                src = next((n for n in b.key_variables() if os.environ.get(n) == key), "openclaw.json")
                checks.append(Check("key", True, f"{mask(key)} (from {src})"))
            except KimiAcpError as exc:
                checks.append(Check("key", False, str(exc), f"export {b.key_variables()[0]}=sk-kimi-…" if b.key_variables() else None))
            if b.timeout_ms is not None and b.timeout_ms < 120_000:
                checks.append(Check("timeout", False, f"API timeout {b.timeout_ms} ms is below 120000", "raise timeoutMs to 600000"))
    try:
        from ..harness.command import claude_version, find_claude

        configured = cfg.settings.harness.command if cfg is not None else None
        path = find_claude(configured)
        checks.append(Check("claude", True, f"{path} ({claude_version(path)})"))
    except KimiAcpError as exc:
        checks.append(Check("claude", False, str(exc)))
    if route is not None and not route.backend.passthrough:
        if args.offline:
            checks.append(Check("probe", True, "skipped (--offline)", skipped=True))
        elif key is not None:
            checks.append(probe(route.backend, key, route.model, timeout=args.timeout))
        else:
            checks.append(Check("probe", False, "skipped: no key", skipped=True))
    checks.extend(state_checks())
    if route is not None:
        checks.extend(settings_checks(route.backend, getattr(args, "cwd", None)))
    ok = all(c.ok for c in checks)
    if args.json:
        print_json({"ok": ok, "checks": [asdict(c) for c in checks]})
    else:
        for c in checks:
            mark = "-" if c.skipped else ("!" if c.warning else ("✓" if c.ok else "✗"))
            print(f"{mark} {c.name:8} {c.detail}")
            if c.fix and (not c.ok or c.warning):
                print(f"  {'':8} {'note' if c.warning else 'fix'}: {c.fix}")
        print("all checks passed" if ok else "some checks failed")
    return 0 if ok else 1
