"""``kimi-acp doctor``: is everything in place for a spawn to work?

Checks what the user's spawns will use, in order: the config loads; routing (the global
default and each agent with a rule, or the one ``--agent``/``--model`` picks; a failure when a
Kimi key is set but nothing routes to Kimi) and what each route's model gets (window, output,
thinking efforts, price); for each backend used: its base URL (no ``/v1`` suffix), its key, and
unless ``--offline`` a live probe (a tiny streaming ``POST {baseUrl}/v1/messages`` sent the way
Claude Code sends it: Kimi refuses other user agents with 403) and the plan's quota windows
(Kimi's ``/v1/usages``; a note, never a failure); Claude Code is found; OpenClaw's own Kimi and
Moonshot plugins (a gateway that needs one it lacks looks it up at every start: what that costs
offline, and the fix); backends whose spawns wait now (quota, 429); the configured MCP servers
(values masked; a stdio server's command must exist); the report path (gateway URL, hooks token, reachable); the state dir;
Claude Code settings files that set backend variables.

Exit code: 2 bad config, 4 Claude Code not found, 3 missing key (the first of these that
fails), 1 any other failed check, 0 all passed.
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
    subject: str | None = None  # the backend a per-backend check is about


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


def _routes(cfg: Any, args: Any) -> list[tuple[str, Any]]:
    """What to check: the route --agent/--model/--target/--session picks, or else the global
    default and each agent that has a routing rule (what the user's spawns will use)."""
    from types import SimpleNamespace

    if any(getattr(args, n, None) for n in ("agent", "model", "target", "session")):
        who = f"agent {args.agent}" if getattr(args, "agent", None) else "this spawn"
        return [(who, route_for(cfg, args))]
    out = [("default", route_for(cfg, SimpleNamespace()))]
    for agent in sorted(cfg.settings.agents):
        out.append((f"agent {agent}", route_for(cfg, SimpleNamespace(agent=agent))))
    return out


def base_url_check(backend: Any) -> Check | None:
    """A base URL that ends in /v1: Claude Code appends /v1/messages itself (…/v1/v1/messages is a 404)."""
    base = (backend.base_url or "").rstrip("/")
    if base.endswith("/v1"):
        return Check("baseurl", False, f"backend '{backend.name}': base URL {base} ends in /v1, so Claude Code would call "
                     f"{base}/v1/messages (a 404 on Kimi)", f"set baseUrl to {base[:-3]} (without /v1)", subject=backend.name)
    return None


def routing_check(cfg: Any, routes: list[tuple[str, Any]], environ: Any) -> Check:
    """Which backend each route gets; a failure when a Kimi key is set but nothing goes to Kimi."""
    shown = "; ".join(f"{who} -> {r.name}" for who, r in routes)
    kimi = cfg.backends.get("kimi")
    key_vars = [v for v in (kimi.key_variables() if kimi is not None else []) if environ.get(v)]
    if key_vars and all(r.backend.passthrough for _, r in routes):
        return Check("routing", False, f"{key_vars[0]} is set, but no spawn goes to Kimi ({shown})",
                     "route spawns to Kimi: `kimi-acp install --global` (every spawn) or `kimi-acp install --agent ID` "
                     "(one agent), or /model kimi/kimi-for-coding in a session")
    return Check("routing", True, shown)


def report_checks(cfg: Any, environ: Any, *, offline: bool, timeout: float, transport: Any = None) -> list[Check]:
    """The path results take back to OpenClaw: a gateway URL, its hooks token, and (online) that it answers."""
    gw = cfg.settings.report.gateway
    if not gw.url:
        return [Check("report", True, "no report.gateway.url: results stay in kimi-acp (ps, show, wait) and are not "
                      "reported to OpenClaw sessions", "set plugins.entries.kimi-acp.config.report.gateway.url to your "
                      "gateway (e.g. http://127.0.0.1:18789) to have results reported", warning=True)]
    out: list[Check] = []
    token = gw.token.get_secret_value() if gw.token else environ.get(gw.tokenEnv)
    if token:
        out.append(Check("token", True, f"hooks token {mask(token)} (from {'report.gateway.token' if gw.token else gw.tokenEnv})"))
    else:
        out.append(Check("token", False, f"no hooks token: {gw.tokenEnv} is not set, so results would be posted to "
                         f"{gw.url}{gw.path} without Authorization and refused",
                         f"export {gw.tokenEnv}=<hooks.token from openclaw.json>"))
    if offline:
        out.append(Check("gateway", True, f"{gw.url}: skipped (--offline)", skipped=True))
        return out
    import httpx

    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), transport=transport) as client:
            resp = client.get(gw.url + "/")
        out.append(Check("gateway", True, f"{gw.url}: reachable (HTTP {resp.status_code}); results go to {gw.path}"))
    except httpx.HTTPError as exc:
        out.append(Check("gateway", False, f"{gw.url}: not reachable ({type(exc).__name__}); results wait in the outbox "
                         "until it is", "start the OpenClaw gateway, or fix report.gateway.url (kimi-acp outbox shows what waits)"))
    return out


def model_check(route: Any, who: str) -> Check | None:
    """What a route's model gets: its window (and how to get a larger one), output limit,
    thinking efforts and price (see :func:`describe_model`)."""
    if route.backend.passthrough or not route.model:
        return None
    return Check("model", True, f"{who}: {route.name}/{route.model}: {describe_model(route.backend, route.model)}",
                 subject=route.name)


def describe_model(backend: Any, model: str) -> str:
    """``context 262,144 (1,048,576 with kimi/k3[1m], or contextWindow in openclaw.json), max
    output 128,000, thinking effort low/high/max, $3/$0.30/$15 per million tokens``."""
    from ..environment import CLAUDE_CODE_MAX_OUTPUT_CAP

    info = backend.model_info(model)
    context = (info.context_window if info and info.context_window else None) or backend.context_window
    parts = []
    if context:
        text = f"context {context:,}"
        if info is not None and info.max_context_window and info.max_context_window > context:
            text += (f" ({info.max_context_window:,} if your plan has it: kimi/{model}[1m], or contextWindow "
                     f"{info.max_context_window} for {model} in openclaw.json)")
        if info is not None and info.context_tokens:
            text += f", compacting at {info.context_tokens:,} (contextTokens)"
        parts.append(text)
    else:
        parts.append("context unknown (Claude Code assumes 1,000,000)")
    out = (info.max_tokens if info and info.max_tokens else None) or backend.max_tokens
    if out:
        parts.append(f"max output {min(out, CLAUDE_CODE_MAX_OUTPUT_CAP):,}" + (f" (of {out:,}: Claude Code's cap)" if out > CLAUDE_CODE_MAX_OUTPUT_CAP else ""))
    if info is not None and info.efforts:
        parts.append(f"thinking effort {'/'.join(info.efforts)}")
    if info is not None and info.cost is not None and not info.cost.free:
        c = info.cost
        parts.append(f"{_usd(c.input)} in / {_usd(c.cache_read)} cached / {_usd(c.output)} out per million tokens")
    else:
        parts.append("no per-token price (your plan's quota)")
    if info is not None and info.legacy:
        parts.append("legacy id, sent as is")
    elif info is None:
        parts.append(f"not in backend '{backend.name}''s lineup: sent as is")
    return ", ".join(parts)


def _usd(x: float) -> str:
    return f"${x:.0f}" if float(x).is_integer() else f"${x:.2f}"


def plugin_checks(cfg: Any, environ: Any) -> list[Check]:
    """OpenClaw's own Kimi and Moonshot plugins: a gateway that needs one it does not have looks
    it up (npm, ClawHub) at every start until it is installed; offline that costs 45-100 s."""
    from .. import official_plugins

    out: list[Check] = []
    for plugin in (official_plugins.KIMI_PLUGIN, official_plugins.MOONSHOT_PLUGIN):
        st = official_plugins.state(plugin, cfg.data, cfg.path, environ)
        why = ", ".join(st.wanted_by)
        if st.state == "installed":
            out.append(Check("plugins", True, f"OpenClaw's {plugin} plugin ({st.package}): installed ({st.where})"))
        elif st.state == "off":
            out.append(Check("plugins", True, f"OpenClaw's {plugin} plugin ({st.package}) is off ({st.where}): the gateway "
                             f"does not look it up, and its providers are off", "if kimi-acp wrote that before (older "
                             "installs did), `kimi-acp install` removes it; `kimi-acp install --no-plugin-lookups` "
                             "keeps it", warning=True))
        elif st.looked_up:
            out.append(Check(
                "plugins", True,
                f"OpenClaw's {plugin} plugin ({st.package}) is not installed, and this gateway needs it ({why}): at every "
                f"start it looks it up on npm and ClawHub and installs it; online that happens once, offline every start "
                f"waits 45-100 s and the gateway comes up degraded",
                f"online: openclaw plugins install {st.package} (once); a gateway without internet: "
                f"kimi-acp install --no-plugin-lookups (turns OpenClaw's kimi and moonshot plugins off)", warning=True))
    return out


def quota_checks(routes: list[tuple[str, Any]], keys: dict[str, str], *, timeout: float, transport: Any = None) -> list[Check]:
    """The plan's quota windows of each routed backend that has a quota endpoint (Kimi's
    ``/v1/usages``, undocumented by Kimi: a failure here is a note, never a failed check)."""
    from ..errors import KimiAcpError
    from ..quota import fetch_quota, quota_url

    out: list[Check] = []
    seen: set[str] = set()
    for _, route in routes:
        b = route.backend
        if b.passthrough or b.name in seen or quota_url(b) is None or b.name not in keys:
            continue
        seen.add(b.name)
        try:
            windows = fetch_quota(b, keys[b.name], timeout=timeout, transport=transport)
        except KimiAcpError as exc:
            out.append(Check("quota", True, f"{b.name}: quota not read: {redact(str(exc))}", subject=b.name, warning=True))
            continue
        if not windows:
            out.append(Check("quota", True, f"{b.name}: the quota endpoint listed no windows", subject=b.name, warning=True))
            continue
        low = [w for w in windows if w.exhausted]
        text = "; ".join(w.describe() for w in windows)
        if low:
            out.append(Check("quota", True, f"{b.name}: {text}", f"the {low[0].name} window is used up: runs get 429 until "
                             f"it resets", subject=b.name, warning=True))
        else:
            out.append(Check("quota", True, f"{b.name}: {text}", subject=b.name))
    return out


def mcp_checks(cfg: Any) -> list[Check]:
    """Every MCP server the config names (values masked): a stdio server's command must be
    there; an http/sse server is listed, not contacted."""
    import shutil

    from ..mcp import all_configured

    out: list[Check] = []
    for server in all_configured(cfg.settings):
        if server.type == "stdio":
            command = os.path.expanduser(server.command or "")
            found = (os.path.isfile(command) and os.access(command, os.X_OK)) if os.sep in command else shutil.which(command)
            if not found:
                out.append(Check("mcp", False, f"{server.describe()}: {server.command!r} is not "
                                 + ("an executable file" if os.sep in command else "a command on PATH"),
                                 "install it, or fix its command (an absolute path works best: runs get Claude Code's PATH)"))
                continue
        out.append(Check("mcp", True, server.describe()))
    return out


def admission_checks(routes: list[tuple[str, Any]]) -> list[Check]:
    """Backends whose spawns wait right now (a used-up quota, a 429's retry-after)."""
    from ..admission import hold_now
    from ..sessions import state_dir

    out: list[Check] = []
    for name in dict.fromkeys(route.name for _, route in routes):
        hold = hold_now(state_dir(), name)
        if hold is not None:
            out.append(Check("queue", True, f"{name}: spawns wait: {hold.describe()}",
                             "they start by themselves when it ends (kimi-acp ps shows them)", subject=name, warning=True))
    return out


EXIT_BY_CHECK = {"config": 2, "claude": 4, "key": 3}
"""The exit code when this check fails (the first such failure wins); any other failure is 1."""


def run(args: Any) -> int:
    checks: list[Check] = []
    cfg = None
    routes: list[tuple[str, Any]] = []
    try:
        from ..config import load_config

        cfg = load_config(args.config)
        checks.append(Check("config", True, str(cfg.path) if cfg.exists else f"{cfg.path} not found: built-in presets only"))
    except KimiAcpError as exc:
        checks.append(Check("config", False, redact(str(exc)), "fix the file at the place named"))
    if cfg is not None:
        try:
            routes = _routes(cfg, args)
        except KimiAcpError as exc:
            checks.append(Check("backend", False, str(exc), exc.hint))
        if routes:
            checks.append(routing_check(cfg, routes, os.environ))
    seen: dict[str, Any] = {}
    for who, route in routes:
        checks.append(Check("backend", True, f"{who}: {route.name}" + (f" (model {route.model})" if route.model else "")
                            + f": {route.reason}", subject=route.name))
        described = model_check(route, who)
        if described is not None:
            checks.append(described)
        seen.setdefault(route.name, route)
    keys: dict[str, str] = {}
    for name, route in seen.items():
        b = route.backend
        if b.passthrough:
            checks.append(Check("key", True, "passthrough: the child uses the parent's own credentials", skipped=True, subject=name))
            continue
        bad_base = base_url_check(b)
        if bad_base is not None:
            checks.append(bad_base)
        try:
            key = b.resolve_key(os.environ)
            src = next((n for n in b.key_variables() if os.environ.get(n) == key), "openclaw.json")
            checks.append(Check("key", True, f"{name}: {mask(key)} (from {src})", subject=name))
            keys[name] = key
        except KimiAcpError as exc:
            checks.append(Check("key", False, str(exc), f"export {b.key_variables()[0]}=sk-kimi-…" if b.key_variables() else None,
                                subject=name))
        if b.timeout_ms is not None and b.timeout_ms < 120_000:
            checks.append(Check("timeout", False, f"{name}: API timeout {b.timeout_ms} ms is below 120000", "raise timeoutMs to 600000",
                                subject=name))
    try:
        from ..harness.command import claude_version, find_claude

        configured = cfg.settings.harness.command if cfg is not None else None
        path = find_claude(configured)
        checks.append(Check("claude", True, f"{path} ({claude_version(path)})"))
    except KimiAcpError as exc:
        checks.append(Check("claude", False, str(exc), exc.hint))
    for name, route in seen.items():
        if route.backend.passthrough:
            continue
        if args.offline:
            checks.append(Check("probe", True, f"{name}: skipped (--offline)", skipped=True, subject=name))
        elif name in keys:
            probed = probe(route.backend, keys[name], route.model, timeout=args.timeout)
            probed.subject = name
            checks.append(probed)
        else:
            checks.append(Check("probe", False, f"{name}: skipped: no key", skipped=True, subject=name))
    if not args.offline:
        checks.extend(quota_checks(routes, keys, timeout=min(args.timeout, 10.0)))
    checks.extend(admission_checks(routes))
    if cfg is not None:
        checks.extend(mcp_checks(cfg))
        checks.extend(plugin_checks(cfg, os.environ))
        checks.extend(report_checks(cfg, os.environ, offline=args.offline, timeout=min(args.timeout, 10.0)))
    checks.extend(state_checks())
    for name, route in seen.items():
        checks.extend(settings_checks(route.backend, getattr(args, "cwd", None)))
        break  # the settings files are the same for every backend; the first one says what applies
    ok = all(c.ok for c in checks)
    code = 0
    if not ok:
        code = next((EXIT_BY_CHECK[c.name] for c in checks if not c.ok and c.name in EXIT_BY_CHECK), 1)
    if args.json:
        print_json({"ok": ok, "exitCode": code, "checks": [asdict(c) for c in checks]})
    else:
        for c in checks:
            mark = "-" if c.skipped else ("!" if c.warning else ("✓" if c.ok else "✗"))
            print(f"{mark} {c.name:8} {c.detail}")
            if c.fix and (not c.ok or c.warning):
                print(f"  {'':8} {'note' if c.warning else 'fix'}: {c.fix}")
        if ok:
            warned = sum(1 for c in checks if c.warning)
            print("all checks passed" + (f" ({warned} note{'s' if warned != 1 else ''} above)" if warned else ""))
        else:
            print(f"some checks failed (exit {code})")
    return code
