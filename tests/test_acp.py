"""``kimi-acp acp`` end to end: the Python ACP client (the ``acp`` SDK) drives the agent
process, which runs the REAL Claude Code against the local Kimi stub.

Each test starts its own agent process with a clean environment (the SDK passes only
HOME/PATH/... plus ``env=``), a scratch HOME, state dir and ``openclaw.json``, and a decoy
``ANTHROPIC_AUTH_TOKEN`` that must never reach the stub.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import acp
from acp.schema import ClientCapabilities, DeniedOutcome, Implementation, RequestPermissionResponse
from kimi_acp.stub.server import StubServer

from kimi_acp.store import Store

REPO = Path(__file__).resolve().parents[1]
KIMI_ACP = str(REPO / ".venv" / "bin" / "kimi-acp")
TEST_KEY = "sk-kimi-test0000000000000000000000000000abcd"  # conftest's key
DECOY = "sk-ant-decoy-gateway-token-must-not-leak-0000"
OTHER_KEY = "sk-kimi-someone-elses-key-000000000000000000"


class Recorder:
    """An ACP client that records every session update and refuses permission requests."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, Any]] = []

    def on_connect(self, conn: Any) -> None:
        pass

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append((session_id, update))

    async def request_permission(self, options: Any, session_id: str, tool_call: Any, **kwargs: Any) -> Any:
        return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))

    def kinds(self, session_id: str | None = None) -> list[str]:
        return [u.session_update for s, u in self.updates if session_id in (None, s)]

    def text(self, session_id: str | None = None) -> str:
        return "".join(
            u.content.text
            for s, u in self.updates
            if session_id in (None, s) and u.session_update == "agent_message_chunk"
        )


class Rig:
    """One test's world: stub, openclaw.json, state dir, HOME, work dir, agent env."""

    def __init__(self, tmp_path: Path, claude: str, stub: StubServer) -> None:
        self.tmp = tmp_path
        self.stub = stub
        self.state = tmp_path / "state"
        self.work = tmp_path / "work"
        self.work.mkdir()
        home = tmp_path / "home"
        home.mkdir()
        self.config = tmp_path / "openclaw.json"
        self.write_config()
        self.stderr_path = tmp_path / "agent.stderr"
        self.env = {
            "HOME": str(home),
            "KIMI_ACP_STATE_DIR": str(self.state),
            "OPENCLAW_CONFIG_PATH": str(self.config),
            "KIMI_API_KEY": TEST_KEY,
            "KIMI_ACP_CLAUDE": claude,
            "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
            "ANTHROPIC_AUTH_TOKEN": DECOY,
        }

    def write_config(self, **extra: Any) -> None:
        section = {
            "defaultBackend": "kimi",
            "backends": {
                "kimi": {"baseUrl": self.stub.base_url},
                # A second backend on the same stub, told apart by its path prefix and model.
                "alt": {"baseUrl": self.stub.url + "/alt", "apiKeyEnv": "KIMI_API_KEY", "model": "alt-model"},
            },
            "limits": {"graceSeconds": 2},
            **extra,
        }
        data = {
            "agents": {"defaults": {"models": {"kimi/kimi-k2.5": {"alias": "Kimi Fast"}}}},
            "plugins": {"entries": {"kimi-acp": {"config": section}}},
        }
        self.config.write_text(json.dumps(data, indent=2))

    @asynccontextmanager
    async def agent(self, *args: str) -> AsyncIterator[tuple[Any, Recorder]]:
        client = Recorder()
        with open(self.stderr_path, "ab") as err:
            async with acp.spawn_agent_process(
                client, KIMI_ACP, "acp", *args, env=self.env, cwd=str(self.work), transport_kwargs={"stderr": err}
            ) as (conn, _proc):
                await conn.initialize(
                    protocol_version=acp.PROTOCOL_VERSION,
                    client_capabilities=ClientCapabilities(),
                    client_info=Implementation(name="kimi-acp-tests", version="0"),
                )
                yield conn, client

    def runs(self) -> list[dict[str, Any]]:
        """The run store's rows, oldest first."""
        with Store(self.state) as store:
            return [r.to_dict() for r in reversed(store.list_runs(include_finished=True))]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


def _run_processes(run_ids: set[str]) -> list[int]:
    """Live processes whose environment carries one of these KIMI_ACP_RUN_IDs."""
    wanted = {f"KIMI_ACP_RUN_ID={r}".encode() for r in run_ids}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = set(f.read().split(b"\0"))
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in (b"Z", b"X") and env & wanted:
            found.append(int(name))
    return found


@pytest.fixture
def stub() -> Any:
    with StubServer(key=TEST_KEY, extra_base_paths=("/alt",)) as server:
        yield server


@pytest.fixture
def rig(tmp_path: Path, claude_bin: str, stub: StubServer) -> Rig:
    return Rig(tmp_path, claude_bin, stub)


# --------------------------------------------------------------------------- no Claude needed


def test_initialize_answer_matches_the_sdk() -> None:
    """The early ``initialize`` answer (sent before ``acp`` is imported) is what the SDK path returns."""
    from kimi_acp import acp_agent

    assert acp_agent.PROTOCOL_VERSION == acp.PROTOCOL_VERSION
    early = acp_agent.initialize_result()
    model = acp.InitializeResponse.model_validate(early)
    assert model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True) == early

    class Args:
        agent = backend = config = None

    agent = acp_agent.KimiAcpAgent(Args(), acp)
    answer = asyncio.run(agent.initialize(protocol_version=1))
    assert answer.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True) == early


def test_sdk_answers_when_initialize_is_not_first(tmp_path: Path) -> None:
    """Only an ``initialize`` first line takes the early path; anything else goes to the SDK
    in order, and stdout carries nothing but JSON-RPC."""
    import subprocess

    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "session/list", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"protocolVersion": 1}},
    ]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "KIMI_ACP_STATE_DIR": str(tmp_path / "state"),
        "OPENCLAW_CONFIG_PATH": str(tmp_path / "openclaw.json"),
    }
    done = subprocess.run(
        [KIMI_ACP, "acp"], input="".join(json.dumps(m) + "\n" for m in lines), capture_output=True, text=True,
        env=env, timeout=30, check=False,
    )
    assert done.returncode == 0, done.stderr
    replies = sorted((json.loads(line) for line in done.stdout.splitlines()), key=lambda r: r["id"])
    assert [r["id"] for r in replies] == [1, 2]
    assert replies[0]["error"]["code"] == -32601
    from kimi_acp import acp_agent

    assert replies[1]["result"] == acp_agent.initialize_result()


@pytest.mark.asyncio
async def test_initialize_and_models(rig: Rig) -> None:
    started = time.monotonic()
    async with acp.spawn_agent_process(Recorder(), KIMI_ACP, "acp", env=rig.env, cwd=str(rig.work)) as (conn, proc):
        init = await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities())
        init_s = time.monotonic() - started
        assert init.protocol_version == acp.PROTOCOL_VERSION
        assert init.agent_info is not None and init.agent_info.name == "kimi-acp"
        assert init.agent_info.version
        assert init.agent_capabilities.load_session is True
        prompt_caps = init.agent_capabilities.prompt_capabilities
        # images reach Claude Code (a model not marked as taking them refuses the prompt: test_live_turns.py)
        assert prompt_caps.image and not prompt_caps.audio and not prompt_caps.embedded_context

        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        assert session.session_id
        option, permission = session.config_options
        assert permission.id == "permission_mode" and permission.current_value == "acceptEdits"
        option = option.root if hasattr(option, "root") else option
        assert option.id == "model" and option.category == "model"
        values = [o.value for o in option.options]
        for ref in ("default", "kimi/kimi-k2.5", "kimi", "alt/alt-model", "alt", "passthrough", "Kimi Fast"):
            assert ref in values, values
        assert option.current_value == "default"
    assert init_s < 5, init_s  # generous: the benchmark measures it properly


@pytest.mark.asyncio
async def test_new_session_refuses_a_cwd_that_does_not_exist(rig: Rig) -> None:
    async with rig.agent() as (conn, _client):
        with pytest.raises(acp.RequestError) as err:
            await conn.new_session(cwd=str(rig.work / "no-such-dir"), mcp_servers=[])
        assert err.value.code == -32602 and "is not a directory" in err.value.data["message"]
        assert (await conn.new_session(cwd=str(rig.work), mcp_servers=[])).session_id  # still serving


# --------------------------------------------------------------------------- the real Claude Code


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_prompt_streams_reply_and_ends_turn(rig: Rig) -> None:
    async with rig.agent() as (conn, client):
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        answer = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("say hi")])
        assert answer.stop_reason == "end_turn"
        assert "Hello from the Kimi stub" in client.text(session.session_id)
        assert answer.usage is not None and answer.usage.output_tokens > 0
        assert "usage_update" in client.kinds(session.session_id)

    posts = rig.stub.messages_requests()
    assert posts, "the stub got no Messages request"
    for r in posts:
        assert r.headers.get("x-api-key") == TEST_KEY
        assert "authorization" not in r.headers  # the decoy gateway token was scrubbed
        assert r.route == "/coding/v1/messages"
    [run] = rig.runs()
    assert run["backend"] == "kimi" and run["status"] == "ok"
    assert run["requester_session_key"] == f"acp:{session.session_id}"
    assert run["cwd"] == str(rig.work)
    assert TEST_KEY not in rig.stderr() and DECOY not in rig.stderr()


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_tool_use_streams_tool_calls(rig: Rig) -> None:
    async with rig.agent() as (conn, client):
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        answer = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("run it [[stub:tool_use]]")])
        assert answer.stop_reason == "end_turn"
    updates = [u for _, u in client.updates]
    starts = [u for u in updates if u.session_update == "tool_call"]
    ends = [u for u in updates if u.session_update == "tool_call_update"]
    assert starts and ends
    assert starts[0].kind == "execute" and "echo stub-tool-ok" in starts[0].title
    assert starts[0].raw_input["command"] == "echo stub-tool-ok"
    assert ends[0].tool_call_id == starts[0].tool_call_id
    assert ends[0].status == "completed"
    assert "stub-tool-ok" in json.dumps(ends[0].raw_output)
    kinds = [u.session_update for u in updates]
    assert kinds.index("tool_call") < kinds.index("tool_call_update")
    assert "stub-tool-ok" in client.text()


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_two_prompts_keep_the_conversation(rig: Rig) -> None:
    async with rig.agent() as (conn, client):
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        first = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("first turn")])
        n_first = len(rig.stub.messages_requests())
        second = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("second turn")])
        assert first.stop_reason == second.stop_reason == "end_turn"
    posts = rig.stub.messages_requests()
    one, two = posts[n_first - 1].body, posts[-1].body
    assert len(two["messages"]) > len(one["messages"])
    assert "first turn" in json.dumps(two["messages"])  # the history went along
    assert "You said: second turn" in client.text(session.session_id)
    runs = rig.runs()
    assert len(runs) == 2 and runs[0]["claude_session_id"]


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_model_choice_switches_the_backend(rig: Rig) -> None:
    async with rig.agent() as (conn, _client):
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        sid = session.session_id
        await conn.prompt(session_id=sid, prompt=[acp.text_block("on kimi")])
        changed = await conn.set_config_option(config_id="model", session_id=sid, value="alt")
        option = changed.config_options[0]
        option = option.root if hasattr(option, "root") else option
        assert option.current_value == "alt"
        answer = await conn.prompt(session_id=sid, prompt=[acp.text_block("on alt")])
        assert answer.stop_reason == "end_turn"
        with pytest.raises(acp.RequestError) as bad:
            await conn.set_config_option(config_id="model", session_id=sid, value="nope/nothing")
        assert "unknown model 'nope/nothing'" in json.dumps(bad.value.data)

    posts = rig.stub.messages_requests()
    assert posts[0].route == "/coding/v1/messages" and posts[0].body["model"] == "kimi-for-coding"
    assert posts[-1].route == "/alt/v1/messages" and posts[-1].body["model"] == "alt-model"
    runs = rig.runs()
    assert [r["backend"] for r in runs] == ["kimi", "alt"]
    from kimi_acp.sessions import SessionModels

    with SessionModels(rig.state) as table:
        assert table.get(f"acp:{sid}") == "alt"


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_backend_flag_forces_the_backend(rig: Rig) -> None:
    async with rig.agent("--backend", "alt") as (conn, _client):
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        option, permission = session.config_options
        assert permission.id == "permission_mode" and permission.current_value == "acceptEdits"
        option = option.root if hasattr(option, "root") else option
        assert option.current_value == "alt"
        answer = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("hi")])
        assert answer.stop_reason == "end_turn"
    assert [r["backend"] for r in rig.runs()] == ["alt"]
    assert rig.stub.messages_requests()[-1].route == "/alt/v1/messages"


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_cancel_stops_the_run_and_its_processes(rig: Rig) -> None:
    async with rig.agent() as (conn, _client):
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        pending = asyncio.create_task(
            conn.prompt(session_id=session.session_id, prompt=[acp.text_block("wait forever [[stub:hang]]")])
        )
        deadline = time.monotonic() + 30
        while not rig.stub.messages_requests():
            assert time.monotonic() < deadline, "Claude Code never called the stub"
            assert not pending.done(), pending
            await asyncio.sleep(0.05)
        asked = time.monotonic()
        await conn.cancel(session_id=session.session_id)
        answer = await asyncio.wait_for(pending, 15)
        took = time.monotonic() - asked
        assert answer.stop_reason == "cancelled"
        assert took < 8, took
        [run] = rig.runs()
        assert run["status"] == "cancelled"
        assert _run_processes({run["run_id"]}) == []
        from kimi_acp.supervisor import alive_in_group

        assert run["pgid"] and alive_in_group(run["pgid"]) == []
        # The session still works after a cancel. (The stub takes the newest marker in the
        # whole history, so this turn names its scenario.)
        again = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("still there? [[stub:text]]")])
        assert again.stop_reason == "end_turn"


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_sigterm_to_the_agent_leaves_no_run_behind(rig: Rig) -> None:
    """acpx ends agents with SIGTERM: the active run's process group goes with it."""
    client = Recorder()
    async with acp.spawn_agent_process(client, KIMI_ACP, "acp", env=rig.env, cwd=str(rig.work)) as (conn, proc):
        await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities())
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        pending = asyncio.create_task(
            conn.prompt(session_id=session.session_id, prompt=[acp.text_block("wait forever [[stub:hang]]")])
        )
        deadline = time.monotonic() + 30
        while not rig.stub.messages_requests():
            assert time.monotonic() < deadline, "Claude Code never called the stub"
            await asyncio.sleep(0.05)
        [run] = rig.runs()
        assert _run_processes({run["run_id"]})
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        with pytest.raises((acp.RequestError, ConnectionError)):
            await asyncio.wait_for(pending, 5)
    assert _run_processes({run["run_id"]}) == []
    [run] = rig.runs()
    assert run["status"] == "cancelled"


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_wrong_key_fails_fast_with_401(rig: Rig) -> None:
    rig.stub.key = OTHER_KEY  # the stub now refuses TEST_KEY
    async with rig.agent() as (conn, _client):
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        started = time.monotonic()
        with pytest.raises(acp.RequestError) as failed:
            await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("hello")])
        took = time.monotonic() - started
    err = failed.value
    text = f"{err} {json.dumps(err.data)}"
    assert "401" in text and "KIMI_API_KEY" in text
    assert TEST_KEY not in text and OTHER_KEY not in text
    assert took < 20, took
    [run] = rig.runs()
    assert run["status"] == "error"
    assert _run_processes({run["run_id"]}) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"KIMI_API_KEY": None}, "no API key for backend 'kimi': set KIMI_API_KEY"),
        ({"KIMI_ACP_CLAUDE": "/nonexistent/claude"}, "KIMI_ACP_CLAUDE is '/nonexistent/claude', but that does not exist"),
    ],
    ids=["missing-key", "missing-binary"],
)
async def test_spawn_refusal_is_an_acp_error(rig: Rig, change: dict[str, str | None], expected: str) -> None:
    """The prompt fails at once with the CLI's message, which says what to set."""
    for name, value in change.items():
        if value is None:
            del rig.env[name]
        else:
            rig.env[name] = value
    async with rig.agent() as (conn, _client):
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        with pytest.raises(acp.RequestError) as failed:
            await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("hello")])
    assert expected in str(failed.value)
    assert failed.value.data["errorCode"] == "spawn_failed"
    assert not rig.stub.messages_requests()


@pytest.mark.asyncio
async def test_unknown_backend_flag_is_reported(rig: Rig) -> None:
    async with rig.agent("--backend", "nosuch") as (conn, _client):
        with pytest.raises(acp.RequestError) as failed:
            await conn.new_session(cwd=str(rig.work), mcp_servers=[])
    assert "unknown backend (--backend) 'nosuch'" in str(failed.value)
    assert "kimi" in str(failed.value)  # the known names are listed


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_load_session_in_a_new_process_keeps_history(rig: Rig) -> None:
    async with rig.agent() as (conn, _client):
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        await conn.set_config_option(config_id="model", session_id=session.session_id, value="kimi/kimi-k2.5")
        await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("remember me")])
    n_first = len(rig.stub.messages_requests())
    async with rig.agent() as (conn, client):
        loaded = await conn.load_session(cwd=str(rig.work), session_id=session.session_id, mcp_servers=[])
        option = loaded.config_options[0]
        option = option.root if hasattr(option, "root") else option
        assert option.current_value == "kimi/kimi-k2.5"
        answer = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("and now?")])
        assert answer.stop_reason == "end_turn"
        with pytest.raises(acp.RequestError):
            await conn.load_session(cwd=str(rig.work), session_id="00000000-0000-4000-8000-000000000000", mcp_servers=[])
    posts = rig.stub.messages_requests()
    assert len(posts[-1].body["messages"]) > len(posts[n_first - 1].body["messages"])
    assert "remember me" in json.dumps(posts[-1].body["messages"])


def test_the_server_never_dies_of_its_input(tmp_path: Path) -> None:
    """JSON-RPC 2.0: non-object JSON and batches get -32600, unparsable lines -32700; the
    server stays up and answers the next request."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KIMI_ACP_STATE_DIR": str(tmp_path / "state"),
           "OPENCLAW_CONFIG_PATH": str(tmp_path / "openclaw.json"), "KIMI_ACP_DISABLE_ENTRYPOINTS": "1"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}
    bad = ["[1,2,3]", "42", '"x"', "null", "{not json", '[{"jsonrpc":"2.0","id":7,"method":"initialize"}]', '{"jsonrpc":"2.0"}', '{"method": 5, "id": 3}']
    lines = [json.dumps(init), *bad, json.dumps({**init, "id": 2})]
    proc = subprocess.run([KIMI_ACP, "acp"], input="\n".join(lines) + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    codes = [r["error"]["code"] for r in replies if "error" in r]
    assert codes == [-32600, -32600, -32600, -32600, -32700, -32600, -32600, -32600], replies
    assert [r["id"] for r in replies if "result" in r] == [1, 2]  # still serving after all of it
    assert "Traceback" not in proc.stderr


def test_a_message_over_the_line_limit_is_answered_with_its_own_id(tmp_path: Path) -> None:
    """A request over the 50 MB stdio limit gets -32600 with ITS id (the client's request fails
    at once instead of waiting forever), and the next request is served."""
    from kimi_acp.acp_stdio import _LINE_LIMIT

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KIMI_ACP_STATE_DIR": str(tmp_path / "state"),
           "OPENCLAW_CONFIG_PATH": str(tmp_path / "openclaw.json"), "KIMI_ACP_DISABLE_ENTRYPOINTS": "1"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}
    huge = '{"jsonrpc":"2.0","id":"route-7","method":"_kimi-acp/route","params":{"pad":"' + "x" * (_LINE_LIMIT + 10) + '"}}'
    data = "\n".join([json.dumps(init), huge, json.dumps({**init, "id": 2})]) + "\n"
    proc = subprocess.run([KIMI_ACP, "acp"], input=data, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    replies = {r["id"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert replies["route-7"]["error"]["code"] == -32600 and "over the" in replies["route-7"]["error"]["message"]
    assert "result" in replies[1] and "result" in replies[2]


def test_line_reader_keeps_order_and_cuts_only_the_oversized_lines() -> None:
    from kimi_acp.acp_stdio import _lines, oversized_reply

    async def go(data: bytes, limit: int) -> list[Any]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return [line async for line in _lines(reader, limit)]

    got = asyncio.run(go(b'{"a":1}\n{"id": 42, "pad": "' + b"y" * 200 + b'"}\n{"b":2}\nlast', 64))
    assert got[0] == b'{"a":1}\n' and got[2] == b'{"b":2}\n' and got[3] == b"last"
    prefix, size = got[1]
    assert size == 200 + 22 and json.loads(oversized_reply(prefix, size, 64))["id"] == 42
    assert json.loads(oversized_reply(b'{"method":"x"', 10**9, 64))["id"] is None
