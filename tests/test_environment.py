"""The child's environment: scrub, backend variables, request env, plugin env."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kimi_acp.backends import PASSTHROUGH_BACKEND, Backend, ModelInfo
from kimi_acp.default_plugins.kimi import PRESET as KIMI
from kimi_acp.environment import SCRUBBED, backend_variables, build_child_env
from kimi_acp.redact import mask

KEY = "sk-kimi-test0000000000000000000000000000abcd"

PARENT = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/u",
    "LANG": "C.UTF-8",
    "ANTHROPIC_API_KEY": "sk-ant-parent-0000000000000000000000",
    "ANTHROPIC_AUTH_TOKEN": "parent-oauth-token-000000",
    "ANTHROPIC_BASE_URL": "https://api.anthropic.com",
    "ANTHROPIC_MODEL": "claude-opus-4",
    "ANTHROPIC_CUSTOM_HEADERS": "x-a: b",
    "CLAUDE_CODE_USE_BEDROCK": "1",
    "CLAUDE_CODE_OAUTH_TOKEN": "oauth-000000000000",
    "API_TIMEOUT_MS": "1000",
    "KIMI_API_KEY": KEY,
    "OPENCLAW_HOOKS_TOKEN": "hooks-000000000000",
}


def test_scrubbed_variables_are_removed_for_a_backend():
    child = build_child_env(PARENT, KIMI, key=KEY)
    for name in ("ANTHROPIC_CUSTOM_HEADERS", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_OAUTH_TOKEN",
                 "KIMI_API_KEY", "OPENCLAW_HOOKS_TOKEN", "ANTHROPIC_AUTH_TOKEN"):
        assert name not in child.env, name
        assert name in child.unset, name
    # everything else is inherited
    for name in ("PATH", "HOME", "LANG"):
        assert child.env[name] == PARENT[name]
    # every scrubbed name that the parent had is either gone or replaced by the backend's value
    for name in SCRUBBED:
        if name in PARENT:
            assert child.env.get(name) != PARENT[name], name


def test_inherited_anthropic_credentials_are_unset_and_replaced():
    """The issue's rule: inherited ANTHROPIC_AUTH_TOKEN / ANTHROPIC_API_KEY are listed in
    ``unset`` and replaced (ANTHROPIC_API_KEY = the Kimi key, no ANTHROPIC_AUTH_TOKEN set)."""
    child = build_child_env(PARENT, KIMI, key=KEY)
    assert "ANTHROPIC_AUTH_TOKEN" in child.unset
    assert "ANTHROPIC_API_KEY" in child.unset
    assert child.set["ANTHROPIC_API_KEY"] == KEY
    assert child.env["ANTHROPIC_API_KEY"] == KEY
    assert "ANTHROPIC_AUTH_TOKEN" not in child.set
    assert "ANTHROPIC_AUTH_TOKEN" not in child.env


def test_passthrough_keeps_everything():
    child = build_child_env(PARENT, PASSTHROUGH_BACKEND, key=None)
    assert child.env == PARENT
    assert child.set == {} and child.unset == [] and child.secrets == []


def test_passthrough_still_applies_request_and_plugin_env():
    child = build_child_env(PARENT, PASSTHROUGH_BACKEND, key=None, request_env={"A": "1"}, plugin_env=[{"LANG": None}])
    assert child.env["A"] == "1"
    assert "LANG" not in child.env
    assert child.env["ANTHROPIC_API_KEY"] == PARENT["ANTHROPIC_API_KEY"]


def test_a_key_is_required_for_a_real_backend():
    with pytest.raises(ValueError, match="key"):
        build_child_env(PARENT, KIMI, key=None)


def test_kimi_backend_variables():
    child = build_child_env({}, KIMI, key=KEY)
    assert child.set == {
        "ANTHROPIC_BASE_URL": "https://api.kimi.com/coding",
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_MODEL": "kimi-for-coding",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "kimi-for-coding",
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "kimi-for-coding",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "kimi-for-coding",
        "ANTHROPIC_SMALL_FAST_MODEL": "kimi-for-coding",
        "CLAUDE_CODE_SUBAGENT_MODEL": "kimi-for-coding",
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "262144",
        "CLAUDE_CODE_AUTO_COMPACT_WINDOW": "262144",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "32768",
        "API_TIMEOUT_MS": "600000",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ENABLE_TOOL_SEARCH": "false",
    }
    assert child.env == child.set
    assert child.secrets == [KEY]
    assert child.masked_set()["ANTHROPIC_API_KEY"] == "sk-kimi-…abcd"


def test_model_tiers_and_subagent_model():
    b = Backend(
        name="corp", base_url="http://127.0.0.1:9/", model="big",
        opus_model="huge", sonnet_model="mid", haiku_model="small", subagent_model="sub",
    )
    v = backend_variables(b, "k" * 20)
    assert v["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"  # trailing slash dropped
    assert v["ANTHROPIC_MODEL"] == "big"
    assert v["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "huge"
    assert v["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "mid"
    assert v["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "small"
    assert v["ANTHROPIC_SMALL_FAST_MODEL"] == "small"
    assert v["CLAUDE_CODE_SUBAGENT_MODEL"] == "sub"


def test_route_model_overrides_backend_model():
    v = backend_variables(KIMI, KEY, "kimi-k2-thinking")
    assert v["ANTHROPIC_MODEL"] == v["CLAUDE_CODE_SUBAGENT_MODEL"] == "kimi-k2-thinking"
    # not a known model of the preset: the backend's context window still applies
    assert v["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "262144"


def test_context_window_comes_from_the_model_first():
    b = Backend(name="x", base_url="http://127.0.0.1:9", model="a", context_window=100_000,
                models=(ModelInfo(id="a", context_window=50_000), ModelInfo(id="b")))
    assert backend_variables(b, "k")["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "50000"
    assert backend_variables(b, "k", "b")["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "100000"
    assert "CLAUDE_CODE_MAX_CONTEXT_TOKENS" not in backend_variables(Backend(name="y", base_url="http://h"), "k")


def test_max_output_tokens_follow_the_model_up_to_claude_codes_cap():
    assert backend_variables(KIMI, KEY)["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "32768"  # kimi-for-coding
    assert backend_variables(KIMI, KEY, "k3")["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "128000"  # 131,072, clamped as Claude Code does
    # a model with no known limit: the backend's configured maxTokens, else nothing (Claude Code's own 32000)
    assert "CLAUDE_CODE_MAX_OUTPUT_TOKENS" not in backend_variables(KIMI, KEY, "kimi-k2-thinking")
    assert backend_variables(KIMI.merged(max_tokens=8192), KEY, "kimi-k2-thinking")["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "8192"
    assert "CLAUDE_CODE_MAX_OUTPUT_TOKENS" not in backend_variables(Backend(name="y", base_url="http://h", model="m"), "k")


@pytest.mark.parametrize(("timeout_ms", "expected"), [(None, "120000"), (5_000, "120000"), (120_000, "120000"), (900_000, "900000")])
def test_api_timeout_is_at_least_120s(timeout_ms, expected):
    b = Backend(name="x", base_url="http://127.0.0.1:9", timeout_ms=timeout_ms)
    child = build_child_env({"API_TIMEOUT_MS": "10"}, b, key="k" * 10)
    assert child.env["API_TIMEOUT_MS"] == expected
    assert int(child.env["API_TIMEOUT_MS"]) >= 120_000
    assert child.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"


def test_bearer_backend_sets_auth_token_not_api_key():
    b = Backend(name="corp", base_url="http://127.0.0.1:9", auth_header="bearer", model="m")
    child = build_child_env(PARENT, b, key="corp-token-1234567890")
    assert child.env["ANTHROPIC_AUTH_TOKEN"] == "corp-token-1234567890"
    assert "ANTHROPIC_API_KEY" not in child.env
    assert "ANTHROPIC_API_KEY" not in child.set
    assert "ANTHROPIC_API_KEY" in child.unset


def test_backend_env_and_quirks():
    b = KIMI.merged(env={"EXTRA": "1", "ENABLE_TOOL_SEARCH": "auto"})
    v = backend_variables(b, KEY)
    assert v["EXTRA"] == "1"
    assert v["ENABLE_TOOL_SEARCH"] == "auto"  # configured env beats the preset's quirk


def test_request_env_is_applied_after_the_backend():
    child = build_child_env(PARENT, KIMI, key=KEY, request_env={"ENABLE_TOOL_SEARCH": "auto", "FOO": "bar"})
    assert child.env["ENABLE_TOOL_SEARCH"] == "auto"  # the Kimi preset's quirk says false
    assert child.set["ENABLE_TOOL_SEARCH"] == "auto"
    assert child.env["FOO"] == "bar"
    assert child.env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "kimi-for-coding"


def test_plugin_env_is_applied_after_the_request_env_in_order():
    child = build_child_env(
        PARENT, KIMI, key=KEY,
        request_env={"FOO": "request", "BAR": "request"},
        plugin_env=[{"FOO": "plugin1"}, {"FOO": "plugin2", "BAZ": "p"}, None],  # type: ignore[list-item]
    )
    assert child.env["FOO"] == "plugin2"
    assert child.env["BAR"] == "request"
    assert child.env["BAZ"] == "p"


def test_plugin_none_removes_a_variable():
    child = build_child_env(
        PARENT, KIMI, key=KEY,
        request_env={"FOO": "request"},
        plugin_env=[{"FOO": None, "LANG": None, "ENABLE_TOOL_SEARCH": None}],
    )
    for name in ("FOO", "LANG", "ENABLE_TOOL_SEARCH"):  # from the request, the parent, the backend
        assert name not in child.env, name
        assert name not in child.set, name
    assert "LANG" in child.unset
    # a later plugin may set it again
    again = build_child_env(PARENT, KIMI, key=KEY, plugin_env=[{"LANG": None}, {"LANG": "fr_FR"}])
    assert again.env["LANG"] == "fr_FR"


def test_parent_mapping_is_not_modified():
    parent = dict(PARENT)
    build_child_env(parent, KIMI, key=KEY, plugin_env=[{"LANG": None}])
    assert parent == PARENT


def test_masked_set_hides_every_secret():
    child = build_child_env(PARENT, KIMI, key=KEY)
    shown = child.masked_set()
    assert KEY not in str(shown)
    assert shown["ANTHROPIC_API_KEY"] == mask(KEY)
    assert shown["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "262144"


# --------------------------------------------------------------------------- property

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789"
_names = st.one_of(
    st.sampled_from([*SCRUBBED, "PATH", "HOME", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY", "ENABLE_TOOL_SEARCH"]),
    st.text(alphabet=_UPPER, min_size=1, max_size=16),
)
_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8, max_size=40).map(
    lambda s: "sk-kimi-" + s
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parent=st.dictionaries(_names, _values, max_size=25), key=_keys)
def test_property_kimi_child_env_never_has_a_bearer_token(parent, key):
    child = build_child_env(parent, KIMI, key=key)
    assert "ANTHROPIC_AUTH_TOKEN" not in child.env
    assert child.env["ANTHROPIC_API_KEY"] == key
    assert child.env["ANTHROPIC_BASE_URL"] == "https://api.kimi.com/coding"
    assert int(child.env["API_TIMEOUT_MS"]) >= 120_000
    for name in ("KIMI_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_USE_BEDROCK"):
        assert name not in child.env


# --------------------------------------------------------------------------- every known secret


def test_every_configured_secret_is_scrubbed_from_a_real_child(tmp_path, monkeypatch):
    """A real spawn whose harness is a tiny program that dumps its environment: the gateway's
    custom tokenEnv, every backend's apiKeyEnv, a variable holding an inline key and one
    holding the inline hooks token are all gone; the chosen key is there as ANTHROPIC_API_KEY."""
    import json
    import os
    import stat
    import sys

    import anyio

    from fakes.spawning import CONTEXT, write_config
    from kimi_acp.spawn import Spawner

    dump = tmp_path / "env.json"
    script = tmp_path / "dump-env"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
        "sys.stdin.read()\n"
        "print(json.dumps({'type': 'result', 'subtype': 'success', 'is_error': False, 'result': 'dumped'}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    secrets = {
        "KIMI_API_KEY": KEY,
        "GLM_API_KEY": "glm-secret-000000000000000001",
        "ZED_KEY": "zed-inline-secret-00000000002",
        "MY_HOOKS_TOKEN": "hooks-custom-token-0000000003",
        "INNOCENT_LOOKING": "inline-gateway-token-000000004",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    write_config(
        tmp_path,
        harness={"command": str(script)},
        extra={
            "backends": {
                "kimi": {"baseUrl": "http://127.0.0.1:9/coding"},
                "glm": {"baseUrl": "https://open.bigmodel.example/api/anthropic", "apiKeyEnv": "GLM_API_KEY"},
                "zed": {"baseUrl": "https://zed.example/anthropic", "apiKey": "${ZED_KEY}"},
            },
            "report": {"gateway": {"tokenEnv": "MY_HOOKS_TOKEN", "token": "${INNOCENT_LOOKING}"}},
        },
    )

    async def go():
        async with Spawner(environ=dict(os.environ)) as sp:
            answer = await sp.spawn({"task": "x", "runtime": "acp"}, CONTEXT)
            return await sp.wait(answer["runId"], timeout=30)

    result = anyio.run(go)
    assert result.status == "ok", result
    child = json.loads(dump.read_text())
    assert child["ANTHROPIC_API_KEY"] == KEY  # the control: the chosen key is where Claude Code reads it
    assert child["PATH"] == os.environ["PATH"]
    for name, value in secrets.items():
        assert name not in child, name
        assert value not in {v for k, v in child.items() if k != "ANTHROPIC_API_KEY"}, name


def test_secret_names_and_values_are_scrubbed_by_build_child_env():
    parent = {**PARENT, "GLM_API_KEY": "glm-000000000", "OTHER": "inline-000000", "KEEP": "1"}
    # even passed by name, a secret kimi-acp knows (by name or by value) stays out
    by_name = {n: "passed by name (test)" for n in ("GLM_API_KEY", "OTHER", "KEEP")}
    child = build_child_env(parent, KIMI, key=KEY, secret_names=["GLM_API_KEY"], secret_values=["inline-000000"],
                            pass_names=by_name)
    assert "GLM_API_KEY" not in child.env and "OTHER" not in child.env and child.env["KEEP"] == "1"
    assert {"GLM_API_KEY", "OTHER"} <= set(child.unset)
    assert child.passed["KEEP"] == "passed by name (test)"


PLANTED = {
    "OPENAI_API_KEY": "sk-openai-planted000000000000000",
    "TELEGRAM_BOT_TOKEN": "123456:planted-telegram-token-000",
    "GITHUB_TOKEN": "ghp_planted000000000000000000000000",
    "AWS_SECRET_ACCESS_KEY": "planted/aws/secret/000000000000",
    "DATABASE_URL": "postgres://u:planted-pw@db/x",
    "SOME_RANDOM_SETTING": "1",
}


def test_a_kimi_child_gets_an_allowlist_not_the_gateways_environment():
    """The gateway's environment is full of other secrets (channel bot tokens, other providers'
    keys): a Kimi-routed child gets what a coding agent needs, kimi-acp's own, the backend's
    variables, and nothing else."""
    parent = {**PARENT, **PLANTED, "LC_ALL": "C.UTF-8", "TERM": "xterm", "TMPDIR": "/tmp/x", "HTTPS_PROXY": "http://proxy:3128",
              "no_proxy": "localhost", "KIMI_ACP_STATE_DIR": "/s", "CLAUDE_CODE_TMPDIR": "/t", "DISABLE_TELEMETRY": "1",
              "CLAUDE_CODE_SECRET_TOKEN": "nope-0000000000", "NODE_OPTIONS": "--require /evil.js", "LD_PRELOAD": "/evil.so"}
    child = build_child_env(parent, KIMI, key=KEY)
    for name in PLANTED:
        assert name not in child.env, name
        assert name in child.unset, name
    for name, value in PLANTED.items():
        if name != "SOME_RANDOM_SETTING":
            assert value not in child.env.values(), name
    for name in ("NODE_OPTIONS", "LD_PRELOAD", "CLAUDE_CODE_SECRET_TOKEN"):
        assert name not in child.env, name
    for name in ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "HTTPS_PROXY", "no_proxy", "KIMI_ACP_STATE_DIR",
                 "CLAUDE_CODE_TMPDIR", "DISABLE_TELEMETRY"):
        assert child.env[name] == parent[name], name
        assert child.passed[name], name
    assert set(child.env) == set(child.passed) | set(child.set)


def test_passed_by_name_reaches_the_child_and_passthrough_keeps_everything():
    parent = {**PARENT, **PLANTED}
    child = build_child_env(parent, KIMI, key=KEY, pass_names={"GITHUB_TOKEN": "passed by name (passEnv)"})
    assert child.env["GITHUB_TOKEN"] == PLANTED["GITHUB_TOKEN"]
    assert child.passed["GITHUB_TOKEN"] == "passed by name (passEnv)"
    assert "OPENAI_API_KEY" not in child.env
    assert build_child_env(parent, PASSTHROUGH_BACKEND, key=None).env == parent


# --------------------------------------------------------------------------- the Kimi profile


@pytest.mark.parametrize("model", ["kimi-for-coding", "kimi-for-coding-highspeed", "k3", "k3-256k", "kimi-k2.5", "kimi-k2.6"])
def test_the_kimi_models_get_the_context_window_and_the_compact_window(model):
    v = backend_variables(KIMI, KEY, model)
    assert v["ANTHROPIC_MODEL"] == model and v["CLAUDE_CODE_SUBAGENT_MODEL"] == model
    assert v["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "262144"  # k3 too: 1M only when the user says the plan has it
    assert v["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "262144"


def test_kimi_for_coding_is_the_default_and_todays_lineup_is_known():
    assert KIMI.model == "kimi-for-coding"
    assert [m.id for m in KIMI.models if not m.legacy] == ["kimi-for-coding", "kimi-for-coding-highspeed", "k3", "k3-256k"]
    assert [m.id for m in KIMI.models if m.legacy] == ["kimi-k2.5", "kimi-k2.6"]
    assert "kimi-k2.7-code" not in {m.id for m in KIMI.models}  # Moonshot's
    assert KIMI.base_url == "https://api.kimi.com/coding"


@pytest.mark.parametrize("model", ["kimi-k2.6", "k3"])
def test_a_newer_kimi_model_as_the_backend_model_by_config(clean_env, model):
    from kimi_acp.config import load_config
    from kimi_acp.plugins import build_plugin_manager, registered_backends
    from kimi_acp.routing import resolve, resolve_ref

    (clean_env / "openclaw.json").write_text(
        '{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "kimi", backends: {kimi: {model: "%s"}}}}}}}' % model
    )
    cfg = load_config(presets=registered_backends(build_plugin_manager(entrypoints=False)))
    route = resolve(cfg)
    assert route.name == "kimi" and route.model == model
    assert backend_variables(route.backend, KEY, route.model)["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "262144"
    # and as a bare ref in a spawn request, on the default config
    backend, chosen = resolve_ref(cfg, "kimi-k2.6")
    assert backend.name == "kimi" and chosen == "kimi-k2.6"


@pytest.mark.parametrize(("name", "why"), [
    ("ANTHROPIC_BASE_URL", "where Claude Code's requests and the key go"),
    ("ANTHROPIC_AUTH_TOKEN", "where Claude Code's requests and the key go"),
    ("ANTHROPIC_API_KEY", "where Claude Code's requests and the key go"),
    ("ANTHROPIC_MODEL", "which model answers"),
    ("ANTHROPIC_UNIX_SOCKET", "where Claude Code's requests and the key go"),
    ("ANTHROPIC_FOUNDRY_BASE_URL", "where Claude Code's requests and the key go"),
    ("ANTHROPIC_SOMETHING_NEW", "where Claude Code's requests and the key go"),
    ("KIMI_API_KEY", "where Claude Code's requests and the key go"),
    ("CLAUDE_CONFIG_DIR", "where Claude Code's requests and the key go"),
    ("CLAUDE_CODE_USE_BEDROCK", "where Claude Code's requests and the key go"),
    ("HTTP_PROXY", "a proxy sees every request"),
    ("HTTPS_PROXY", "a proxy sees every request"),
    ("https_proxy", "a proxy sees every request"),
    ("ALL_PROXY", "a proxy sees every request"),
    ("NO_PROXY", "a proxy sees every request"),
    ("no_proxy", "a proxy sees every request"),
    ("NODE_TLS_REJECT_UNAUTHORIZED", "TLS certificates"),
    ("NODE_EXTRA_CA_CERTS", "TLS certificates"),
    ("SSL_CERT_FILE", "TLS certificates"),
    ("NODE_OPTIONS", "NODE_* options"),
    ("LD_PRELOAD", "loads code"),
    ("LD_LIBRARY_PATH", "loads code"),
    ("DYLD_INSERT_LIBRARIES", "loads code"),
    ("BUN_CONFIG_VERBOSE_FETCH", "Bun's own switches"),
    ("PATH", "which programs run"),
])
@pytest.mark.parametrize("backend", [KIMI, PASSTHROUGH_BACKEND], ids=["kimi", "passthrough"])
def test_a_request_env_cannot_point_the_key_elsewhere(name: str, why: str, backend: Backend) -> None:
    """The spawn's env (OpenClaw's ensureSession env, an agent's words, an ACP client) must not
    redirect a run, on any route: on passthrough the key is the gateway's own."""
    from kimi_acp.errors import RequestEnvError

    with pytest.raises(RequestEnvError) as caught:
        build_child_env(PARENT, backend, key=None if backend.passthrough else KEY,
                        request_env={"FOO": "ok", name: "http://127.0.0.1:9/elsewhere"})
    message = str(caught.value)
    assert f"sets {name}, which a request may not set" in message and why in message
    assert "\n" not in message and "fix: remove" in message


def test_a_request_env_may_set_other_variables_on_any_route() -> None:
    for backend in (KIMI, PASSTHROUGH_BACKEND):
        child = build_child_env(PARENT, backend, key=None if backend.passthrough else KEY,
                                request_env={"GIT_AUTHOR_NAME": "bot", "DEBUG": "1", "HOME": "/tmp/h"})
        assert child.env["GIT_AUTHOR_NAME"] == "bot" and child.env["DEBUG"] == "1" and child.env["HOME"] == "/tmp/h"
