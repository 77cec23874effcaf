"""The local Kimi stub: a real HTTP server on 127.0.0.1 speaking Kimi's Anthropic dialect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kimi_acp.stub import DEFAULT_KEY, RecordedRequest, StubServer

UA = "claude-cli/2.1.332 (external, sdk-cli)"
KEY = "sk-kimi-unit0000000000000000000000000000wxyz"
# Plain-HTTP loopback clients: skipping the TLS context keeps each test fast; no proxies from the env.
LOCAL = {"verify": False, "trust_env": False}


def headers(key: str | None = KEY, ua: str = UA, **extra: str) -> dict[str, str]:
    h = {"user-agent": ua, "anthropic-version": "2023-06-01", **extra}
    if key is not None:
        h["x-api-key"] = key
    return h


def cc_body(prompt: str = "say hi", *, stream: bool = True, model: str = "kimi-k2.5") -> dict[str, Any]:
    """A request body shaped like the one Claude Code 2.1.332 sends."""
    return {
        "model": model,
        "max_tokens": 32000,
        "stream": stream,
        "system": [{"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\nAs you answer the user's questions...\n</system-reminder>"},
                    {"type": "text", "text": prompt},
                ],
            },
            {"role": "system", "content": [{"type": "text", "text": "# Environment\nPlatform: linux"}]},
        ],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}],
        "metadata": {"user_id": "{}"},
    }


def parse_sse(lines: Iterator[str]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name = None
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = json.loads(line.split(":", 1)[1])
            assert name == data["type"]
            events.append((name, data))
    return events


def text_of(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "text_delta")


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(key=KEY) as s:
        yield s


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, **LOCAL) as c:
        yield c


def post(client: httpx.Client, stub: StubServer, body: Any, *, path: str = "/v1/messages?beta=true", **kw: Any) -> httpx.Response:
    return client.post(stub.base_url + path, json=body, headers=kw.pop("headers", headers()), **kw)


# --------------------------------------------------------------------------- happy paths


def test_streaming_text_reply(stub: StubServer, client: httpx.Client) -> None:
    with client.stream("POST", stub.base_url + "/v1/messages?beta=true", json=cc_body("say hi"), headers=headers()) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.iter_lines())
    kinds = [n for n, _ in events if n != "ping"]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert set(kinds[2:-4]) == {"content_block_delta"} and len(kinds[2:-4]) >= 2
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["model"] == "kimi-for-coding"
    assert start["id"].startswith("msg_stub_")
    assert start["usage"]["input_tokens"] > 10
    assert text_of(events) == "Hello from the Kimi stub. You said: say hi"
    delta = next(d for n, d in events if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] > 1


def test_non_streaming_reply(stub: StubServer, client: httpx.Client) -> None:
    r = post(client, stub, cc_body("what is up " + "x" * 100, stream=False))
    assert r.status_code == 200
    msg = r.json()
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["stop_reason"] == "end_turn"
    text = msg["content"][0]["text"]
    assert text.startswith("Hello from the Kimi stub. You said: what is up x")
    assert len(text) == len("Hello from the Kimi stub. You said: ") + 60
    assert msg["usage"]["input_tokens"] > 0 and msg["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("model", ["kimi-k2.5", "claude-opus-5-5", "k3"])
def test_model_is_always_kimi_for_coding(stub: StubServer, client: httpx.Client, model: str) -> None:
    assert post(client, stub, cc_body(stream=False, model=model)).json()["model"] == "kimi-for-coding"


def test_reply_override_and_string_content(client: httpx.Client) -> None:
    with StubServer(key=None, reply="custom words", require_agent=False) as s:
        body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "plain"}]}
        r = client.post(s.base_url + "/v1/messages", json=body)  # no key, httpx UA: both allowed here
        assert r.status_code == 200
        assert r.json()["content"][0]["text"] == "custom words"


def test_latest_prompt_is_echoed_in_multi_turn(stub: StubServer, client: httpx.Client) -> None:
    body = cc_body("first question", stream=False)
    body["messages"] += [
        {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ]
    assert post(client, stub, body).json()["content"][0]["text"].endswith("You said: second question")


# --------------------------------------------------------------------------- auth, agent, routes


@pytest.mark.parametrize(
    "hdrs",
    [
        headers(key=None),
        headers(key="sk-kimi-wrong000000000000000000000000000000"),
        headers(key=None, authorization=f"Bearer {KEY}"),
    ],
    ids=["no-key", "wrong-key", "bearer-only"],
)
def test_401_without_the_right_x_api_key(stub: StubServer, client: httpx.Client, hdrs: dict[str, str]) -> None:
    r = post(client, stub, cc_body(), headers=hdrs)
    assert r.status_code == 401
    assert r.json() == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "The API Key appears to be invalid or may have expired. Please check your API Key",
        },
    }


@pytest.mark.parametrize("ua", ["python-httpx/0.28.1", "kimi-cli/1.0", "codex-cli/0.1", "Bun/1.4.6"])
def test_403_for_non_coding_user_agent(stub: StubServer, client: httpx.Client, ua: str) -> None:
    r = post(client, stub, cc_body(), headers=headers(ua=ua))
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["type"] == "access_terminated_error"
    assert err["message"].startswith("Kimi For Coding is currently only available for Coding Agents")


@pytest.mark.parametrize("ua", ["claude-code/2.1.0", "Kilo-Code/4.0", "claude-cli/2.1.197 (external, cli)"])
def test_coding_agents_pass(stub: StubServer, client: httpx.Client, ua: str) -> None:
    assert post(client, stub, cc_body(stream=False), headers=headers(ua=ua)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/coding/v1/chat/completions"), ("GET", "/coding/v1/models"), ("GET", "/coding/v1/messages")],
)
def test_404_for_other_paths(stub: StubServer, client: httpx.Client, method: str, path: str) -> None:
    r = client.request(method, stub.url + path, json={} if method == "POST" else None, headers=headers())
    assert r.status_code == 404
    assert r.json() == {"type": "error", "error": {"type": "not_found_error", "message": f"Not found: {path}"}}


def test_head_is_200(stub: StubServer, client: httpx.Client) -> None:
    for path in ("/", "/coding/api/hello"):
        r = client.head(stub.url + path, headers={"user-agent": "Bun/1.4.6"})
        assert r.status_code == 200 and r.content == b""


def test_count_tokens(stub: StubServer, client: httpx.Client) -> None:
    body = cc_body()
    r = post(client, stub, body, path="/v1/messages/count_tokens?beta=true")
    assert r.status_code == 200
    n = r.json()["input_tokens"]
    assert isinstance(n, int) and abs(n - len(json.dumps(body)) // 4) < 50
    assert post(client, stub, body, path="/v1/messages/count_tokens", headers=headers(key=None)).status_code == 401


def test_only_the_base_path_serves_messages(stub: StubServer, client: httpx.Client) -> None:
    """As strict as Kimi: the API lives under /coding only. A base URL ending in /v1 makes
    Claude Code call .../v1/v1/messages, which is a 404 there and here."""
    assert client.post(stub.base_url + "/v1/messages?beta=true", json=cc_body(stream=False), headers=headers()).status_code == 200
    for path in ("/v1/messages", "/anthropic/v1/messages?beta=true", "/coding/v1/v1/messages", "/x/coding/v1/messages",
                 "/v1/v1/messages/count_tokens"):
        r = client.post(stub.url + path, json=cc_body(stream=False), headers=headers())
        assert r.status_code == 404, path
        assert r.json()["error"]["type"] == "not_found_error"
    assert stub.messages_requests()[-1].route == "/coding/v1/messages"


def test_base_path_is_configurable() -> None:
    with StubServer(key=KEY, base_path="/", extra_base_paths=("/alt/",)) as root, httpx.Client(timeout=10, **LOCAL) as client:
        assert root.base_url == root.url
        for path in ("/v1/messages", "/alt/v1/messages"):
            assert client.post(root.url + path, json=cc_body(stream=False), headers=headers()).status_code == 200
        assert client.post(root.url + "/coding/v1/messages", json=cc_body(stream=False), headers=headers()).status_code == 404


def test_bad_json_is_400(stub: StubServer, client: httpx.Client) -> None:
    r = client.post(stub.base_url + "/v1/messages", content=b"{nope", headers=headers())
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


# --------------------------------------------------------------------------- scenarios


def test_marker_beats_default(client: httpx.Client) -> None:
    with StubServer(key=KEY, scenario="error:500") as s:
        assert post(client, s, cc_body("plain", stream=False)).status_code == 500
        r = post(client, s, cc_body("[[stub:text]] hello there", stream=False))
        assert r.status_code == 200
        assert r.json()["content"][0]["text"] == "Hello from the Kimi stub. You said: hello there"
        assert post(client, s, cc_body("[[stub:error:429]] x")).status_code == 429


def test_set_scenario_and_unknown(stub: StubServer, client: httpx.Client) -> None:
    stub.set_scenario("error:529")
    assert post(client, stub, cc_body()).status_code == 529
    stub.set_scenario("text")
    assert post(client, stub, cc_body()).status_code == 200
    with pytest.raises(ValueError):
        stub.set_scenario("bogus")
    with pytest.raises(ValueError):
        StubServer(scenario="error:abc")
    r = post(client, stub, cc_body("[[stub:bogus]]"))
    assert r.status_code == 400 and "bogus" in r.json()["error"]["message"]


def test_tool_use_round_trip(stub: StubServer, client: httpx.Client) -> None:
    stub.set_scenario("tool_use")
    body = cc_body("run something")
    with client.stream("POST", stub.base_url + "/v1/messages?beta=true", json=body, headers=headers()) as r:
        events = parse_sse(r.iter_lines())
    block = next(d["content_block"] for n, d in events if n == "content_block_start")
    assert block["type"] == "tool_use" and block["name"] == "Bash" and block["id"].startswith("toolu_")
    partial = "".join(
        d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == {"command": "echo stub-tool-ok", "description": "Print a marker"}
    assert next(d for n, d in events if n == "message_delta")["delta"]["stop_reason"] == "tool_use"

    body["messages"] += [
        {"role": "assistant", "content": [dict(block, input=json.loads(partial))]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": block["id"], "content": "stub-tool-ok", "is_error": False},
            ],
        },
    ]
    body["stream"] = False
    msg = post(client, stub, body).json()
    assert msg["stop_reason"] == "end_turn"
    assert msg["content"] == [{"type": "text", "text": "Tool said: stub-tool-ok"}]

    # tool_result content given as a list of blocks, non-streaming first leg
    body["messages"][-1]["content"][0]["content"] = [{"type": "text", "text": "listed"}]
    assert post(client, stub, body).json()["content"][0]["text"] == "Tool said: listed"
    first = post(client, stub, cc_body("again", stream=False)).json()
    assert first["stop_reason"] == "tool_use" and first["content"][0]["input"]["command"] == "echo stub-tool-ok"


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
        (400, "invalid_request_error"),
    ],
)
def test_error_scenarios(stub: StubServer, client: httpx.Client, status: int, etype: str) -> None:
    r = post(client, stub, cc_body(f"[[stub:error:{status}]] hi"))
    assert r.status_code == status
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == etype and body["error"]["message"]
    assert (r.headers.get("retry-after") == "1") == (status == 429)


def test_stall_sends_message_start_then_nothing(stub: StubServer) -> None:
    stub.set_scenario("stall")
    with httpx.Client(timeout=httpx.Timeout(5, read=0.5), **LOCAL) as c:
        with c.stream("POST", stub.base_url + "/v1/messages?beta=true", json=cc_body(), headers=headers()) as r:
            assert r.status_code == 200
            seen: list[str] = []
            with pytest.raises(httpx.ReadTimeout):
                for line in r.iter_lines():
                    seen.append(line)
    assert seen[0] == "event: message_start"
    assert json.loads(seen[1].split(":", 1)[1])["message"]["model"] == "kimi-for-coding"
    assert not any("content_block" in s for s in seen)
    # Claude Code's non-streaming fallback gets an answer
    with httpx.Client(timeout=5, **LOCAL) as c:
        assert post(c, stub, cc_body(stream=False)).status_code == 200


def test_hang_sends_no_headers(stub: StubServer) -> None:
    with httpx.Client(timeout=httpx.Timeout(5, read=0.4), **LOCAL) as c:
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            post(c, stub, cc_body("[[stub:hang]]"))
        assert time.monotonic() - t0 < 3
    assert len(stub.messages_requests()) == 1


def test_slow_scenario(stub: StubServer, client: httpx.Client) -> None:
    t0 = time.monotonic()
    r = post(client, stub, cc_body("[[stub:slow:0.3]] hi", stream=False))
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.3
    assert r.json()["content"][0]["text"].endswith("You said: hi")


@pytest.mark.parametrize("scenario", ["hang", "stall", "slow:30"])
def test_stop_is_prompt_with_open_requests(scenario: str) -> None:
    stub = StubServer(key=KEY, scenario=scenario).start()
    outcome: list[object] = []

    def client_thread() -> None:
        try:
            with httpx.Client(timeout=30, **LOCAL) as c:
                with c.stream("POST", stub.base_url + "/v1/messages", json=cc_body(), headers=headers()) as r:
                    outcome.append(list(r.iter_lines()))
        except httpx.HTTPError as e:
            outcome.append(e)

    t = threading.Thread(target=client_thread, daemon=True)
    t.start()
    stub.wait_for_requests(1, timeout=5)
    time.sleep(0.2)
    t0 = time.monotonic()
    stub.stop()
    assert time.monotonic() - t0 < 2
    t.join(timeout=3)
    assert not t.is_alive() and outcome
    stub.stop()  # idempotent


@pytest.mark.asyncio
async def test_usable_from_async_code() -> None:
    with StubServer(key=KEY) as s:
        async with httpx.AsyncClient(timeout=5, **LOCAL) as c:
            r = await c.post(s.base_url + "/v1/messages", json=cc_body(stream=False), headers=headers())
        assert r.json()["model"] == "kimi-for-coding"


# --------------------------------------------------------------------------- recording


def test_requests_are_recorded(stub: StubServer, client: httpx.Client) -> None:
    client.head(stub.url + "/coding/api/hello")
    post(client, stub, cc_body(stream=False), headers=headers(**{"X-Claude-Code-Session-Id": "abc"}))
    post(client, stub, cc_body(), path="/v1/messages/count_tokens?beta=true")
    reqs = stub.wait_for_requests(3, timeout=2)
    assert [r.method for r in reqs] == ["HEAD", "POST", "POST"]
    rec = reqs[1]
    assert isinstance(rec, RecordedRequest)
    assert rec.path == "/coding/v1/messages?beta=true"
    assert rec.headers["x-api-key"] == KEY
    assert rec.headers["x-claude-code-session-id"] == "abc"
    assert all(k == k.lower() for k in rec.headers)
    assert rec.body is not None and rec.body["model"] == "kimi-k2.5"
    assert json.loads(rec.raw_body) == rec.body
    assert stub.messages_requests() == [rec]
    with pytest.raises(TimeoutError):
        stub.wait_for_requests(10, timeout=0.2)

    debug = client.get(stub.url + "/_stub/requests").json()
    assert debug[1]["path"] == "/coding/v1/messages?beta=true" and debug[1]["body"]["model"] == "kimi-k2.5"
    assert KEY not in json.dumps(debug)
    assert debug[1]["headers"]["x-api-key"] == "sk-kimi-…wxyz"


def test_debug_masks_bearer(stub: StubServer, client: httpx.Client) -> None:
    post(client, stub, cc_body(), headers=headers(authorization=f"Bearer {KEY}"))
    debug = client.get(stub.url + "/_stub/requests").text
    assert KEY not in debug and "Bearer sk-kimi-…wxyz" in debug


def test_urls(stub: StubServer) -> None:
    assert stub.url == f"http://127.0.0.1:{stub.port}" and stub.port > 0
    assert stub.base_url == stub.url + "/coding"
    assert KEY not in repr(stub)
    assert StubServer().key == DEFAULT_KEY == "sk-kimi-stub-local-key-0000"


# --------------------------------------------------------------------------- CLI entry


@pytest.mark.parametrize(("key", "shown"), [(KEY, "sk-kimi-…wxyz"), (None, DEFAULT_KEY)])
def test_serve_prints_banner_and_stops_on_sigterm(key: str | None, shown: str) -> None:
    args = [sys.executable, "-m", "kimi_acp.stub", "--scenario", "text"]
    if key is not None:
        args += ["--key", key]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("kimi stub listening on http://127.0.0.1:") and first.endswith("/coding")
        base = first.rsplit(" ", 1)[1]
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert lines[0] == f"ANTHROPIC_BASE_URL={base}"
        assert lines[1] == f"ANTHROPIC_API_KEY={shown}"
        with httpx.Client(timeout=5, **LOCAL) as c:
            r = c.post(base + "/v1/messages", json=cc_body(stream=False), headers=headers(key=key or DEFAULT_KEY))
            assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
        assert proc.returncode == 0
        assert KEY not in out + err + first + "".join(lines)
        assert err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# --------------------------------------------------------------------------- real Claude Code


def run_claude(claude_bin: str, stub: StubServer, prompt: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": stub.base_url,
        "ANTHROPIC_API_KEY": str(stub.key),
        "ANTHROPIC_MODEL": "kimi-k2.5",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    proc = subprocess.run(
        [claude_bin, "-p", "--output-format", "stream-json", "--verbose"],
        input=prompt,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    return proc, lines


def last_result(lines: list[dict[str, Any]]) -> dict[str, Any]:
    results = [line for line in lines if line.get("type") == "result"]
    assert results, lines
    return results[-1]


@pytest.mark.e2e
def test_e2e_claude_code_text(claude_bin: str, kimi_key: str, tmp_path: Path) -> None:
    with StubServer(key=kimi_key) as stub:
        proc, lines = run_claude(claude_bin, stub, "say hi", tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Hello from the Kimi stub" in last_result(lines)["result"]
        posts = [r for r in stub.messages_requests() if r.path.startswith("/coding/v1/messages")]
        assert posts
        req = posts[0]
        assert req.headers["x-api-key"] == kimi_key
        assert req.body is not None and req.body["model"] == "kimi-k2.5"
        assert req.headers["user-agent"].startswith("claude-cli/")
        assert kimi_key not in proc.stdout + proc.stderr


@pytest.mark.e2e
def test_e2e_claude_code_tool_use(claude_bin: str, kimi_key: str, tmp_path: Path) -> None:
    with StubServer(key=kimi_key, scenario="tool_use") as stub:
        proc, lines = run_claude(claude_bin, stub, "run the marker command", tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "stub-tool-ok" in last_result(lines)["result"]
        assert len(stub.messages_requests()) == 2
        tool_results = [
            b
            for line in lines
            if line.get("type") == "user"
            for b in line["message"]["content"]
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        assert tool_results and "stub-tool-ok" in str(tool_results[0]["content"])


# --------------------------------------------------------------------------- `kimi-acp stub`: the key from the environment


@pytest.mark.parametrize("how", ["key-env", "KIMI_STUB_KEY"])
def test_kimi_acp_stub_reads_its_key_from_an_environment_variable(tmp_path: Path, how: str) -> None:
    import os
    import sys

    key = "sk-kimi-fromenv0000000000000000000000009f3e"
    kimi_acp = str(Path(sys.executable).with_name("kimi-acp"))
    env = {**os.environ, "NO_PROXY": "127.0.0.1"}
    argv = [kimi_acp, "stub", "--port", "0"]
    if how == "key-env":
        env["MY_STUB_KEY"] = key
        argv += ["--key-env", "MY_STUB_KEY"]
    else:
        env["KIMI_STUB_KEY"] = key
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()  # blocks until the server is listening (or the process died)
        assert first.startswith("kimi stub listening on "), (first, proc.stderr.read() if proc.poll() is not None else "")
        base = first.split(" on ", 1)[1].strip()
        assert key.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        body = {"model": "kimi-k2.5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        hdrs = {"user-agent": "claude-cli/2.1.332 (external, cli)", "anthropic-version": "2023-06-01"}
        with httpx.Client(timeout=10, trust_env=False) as c:
            ok = c.post(f"{base}/v1/messages", json=body, headers={**hdrs, "x-api-key": key})
            bad = c.post(f"{base}/v1/messages", json=body, headers={**hdrs, "x-api-key": "sk-kimi-stub-local-key-0000"})
        assert ok.status_code == 200, ok.text
        assert bad.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_kimi_acp_stub_key_env_that_is_not_set_is_a_clear_error() -> None:
    import os
    import sys

    kimi_acp = str(Path(sys.executable).with_name("kimi-acp"))
    env = {k: v for k, v in os.environ.items() if k != "NOPE_KEY"}
    done = subprocess.run([kimi_acp, "stub", "--key-env", "NOPE_KEY"], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 2
    assert "NOPE_KEY" in done.stderr and "hint: export NOPE_KEY" in done.stderr and "Traceback" not in done.stderr
