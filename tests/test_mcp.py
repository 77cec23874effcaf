"""MCP servers reach Claude Code: from ACP ``session/new`` and from the config (per agent), as
``--mcp-config`` (a 0600 file in a 0700 dir, gone when the run ends), with their env and
headers kept secret.

The MCP server is ``tests/fakes/mcp_server.py``, a TEST STAND-IN for a user's server: a real
process speaking MCP's JSON-RPC on stdio, started by the REAL Claude Code, which the local Kimi
stub makes call its tool (``[[stub:tool:mcp__demo__whoami]]``). It logs what it sees (its
environment's names, its parent's argv and ``--mcp-config`` file modes) to ``DEMO_LOG``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from fakes.spawning import CONTEXT, make_pm, transcript_objects, write_config
from kimi_acp.cli import main
from kimi_acp.errors import McpServerError, RequestEnvError
from kimi_acp.mcp import allowed_tools, claude_config, configured, from_request, merged
from kimi_acp.redact import mask
from kimi_acp.spawn import Spawner
from kimi_acp.stub.server import StubServer

REPO = Path(__file__).resolve().parents[1]
KIMI_ACP = str(REPO / ".venv" / "bin" / "kimi-acp")
MCP_SERVER = str(Path(__file__).parent / "fakes" / "mcp_server.py")
TEST_KEY = "sk-kimi-test0000000000000000000000000000abcd"
SECRET = "demo-token-3f9a8c7d6e5b4a39"  # a server's env secret: must show up nowhere of ours
HEADER_SECRET = "Bearer docs-secret-7c1e9f2a55"


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _leaks(directory: Path, secret: str) -> list[str]:
    """Files under ``directory`` that hold ``secret`` (in any form a file could: raw bytes)."""
    found = []
    for path in directory.rglob("*"):
        try:
            if path.is_file() and secret.encode() in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue
    return found


# --------------------------------------------------------------------------- shapes and refusals


def test_acp_servers_are_checked_and_keep_acps_shape() -> None:
    stdio, http, sse = from_request([
        {"name": "demo", "command": "python3", "args": ["s.py"], "env": [{"name": "DEMO_TOKEN", "value": SECRET}]},
        {"type": "http", "name": "docs", "url": "https://docs.example/mcp", "headers": [{"name": "Authorization", "value": HEADER_SECRET}]},
        {"type": "sse", "name": "local", "url": "http://127.0.0.1:9/sse", "headers": [{"name": "X-Api-Key", "value": "k-123456789"}]},
    ])
    assert (stdio.type, stdio.env, http.type, sse.type) == ("stdio", {"DEMO_TOKEN": SECRET}, "http", "sse")
    content = claude_config([stdio, http], blank={"ANTHROPIC_API_KEY": ""})
    assert content["mcpServers"]["demo"] == {"type": "stdio", "command": "python3", "args": ["s.py"],
                                             "env": {"ANTHROPIC_API_KEY": "", "DEMO_TOKEN": SECRET}}
    assert content["mcpServers"]["docs"] == {"type": "http", "url": "https://docs.example/mcp", "headers": {"Authorization": HEADER_SECRET}}
    assert SECRET not in stdio.describe() and HEADER_SECRET not in http.describe() and mask(SECRET) in stdio.describe()
    assert stdio.to_json()["env"] == {"DEMO_TOKEN": mask(SECRET)}


@pytest.mark.parametrize(
    ("server", "error", "says"),
    [
        ({"name": "x", "command": "s", "env": [{"name": "HTTPS_PROXY", "value": "http://evil:8080"}]}, RequestEnvError, "HTTPS_PROXY"),
        ({"name": "x", "command": "s", "env": [{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]}, RequestEnvError, "loads code"),
        ({"name": "x", "command": "s", "env": [{"name": "ANTHROPIC_BASE_URL", "value": "https://elsewhere"}]}, RequestEnvError, "ANTHROPIC_BASE_URL"),
        ({"name": "x", "command": "s", "env": [{"name": "KIMI_API_KEY", "value": "k"}]}, RequestEnvError, "KIMI_API_KEY"),
        ({"name": "x"}, McpServerError, "unknown type"),
        ({"name": "x", "type": "stdio", "command": ""}, McpServerError, "needs command"),
        ({"name": "", "command": "s"}, McpServerError, "name must be"),
        ({"type": "http", "name": "x", "url": "ftp://a/b"}, McpServerError, r"not an http\(s\) URL"),
        ({"type": "http", "name": "x", "url": "http://10.1.2.3/mcp", "headers": [{"name": "Authorization", "value": "t"}]},
         McpServerError, "in clear"),
        ({"type": "http", "name": "x", "url": "https://user:pw-secret@h/mcp"}, McpServerError, "credentials"),
    ],
)
def test_a_bad_request_server_is_refused_naming_it(server: dict[str, Any], error: type, says: str) -> None:
    with pytest.raises(error, match=says) as exc:
        from_request([server])
    assert "mcpServers[0]" in str(exc.value) and "pw-secret" not in str(exc.value)


def test_two_servers_of_one_name_are_refused() -> None:
    with pytest.raises(McpServerError, match="two servers are named 'a'"):
        from_request([{"name": "a", "command": "x"}, {"name": "a", "command": "y"}])


def test_config_servers_per_agent_and_target(clean_env: Path) -> None:
    from kimi_acp.config import load_config

    write_config(clean_env, extra={
        "mcpServers": {"shared": {"command": "s"}, "docs": {"url": "https://d/mcp", "alwaysAllow": ["*"]}},
        "targets": {"kimi-acp": {"mcpServers": {"t": {"type": "sse", "url": "http://127.0.0.1:1/sse"}}}},
    }, agents={"coder": {"backend": "kimi", "mcpServers": {"mine": {"command": "m", "alwaysAllow": ["a", "b"]}, "shared": None}},
               "other": {"backend": "kimi"}})
    settings = load_config(environ=dict(os.environ)).settings
    coder = configured(settings, requester="coder", target="kimi-acp")
    assert sorted(coder) == ["docs", "mine", "t"]  # null removed the shared one for coder only
    assert sorted(configured(settings, requester="other", target="claude")) == ["docs", "shared"]
    assert allowed_tools(list(coder.values())) == ["mcp__docs", "mcp__mine__a", "mcp__mine__b"]
    request = from_request([{"name": "mine", "command": "from-the-client"}])
    assert [s.command for s in merged(coder, request) if s.name == "mine"] == ["from-the-client"]  # the request's wins


@pytest.mark.parametrize(
    ("server", "says"),
    [
        ({"args": ["x"]}, "needs command"),
        ({"command": "x", "url": "https://a/mcp"}, "url and headers are for http/sse"),
        ({"type": "http", "url": "http://192.168.1.5/mcp", "headers": {"Authorization": "t"}}, "in clear"),
        ({"command": "x", "env": {"BAD-NAME": "v"}}, "not a variable name"),
        ({"command": "x", "alwaysAllow": ["two words"]}, "alwaysAllow"),
        ({"command": "x", "enabled": False}, "unknown key"),
    ],
)
def test_a_bad_config_server_names_the_file_and_path(clean_env: Path, server: dict[str, Any], says: str) -> None:
    from kimi_acp.config import load_config
    from kimi_acp.errors import ConfigError

    path = write_config(clean_env, extra={"mcpServers": {"docs": server}})
    with pytest.raises(ConfigError) as exc:
        load_config(environ={**os.environ, "KIMI_ACP_NO_SETTINGS_CACHE": "1"})
    assert str(path) in str(exc.value) and "plugins.entries.kimi-acp.config.mcpServers.docs" in str(exc.value)
    assert says in str(exc.value)


def test_env_and_doctor_show_the_servers_masked(clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                 claude_bin: str) -> None:
    monkeypatch.setenv("KIMI_API_KEY", TEST_KEY)
    monkeypatch.setenv("DEMO_TOKEN", SECRET)
    monkeypatch.setenv("KIMI_ACP_CLAUDE", claude_bin)
    write_config(clean_env, extra={"mcpServers": {"docs": {"url": "https://docs.example/mcp", "headers": {"Authorization": HEADER_SECRET}}}},
                 agents={"coder": {"backend": "kimi", "mcpServers": {"demo": {"command": sys.executable, "args": [MCP_SERVER],
                                                                              "env": {"DEMO_TOKEN": "${DEMO_TOKEN}"}}}},
                         "other": {"backend": "kimi", "mcpServers": {"gone": {"command": "/nonexistent/mcp-server"}}}})
    assert main(["env", "--agent", "coder", "--json"]) == 0
    out = capsys.readouterr().out
    servers = {s["name"]: s for s in json.loads(out)["mcpServers"]}
    assert servers["demo"]["env"] == {"DEMO_TOKEN": mask(SECRET)} and servers["demo"]["command"] == sys.executable
    assert servers["docs"]["headers"] == {"Authorization": mask(HEADER_SECRET)}
    assert SECRET not in out and HEADER_SECRET not in out and "docs-secret" not in out
    assert main(["env", "--agent", "coder"]) == 0
    text = capsys.readouterr().out
    assert "mcp servers (each run gets --mcp-config" in text and f"DEMO_TOKEN={mask(SECRET)}" in text and SECRET not in text
    assert main(["env", "--agent", "coder", "--json", "--reveal"]) == 0
    assert SECRET in capsys.readouterr().out  # asked for
    assert main(["doctor", "--offline", "--json"]) == 1  # the missing command fails the check
    out = capsys.readouterr().out
    checks = [c for c in json.loads(out)["checks"] if c["name"] == "mcp"]
    assert {c["ok"] for c in checks if "demo (stdio)" in c["detail"] or "docs (http)" in c["detail"]} == {True}
    gone = next(c for c in checks if "gone (stdio)" in c["detail"])
    assert not gone["ok"] and "not an executable file" in gone["detail"] and gone["fix"]
    assert SECRET not in out and HEADER_SECRET not in out


# --------------------------------------------------------------------------- the real thing


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_an_acp_session_server_is_started_listed_and_its_tool_called(tmp_path: Path, claude_bin: str) -> None:
    """ACP ``session/new`` ``mcpServers`` -> the real Claude Code starts the server (listed
    ``connected`` in its init event) and calls its tool; its env secret is masked everywhere;
    the --mcp-config file is 0600 in a 0700 dir while the run lives, and gone after."""
    import subprocess

    log, http_log = tmp_path / "mcp.log", tmp_path / "mcp-http.log"
    token = HEADER_SECRET.removeprefix("Bearer ")  # the http stand-in answers 401 without it
    remote = subprocess.Popen([sys.executable, MCP_SERVER, "--http", "--token", token], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, "DEMO_LOG": str(http_log)})
    assert remote.stdout is not None
    port = int(remote.stdout.readline())
    state, work, home = tmp_path / "state", tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    updates: list[Any] = []
    try:
        answer = await _serve_session(tmp_path, claude_bin, updates, log, port, state, work, home)
    finally:
        for f in (remote.stdin, remote.stdout):
            f.close()  # type: ignore[union-attr]
        remote.wait(10)
    assert answer.stop_reason == "end_turn"
    entries = _log(log)
    started = next(e for e in entries if e["method"] == "initialize")
    assert started["parent"]["mode"] == "0o600" and started["parent"]["dirMode"] == "0o700", started["parent"]
    assert started["parent"]["mcpConfig"].startswith(str(state / "mcp-config"))
    assert started["parent"]["argvHasToken"] is False  # never in argv
    assert started["backendKey"] is False and "DEMO_TOKEN" in started["envNames"]  # its env, not the run's key
    assert [e["params"]["name"] for e in entries if e["method"] == "tools/call"] == ["whoami"]
    text = "".join(u.content.text for u in updates if u.session_update == "agent_message_chunk")
    assert f"token={mask(SECRET)}" in text, text  # the tool's answer came back, masked
    assert SECRET not in json.dumps([u.model_dump(mode="json") for u in updates])
    from kimi_acp.store import Store

    with Store(state) as store:
        (run,) = store.list_runs(include_finished=True)
        transcript = transcript_objects(store.transcript_path(run.run_id))
    (init_event,) = [e for e in transcript if e.get("type") == "system" and e.get("subtype") == "init"]
    assert {s["name"]: s["status"] for s in init_event["mcp_servers"]} == {"demo": "connected", "remote": "connected", "events": "connected"}
    assert {"mcp__demo__whoami", "mcp__remote__echo", "mcp__events__echo"} <= set(init_event["tools"])
    assert [e["method"] for e in _log(http_log)].count("tools/list") == 2  # http and sse, with the header (else 401)
    assert _leaks(state, token) == []
    assert not list((state / "mcp-config").glob("*")), "the run's --mcp-config file outlived it"
    assert _leaks(state, SECRET) == [] and SECRET not in (tmp_path / "agent.stderr").read_text() and token not in (tmp_path / "agent.stderr").read_text()


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_an_agents_server_reaches_that_agents_runs_only(clean_env: Path, claude_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``agents.coder.mcpServers``: coder's run gets the server (its ``alwaysAllow`` lets the tool
    run in the default acceptEdits mode), another agent's run does not; the secret (from
    ``${DEMO_TOKEN}``) is masked in the result, the transcript and the store."""
    import anyio

    log = clean_env / "mcp.log"
    home = clean_env / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KIMI_API_KEY", TEST_KEY)
    monkeypatch.setenv("DEMO_TOKEN", SECRET)
    task = "[[stub:tool:mcp__demo__whoami]] who are you?"
    with StubServer(key=TEST_KEY) as stub:
        demo = {"command": sys.executable, "args": [MCP_SERVER], "env": {"DEMO_TOKEN": "${DEMO_TOKEN}", "DEMO_LOG": str(log)},
                "alwaysAllow": ["whoami"]}
        write_config(clean_env, base_url=stub.base_url, harness={"command": claude_bin},
                     agents={"coder": {"backend": "kimi", "mcpServers": {"demo": demo}}, "other": {"backend": "kimi"}})
        async with Spawner(environ=dict(os.environ), pm=make_pm()) as sp:
            mine = await sp.spawn({"task": task, "runtime": "acp"}, CONTEXT)  # CONTEXT: requester coder
            theirs = await sp.spawn({"task": task, "runtime": "acp"}, {"requesterAgentId": "other"})
            with anyio.fail_after(120):
                results = [await sp.wait(mine["runId"]), await sp.wait(theirs["runId"])]
            transcripts = [transcript_objects(sp.store.transcript_path(r.runId)) for r in results]
            state = Path(sp.store.state_dir)
    coder, other = results
    assert coder.status == "ok" and f"Tool said: token={mask(SECRET)}" in coder.result, coder
    assert SECRET not in coder.result
    inits = [[e for e in t if e.get("subtype") == "init"][0] for t in transcripts]
    assert [s["name"] for s in inits[0]["mcp_servers"]] == ["demo"] and inits[1]["mcp_servers"] == []
    assert "No such tool available: mcp__demo__whoami" in other.result and "token=" not in other.result
    calls = [e for e in _log(log) if e["method"] == "tools/call"]
    assert len(calls) == 1 and len([e for e in _log(log) if e["method"] == "initialize"]) == 1  # one server, coder's run
    assert not list((state / "mcp-config").glob("*")) and _leaks(state, SECRET) == []


async def _serve_session(tmp_path: Path, claude_bin: str, updates: list[Any], log: Path, port: int, state: Path, work: Path,
                         home: Path) -> Any:
    """One kimi-acp acp agent, one session with a stdio, an http and an sse server, one prompt."""
    import acp
    from acp.schema import ClientCapabilities, EnvVariable, HttpHeader, HttpMcpServer, Implementation, McpServerStdio, SseMcpServer

    class Client:
        def on_connect(self, conn: Any) -> None:
            pass

        async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
            updates.append(update)

    with StubServer(key=TEST_KEY) as stub:
        config = tmp_path / "openclaw.json"
        section = {"defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": stub.base_url}}, "limits": {"graceSeconds": 2},
                   "harness": {"allowRootBypass": True}}
        config.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": section}}}}))
        env = {"HOME": str(home), "KIMI_ACP_STATE_DIR": str(state), "OPENCLAW_CONFIG_PATH": str(config), "KIMI_API_KEY": TEST_KEY,
               "KIMI_ACP_CLAUDE": claude_bin, "KIMI_ACP_DISABLE_ENTRYPOINTS": "1"}
        with open(tmp_path / "agent.stderr", "wb") as err:
            async with acp.spawn_agent_process(Client(), KIMI_ACP, "acp", env=env, cwd=str(work), transport_kwargs={"stderr": err}) as (conn, _):
                init = await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities(),
                                             client_info=Implementation(name="kimi-acp-tests", version="0"))
                assert init.agent_capabilities.mcp_capabilities.http and init.agent_capabilities.mcp_capabilities.sse
                server = McpServerStdio(name="demo", command=sys.executable, args=[MCP_SERVER],
                                        env=[EnvVariable(name="DEMO_TOKEN", value=SECRET), EnvVariable(name="DEMO_LOG", value=str(log))])
                auth = [HttpHeader(name="Authorization", value=HEADER_SECRET)]
                http = HttpMcpServer(type="http", name="remote", url=f"http://127.0.0.1:{port}/mcp", headers=auth)
                sse = SseMcpServer(type="sse", name="events", url=f"http://127.0.0.1:{port}/sse", headers=auth)
                session = await conn.new_session(cwd=str(work), mcp_servers=[server, http, sse])
                await conn.set_session_mode(session_id=session.session_id, mode_id="bypassPermissions")  # the tool may run
                answer = await conn.prompt(session_id=session.session_id,
                                           prompt=[acp.text_block("[[stub:tool:mcp__demo__whoami]] who are you?")])
                bad = McpServerStdio(name="x", command="s", args=[], env=[EnvVariable(name="NODE_OPTIONS", value="--require=/tmp/x.js")])
                with pytest.raises(acp.RequestError) as refused:  # refused at session/new, not at the first prompt
                    await conn.new_session(cwd=str(work), mcp_servers=[bad])
                assert "NODE_OPTIONS" in json.dumps(refused.value.data), refused.value.data
    return answer
