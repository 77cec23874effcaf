"""`kimi-acp doctor`: the live probe explained for each outcome (httpx.MockTransport, never a
real host), the offline checks, and a full run against the local stub."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from kimi_acp.backends import Backend
from kimi_acp.cli import main
from kimi_acp.commands.doctor import probe
from kimi_acp.default_plugins.kimi import PRESET as KIMI_PRESET
from kimi_acp.plugins import build_plugin_manager, set_plugin_manager

KEY = "sk-kimi-test0000000000000000000000000000abcd"
BASE = "http://127.0.0.1:9/coding"
KIMI = KIMI_PRESET.merged(base_url=BASE)

SSE_OK = (
    "event: message_start\n"
    'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],'
    '"model":"kimi-k2.5","usage":{"input_tokens":1,"output_tokens":0}}}\n\n'
    "event: message_stop\n"
    'data: {"type":"message_stop"}\n\n'
)


def error_json(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def run_probe(handler, backend: Backend = KIMI, key: str = KEY, **kw):
    seen: list[httpx.Request] = []

    def wrapped(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    check = probe(backend, key, backend.model, timeout=5, transport=httpx.MockTransport(wrapped), **kw)
    return check, seen


# --------------------------------------------------------------------------- probe outcomes


def test_probe_ok_with_sse():
    check, seen = run_probe(
        lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"}, text=SSE_OK)
    )
    assert check.ok, check
    assert check.name == "probe"
    assert "200" in check.detail and "kimi-for-coding" in check.detail
    assert len(seen) == 1


def test_probe_request_looks_like_claude_code():
    check, seen = run_probe(lambda r: httpx.Response(200, text=SSE_OK))
    assert check.ok
    (req,) = seen
    assert req.method == "POST"
    assert str(req.url) == f"{BASE}/v1/messages"
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["user-agent"].startswith("claude-cli/")
    assert "authorization" not in req.headers
    body = json.loads(req.content)
    assert body["stream"] is True
    assert body["model"] == "kimi-for-coding"
    assert body["max_tokens"] <= 64


def test_probe_with_a_bearer_backend_sends_authorization_only():
    b = Backend(name="corp", base_url="http://127.0.0.1:9", auth_header="bearer", model="m")
    check, seen = run_probe(lambda r: httpx.Response(200, text=SSE_OK), backend=b, key="corp-token-123456789")
    assert check.ok
    assert seen[0].headers["authorization"] == "Bearer corp-token-123456789"
    assert "x-api-key" not in seen[0].headers


def test_probe_trailing_slash_in_base_url():
    check, seen = run_probe(lambda r: httpx.Response(200, text=SSE_OK), backend=KIMI.merged(base_url=BASE + "/"))
    assert str(seen[0].url) == f"{BASE}/v1/messages"


def test_probe_200_without_sse_is_not_ok():
    check, _ = run_probe(lambda r: httpx.Response(200, json={"hello": "world"}))
    assert not check.ok
    assert "message_start" in check.detail
    assert "Anthropic Messages API" in check.fix


def test_probe_401_says_to_check_the_kimi_key():
    check, _ = run_probe(lambda r: httpx.Response(401, json=error_json("authentication_error", "Invalid API key")))
    assert not check.ok
    assert "401" in check.detail
    assert "Invalid API key" in check.detail
    assert "Moonshot" in check.fix
    assert "key" in check.fix


def test_probe_403_explains_the_coding_agent_restriction():
    check, _ = run_probe(lambda r: httpx.Response(403, json=error_json("permission_error", "only coding agents")))
    assert not check.ok
    assert "403" in check.detail
    assert "coding agents" in check.fix


def test_probe_404_with_v1_says_to_remove_it():
    b = KIMI.merged(base_url=BASE + "/v1")
    check, seen = run_probe(lambda r: httpx.Response(404, text="not found"), backend=b)
    assert not check.ok
    assert str(seen[0].url) == f"{BASE}/v1/v1/messages"
    assert "404" in check.detail
    assert "remove the trailing /v1" in check.fix
    assert f"{BASE}/v1 -> {BASE}" in check.fix


def test_probe_404_without_v1_says_to_check_the_base_url():
    check, _ = run_probe(lambda r: httpx.Response(404, text="not found"))
    assert not check.ok
    assert "remove" not in check.fix
    assert "base URL" in check.fix


def test_probe_429_is_rate_limiting():
    check, _ = run_probe(lambda r: httpx.Response(429, json=error_json("rate_limit_error", "slow down")))
    assert not check.ok
    assert "429" in check.detail and "rate limited" in check.detail
    assert "wait" in check.fix


def test_probe_other_status():
    check, _ = run_probe(lambda r: httpx.Response(500, text="boom"))
    assert not check.ok
    assert "HTTP 500" in check.detail and "body of 4 bytes (not shown" in check.detail
    assert "boom" not in check.detail  # doctor never prints a raw body


def test_probe_never_prints_a_raw_body_even_one_echoing_the_key_in_base64():
    import base64

    b64 = base64.b64encode(f"x-api-key: {KEY}".encode()).decode()
    check, _ = run_probe(lambda r: httpx.Response(401, text=f"<html>denied {b64} {KEY[8:]}</html>"))
    assert not check.ok
    assert b64[8:30] not in check.detail and KEY[8:] not in check.detail and "denied" not in check.detail
    assert "401" in check.detail


def test_probe_shows_the_error_message_masked():
    import base64

    b64 = base64.b64encode(KEY.encode()).decode()
    check, _ = run_probe(lambda r: httpx.Response(401, json=error_json("authentication_error", f"invalid key {b64} ({KEY[8:]})")))
    assert "authentication_error: invalid key" in check.detail
    assert b64 not in check.detail and KEY[8:] not in check.detail


def test_probe_timeout():
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    check, _ = run_probe(hang)
    assert not check.ok
    assert "no answer within 5 s" in check.detail
    assert "120 s" in check.fix


def test_probe_connection_error():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    check, _ = run_probe(refuse)
    assert not check.ok
    assert "ConnectError" in check.detail
    assert "base URL" in check.fix


def test_probe_never_echoes_the_key():
    check, _ = run_probe(lambda r: httpx.Response(401, json=error_json("authentication_error", f"bad key {KEY}")))
    assert not check.ok
    assert KEY not in check.detail + (check.fix or "")
    assert "sk-kimi-…abcd" in check.detail


# --------------------------------------------------------------------------- the command


@pytest.fixture(autouse=True)
def fresh_pm():
    set_plugin_manager(build_plugin_manager(entrypoints=False))
    yield
    set_plugin_manager(None)


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def write_config(path: Path, base_url: str = BASE) -> None:
    path.write_text(
        '{\n  plugins: { entries: { "kimi-acp": { config: {\n'
        '    defaultBackend: "kimi",\n'
        f'    backends: {{ kimi: {{ baseUrl: "{base_url}" }} }},\n'
        "  } } } },\n}\n"
    )


def checks_of(out: str) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(out)["checks"]}


def test_doctor_offline_without_key_fails_and_names_the_variable(clean_env, claude_bin, monkeypatch, capsys):
    write_config(clean_env / "openclaw.json")
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    assert main(["doctor", "--offline"]) != 0
    out = capsys.readouterr().out
    assert "KIMI_API_KEY" in out
    assert "some checks failed (exit 3)" in out

    assert main(["doctor", "--offline", "--json"]) == 3  # the README's exit code for a missing key
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["exitCode"] == 3
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["config"]["ok"] and checks["backend"]["ok"]
    assert checks["key"]["ok"] is False
    assert "KIMI_API_KEY" in checks["key"]["detail"]
    assert "export KIMI_API_KEY=" in checks["key"]["fix"]
    assert checks["claude"]["ok"] is True


def test_doctor_offline_with_key_passes_and_masks_it(clean_env, claude_bin, monkeypatch, capsys):
    write_config(clean_env / "openclaw.json")
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    assert main(["doctor", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out
    assert "sk-kimi-…abcd (from KIMI_API_KEY)" in out
    assert KEY not in out
    assert "skipped (--offline)" in out


def test_doctor_reports_a_bad_config(clean_env, claude_bin, monkeypatch, capsys):
    (clean_env / "openclaw.json").write_text("{\n  plugins: ]\n}\n")
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    assert main(["doctor", "--offline", "--json"]) == 2  # bad config
    checks = checks_of(capsys.readouterr().out)
    assert checks["config"]["ok"] is False
    assert ":2:12: JSON5 syntax error" in checks["config"]["detail"]


def test_doctor_missing_claude_binary(clean_env, monkeypatch, capsys, tmp_path):
    write_config(clean_env / "openclaw.json")
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("KIMI_ACP_CLAUDE", str(tmp_path / "no-such-claude"))
    assert main(["doctor", "--offline", "--json"]) == 4  # Claude Code not found
    checks = checks_of(capsys.readouterr().out)
    assert checks["claude"]["ok"] is False
    assert "no-such-claude" in checks["claude"]["detail"]


# --------------------------------------------------------------------------- against the stub


@pytest.fixture
def stub():
    server_mod = pytest.importorskip("kimi_acp.stub.server")
    s = server_mod.StubServer(key="sk-kimi-doctor000000000000000000000000wxyz").start()
    try:
        yield s
    finally:
        s.stop()


def test_doctor_against_the_stub_passes(clean_env, claude_bin, monkeypatch, capsys, stub, no_proxy):
    write_config(clean_env / "openclaw.json", stub.base_url)
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    monkeypatch.setenv("KIMI_API_KEY", stub.key)
    assert main(["doctor", "--json", "--timeout", "10"]) == 0, capsys.readouterr()
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["probe"]["ok"] and not checks["probe"]["skipped"]
    assert stub.base_url in checks["probe"]["detail"]
    assert stub.key not in json.dumps(data)
    # the stub really got the probe, the way Claude Code would send it
    (rec,) = stub.messages_requests()
    assert rec.headers["x-api-key"] == stub.key
    assert rec.headers["user-agent"].startswith("claude-cli/")
    assert "authorization" not in rec.headers


def test_doctor_against_the_stub_with_a_wrong_key(clean_env, claude_bin, monkeypatch, capsys, stub, no_proxy):
    write_config(clean_env / "openclaw.json", stub.base_url)
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    wrong = "sk-kimi-wrong00000000000000000000000000zzzz"
    monkeypatch.setenv("KIMI_API_KEY", wrong)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "401" in out
    assert "refused the key" in out
    assert "fix:" in out
    assert wrong not in out and stub.key not in out
    assert "some checks failed" in out


# --------------------------------------------------------------------------- what the user will use


def test_a_kimi_key_with_nothing_routed_to_kimi_is_not_a_green(clean_env, claude_bin, monkeypatch, capsys):
    """The README's first check (a key, no routing rule yet) used to say "all checks passed"."""
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    assert main(["doctor", "--offline"]) == 1
    out = capsys.readouterr().out
    assert "all checks passed" not in out
    assert "KIMI_API_KEY is set, but no spawn goes to Kimi" in out
    assert "kimi-acp install --global" in out and "kimi-acp install --agent" in out


def test_doctor_checks_each_agents_backend_and_the_default(clean_env, claude_bin, monkeypatch, capsys):
    (clean_env / "openclaw.json").write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
        "agents": {"coder": {"backend": "kimi"}},
        "backends": {"alt": {"baseUrl": "http://127.0.0.1:9/alt", "apiKeyEnv": "ALT_KEY"}},
        "defaultBackend": "alt"}}}}}))
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    assert main(["doctor", "--offline", "--json"]) == 3  # alt, the default, has no key
    data = json.loads(capsys.readouterr().out)
    keys = {c["subject"]: c for c in data["checks"] if c["name"] == "key"}
    assert keys["kimi"]["ok"] and keys["alt"]["ok"] is False and "ALT_KEY" in keys["alt"]["detail"]
    [routing] = [c for c in data["checks"] if c["name"] == "routing"]
    assert routing["detail"] == "default -> alt; agent coder -> kimi"
    # only what --agent picks
    assert main(["doctor", "--offline", "--json", "--agent", "coder"]) == 0
    assert {c["subject"] for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "key"} == {"kimi"}


def test_doctor_flags_a_v1_suffix_on_the_base_url(clean_env, claude_bin, monkeypatch, capsys):
    write_config(clean_env / "openclaw.json", "http://127.0.0.1:9/coding/v1")
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    assert main(["doctor", "--offline", "--json"]) == 1
    check = checks_of(capsys.readouterr().out)["baseurl"]
    assert check["ok"] is False and "/coding/v1/v1/messages" in check["detail"]
    assert check["fix"] == "set baseUrl to http://127.0.0.1:9/coding (without /v1)"


def test_doctor_checks_the_report_path(clean_env, claude_bin, monkeypatch, capsys, no_proxy):
    from kimi_acp.stub.gateway import GatewayStub

    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    with GatewayStub(token="hooks-token-for-doctor-0000") as gw:
        (clean_env / "openclaw.json").write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
            "defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": BASE}}, "report": {"gateway": {"url": gw.url}}}}}}}))
        assert main(["doctor", "--json", "--offline"]) == 1  # no token: results would be refused
        checks = checks_of(capsys.readouterr().out)
        assert checks["token"]["ok"] is False and "OPENCLAW_HOOKS_TOKEN" in checks["token"]["fix"]
        monkeypatch.setenv("OPENCLAW_HOOKS_TOKEN", "hooks-token-for-doctor-0000")
        assert main(["doctor", "--json", "--offline"]) == 0
        checks = checks_of(capsys.readouterr().out)
        assert checks["token"]["ok"] and "hooks-token-for-doctor-0000" not in checks["token"]["detail"]
        # online: the gateway answers (the backend probe fails: nothing listens on port 9)
        main(["doctor", "--json", "--timeout", "5"])
        checks = checks_of(capsys.readouterr().out)
        assert checks["gateway"]["ok"], checks["gateway"]
    main(["doctor", "--json", "--timeout", "5"])  # and now it is gone
    checks = checks_of(capsys.readouterr().out)
    assert checks["gateway"]["ok"] is False and "not reachable" in checks["gateway"]["detail"]


# --------------------------------------------------------------------------- Claude Code's settings layers


DECOY_TOKEN = "decoy-provider-token-0000000000000009"


def seed_claude_settings(home: Path, project: Path) -> tuple[Path, Path, Path]:
    user = home / ".claude" / "settings.json"
    proj = project / ".claude" / "settings.json"
    local = project / ".claude" / "settings.local.json"
    for p in (user, proj, local):
        p.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(json.dumps({"env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9/other", "ANTHROPIC_AUTH_TOKEN": DECOY_TOKEN,
                                        "EDITOR": "vi"}}))
    proj.write_text(json.dumps({"apiKeyHelper": f"echo {DECOY_TOKEN}", "permissions": {"allow": []}}))
    local.write_text(json.dumps({"env": {"CLAUDE_CODE_SUBAGENT_MODEL": "other", "CLAUDE_CODE_USE_BEDROCK": "1"}}))
    return user, proj, local


def test_doctor_warns_about_each_settings_layer_that_could_redirect(clean_env, claude_bin, monkeypatch, capsys):
    home, project = clean_env / "home", clean_env / "project"
    user, proj, local = seed_claude_settings(home, project)
    monkeypatch.setenv("HOME", str(home))
    write_config(clean_env / "openclaw.json")
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    assert main(["doctor", "--offline", "--json", "--cwd", str(project)]) == 0  # warnings, not failures
    data = json.loads(capsys.readouterr().out)
    settings = [c for c in data["checks"] if c["name"] == "settings"]
    assert [c["detail"].split(" (")[0] for c in settings] == [str(user), str(proj), str(local)]
    assert all(c["ok"] and c["warning"] for c in settings)
    assert "env.ANTHROPIC_AUTH_TOKEN, env.ANTHROPIC_BASE_URL:" in settings[0]["detail"]
    assert "EDITOR" not in settings[0]["detail"]
    assert "sets apiKeyHelper" in settings[1]["detail"]
    assert "env.CLAUDE_CODE_SUBAGENT_MODEL, env.CLAUDE_CODE_USE_BEDROCK" in settings[2]["detail"]
    assert all("overridden for kimi-acp runs" in c["detail"] for c in settings)

    assert main(["doctor", "--offline", "--cwd", str(project)]) == 0
    text = capsys.readouterr().out
    assert f"! settings {user} (user settings) sets" in text
    assert DECOY_TOKEN not in text and "127.0.0.1:9/other" not in text  # names only, never values


def test_doctor_fails_on_managed_settings_that_outrank_kimi_acp(clean_env, claude_bin, monkeypatch, capsys):
    from kimi_acp.harness import override

    managed = clean_env / "managed-settings.json"
    managed.write_text(json.dumps({"env": {"ANTHROPIC_BASE_URL": "https://elsewhere.example"}}))
    monkeypatch.setattr(override, "MANAGED_SETTINGS", managed)
    monkeypatch.setenv("HOME", str(clean_env))
    write_config(clean_env / "openclaw.json")
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    assert main(["doctor", "--offline", "--json", "--cwd", str(clean_env)]) == 1
    bad = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "settings"]
    assert len(bad) == 1 and not bad[0]["ok"] and str(managed) in bad[0]["detail"] and "outrank" in bad[0]["detail"]


def test_env_shows_what_kimi_acp_does_about_the_settings_layers(clean_env, monkeypatch, capsys):
    home, project = clean_env / "home", clean_env / "project"
    user, proj, local = seed_claude_settings(home, project)
    monkeypatch.setenv("HOME", str(home))
    write_config(clean_env / "openclaw.json")
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    assert main(["env", "--json", "--cwd", str(project)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["file"] for s in out["claudeSettings"]] == [str(user), str(proj), str(local)]
    assert all(s["action"].startswith("overridden for kimi-acp runs") for s in out["claudeSettings"])
    assert "--settings <state dir>/claude-settings/<run id>.json" in out["settingsOverride"]
    assert main(["env", "--cwd", str(project)]) == 0
    text = capsys.readouterr().out
    assert "claude settings override: each run gets --settings" in text
    assert f"  {proj} (project) sets apiKeyHelper: overridden" in text
    assert DECOY_TOKEN not in text


def test_doctor_fails_on_a_world_writable_state_dir(clean_env, claude_bin, monkeypatch, capsys):
    import os

    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    state.mkdir()
    os.chmod(state, 0o777)
    write_config(clean_env / "openclaw.json")
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    assert main(["doctor", "--offline", "--json"]) == 1
    check = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "state"][0]
    assert not check["ok"] and str(state) in check["detail"] and "writable by group and others" in check["detail"]
    assert check["fix"].startswith("chown") and "chmod 700" in check["fix"]
    os.chmod(state, 0o700)
    assert main(["doctor", "--offline", "--json"]) == 0
    capsys.readouterr()
