"""A request cannot point the key anywhere, and the gateway's other secrets stay home.

Every door's ``env`` (the CLI's ``--env``, the Python API's ``SpawnRequest.env``, ACP
``session/new`` ``_meta``) that sets a proxy, a TLS switch, ``NODE_*``, ``LD_*``, ``PATH`` or a
redirecting variable is refused with one line naming it; a settings file that sets a proxy
is overridden by the run's ``--settings``. A loopback forward proxy (tests/fakes/proxy.py)
must see nothing — with the real Claude Code against the Kimi stub, which went through such a
proxy, key included, before. The operator's own proxy (kimi-acp's environment) still applies.
And a Kimi child gets an allowlist: the planted tokens of a gateway's environment do not
reach it unless the config passes them by name.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fakes.proxy import RecordingProxy
from fakes.spawning import CONTEXT, KIMI_ACP, FakeHarness, StartedProbe, fake_argv, make_pm, write_config
from kimi_acp.spawn import Spawner
from kimi_acp.stub.server import StubServer

KEY = "sk-kimi-reqenv000000000000000000000000000e5f1"

PLANTED = {
    "OPENAI_API_KEY": "sk-openai-planted0000000000000000000",
    "TELEGRAM_BOT_TOKEN": "123456789:planted-telegram-bot-token-000",
    "GITHUB_TOKEN": "ghp_planted00000000000000000000000000",
}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KIMI_ACP, "spawn", "say hi", *args], capture_output=True, text=True, env=env, timeout=150,
                          check=False)


def _world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub: StubServer, claude_bin: str) -> tuple[dict[str, str], Path]:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("HOME", str(home))
    write_config(tmp_path, base_url=stub.base_url, harness={"command": claude_bin}, limits={"runTimeoutSeconds": 120})
    return dict(os.environ), project


@pytest.mark.e2e
def test_the_cli_refuses_a_proxy_in_the_request_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str) -> None:
    with StubServer(key=KEY) as stub, RecordingProxy() as proxy:
        env, project = _world(tmp_path, monkeypatch, stub, claude_bin)
        done = _cli(env, "--agent", "coder", "--cwd", str(project), "--env", f"HTTP_PROXY={proxy.url}", "--env", "NO_PROXY=")
        assert proxy.seen == [], "the request went through the request's proxy"
        assert stub.messages_requests() == []  # refused before anything ran
    assert done.returncode == 2, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("[")]
    assert len(lines) == 2 and lines[1].startswith("hint: remove HTTP_PROXY"), done.stderr
    assert "HTTP_PROXY" in lines[0] and "a proxy sees every request" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_a_settings_file_cannot_send_a_run_through_a_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str
) -> None:
    """The project's .claude/settings.json sets a proxy (and empties NO_PROXY): the run's
    --settings pins them to the child's own values (none here), so Claude Code goes direct."""
    with StubServer(key=KEY) as stub, RecordingProxy() as proxy:
        environ, project = _world(tmp_path, monkeypatch, stub, claude_bin)
        (project / ".claude").mkdir()
        (project / ".claude" / "settings.json").write_text(json.dumps({"env": {
            "HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": "",
            "NODE_TLS_REJECT_UNAUTHORIZED": "0"}}))
        async with Spawner(environ=environ) as sp:
            answer = await sp.spawn({"task": "say hi", "runtime": "acp", "cwd": str(project)}, CONTEXT)
            result = await sp.wait(answer["runId"], timeout=90)
        assert result.status == "ok", result
        assert proxy.seen == [], "a settings file sent the run (and its key) through a proxy"
        assert stub.messages_requests()


@pytest.mark.e2e
def test_the_operators_own_proxy_still_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str) -> None:
    """A proxy in kimi-acp's own environment is the gateway operator's: the child gets it (and
    the --settings file repeats it), so a company proxy keeps working."""
    with StubServer(key=KEY) as stub, RecordingProxy() as proxy:
        env, project = _world(tmp_path, monkeypatch, stub, claude_bin)
        done = _cli({**env, "HTTP_PROXY": proxy.url, "NO_PROXY": ""}, "--agent", "coder", "--cwd", str(project), "--json")
        assert done.returncode == 0, done.stderr
        assert [s["method"] for s in proxy.seen if "/v1/messages" in s["url"]] == ["POST"]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["HTTPS_PROXY", "NODE_OPTIONS", "LD_PRELOAD", "PATH", "ANTHROPIC_UNIX_SOCKET",
                                  "NODE_TLS_REJECT_UNAUTHORIZED"])
@pytest.mark.parametrize("backend", ["kimi", "passthrough"])
async def test_the_python_api_refuses_it_with_a_clear_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             name: str, backend: str) -> None:
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    write_config(tmp_path, agents={"coder": {"backend": backend}})
    probe = StartedProbe()
    async with Spawner(pm=make_pm(FakeHarness(fake_argv("ok")), probe)) as sp:
        answer = await sp.spawn({"task": "t", "runtime": "acp", "env": {name: "http://127.0.0.1:9"}}, CONTEXT)
        assert answer["status"] == "error", answer
        assert f"env sets {name}, which a request may not set" in answer["error"]
        assert sp.store.get_run(answer["runId"]).status == "error"  # recorded, as every refusal
    assert probe.pids == {}  # nothing started


@pytest.mark.asyncio
async def test_the_acp_door_refuses_it_with_a_clear_error(tmp_path: Path) -> None:
    """ACP ``session/new`` from OpenClaw's runtime backend carries ``env`` in ``_meta``: the
    turn fails with a RequestError naming the variable (no run is started)."""
    import acp
    from acp.schema import ClientCapabilities

    from test_acp import Recorder

    work = tmp_path / "work"
    work.mkdir()
    write_config(tmp_path, harness={"command": "/bin/true"})
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KIMI_API_KEY": KEY, "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
           "KIMI_ACP_STATE_DIR": os.environ["KIMI_ACP_STATE_DIR"], "OPENCLAW_CONFIG_PATH": os.environ["OPENCLAW_CONFIG_PATH"]}
    async with acp.spawn_agent_process(Recorder(), KIMI_ACP, "acp", "--agent", "coder", env=env, cwd=str(work)) as (conn, _proc):
        await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities())
        session = await conn.new_session(cwd=str(work), mcp_servers=[], kimiAcp={
            "sessionKey": "agent:kimi-acp:acp:11111111-2222-3333-4444-555555555555", "cwd": str(work),
            "env": {"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}})
        with pytest.raises(acp.RequestError) as caught:
            await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("say hi")])
    text = json.dumps(caught.value.data) + str(caught.value)
    assert "HTTPS_PROXY" in text and "a request may not set" in text


@pytest.mark.asyncio
async def test_planted_tokens_do_not_reach_a_kimi_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway's environment is full of other secrets: a Kimi-routed child (a real process; its
    /proc environ is read) gets none of them — only GITHUB_TOKEN, passed by name for agent coder."""
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    write_config(tmp_path, agents={"coder": {"backend": "kimi", "passEnv": ["GITHUB_TOKEN"]},
                                   "writer": {"backend": "kimi"}, "legacy": {"backend": "passthrough"}})
    dumps = tmp_path / "env-dumps"
    dumps.mkdir()
    # The harness itself writes its environment (as `env` run by a model would see it), then runs.
    harness = ["/bin/sh", "-c", f'env -0 > {dumps}/"$KIMI_ACP_RUN_ID"; exec "$@"', "harness", *fake_argv("ok")]
    got: dict[str, dict[str, str]] = {}
    async with Spawner(pm=make_pm(FakeHarness(harness))) as sp:
        for agent in ("coder", "writer", "legacy"):
            answer = await sp.spawn({"task": "t", "runtime": "acp"}, {**CONTEXT, "requesterAgentId": agent})
            assert answer["status"] == "accepted", answer
            assert (await sp.wait(answer["runId"], timeout=30)).status == "ok"
            raw = (dumps / answer["runId"]).read_bytes()
            got[agent] = dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)
    assert got["writer"].get("ANTHROPIC_API_KEY") == KEY
    for name in PLANTED:
        assert name not in got["writer"], name
    assert got["coder"]["GITHUB_TOKEN"] == PLANTED["GITHUB_TOKEN"]
    assert "OPENAI_API_KEY" not in got["coder"] and "TELEGRAM_BOT_TOKEN" not in got["coder"]
    for name, value in PLANTED.items():  # passthrough keeps today's meaning: everything is inherited
        assert got["legacy"][name] == value
    assert got["writer"]["PATH"] == os.environ["PATH"] and got["writer"]["HOME"] == os.environ["HOME"]


def test_kimi_acp_env_says_what_is_passed_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    write_config(tmp_path, extra={"passEnv": ["GITHUB_TOKEN"]})
    env = {**os.environ, **PLANTED}
    done = subprocess.run([KIMI_ACP, "env", "--agent", "coder", "--json"], capture_output=True, text=True, env=env, check=True)
    out: dict[str, Any] = json.loads(done.stdout)
    passed = out["passed"]
    assert passed["GITHUB_TOKEN"]["why"] == "passed by name (plugins.entries.kimi-acp.config.passEnv)"
    assert passed["GITHUB_TOKEN"]["value"] != PLANTED["GITHUB_TOKEN"] and passed["GITHUB_TOKEN"]["value"].endswith("0000")
    assert passed["PATH"]["why"] == "where programs are"
    assert {"OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN"} <= set(out["unset"])
    for value in PLANTED.values():
        assert value not in done.stdout
    text = subprocess.run([KIMI_ACP, "env", "--agent", "coder"], capture_output=True, text=True, env=env, check=True).stdout
    assert "passed from this environment" in text and "GITHUB_TOKEN=" in text
    assert PLANTED["GITHUB_TOKEN"] not in text


@pytest.mark.parametrize(("pass_env", "needle"), [
    (["KIMI_API_KEY"], "cannot be passed"),
    (["ANTHROPIC_BASE_URL"], "cannot be passed"),
    (["not a name"], "passEnv"),
    ("GITHUB_TOKEN", "passEnv"),
    (["OPENCLAW_HOOKS_TOKEN"], "cannot be passed"),
])
def test_pass_env_is_strictly_typed(tmp_path: Path, pass_env: Any, needle: str) -> None:
    from kimi_acp.config import load_config
    from kimi_acp.errors import ConfigError

    write_config(tmp_path, extra={"passEnv": pass_env})
    with pytest.raises(ConfigError, match=needle):
        load_config()


def test_pass_env_may_not_name_a_configured_secret(tmp_path: Path) -> None:
    from kimi_acp.config import load_config
    from kimi_acp.errors import ConfigError

    write_config(tmp_path, extra={"backends": {"kimi": {"baseUrl": "http://127.0.0.1:9/coding"},
                                               "glm": {"baseUrl": "https://glm.example/api", "apiKeyEnv": "GLM_KEY_VAR"}},
                                  "passEnv": ["GLM_KEY_VAR"]})
    with pytest.raises(ConfigError, match=r"passEnv: GLM_KEY_VAR holds a secret"):
        load_config()
