"""Live turns through the OpenClaw door, driven from Node 24 as OpenClaw's ACP manager drives
the extension's runtime object, with ONE warm ``kimi-acp acp`` and the REAL Claude Code on the
stub: Claude Code's permission questions reach the turn's ``onElicitation`` (OpenClaw's
``AcpRuntimeTurnInput.onElicitation``) as a form its chat can show, and its answer decides; a
steer handed to the runtime while a turn runs lands in that turn's Claude Code process; an image
attachment reaches the model as an image block. (The approval in a real gateway: test_gateway.py.)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_openclaw_backend import TEST_KEY, Driver

from kimi_acp.stub.server import StubServer

pytestmark = pytest.mark.openclaw

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAAAAgABVKJPXQAAAABJRU5ErkJggg=="
UNSAFE = re.compile("[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]")


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(key=TEST_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory, claude_bin: str, stub: StubServer) -> Iterator[Driver]:
    d = Driver(tmp_path_factory.mktemp("live-openclaw"), claude_bin, stub)
    d("start")
    try:
        yield d
    finally:
        d.close()


def session(driver: Driver, name: str, mode: str = "default") -> dict[str, Any]:
    """A persistent session in permission mode ``mode`` (``default`` asks before commands that
    change something, as ``/acp set-mode default`` sets it)."""
    handle = driver.ensure(f"agent:kimi-acp:acp:{name}", mode="persistent")
    assert driver("mode", handle=handle, mode=mode) == {}
    return handle


def said(out: dict[str, Any]) -> str:
    return "".join(e["text"] for e in out["events"] if e["type"] == "text_delta" and e.get("stream") == "output")


def answers(run_id: str, driver: Driver) -> list[dict[str, Any]]:
    lines = (driver.state / "transcripts" / f"{run_id}.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("subtype") == "permission_answer"]


def test_an_accepted_question_lets_the_command_run(driver: Driver) -> None:
    marker = driver.work / "accepted"
    handle = session(driver, "accept")
    out = driver("turn", handle=handle, text=f"make it [[stub:touch:{marker}]]",
                 elicit=[{"action": "accept", "content": {"decision": "allow_once"}}])
    assert out["result"]["status"] == "completed", out
    assert marker.exists()
    [asked] = out["asked"]
    form = asked["request"]
    # what OpenClaw's elicitation handler accepts (dist/acp-elicitation-handler-*.mjs): a form with a
    # message it can show, one choice field of 2-4 options, scoped to the session and the tool call
    assert form["mode"] == "form" and f"Claude Code wants to run `touch {marker}`" in form["message"]
    assert len(form["message"]) <= 1024 and not UNSAFE.search(form["message"])
    field = form["requestedSchema"]["properties"]["decision"]
    # OpenClaw's question record shows the field, not the message: it names the command too
    assert f"Claude Code wants to run `touch {marker}`" in field["description"] and len(field["description"]) <= 512
    assert form["requestedSchema"]["required"] == ["decision"] and field["type"] == "string"
    assert [c["const"] for c in field["oneOf"]] == ["allow_once", "allow_always", "reject_once"]
    assert all(len(c["title"]) <= 64 for c in field["oneOf"])
    assert form["sessionId"] == handle["backendSessionId"] and form["toolCallId"].startswith("toolu_")
    assert isinstance(asked["requestId"], int)
    assert answers(driver.runs()[-1]["run_id"], driver)[0]["decision"] == "allow_once"


def test_a_spawned_childs_question_is_told_to_the_session_that_spawned_it(driver: Driver) -> None:
    """OpenClaw asks a child's question in the child's own session; kimi-acp tells the requester
    (a system event and a wake) what is asked and where to answer."""
    marker = driver.work / "spawned"
    child = "agent:kimi-acp:acp:spawned-child"
    driver("rows", rows={child: {"spawnedBy": "agent:coder:main", "createdVia": "spawn", "createdActor": {"type": "agent", "id": "coder"}}})
    handle = driver.ensure(child)
    assert driver("mode", handle=handle, mode="default") == {}
    out = driver("turn", handle=handle, text=f"make it [[stub:touch:{marker}]]",
                 elicit=[{"action": "accept", "content": {"decision": "allow_once"}}])
    assert out["result"]["status"] == "completed" and marker.exists()
    gateway = driver("gateway")
    [told] = [e for e in gateway["events"] if e.get("contextKey", "").startswith("kimi-acp:question:")]
    assert told["sessionKey"] == "agent:coder:main"
    assert f"Claude Code in {child} (spawned by this session) asks before a tool call: Claude Code wants to run `touch {marker}`" in told["text"]
    assert '"Allow once", "Allow this exact call for the session" or "Deny"' in told["text"]
    assert {"sessionKey": "agent:coder:main", "agentId": "coder", "reason": "kimi-acp:question", "intent": "immediate"} in gateway["wakes"]
    # a session the user talks to directly is asked there, and nobody else is told
    before = len(driver("gateway")["events"])
    driver("turn", handle=session(driver, "direct"), text=f"again [[stub:touch:{marker}-2]]", elicit=[{"action": "decline"}])
    assert len(driver("gateway")["events"]) == before


def test_a_declined_question_keeps_the_command_from_running_and_the_turn_says_why(driver: Driver) -> None:
    marker = driver.work / "declined"
    handle = session(driver, "decline")
    out = driver("turn", handle=handle, text=f"make it [[stub:touch:{marker}]]", elicit=[{"action": "decline"}])
    assert out["result"]["status"] == "completed", out
    assert not marker.exists()
    text = said(out)
    assert f"[kimi-acp] Claude Code asked to run `touch {marker}`" in text
    assert "denied — the user denied it when asked (declined in chat)" in text
    assert "Permission denied: the user denied it when asked" in text  # what the model was told (the stub repeats it)
    answer = answers(driver.runs()[-1]["run_id"], driver)[0]
    assert answer["decision"] == "deny" and answer["by"] == "user"


def test_a_cancelled_or_failed_question_is_a_denial_that_says_so(driver: Driver) -> None:
    marker = driver.work / "cancelled"
    handle = session(driver, "cancel")
    out = driver("turn", handle=handle, text=f"make it [[stub:touch:{marker}]]",
                 elicit=[{"action": "cancel", "_meta": {"message": "Form input expired."}}])
    assert not marker.exists()
    assert "denied — the question was cancelled before anyone answered (Form input expired.)" in said(out)
    out = driver("turn", handle=handle, text=f"again [[stub:touch:{marker}]]", elicit=[{"throw": "no channel to ask in"}])
    assert not marker.exists() and "OpenClaw could not ask: no channel to ask in" in said(out)


def test_a_turn_without_onelicitation_keeps_the_static_policy(driver: Driver) -> None:
    marker = driver.work / "static"
    handle = session(driver, "static")
    out = driver("turn", handle=handle, text=f"make it [[stub:touch:{marker}]]")
    assert out["result"]["status"] == "completed" and out["asked"] == []
    assert not marker.exists()
    run = driver.runs()[-1]
    lines = (driver.state / "transcripts" / f"{run['run_id']}.jsonl").read_text()
    assert "permission_question" not in lines and "control_request" not in lines  # Claude Code refused it itself
    assert json.loads(lines.strip().splitlines()[-1])["permission_denials"]


def test_cancelling_a_turn_stops_its_pending_question(driver: Driver) -> None:
    marker = driver.work / "never"
    handle = session(driver, "pending")
    out = driver("turn", handle=handle, text=f"make it [[stub:touch:{marker}]]", elicit=[{"wait": True}], cancelAfterMs=4000)
    assert out["result"]["status"] == "cancelled", out
    assert out["asked"] and out["asked"][0]["aborted"] is True  # OpenClaw's question was withdrawn
    assert not marker.exists()
    assert driver.runs()[-1]["status"] == "cancelled"


def test_a_steer_while_a_turn_runs_lands_in_its_claude_code_process(driver: Driver, stub: StubServer) -> None:
    """mode "steer" handed to the runtime 3 s into a slow turn (what OpenClaw will do once it
    stops queueing steers): the same Claude Code process takes it; both turns end cleanly and the
    first turn's stream is not cut."""
    handle = session(driver, "steer", mode="acceptEdits")
    before = len(stub.messages_requests())
    started = driver("turn", handle=handle, text="first [[stub:slow:5]]", background=True)
    deadline = time.monotonic() + 60
    while len(stub.messages_requests()) <= before:
        assert time.monotonic() < deadline, "the first turn's request never came"
        time.sleep(0.05)
    time.sleep(3)
    running = driver.runs()[-1]
    assert running["status"] == "running"
    steer = driver("turn", handle=handle, text="steer this way [[stub:text]]", mode="steer")
    first = driver("await", turnId=started["turnId"])
    assert first["result"]["status"] == "completed" and steer["result"]["status"] == "completed", (first, steer)
    assert [e["type"] for e in steer["events"]] == ["done"]  # its output is the running turn's
    text = said(first)
    assert "You said: first" in text and "You said: steer this way" in text
    runs = driver.runs()
    assert runs[-1]["run_id"] == running["run_id"] and runs[-1]["pid"] == running["pid"] and runs[-1]["status"] == "ok"
    steered = [r for r in stub.messages_requests()[before:] if "steer this way" in json.dumps(r.body["messages"])]
    assert steered and {r.headers["x-claude-code-session-id"] for r in stub.messages_requests()[before:]} == {
        steered[0].headers["x-claude-code-session-id"]}


def test_an_image_attachment_reaches_the_model_as_an_image_block(driver: Driver, stub: StubServer) -> None:
    handle = session(driver, "image", mode="acceptEdits")
    out = driver("turn", handle=handle, text="what is this?", attachments=[{"mediaType": "image/png", "data": PNG}])
    assert out["result"]["status"] == "completed", out
    assert "You said: what is this? [images: 1]" in said(out)
    blocks = stub.messages_requests()[-1].body["messages"]
    images = [b for m in blocks if isinstance(m.get("content"), list) for b in m["content"] if b.get("type") == "image"]
    assert images and images[-1]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}


def test_a_question_form_survives_odd_text(tmp_path: Path) -> None:
    """Control characters and long commands never make OpenClaw refuse the form (its chat shows no
    control characters and at most 1024 of them)."""
    import subprocess

    from test_openclaw_backend import REPO

    from kimi_acp.stub.openclaw_gateway import node_bin_dir

    script = tmp_path / "form.mjs"
    runtime = (REPO / "plugin" / "kimi_acp" / "openclaw_ext" / "runtime.js").as_uri()
    script.write_text(f"""
import {{ permissionForm, permissionOutcome }} from {json.dumps(runtime)};
const params = {{ sessionId: "s", toolCall: {{ toolCallId: "toolu_1", title: "x" }},
  options: [{{ optionId: "allow_once", name: "Allow once", kind: "allow_once" }}, {{ optionId: "reject_once", name: "Deny", kind: "reject_once" }}],
  _meta: {{ kimiAcp: {{ question: "Claude Code wants to run `printf 'a\\\\nb'\\n" + "y".repeat(3000) + "`" }} }} }};
const form = permissionForm(params);
console.log(JSON.stringify({{ form, declined: permissionOutcome(params, {{ action: "decline" }}),
  odd: permissionOutcome(params, {{ action: "accept", content: {{ decision: "rm -rf /" }} }}) }}));
""")
    done = subprocess.run([str(node_bin_dir() / "node"), str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    message = out["form"]["message"]
    assert len(message) <= 1000 and not UNSAFE.search(message) and message.endswith("…")
    assert out["declined"]["outcome"] == {"outcome": "selected", "optionId": "reject_once"}
    assert out["odd"]["outcome"] == {"outcome": "cancelled"}  # an answer that names no choice allows nothing
