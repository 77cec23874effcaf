"""The Claude Code harness: argv, permissions, finding the binary, and reading stream-json.

The stream fixtures are real lines printed by Claude Code 2.1.332 against a local fake
Messages API (bulky init/result keys trimmed), see facts/claude-code.md §2.6–§2.8.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kimi_acp.errors import HarnessConfigError, HarnessNotFoundError
from kimi_acp.harness import claude_code as cc
from kimi_acp.harness import command as cmd
from kimi_acp.harness.claude_code import (
    ApiRetry,
    AssistantEvent,
    Garbage,
    PermissionDenied,
    ResultEvent,
    StreamState,
    SystemInit,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    UnknownEvent,
    UserEvent,
    build_argv,
    claude_version,
    find_claude,
    parse_line,
    permission_args,
    summarize,
)
from kimi_acp.harness.command import user_message
from kimi_acp.redact import Redactor

SID = "947502cd-c6f3-4c5a-af38-25a38680ebf3"

# A Bash tool call denied in default mode, then a final answer (exit 0).
INIT = '{"type":"system","subtype":"init","cwd":"/tmp/capt","session_id":"947502cd-c6f3-4c5a-af38-25a38680ebf3","tools":["Task","Bash","CronCreate","CronDelete"],"model":"kimi-k2.5","permissionMode":"default","apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.332","analytics_disabled":true,"uuid":"944e5dbd-ed66-4e55-83cd-1b4f13485c0e"}'
TEXT_1 = '{"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","model":"kimi-for-coding","content":[{"type":"text","text":"Running it."}],"stop_reason":null,"usage":{"input_tokens":100,"output_tokens":1,"cache_read_input_tokens":20,"cache_creation_input_tokens":0},"context_management":null},"parent_tool_use_id":null,"session_id":"947502cd-c6f3-4c5a-af38-25a38680ebf3","uuid":"0699604b-4ae2-4f33-bc5b-ce9af0feb2a0","timestamp":"2026-11-25T18:37:27.124Z"}'
TOOL_USE = '{"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","model":"kimi-for-coding","content":[{"type":"tool_use","id":"toolu_01","name":"Bash","input":{"command":"touch f","description":"x"}}],"stop_reason":null,"usage":{"input_tokens":100,"output_tokens":1,"cache_read_input_tokens":20,"cache_creation_input_tokens":0},"context_management":null},"parent_tool_use_id":null,"session_id":"947502cd-c6f3-4c5a-af38-25a38680ebf3","uuid":"c18c31ad-1d3a-4f84-987d-8402a688a430","timestamp":"2026-11-25T18:37:27.128Z"}'
DENIED = '{"type":"system","subtype":"permission_denied","tool_name":"Bash","tool_use_id":"toolu_01","message":"touch in \'/tmp/capt/f\' needs approval.","uuid":"88848c1b-2509-406a-9cc0-e5f5717538a3","session_id":"947502cd-c6f3-4c5a-af38-25a38680ebf3"}'
TOOL_RESULT = '{"type":"user","message":{"role":"user","content":[{"type":"tool_result","content":"touch in \'/tmp/capt/f\' needs approval.","is_error":true,"tool_use_id":"toolu_01"}]},"parent_tool_use_id":null,"session_id":"947502cd-c6f3-4c5a-af38-25a38680ebf3","uuid":"61c0d066-9fc5-44d4-b184-84906cee1ab5","timestamp":"2026-11-25T18:37:27.218Z","tool_use_result":"Error: touch in \'/tmp/capt/f\' needs approval.","tool_result_meta":[{"id":"toolu_01","non_execution_kind":"user-rejected","permission_decision":{"decision":"reject","source":"config"}}]}'
THINKING_TOKENS = '{"type":"system","subtype":"thinking_tokens","estimated_tokens":1,"estimated_tokens_delta":1,"session_id":"947502cd-c6f3-4c5a-af38-25a38680ebf3","uuid":"050a2924-32c4-4362-b2ad-db4c8a03a5bd"}'
THINKING = '{"type":"assistant","message":{"id":"msg_2","type":"message","role":"assistant","model":"kimi-for-coding","content":[{"type":"thinking","thinking":"hmm","signature":"sig"}],"stop_reason":null,"usage":{"input_tokens":100,"output_tokens":1,"cache_read_input_tokens":20,"cache_creation_input_tokens":0},"context_management":null},"parent_tool_use_id":null,"session_id":"947502cd-c6f3-4c5a-af38-25a38680ebf3","uuid":"c78f2508-e274-46c0-861d-8b86a25a042f","timestamp":"2026-11-25T18:37:27.261Z","thinking_duration_ms":1,"thinking_display":"updates"}'
TEXT_2 = '{"type":"assistant","message":{"id":"msg_2","type":"message","role":"assistant","model":"kimi-for-coding","content":[{"type":"text","text":"hi from fake kimi"}],"stop_reason":null,"usage":{"input_tokens":100,"output_tokens":1,"cache_read_input_tokens":20,"cache_creation_input_tokens":0},"context_management":null},"parent_tool_use_id":null,"session_id":"947502cd-c6f3-4c5a-af38-25a38680ebf3","uuid":"10d8e498-a5e0-4e57-aa31-d432f4f9b488","timestamp":"2026-11-25T18:37:27.263Z"}'
RESULT_OK = '{"duration_api_ms":141,"stop_reason":"end_turn","session_id":"947502cd-c6f3-4c5a-af38-25a38680ebf3","total_cost_usd":0.001188,"usage":{"input_tokens":200,"cache_creation_input_tokens":0,"cache_read_input_tokens":40,"output_tokens":19,"service_tier":"standard"},"modelUsage":{"kimi-k2.5":{"inputTokens":200,"outputTokens":19,"cacheReadInputTokens":40,"cacheCreationInputTokens":0,"costUSD":0.001188,"contextWindow":1000000,"maxOutputTokens":32000,"canonicalModel":"kimi-k2.5","provider":"firstParty","costBasis":"unknown"}},"permission_denials":[{"tool_name":"Bash","tool_use_id":"toolu_01","tool_input":{"command":"touch f","description":"x"}}],"terminal_reason":"completed","safety_stops":0,"is_error":false,"num_turns":2,"subtype":"success","api_error_status":null,"result":"hi from fake kimi","ttft_ms":135,"type":"result","duration_ms":283,"uuid":"4a4189d2-eed5-4691-8396-ed72eba6e61f","queued_turn_count":0,"result_index":0}'
DENY_RUN = [INIT, TEXT_1, TOOL_USE, DENIED, TOOL_RESULT, THINKING_TOKENS, THINKING, TEXT_2, RESULT_OK]

# A refused key (401): retries, then a synthetic assistant error message and an error result (exit 1).
RETRY_401 = '{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":607,"error_status":401,"error":"authentication_failed","session_id":"1758ce8b-e1e2-418e-abd8-4c2023e86ec5","uuid":"56f2d584-bddd-4c3c-8a48-ef5adfa9cbe2"}'
SYNTHETIC_401 = '{"type":"assistant","message":{"diagnostics":null,"id":"38af254e-d687-4f29-81fd-864d44420944","container":null,"model":"<synthetic>","role":"assistant","stop_details":null,"stop_reason":"stop_sequence","stop_sequence":"","type":"message","usage":{"output_tokens_details":null,"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"service_tier":null},"content":[{"type":"text","text":"Failed to authenticate. API Error: 401 fake 401"}],"context_management":null},"parent_tool_use_id":null,"session_id":"1758ce8b-e1e2-418e-abd8-4c2023e86ec5","uuid":"2390b910-88ed-44ee-a003-d7d7943e3811","timestamp":"2026-11-25T18:37:30.289Z","error":"authentication_failed","is_api_error_message":true,"api_error_status":401,"api_error_type":"x"}'
RESULT_401 = '{"duration_api_ms":0,"stop_reason":"stop_sequence","session_id":"1758ce8b-e1e2-418e-abd8-4c2023e86ec5","total_cost_usd":0,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0,"service_tier":"standard"},"modelUsage":{},"permission_denials":[],"terminal_reason":"api_error","safety_stops":0,"is_error":true,"num_turns":1,"subtype":"success","api_error_status":401,"api_error_type":"x","result":"Failed to authenticate. API Error: 401 fake 401","type":"result","duration_ms":1944,"uuid":"063e2de6-2907-4419-9da1-1205b380809a","queued_turn_count":0,"result_index":0}'


def _with(line: str, **changes: object) -> str:
    data = json.loads(line)
    data.update(changes)
    return json.dumps(data)


def _state(lines: list[str], **kw: str) -> StreamState:
    state = StreamState(**kw)
    for line in lines:
        state.feed(line + "\n")
    return state


# --------------------------------------------------------------------------- argv and permissions


def test_argv_shape_and_the_task_is_never_in_it() -> None:
    task = "refactor the parser; the secret plan is in PLAN.md"
    argv, env = build_argv("/bin/claude", model="kimi-k2.5", session_id="abc", extra_args=["--max-turns", "3"])
    assert argv == [
        "/bin/claude", "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "acceptEdits", "--model", "kimi-k2.5", "--session-id", "abc", "--max-turns", "3",
    ]
    assert env == {}
    assert not any(task in a for a in argv)


@pytest.mark.parametrize(("mode", "asks"), [("acceptEdits", True), ("default", True), ("plan", True), ("approve-reads", True),
                                            ("dontAsk", False), ("deny-all", False)])
def test_a_live_run_echoes_its_input_and_asks_only_in_a_mode_that_asks(mode: str, asks: bool) -> None:
    """A live run (an ACP turn) keeps reading stdin and says when it took each message; its
    permission questions come on stdout only when someone can answer and the mode would ask."""
    argv, _ = build_argv("claude", permission=mode, live=True, ask=True)  # type: ignore[arg-type]
    assert "--replay-user-messages" in argv
    assert (argv[-2:] == ["--permission-prompt-tool", "stdio"]) is asks
    quiet, _ = build_argv("claude", permission=mode, live=True, ask=False)  # type: ignore[arg-type]
    assert "--permission-prompt-tool" not in quiet
    plain, _ = build_argv("claude", permission=mode, ask=True)  # type: ignore[arg-type]
    assert "--replay-user-messages" not in plain and "--permission-prompt-tool" not in plain


def test_the_task_goes_in_as_one_stream_json_user_message_with_its_images() -> None:
    line = user_message("look at this \u00e9", [("image/png", "iVBORw0KGgo=")])
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    msg = json.loads(line)
    assert msg["type"] == "user" and msg["message"]["role"] == "user"
    assert msg["message"]["content"] == [
        {"type": "text", "text": "look at this \u00e9"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    ]


def test_argv_resume_wins_over_session_id_and_no_model_is_omitted() -> None:
    argv, _ = build_argv("claude", resume="r1", session_id="s1")
    assert argv[-2:] == ["--resume", "r1"]
    assert "--session-id" not in argv and "--model" not in argv
    with pytest.raises(TypeError):
        build_argv("claude", extra_args="--max-turns 3")


@pytest.mark.parametrize(
    ("mode", "claude_mode"),
    [("approve-all", "bypassPermissions"), ("approve-edits", "acceptEdits"), ("approve-reads", "default"), ("deny-all", "dontAsk"),
     ("plan", "plan"), ("acceptEdits", "acceptEdits"), ("DONTASK", "dontAsk"), ("bypassPermissions", "bypassPermissions")],
)
def test_permission_mapping_as_non_root(monkeypatch: pytest.MonkeyPatch, mode: str, claude_mode: str) -> None:
    monkeypatch.setattr(cmd, "_is_root", lambda: False)
    assert permission_args(mode, allow_root_bypass=False) == (["--permission-mode", claude_mode], {})  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["approve-all", "bypassPermissions"])
def test_approve_all_as_root(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setattr(cmd, "_is_root", lambda: True)
    with pytest.raises(HarnessConfigError) as err:
        permission_args(mode, allow_root_bypass=False)  # type: ignore[arg-type]
    assert str(err.value) == (
        "approve-all (bypassPermissions) runs Claude Code without permission checks, which refuses to start as root; "
        "set plugins.entries.kimi-acp.config.harness.allowRootBypass: true (sets IS_SANDBOX=1) "
        "if this machine is a sandbox, or use approve-edits (acceptEdits)"
    )


def test_unknown_permission_mode_names_the_known_ones() -> None:
    with pytest.raises(HarnessConfigError, match="unknown permission mode 'yolo'; use one of: default, acceptEdits, plan"):
        permission_args("yolo", allow_root_bypass=False)  # type: ignore[arg-type]
    assert permission_args("approve-all", allow_root_bypass=True) == (
        ["--permission-mode", "bypassPermissions"], {"IS_SANDBOX": "1"},
    )
    # The other modes never need the bypass.
    assert permission_args("approve-edits", allow_root_bypass=False)[1] == {}
    argv, env = build_argv("claude", permission="approve-all", allow_root_bypass=True)
    assert "bypassPermissions" in argv and env == {"IS_SANDBOX": "1"}


def test_unknown_permission_mode() -> None:
    with pytest.raises(HarnessConfigError, match="approve-edits"):
        permission_args("yolo", allow_root_bypass=False)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- finding the binary


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho '2.1.332 (Claude Code)'\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_claude(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment with no claude anywhere: empty PATH dir, empty HOME, cwd and repo root."""
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(cmd, "_REPO_ROOT", tmp_path / "repo")
    return tmp_path


def test_find_claude_order(no_claude: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = no_claude
    user = _exe(t / "home" / ".local/share/kimi-acp/claude-code/node_modules/.bin/claude")
    assert find_claude() == str(user)
    cwd_local = _exe(t / "work" / ".tools/claude-code/node_modules/.bin/claude")
    assert find_claude() == str(cwd_local)
    repo_local = _exe(t / "repo" / ".tools/claude-code/node_modules/.bin/claude")
    assert find_claude() == str(repo_local)
    on_path = _exe(t / "bin" / "claude")
    monkeypatch.setenv("PATH", f"{t / 'emptybin'}{os.pathsep}{t / 'bin'}")
    assert find_claude() == str(on_path)
    from_env = _exe(t / "env" / "claude")
    monkeypatch.setenv("KIMI_ACP_CLAUDE", str(from_env))
    assert find_claude() == str(from_env)
    configured = _exe(t / "conf" / "claude")
    assert find_claude(str(configured)) == str(configured)
    # A bare command name is looked up on PATH.
    assert find_claude("claude") == str(on_path)


def test_find_claude_skips_non_executables(no_claude: Path) -> None:
    not_exe = no_claude / "home" / ".local/share/kimi-acp/claude-code/node_modules/.bin/claude"
    not_exe.parent.mkdir(parents=True)
    not_exe.write_text("not executable")
    with pytest.raises(HarnessNotFoundError):
        find_claude()


def test_find_claude_not_found_lists_every_place(no_claude: Path) -> None:
    with pytest.raises(HarnessNotFoundError) as err:
        find_claude()
    msg = str(err.value)
    for place in (
        "harness.command", "KIMI_ACP_CLAUDE", "`claude` on PATH",
        str(no_claude / "repo" / ".tools/claude-code/node_modules/.bin/claude"),
        str(no_claude / "work" / ".tools/claude-code/node_modules/.bin/claude"),
        str(no_claude / "home" / ".local/share/kimi-acp/claude-code/node_modules/.bin/claude"),
    ):
        assert place in msg
    assert "npm install --prefix ~/.local/share/kimi-acp/claude-code @anthropic-ai/claude-code@2.1.332" in msg
    assert "a plain install picks 2.1.197" in msg and "or set KIMI_ACP_CLAUDE" in msg
    assert err.value.exit_code == 4


def test_find_claude_explicit_choice_must_exist(no_claude: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _exe(no_claude / "home" / ".local/share/kimi-acp/claude-code/node_modules/.bin/claude")
    with pytest.raises(HarnessNotFoundError, match=r"harness\.command is '/nope/claude', but that does not exist"):
        find_claude("/nope/claude")
    monkeypatch.setenv("KIMI_ACP_CLAUDE", "/nope/claude")
    with pytest.raises(HarnessNotFoundError, match="KIMI_ACP_CLAUDE is '/nope/claude'"):
        find_claude()


def test_claude_version_of_a_fake_and_of_a_broken_binary(tmp_path: Path) -> None:
    assert claude_version(str(_exe(tmp_path / "claude"))) == "2.1.332"
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'claude native binary not installed' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(HarnessNotFoundError, match="native binary not installed"):
        claude_version(str(broken))
    with pytest.raises(HarnessNotFoundError, match="cannot run"):
        claude_version(str(tmp_path / "missing"))


def test_real_claude_version(claude_bin: str) -> None:
    assert claude_version(claude_bin, timeout=60).startswith("2.1.")


# --------------------------------------------------------------------------- parsing


def test_parse_each_event_type() -> None:
    init = parse_line(INIT)
    assert isinstance(init, SystemInit)
    assert (init.session_id, init.model, init.cwd, init.permissionMode) == (SID, "kimi-k2.5", "/tmp/capt", "default")
    assert init.apiKeySource == "ANTHROPIC_API_KEY" and init.claude_code_version == "2.1.332"
    assert init.tools[:2] == ["Task", "Bash"]
    assert init.model_extra is not None and init.model_extra["analytics_disabled"] is True  # extra keys kept

    text = parse_line(TEXT_1)
    assert isinstance(text, AssistantEvent) and not text.synthetic
    assert isinstance(text.message.content[0], TextBlock) and text.texts == ["Running it."]
    assert text.message.usage is not None and text.message.usage.input_tokens == 100

    tool = parse_line(TOOL_USE)
    assert isinstance(tool, AssistantEvent)
    (use,) = tool.tool_uses
    assert isinstance(use, ToolUseBlock) and use.name == "Bash" and use.input["command"] == "touch f"

    thinking = parse_line(THINKING)
    assert isinstance(thinking, AssistantEvent) and isinstance(thinking.message.content[0], ThinkingBlock)

    user = parse_line(TOOL_RESULT)
    assert isinstance(user, UserEvent)
    (res,) = user.tool_results
    assert res.tool_use_id == "toolu_01" and res.is_error and "needs approval" in res.text

    denied = parse_line(DENIED)
    assert isinstance(denied, PermissionDenied)
    assert (denied.tool_name, denied.tool_use_id) == ("Bash", "toolu_01") and "needs approval" in (denied.message or "")

    retry = parse_line(RETRY_401)
    assert isinstance(retry, ApiRetry)
    assert (retry.attempt, retry.max_retries, retry.retry_delay_ms, retry.error_status) == (1, 2, 607, 401)

    result = parse_line(RESULT_OK)
    assert isinstance(result, ResultEvent)
    assert (result.subtype, result.is_error, result.num_turns, result.duration_ms) == ("success", False, 2, 283)
    assert result.total_cost_usd == pytest.approx(0.001188) and result.terminal_reason == "completed"
    assert result.permission_denials[0]["tool_name"] == "Bash" and "kimi-k2.5" in result.modelUsage


def test_unknown_and_garbage_lines_never_raise() -> None:
    unknown_sys = parse_line(THINKING_TOKENS)
    assert isinstance(unknown_sys, UnknownEvent)
    assert (unknown_sys.type, unknown_sys.subtype) == ("system", "thinking_tokens")
    assert unknown_sys.raw["estimated_tokens"] == 1
    brand_new = parse_line('{"type":"stream_event","event":{"type":"message_start"}}')
    assert isinstance(brand_new, UnknownEvent) and brand_new.raw["event"]["type"] == "message_start"
    # A known type whose shape does not validate is kept as unknown, not dropped.
    odd = parse_line('{"type":"assistant","message":"not an object"}')
    assert isinstance(odd, UnknownEvent) and odd.type == "assistant"
    # An unknown content block type is tolerated inside a known event.
    block = parse_line('{"type":"assistant","message":{"id":"m","content":[{"type":"redacted_thinking","data":"x"}]}}')
    assert isinstance(block, AssistantEvent) and block.message.content[0].type == "redacted_thinking"
    for junk in ("Warning: something", "[1, 2]", '{"no": "type"}', "{broken json"):
        assert isinstance(parse_line(junk), Garbage)
    assert parse_line("") is None and parse_line("  \n") is None
    # Lenient numbers: a float duration does not cost the result line.
    assert parse_line(_with(RESULT_OK, duration_ms=283.7)).duration_ms == 284  # type: ignore[union-attr]


# --------------------------------------------------------------------------- the stream state and outcome


def test_state_of_a_full_run() -> None:
    state = _state(DENY_RUN)
    assert state.session_id == SID and state.model == "kimi-k2.5"
    assert state.turns == 2 and state.tool_calls == 1
    assert state.texts == ["Running it.", "hi from fake kimi"]
    assert [d.tool_name for d in state.denials] == ["Bash"]
    assert state.garbage_lines == 0 and state.fatal is None and not state.rate_limited
    # The result's (cumulative) usage beats the per-message start-of-stream counts.
    assert (state.tokens_in, state.tokens_out) == (240, 19)

    out = summarize(state, exit_code=0, stderr_tail="")
    assert out.ok and out.status == "ok" and out.error is None
    assert out.text == "hi from fake kimi" and out.session_id == SID
    assert (out.num_turns, out.duration_ms, out.cost_usd) == (2, 283, pytest.approx(0.001188))
    assert out.usage == {"input_tokens": 200, "output_tokens": 19, "cache_read_input_tokens": 40, "cache_creation_input_tokens": 0}


def test_live_counters_before_the_result() -> None:
    state = _state(DENY_RUN[:-1])
    assert state.turns == 2 and state.tokens_in == 240 and state.tokens_out == 2
    assert state.last_result is None


def test_two_result_lines_the_last_wins() -> None:
    first = _with(RESULT_OK, result="launched the agent", num_turns=1)
    second = _with(RESULT_OK, result="the agent reported back", num_turns=3, result_index=1, total_cost_usd=0.01)
    state = _state([INIT, TEXT_1, first, TEXT_2, second])
    assert state.results == 2 and state.last_result is not None and state.last_result.result == "the agent reported back"
    out = summarize(state, exit_code=0, stderr_tail="")
    assert out.ok and out.text == "the agent reported back" and out.num_turns == 3 and out.cost_usd == 0.01
    # ... also when the last one is an error.
    state = _state([INIT, first, _with(RESULT_OK, is_error=True, result="API Error: 500 boom")])
    out = summarize(state, exit_code=1, stderr_tail="")
    assert not out.ok and out.error == "API Error: 500 boom"


def test_is_error_decides_not_subtype() -> None:
    state = _state([INIT, _with(RESULT_OK, is_error=True, subtype="success", result="API Error: 400 bad beta")])
    out = summarize(state, exit_code=0, stderr_tail="")
    assert not out.ok and out.status == "error" and out.error == "API Error: 400 bad beta"
    max_turns = _state([INIT, _with(RESULT_OK, is_error=True, subtype="error_max_turns", result=None)])
    out = summarize(max_turns, exit_code=1, stderr_tail="")
    assert not out.ok and "error_max_turns" in (out.error or "")


def test_nonzero_exit_after_a_good_result_is_not_ok() -> None:
    out = summarize(_state(DENY_RUN), exit_code=-15, stderr_tail="")
    assert not out.ok and out.error == "Claude Code was killed by SIGTERM after its result"


def test_no_result_line() -> None:
    state = _state([INIT, TEXT_1])
    out = summarize(state, exit_code=1, stderr_tail="boom: something broke\n")
    assert not out.ok and out.status == "error" and out.text == "Running it."
    assert out.error == "Claude Code exited with code 1 without a result: boom: something broke"
    assert out.num_turns == 1 and out.session_id == SID


def test_garbage_only_output() -> None:
    state = _state(["error: unknown option '--verbos'", "", "Usage: claude [options]"])
    assert state.garbage_lines == 2 and state.events == 0
    out = summarize(state, exit_code=1, stderr_tail="")
    assert out.error is not None and out.error.startswith("Claude Code printed no stream-json (2 unparseable lines): error: unknown option")
    # Garbage between real events is counted but does not spoil the run.
    mixed = _state([INIT, "WARN: odd line", *DENY_RUN[1:]])
    assert mixed.garbage_lines == 1 and summarize(mixed, exit_code=0, stderr_tail="").ok


def test_api_retry_401_is_fatal_at_once() -> None:
    state = StreamState()
    state.feed(INIT)
    assert state.fatal is None
    state.feed(RETRY_401)
    assert state.fatal == (
        "Kimi refused the API key (401): check KIMI_API_KEY — a Moonshot platform key (api.moonshot.ai) "
        "does not work on api.kimi.com/coding"
    )
    assert state.retry_statuses == [401]
    # The supervisor kills the run here: no result line.
    out = summarize(state, exit_code=-15, stderr_tail="")
    assert not out.ok and out.status == "error" and out.error == state.fatal


def test_full_401_run_and_the_synthetic_message() -> None:
    state = _state([INIT, RETRY_401, _with(RETRY_401, attempt=2), SYNTHETIC_401, RESULT_401])
    synthetic = parse_line(SYNTHETIC_401)
    assert isinstance(synthetic, AssistantEvent) and synthetic.synthetic and synthetic.api_error_status == 401
    assert synthetic.message.usage is not None and synthetic.message.usage.input_tokens == 0
    # The synthetic error is not an assistant answer and not a turn.
    assert state.texts == [] and state.turns == 0 and state.api_errors == ["Failed to authenticate. API Error: 401 fake 401"]
    out = summarize(state, exit_code=1, stderr_tail="")
    assert not out.ok and out.error is not None and out.error.startswith("Kimi refused the API key (401)")


def test_403_has_no_retry_but_is_fatal() -> None:
    synthetic = _with(SYNTHETIC_401, api_error_status=403)
    state = _state([INIT, synthetic])
    assert state.fatal is not None
    assert state.fatal.startswith("Kimi refused the client (403): Kimi For Coding only serves coding agents;")


def test_fatal_message_for_another_backend() -> None:
    state = _state([INIT, RETRY_401], backend="anthropic", key_env="ANTHROPIC_API_KEY")
    assert state.fatal == "anthropic refused the API key (401): check ANTHROPIC_API_KEY"


def test_429_means_rate_limited() -> None:
    retry_429 = _with(RETRY_401, error_status=429, error="rate_limit")
    state = _state([INIT, retry_429])
    assert state.rate_limited and state.fatal is None and state.retry_statuses == [429]
    result = _with(RESULT_401, api_error_status=429, result="API Error: Request rejected (429) · fake 429")
    out = summarize(_state([INIT, retry_429, result]), exit_code=1, stderr_tail="")
    assert out.status == "rate_limited" and not out.ok and "429" in (out.error or "")
    # A 429 only in the result counts too; a 429 that was retried away does not spoil success.
    assert _state([INIT, result]).rate_limited
    assert summarize(_state([retry_429, *DENY_RUN]), exit_code=0, stderr_tail="").status == "ok"


def test_timeouts_and_connection_errors_retry_with_no_status() -> None:
    state = _state([INIT, _with(RETRY_401, error_status=None, error="unknown")])
    assert state.retry_statuses == [None] and state.fatal is None and not state.rate_limited


def test_errors_and_text_are_redacted() -> None:
    key = "sk-kimi-abcdefghijklmnopqrstuvwxyz0123"
    state = _state([INIT, _with(RESULT_OK, is_error=True, result=f"bad key {key}")])
    out = summarize(state, exit_code=1, stderr_tail=f"key was {key}", redactor=Redactor([key]))
    assert key not in (out.error or "") and key not in out.text and "…0123" in (out.error or "")


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [("high", "high"), ("Minimal", "low"), ("off", "low"), ("medium", "medium"), ("xhigh", "xhigh"), ("bogus", None), (None, None)],
)
def test_thinking_maps_to_effort(thinking, effort) -> None:
    argv, _ = build_argv("/bin/claude", thinking=thinking)
    if effort is None:
        assert "--effort" not in argv
    else:
        assert argv[argv.index("--effort") + 1] == effort


# --------------------------------------------------------------------------- the init event's model


def test_an_init_naming_another_model_is_fatal():
    from kimi_acp.harness.claude_code import StreamState

    init = '{"type":"system","subtype":"init","model":"other-model","session_id":"s","claude_code_version":"2.1.332"}'
    state = StreamState(backend="kimi", expected_model="kimi-k2.5")
    state.feed(init)
    assert state.fatal and "'other-model', not 'kimi-k2.5'" in state.fatal
    assert state.claude_code_version == "2.1.332"
    for expected, got in (("kimi-k2.5", "kimi-k2.5"), (None, "x"), ("sonnet", "claude-sonnet-4-5"), ("kimi-k2.5", "kimi-k2.5[1m]")):
        ok = StreamState(expected_model=expected)
        ok.feed(init.replace("other-model", got))
        assert ok.fatal is None, (expected, got)
