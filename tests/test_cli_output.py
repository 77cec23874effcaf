"""The CLI's output contract (issue 10): one run shape, errors by the contract, one exit-code
table, ps / show / logs / outbox / prune on a real store, live progress, and no traceback
for ordinary mistakes. In-process through ``main`` where no process is needed; real
subprocesses for start-up, stub and state-dir behaviour."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kimi_acp import exitcodes
from kimi_acp.cli import COMMANDS, INTERNAL, build_parser, main
from kimi_acp.commands.output import RUN_KEYS
from kimi_acp.progress import Progress
from kimi_acp.report import GATEWAY_TARGET
from kimi_acp.store import RunRecord, Store, current_owner

REPO = Path(__file__).resolve().parents[1]
KIMI_ACP = REPO / ".venv" / "bin" / "kimi-acp"
HOOKS_TOKEN = "hooks-token-cli-output-0000000000"


def make_run(store: Store, run_id: str, status: str = "ok", *, started: bool = True, age: float = 0, **fields: Any) -> RunRecord:
    pid, start = current_owner()
    now = time.time() - age
    rec = RunRecord(
        run_id=run_id, child_session_key=f"agent:claude:acp:{run_id}", status=status, task=fields.pop("task", f"task of {run_id}"),
        backend=fields.pop("backend", "kimi"), created_at=now, started_at=now if started else None,
        ended_at=now + 1 if status not in ("queued", "running") else None, owner_pid=pid, owner_start=start,
        pid=fields.pop("pid", 4242 if started else None), **fields,
    )
    store.create_run(rec)
    return rec


def add_outbox(store: Store, run_id: str, url: str, *, delivered: bool = False) -> None:
    with store._tx() as db:
        store._insert_outbox(db, run_id, [(GATEWAY_TARGET, {"url": url, "body": {"message": f"done {run_id}",
                                                                           "idempotencyKey": f"kimi-acp:{run_id}"}})], time.time())
        if delivered:
            db.execute("UPDATE outbox SET delivered_at = ?, attempts = 1 WHERE run_id = ?", (time.time(), run_id))


def out_of(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> str:
    got = main(argv)
    captured = capsys.readouterr()
    assert got == code, captured
    return captured.out


# --------------------------------------------------------------------------- exit codes and help


def test_one_exit_code_table_in_the_readme_and_every_help() -> None:
    readme = (REPO / "README.md").read_text()
    assert exitcodes.markdown() in readme, "the README's exit-code table differs from kimi_acp.exitcodes.TABLE"
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(subs.choices) == set(COMMANDS)
    assert exitcodes.help_text() in parser.format_help()
    for name, sub in subs.choices.items():
        text = sub.format_help()
        assert exitcodes.help_text() in text, name
        if name not in INTERNAL:
            assert "examples:" in text, f"kimi-acp {name} --help has no examples"
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"kimi-acp {name} {action.option_strings[0]} has no help"


def test_internal_commands_are_not_listed_among_the_users() -> None:
    listing = build_parser().format_help().split("exit codes:")[0]
    for name in INTERNAL:
        assert not re.search(rf"^\s+{name}\s", listing, re.M), name
    for name in ("spawn", "ps", "show", "logs", "outbox", "prune", "doctor"):
        assert re.search(rf"^\s+{name}\s", listing, re.M), name


def test_usage_errors_follow_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spawn", "x", "--timeout", "999999"]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "kimi-acp spawn: error:" in err and "1 to 86400" in err and "\nhint: " in err
    assert main(["model", "kimi", "--session", ""]) == exitcodes.USAGE
    assert "must not be empty" in capsys.readouterr().err
    assert main(["ps", "--nope", "--json"]) == exitcodes.USAGE
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "usage"


# --------------------------------------------------------------------------- ps and show


def test_ps_has_one_shape_filters_and_a_delivery_column(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store() as store:
        make_run(store, "aaaa1111-done", "ok", requester_agent_id="coder", requester_session_key="agent:coder:main")
        add_outbox(store, "aaaa1111-done", "http://127.0.0.1:9/hooks/agent", delivered=True)
        make_run(store, "bbbb2222-fail", "error", requester_agent_id="writer", error="boom",
                 task="a very long task " * 20, requester_session_key="agent:writer:main")
        add_outbox(store, "bbbb2222-fail", "http://127.0.0.1:9/hooks/agent")
        make_run(store, "cccc3333-refused", "error", started=False, error="unknown model 'x/y'")
        make_run(store, "dddd4444-live", "running", pid=os.getpid())

    rows = json.loads(out_of(capsys, ["ps", "--all", "--json"]))
    assert all(tuple(r) == RUN_KEYS for r in rows)
    by = {r["runId"]: r for r in rows}
    assert by["aaaa1111-done"]["delivery"]["state"] == "delivered"
    assert by["bbbb2222-fail"]["delivery"]["state"] == "pending"
    assert by["cccc3333-refused"]["refused"] is True and by["cccc3333-refused"]["delivery"]["state"] == "none"
    assert by["aaaa1111-done"]["pid"] is None, "a finished run's pid is stale"
    assert by["dddd4444-live"]["pid"] == os.getpid()

    table = out_of(capsys, ["ps", "--all"])
    assert "DELIVERY" in table.splitlines()[0]
    line = next(x for x in table.splitlines() if x.startswith("bbbb2222"))
    assert "pending" in line and line.endswith("…")
    refused = next(x for x in table.splitlines() if x.startswith("cccc3333"))
    assert " refused " in refused and "unknown model 'x/y'" in refused
    done = next(x for x in table.splitlines() if x.startswith("aaaa1111"))
    assert "delivered" in done and "4242" not in done

    assert out_of(capsys, ["ps", "-q", "--status", "error"]).split() == ["bbbb2222-fail"]
    assert out_of(capsys, ["ps", "-q", "--status", "refused"]).split() == ["cccc3333-refused"]
    assert out_of(capsys, ["ps", "-q", "--agent", "coder"]).split() == ["aaaa1111-done"]
    assert out_of(capsys, ["ps", "-q"]).split() == ["dddd4444-live"]


def test_show_one_run(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store() as store:
        make_run(store, "eeee5555-show", "ok", result_text="the answer", requester_session_key="agent:main:main",
                 model="kimi-k2.5", reason="global default")
    obj = json.loads(out_of(capsys, ["show", "eeee", "--json"]))
    assert tuple(obj) == RUN_KEYS and obj["result"] == "the answer"
    text = out_of(capsys, ["show", "eeee5555-show"])
    assert "status:     ok" in text and "the answer" in text and "kimi-k2.5" in text
    assert "no gateway configured" in text  # a requester session, but nothing to report through
    assert main(["show", "zzzz", "--json"]) == exitcodes.UNKNOWN_RUN
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["code"] == "unknown_run" and "kimi-acp ps --all" in err["hint"]


def test_ps_and_show_the_cost_and_who_priced_it(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    usage = {"input_tokens": 100_000, "output_tokens": 20_000, "cache_read_input_tokens": 400_000, "cache_creation_input_tokens": 0}
    with Store() as store:
        make_run(store, "ffff6666-k3", "ok", model="k3", usage=usage, cost_usd=0.72, cost_source="kimi-acp")
        make_run(store, "gggg7777-quota", "ok", model="kimi-for-coding", usage=usage)
        make_run(store, "hhhh8888-older", "ok", model="kimi-k2.5", usage=usage, cost_usd=4.2)  # Claude Code's figure, unpriced
    rows = {r["runId"]: r for r in json.loads(out_of(capsys, ["ps", "--all", "--json"]))}
    assert (rows["ffff6666-k3"]["costUsd"], rows["ffff6666-k3"]["costSource"]) == (0.72, "kimi-acp")
    assert rows["gggg7777-quota"]["costUsd"] is None and rows["hhhh8888-older"]["costUsd"] is None
    table = out_of(capsys, ["ps", "--all"])
    assert "COST" in table.splitlines()[0]
    assert " $0.7200 " in next(x for x in table.splitlines() if x.startswith("ffff6666"))
    assert " $4.2000 " not in table
    text = out_of(capsys, ["show", "ffff6666"])
    assert "cost:       $0.7200 (priced by kimi-acp from the model's cost per million tokens)" in text
    assert "usage:      100000 in, 400000 cached in, 0 cache-write in, 20000 out (tokens)" in text
    assert "cost:       n/a (no per-token price" in out_of(capsys, ["show", "gggg7777"])


def test_ps_does_not_import_the_spawner(clean_env: Path) -> None:
    code = ("import sys; from kimi_acp.cli import main; rc = main(['ps', '--all']); "
            "print(sorted(m for m in ('kimi_acp.spawn', 'kimi_acp.supervisor', 'anyio', 'pydantic') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------------- logs


EVENTS = [
    {"type": "system", "subtype": "init", "model": "kimi-k2.5", "cwd": "/w", "claude_code_version": "2.1.332"},
    {"type": "system", "subtype": "api_retry", "attempt": 3, "max_retries": 10, "retry_delay_ms": 9700, "error_status": 429},
    {"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "Let me look."}]}},
    {"type": "assistant", "message": {"id": "m1", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls -la"}}]}},
    {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.txt\nb.txt\nc.txt"}]}},
    {"type": "assistant", "message": {"id": "m2", "content": [{"type": "text", "text": "Three files."}]}},
    {"type": "result", "subtype": "success", "is_error": False, "duration_ms": 4200, "num_turns": 2,
     "usage": {"input_tokens": 100, "output_tokens": 20}},
]


def test_logs_reads_like_a_story(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store() as store:
        make_run(store, "ffff6666-logs", "ok")
        for e in EVENTS:
            store.append_transcript("ffff6666-logs", json.dumps(e))
        store.close_transcript("ffff6666-logs")
        make_run(store, "gggg7777-refused", "error", started=False, error="no API key for backend 'kimi'")
    text = out_of(capsys, ["logs", "ffff6666"])
    assert "{" not in text, "the readable view printed raw JSON"
    for want in ("Claude Code 2.1.332 started", "API 429: retry 3/10 in 9.7s", "Let me look.", "→ Bash ls -la",
                 "← a.txt (+2 lines)", "Three files.", "■ done after 4.2s, 2 turns, 120 tokens"):
        assert want in text, want
    raw = out_of(capsys, ["logs", "ffff6666", "--raw"])
    assert [json.loads(x)["type"] for x in raw.splitlines()] == [e["type"] for e in EVENTS]
    assert len(out_of(capsys, ["logs", "ffff6666", "--raw", "--tail", "2"]).splitlines()) == 2
    tail = out_of(capsys, ["logs", "ffff6666", "--tail", "1"])
    assert tail.strip() == "■ done after 4.2s, 2 turns, 120 tokens"
    assert main(["logs", "gggg7777"]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "was refused before it started: no API key" in err and "hint:" in err


# --------------------------------------------------------------------------- outbox and prune


def test_outbox_lists_and_retries_undelivered_results(clean_env: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from kimi_acp.stub.gateway import GatewayStub

    monkeypatch.setenv("OPENCLAW_HOOKS_TOKEN", HOOKS_TOKEN)
    with GatewayStub(token=HOOKS_TOKEN) as gw:
        (clean_env / "openclaw.json").write_text(json.dumps(
            {"plugins": {"entries": {"kimi-acp": {"config": {"report": {"gateway": {"url": gw.url}}}}}}}))
        with Store() as store:
            make_run(store, "hhhh8888-undelivered", "ok", requester_session_key="agent:main:main")
            add_outbox(store, "hhhh8888-undelivered", gw.url + "/hooks/agent")
        listed = json.loads(out_of(capsys, ["outbox", "--json"]))["items"]
        assert [i["runId"] for i in listed] == ["hhhh8888-undelivered"] and not listed[0]["delivered"]
        assert "hhhh8888" in out_of(capsys, ["outbox"])
        assert not gw.deliveries
        text = out_of(capsys, ["outbox", "--retry"])
        assert "1 delivered, 0 failed" in text and "outbox empty" in text
        assert [d.body["idempotencyKey"] for d in gw.deliveries] == ["kimi-acp:hhhh8888-undelivered"]
        assert json.loads(out_of(capsys, ["show", "hhhh8888", "--json"]))["delivery"]["state"] == "delivered"


def test_prune_keeps_active_and_undelivered_runs(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store() as store:
        make_run(store, "old-delivered", "ok", age=10 * 86400)
        store.append_transcript("old-delivered", "{}")
        store.close_transcript("old-delivered")
        make_run(store, "old-undelivered", "ok", age=10 * 86400)
        add_outbox(store, "old-undelivered", "http://127.0.0.1:9/hooks/agent")
        make_run(store, "new-one", "ok")
        make_run(store, "old-running", "running", age=10 * 86400, pid=os.getpid())
        transcript = store.transcript_path("old-delivered")
    assert "would delete 1" in out_of(capsys, ["prune", "--older-than", "7d", "--dry-run"])
    assert transcript.exists()
    report = json.loads(out_of(capsys, ["prune", "--older-than", "7d", "--json"]))
    assert report == {"pruned": ["old-delivered"], "keptUndelivered": ["old-undelivered"], "dryRun": False}
    assert not transcript.exists()
    left = set(out_of(capsys, ["ps", "-q", "--all"]).split())
    assert left == {"old-undelivered", "new-one", "old-running"}
    assert main(["prune", "--older-than", "soon"]) == exitcodes.USAGE
    assert "like 30m, 12h or 7d" in capsys.readouterr().err


# --------------------------------------------------------------------------- progress


class Run:
    run_id, backend, model, reason = "r1", "kimi", "kimi-k2.5", "global default"


def test_progress_shows_retries_tools_and_tokens_without_a_tty() -> None:
    stream = io.StringIO()
    p = Progress(stream, tty=False)
    p.kimi_acp_run_event(run=Run(), event={"type": "status"})
    p.kimi_acp_run_event(run=Run(), event={"type": "system", "subtype": "api_retry", "attempt": 3, "max_retries": 10,
                                           "retry_delay_ms": 9700, "error_status": 429})
    assert "retrying after 429 (3/10, next in 9." in p.status()
    p.kimi_acp_run_event(run=Run(), event={"type": "assistant", "message": {"id": "m1", "usage": {"input_tokens": 50, "output_tokens": 5},
                                                                            "content": [{"type": "tool_use", "name": "Bash"}]}})
    assert "running Bash" in p.status() and "55 tokens" in p.status()
    p.kimi_acp_run_event(run=Run(), event={"type": "assistant", "message": {"id": "m2", "content": [
        {"type": "tool_use", "name": "Bash", "input": {"command": "ls -la"}}, {"type": "tool_use", "name": "Read", "input": {"file_path": "/x/y.py"}}]}})
    p.kimi_acp_run_event(run=Run(), event={"type": "result", "usage": {"input_tokens": 70, "output_tokens": 9}})
    p.end()
    lines = stream.getvalue().splitlines()
    assert any(x.endswith("tool Bash: ls -la") for x in lines) and any(x.endswith("tool Read: Read /x/y.py") for x in lines)
    assert "\r" not in stream.getvalue() and "\033" not in stream.getvalue(), "escape codes without a TTY"
    assert any("API 429: retry 3/10 in 9.7 s" in x for x in lines)
    assert any(x.endswith("tool Bash") for x in lines)
    assert lines[-1].endswith("done: 2 turns, 3 tool calls, 79 tokens")


def test_progress_ticks_on_a_tty_between_events() -> None:
    """Nothing happens after the start, yet the line is redrawn with a growing elapsed time."""
    stream = io.StringIO()
    p = Progress(stream, tty=True)
    p.kimi_acp_run_event(run=Run(), event={"type": "status"})
    try:
        deadline = time.monotonic() + 30
        while stream.getvalue().count("\r\033[K") < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        p.end()
    frames = [f for f in stream.getvalue().split("\r\033[K") if "waiting for the model" in f]
    assert len(frames) >= 3, stream.getvalue()
    elapsed = [float(re.search(r"([\d.]+)s ·", f).group(1)) for f in frames]  # type: ignore[union-attr]
    assert elapsed[-1] > elapsed[0], elapsed


# --------------------------------------------------------------------------- no tracebacks


def kimi_acp(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KIMI_ACP), *args], capture_output=True, text=True, timeout=timeout,
                          env=env or dict(os.environ), stdin=subprocess.DEVNULL)


def test_ordinary_mistakes_give_no_traceback(tmp_path: Path) -> None:
    bad = kimi_acp("stub", "--scenario", "bogus")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "unknown stub scenario 'bogus'" in bad.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = kimi_acp("stub", "--port", str(port))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "hint:" in done.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for state in (str(blocker), str(blocker / "below")):
        done = kimi_acp("ps", env={**os.environ, "KIMI_ACP_STATE_DIR": state})
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert "kimi-acp ps: error:" in done.stderr and "hint:" in done.stderr


def test_state_dir_flag(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    with Store(elsewhere) as store:
        make_run(store, "iiii9999-there", "ok")
    done = kimi_acp("--state-dir", str(elsewhere), "ps", "-q", "--all")
    assert done.returncode == 0 and done.stdout.split() == ["iiii9999-there"], done.stderr
    assert kimi_acp("ps", "-q", "--all").stdout.split() == []


# --------------------------------------------------------------------------- end to end: the real Claude Code


STUB_KEY = "sk-kimi-clioutput000000000000000000000000beef"


@pytest.mark.e2e
def test_spawn_shows_retries_and_tools_then_logs_tells_the_story(tmp_path: Path, claude_bin: str) -> None:
    """The real Claude Code against the stub, which answers 429 twice, then asks for a tool:
    spawn's progress (not a TTY: plain lines) names each retry and the tool; logs shows both."""
    from kimi_acp.stub.server import StubServer

    home = tmp_path / "home"
    home.mkdir()
    with StubServer(key=STUB_KEY) as stub:
        (tmp_path / "openclaw.json").write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
            "defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": stub.base_url}},
            "harness": {"command": claude_bin}, "limits": {"runTimeoutSeconds": 120}}}}}}))
        env = {**os.environ, "HOME": str(home), "KIMI_API_KEY": STUB_KEY}
        done = kimi_acp("spawn", "list the files [[stub:busy:2]]", "--cwd", str(tmp_path), env=env, timeout=150)
        assert done.returncode == 0, done.stderr
        assert "Hello from the Kimi stub" in done.stdout
        assert "API 429: retry 1/" in done.stderr and "API 429: retry 2/" in done.stderr, done.stderr
        assert "\033" not in done.stderr, "escape codes without a TTY"
        assert "result not reported: no requester session" in done.stderr

        tooled = kimi_acp("spawn", "run a tool [[stub:tool_use]]", "--cwd", str(tmp_path), "--json", "--thinking", "low",
                          env=env, timeout=150)
        assert tooled.returncode == 0, tooled.stderr
        efforts = {((r.body or {}).get("output_config") or {}).get("effort") for r in stub.messages_requests()[-2:]}
        assert efforts == {"low"}, "spawn --thinking did not reach Claude Code as --effort"
        run = json.loads(tooled.stdout)
        assert tuple(run) == RUN_KEYS and run["status"] == "ok"
        assert re.search(r"\] tool \w+", tooled.stderr), tooled.stderr
    first = kimi_acp("ps", "-q", "--all", env=env).stdout.split()[-1]  # the oldest: the retried run
    story = kimi_acp("logs", first, env=env)
    assert story.returncode == 0 and "↻ API 429: retry 1/" in story.stdout, story.stdout
    tools = kimi_acp("logs", run["runId"], env=env)
    assert "→ " in tools.stdout and "■ done" in tools.stdout, tools.stdout


# --------------------------------------------------------------------------- installed package


def test_an_installed_package_is_not_taken_for_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from kimi_acp import manifest
    from kimi_acp.harness import command
    from kimi_acp.paths import checkout_root

    site = tmp_path / "lib" / "python3.11" / "site-packages" / "kimi_acp" / "harness"
    site.mkdir(parents=True)
    (site / "command.py").write_text("")
    assert checkout_root(site / "command.py") is None
    assert checkout_root(REPO / "plugin" / "kimi_acp" / "harness" / "command.py") == REPO

    # what an installed copy does: no <lib>/python3.11/.tools among the places looked at ...
    monkeypatch.setattr(command, "_REPO_ROOT", checkout_root(site / "command.py"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(command.HarnessNotFoundError) as ei:
        command.find_claude()
    assert "python3.11" not in str(ei.value)
    # ... and manifest --check / --write say they need a checkout instead of naming lib/python3.11/manifest.json
    monkeypatch.setattr(manifest, "CHECKOUT", None)
    assert main(["manifest", "--check"]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "source checkout only" in err and "python3.11" not in err


def test_stub_and_logs_speak_json_too(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = subprocess.Popen([str(KIMI_ACP), "stub", "--json", "--base-path", "/api"], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ), stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["baseUrl"].startswith("http://127.0.0.1:") and info["baseUrl"].endswith("/api")
        assert info["scenario"] == "text" and info["apiKey"]
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
    assert code == 0
    with Store() as store:
        make_run(store, "jjjj0000-json", "ok")
        store.append_transcript("jjjj0000-json", json.dumps(EVENTS[0]))
        store.close_transcript("jjjj0000-json")
        make_run(store, "kkkk0000-refused", "error", started=False, error="blocked")
    assert json.loads(out_of(capsys, ["logs", "jjjj0000", "--json"]))["subtype"] == "init"
    assert main(["logs", "kkkk0000", "--json"]) == exitcodes.USAGE
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "refused"
