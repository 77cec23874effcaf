"""Live turns through the ACP door, with a REAL ACP client (the ``acp`` SDK) driving ``kimi-acp
acp`` and the REAL Claude Code on the stub: Claude Code's permission questions answered with
``session/request_permission`` (allow once, allow this exact call for the session, deny), a steer
that lands in the running turn's own Claude Code process, and an image that reaches the model
as an image block. (The same through OpenClaw's runtime object: test_live_openclaw.py.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from test_acp import KIMI_ACP, TEST_KEY, Recorder, Rig

import acp
from acp.schema import AllowedOutcome, ClientCapabilities, DeniedOutcome, Implementation, RequestPermissionResponse
from kimi_acp.stub.server import StubServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

# a 1x1 PNG
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63600000"
    "02000154a24f5d0000000049454e44ae426082")).decode()


class Answering(Recorder):
    """An ACP client that answers each permission request with the next of ``answers``
    (an option id, or ``None`` for "cancelled") and keeps what it was asked."""

    def __init__(self, answers: list[str | None]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.asked: list[dict[str, Any]] = []

    async def request_permission(self, options: Any, session_id: str, tool_call: Any, **kwargs: Any) -> Any:
        self.asked.append({"options": [(o.option_id, o.kind) for o in options], "title": tool_call.title,
                           "kind": tool_call.kind, "raw_input": tool_call.raw_input, "id": tool_call.tool_call_id,
                           "meta": kwargs})
        choice = self.answers.pop(0) if self.answers else None
        if choice is None:
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        return RequestPermissionResponse(outcome=AllowedOutcome(option_id=choice, outcome="selected"))


async def prompt(rig: Rig, client: Recorder, *texts: str, mode: str = "default") -> tuple[Any, list[Any]]:
    """A session in permission mode ``mode`` (``default`` asks before any command that changes
    something; kimi-acp's own default, acceptEdits, lets file commands in the cwd run); one
    prompt per text, in order; the session and each answer."""
    async with _agent(rig, client) as conn:
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        await conn.set_session_mode(session_id=session.session_id, mode_id=mode)
        answers = [await conn.prompt(session_id=session.session_id, prompt=[acp.text_block(t)]) for t in texts]
    return session, answers


@asynccontextmanager
async def _agent(rig: Rig, client: Recorder) -> AsyncIterator[Any]:
    """The agent process, initialized, with ``client`` as its ACP client."""
    with open(rig.stderr_path, "ab") as err:
        async with acp.spawn_agent_process(client, KIMI_ACP, "acp", env=rig.env, cwd=str(rig.work),
                                           transport_kwargs={"stderr": err}) as (conn, _proc):
            await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities(),
                                  client_info=Implementation(name="kimi-acp-tests", version="0"))
            yield conn


async def until_posts(rig: Rig, n: int, timeout: float = 60) -> None:
    """Until the stub has ``n`` Messages requests."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(rig.stub.messages_requests()) < n:
        assert loop.time() < deadline, f"the stub got {len(rig.stub.messages_requests())} of {n} requests"
        await asyncio.sleep(0.05)


def transcript(rig: Rig, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (rig.state / "transcripts" / f"{run_id}.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture
def rig(tmp_path: Path, claude_bin: str, stub: Any) -> Rig:
    return Rig(tmp_path, claude_bin, stub)


@pytest.fixture
def stub() -> Any:
    with StubServer(key=TEST_KEY, extra_base_paths=("/alt",)) as server:
        yield server


async def test_a_question_allowed_once_runs_the_command_and_is_recorded(rig: Rig) -> None:
    marker = rig.work / "allowed-once"
    client = Answering(["allow_once"])
    _, answers = await prompt(rig, client, f"make it [[stub:touch:{marker}]]")
    assert answers[0].stop_reason == "end_turn"
    assert marker.exists()
    [asked] = client.asked
    assert asked["options"] == [("allow_once", "allow_once"), ("allow_always", "allow_always"), ("reject_once", "reject_once")]
    assert asked["kind"] == "execute" and asked["title"] == f"touch {marker}"
    assert asked["raw_input"]["command"] == f"touch {marker}" and asked["id"].startswith("toolu_")
    assert f"Claude Code wants to run `touch {marker}`" in asked["meta"]["kimiAcp"]["question"]
    run = rig.runs()[-1]
    events = [e for e in transcript(rig, run["run_id"]) if e.get("type") == "kimi-acp"]
    assert [e["subtype"] for e in events] == ["permission_question", "permission_answer"]
    assert events[1]["decision"] == "allow_once" and events[1]["by"] == "user"


async def test_a_denied_question_keeps_the_command_from_running_and_the_turn_says_why(rig: Rig) -> None:
    marker = rig.work / "denied"
    client = Answering(["reject_once"])
    _, answers = await prompt(rig, client, f"make it [[stub:touch:{marker}]]")
    assert answers[0].stop_reason == "end_turn"
    assert not marker.exists()
    said = client.text()
    assert f"[kimi-acp] Claude Code asked to run `touch {marker}`" in said and "denied — the user denied it when asked" in said
    # the model was told too (the stub repeats the tool's result)
    assert "Tool said: Permission denied: the user denied it when asked" in said
    run = rig.runs()[-1]
    answer = [e for e in transcript(rig, run["run_id"]) if e.get("subtype") == "permission_answer"][0]
    assert answer["decision"] == "deny" and answer["by"] == "user"
    logs = subprocess.run([KIMI_ACP, "logs", run["run_id"]], env={**os.environ, **rig.env}, capture_output=True, text=True, timeout=60)
    assert f"? Claude Code wants to run `touch {marker}`" in logs.stdout
    assert "  ✗ denied (by user): the user denied it when asked" in logs.stdout


async def test_allow_for_the_session_covers_the_same_call_later_and_nothing_else(rig: Rig) -> None:
    marker, other = rig.work / "again", rig.work / "other"
    client = Answering(["allow_always", None])
    _, answers = await prompt(rig, client, f"one [[stub:touch:{marker}]]", f"two [[stub:touch:{marker}]]", f"three [[stub:touch:{other}]]")
    assert [a.stop_reason for a in answers] == ["end_turn"] * 3
    assert marker.exists() and not other.exists()
    assert [a["title"] for a in client.asked] == [f"touch {marker}", f"touch {other}"]  # the second turn was not asked
    second = rig.runs()[-2]
    answer = [e for e in transcript(rig, second["run_id"]) if e.get("subtype") == "permission_answer"][0]
    assert answer["decision"] == "allow_always" and answer["by"] == "session"
    third = [e for e in transcript(rig, rig.runs()[-1]["run_id"]) if e.get("subtype") == "permission_answer"][0]
    assert third["by"] == "cancelled" and "cancelled" in third["reason"]


async def test_a_mode_that_never_asks_keeps_its_static_policy(rig: Rig) -> None:
    marker = rig.work / "dont-ask"
    client = Answering(["allow_once"])
    await prompt(rig, client, f"make it [[stub:touch:{marker}]]", mode="dontAsk")
    assert client.asked == [] and not marker.exists()


async def test_a_steer_lands_in_the_running_turns_claude_code_process(rig: Rig) -> None:
    """A steer (``_meta.kimiAcp.mode: "steer"``) 3 s into a slow turn goes into that turn's
    Claude Code process: both prompts end cleanly, one run, and the first prompt's stream carries
    both answers."""
    client = Recorder()
    async with _agent(rig, client) as conn:
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        sid = session.session_id
        first = asyncio.create_task(conn.prompt(session_id=sid, prompt=[acp.text_block("first [[stub:slow:5]]")]))
        await until_posts(rig, 1)  # the first (slow) request is in
        await asyncio.sleep(3)
        running = rig.runs()[-1]
        assert running["status"] == "running"
        steer = await conn.prompt(session_id=sid, prompt=[acp.text_block("and also this [[stub:text]]")], kimiAcp={"mode": "steer"})
        done = await first
    assert done.stop_reason == "end_turn" and steer.stop_reason == "end_turn"
    assert steer.field_meta == {"kimiAcp": {"steeredInto": running["run_id"]}}
    runs = rig.runs()
    assert len(runs) == 1 and runs[0]["pid"] == running["pid"] and runs[0]["status"] == "ok"
    posts = rig.stub.messages_requests()
    assert "and also this" in json.dumps(posts[-1].body["messages"])
    sessions = {r.headers.get("x-claude-code-session-id") for r in posts}
    assert len(sessions) == 1  # one Claude Code conversation, one process
    text = client.text(sid)
    assert "You said: first" in text and "You said: and also this" in text


async def test_a_prompt_while_one_runs_is_refused_unless_it_is_a_steer(rig: Rig) -> None:
    client = Recorder()
    async with _agent(rig, client) as conn:
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        first = asyncio.create_task(conn.prompt(session_id=session.session_id, prompt=[acp.text_block("first [[stub:slow:2]]")]))
        await until_posts(rig, 1)
        with pytest.raises(acp.RequestError) as refused:
            await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("second")])
        assert (await first).stop_reason == "end_turn"
    assert "already has a prompt running" in refused.value.data["message"] and "steer" in refused.value.data["message"]


async def test_an_image_reaches_the_model_as_an_image_block(rig: Rig) -> None:
    client = Recorder()
    async with _agent(rig, client) as conn:
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        answer = await conn.prompt(session_id=session.session_id,
                                   prompt=[acp.text_block("what is in it?"), acp.image_block(PNG, "image/png")])
    assert answer.stop_reason == "end_turn"
    assert "You said: what is in it? [images: 1]" in client.text()
    blocks = rig.stub.messages_requests()[-1].body["messages"][0]["content"]
    image = [b for b in blocks if b.get("type") == "image"]
    assert image and image[0]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}


async def test_an_image_for_a_model_not_marked_as_taking_images_is_refused_with_the_fix(rig: Rig) -> None:
    client = Recorder()
    async with _agent(rig, client) as conn:
        session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
        await conn.set_config_option(config_id="model", session_id=session.session_id, value="alt")
        with pytest.raises(acp.RequestError) as refused:
            await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("see"), acp.image_block(PNG, "image/png")])
    message = json.dumps(refused.value.data)
    assert "model 'alt-model' of backend 'alt' is not marked as taking images" in message
    assert '\\"input\\": [\\"text\\", \\"image\\"]' in message
    assert rig.stub.messages_requests() == []  # nothing was sent
