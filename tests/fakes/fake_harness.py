"""A fake harness: a real tiny program that behaves like ``claude -p --output-format
stream-json`` in the ways the supervisor cares about. Behaviour is chosen by argv:

  --mode ok            init, an assistant text line, a success result; exit 0
  --mode sleep         init, sleep --seconds, then the result
  --mode trap-term     ignore SIGTERM (only SIGKILL ends it), init, sleep --seconds
  --mode grandchild    start `sleep 300` (same group, inherits stdout), result, exit 0
  --mode exit-nonzero  init, an error result, a stderr message, exit --code
  --mode garbage       non-JSON lines, empty lines, a final line without newline
  --mode non-utf8      invalid UTF-8 bytes on stdout and stderr, then the result
  --mode echo-stdin    read all of stdin, print its length and sha256, then the result
  --mode stdin-lines   print each stdin line as it comes ({"type":"fake","line":...}), the result at EOF
  --mode live          a stand-in for Claude Code's --input-format stream-json --replay-user-messages
                       --permission-prompt-tool stdio: one turn per user message (echoed with
                       isReplay); "ASK" in it -> a can_use_tool control_request, then the answer
                       as text; "SLOW" -> 1 s before the result; "NOECHO" -> no echo; exit at EOF
  --mode big-output    print --mb MB of assistant lines, then the result
  --mode long-line     print one line of --mb MB, then the result
  --mode fatal-401     init, an api_retry 401 line, then sleep --seconds
  --mode no-read       never read stdin, sleep --seconds, then the result
  --mode retrying      init, two api_retry lines of a backend that does not answer, sleep --seconds

Flags for every mode:
  --grandchild         also start `sleep 300` in the same process group
  --setsid-grandchild  also start `sleep 300` in a new session (escapes the group)
  --escaped-holds-stdout  ... and let that one inherit stdout/stderr (holds the pipes open)
  --stderr-kb N        write N KB to stderr first
  --daemon             also start a real daemon: fork, setsid, fork again, and exec `sleep 300`
                       with an EMPTY environment (no KIMI_ACP_RUN_ID, not in any group of the run)
Grandchildren are reported on a line {"type":"fake","grandchildren":[...],"escaped":[...]}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

SESSION = "11111111-2222-3333-4444-555555555555"


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def init() -> None:
    emit({"type": "system", "subtype": "init", "session_id": SESSION, "pid": os.getpid(),
          "run_id": os.environ.get("KIMI_ACP_RUN_ID")})


def assistant(text: str) -> None:
    emit({"type": "assistant", "session_id": SESSION,
          "message": {"role": "assistant", "content": [{"type": "text", "text": text}]}})


def result(text: str = "done", *, is_error: bool = False) -> None:
    emit({"type": "result", "subtype": "error_during_execution" if is_error else "success",
          "is_error": is_error, "result": text, "session_id": SESSION, "num_turns": 1,
          "duration_ms": 5, "usage": {"input_tokens": 10, "output_tokens": 5},
          "total_cost_usd": 0.0})


def start_sleeper(*, escape: bool, hold_pipes: bool = True) -> int:
    proc = subprocess.Popen(
        ["sleep", "300"],
        start_new_session=escape,
        stdin=subprocess.DEVNULL,
        # Inheriting keeps our stdout/stderr pipes open after we exit.
        stdout=None if hold_pipes else subprocess.DEVNULL,
        stderr=None if hold_pipes else subprocess.DEVNULL,
    )
    return proc.pid


def start_daemon() -> int:
    """The classic daemon dance; returns the daemon's pid (reported back through a pipe)."""
    r, w = os.pipe()
    first = os.fork()
    if first == 0:
        os.close(r)
        os.setsid()
        second = os.fork()
        if second == 0:
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execve("/bin/sleep", ["sleep", "300"], {})
        os._exit(0)
    os.close(w)
    os.waitpid(first, 0)
    pid = int(os.read(r, 32).decode())
    os.close(r)
    return pid


def live() -> None:
    """One turn per stream-json user message, as Claude Code's live print mode runs them."""
    asked = 0
    for raw in sys.stdin:
        msg = json.loads(raw)
        if msg.get("type") != "user":
            continue
        content = msg["message"]["content"]
        text = content if isinstance(content, str) else " ".join(b.get("text", "") for b in content if b.get("type") == "text")
        if "NOECHO" not in text:
            emit({**msg, "session_id": SESSION, "isReplay": True})
        if "ASK" in text:
            asked += 1
            rid = f"req-{asked}"
            emit({"type": "control_request", "request_id": rid, "request": {
                "subtype": "can_use_tool", "tool_name": "Bash", "input": {"command": "touch marker", "description": "make it"},
                "description": "make it", "tool_use_id": f"toolu_fake_{asked}"}})
            for answer in sys.stdin:
                reply = json.loads(answer)
                if reply.get("type") == "control_response" and reply["response"].get("request_id") == rid:
                    decision = reply["response"].get("response") or {}
                    assistant(f"answer: {decision.get('behavior')} {decision.get('message', '')}".strip())
                    break
        if "SLOW" in text:
            time.sleep(1)
        assistant(f"got: {text}")
        result(f"got: {text}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="ok")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--code", type=int, default=3)
    p.add_argument("--mb", type=float, default=1.0)
    p.add_argument("--text", default="hello from fake")
    p.add_argument("--grandchild", action="store_true")
    p.add_argument("--setsid-grandchild", action="store_true")
    p.add_argument("--escaped-holds-stdout", action="store_true")
    p.add_argument("--stderr-kb", type=int, default=0)
    p.add_argument("--daemon", action="store_true")
    p.add_argument("--input-format", default="text")  # Claude Code's flag: the live mode reads stream-json
    a = p.parse_args()

    if a.mode == "trap-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if a.stderr_kb:
        chunk = ("e" * 1023 + "\n").encode()
        for _ in range(a.stderr_kb):
            sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.write(b"STDERR-END\n")
        sys.stderr.flush()

    kids, escaped = [], []
    if a.grandchild or a.mode == "grandchild":
        kids.append(start_sleeper(escape=False))
    if a.setsid_grandchild:
        escaped.append(start_sleeper(escape=True, hold_pipes=a.escaped_holds_stdout))
    daemons = [start_daemon()] if a.daemon else []
    if kids or escaped or daemons:
        emit({"type": "fake", "grandchildren": kids, "escaped": escaped, "daemons": daemons})

    mode = a.mode
    if mode in ("ok", "grandchild"):
        init()
        assistant(a.text)
        result(a.text)
    elif mode in ("sleep", "trap-term", "no-read"):
        init()
        time.sleep(a.seconds)
        result("slept")
    elif mode == "exit-nonzero":
        init()
        result("something broke", is_error=True)
        sys.stderr.write("fatal: something broke\n")
        sys.stderr.flush()
        return a.code
    elif mode == "garbage":
        init()
        out = sys.stdout.buffer
        out.write(b"this is not json\n\n{\"type\": \"assis\n   \n{}{}{}\n")
        out.write(b"\x00\x01\x02 control bytes\n")
        out.flush()
        result("after garbage")
        out.write(b"trailing line without newline")
        out.flush()
    elif mode == "non-utf8":
        init()
        sys.stdout.buffer.write(b"bad \xff\xfe\x80 bytes\n" + "caf\u00e9".encode("latin-1") + b"\n")
        sys.stdout.flush()
        sys.stderr.buffer.write(b"err \xff\xc3\x28\n")
        sys.stderr.flush()
        result("after bytes")
    elif mode == "echo-stdin":
        data = sys.stdin.buffer.read()
        init()
        emit({"type": "fake", "stdin_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        result(f"read {len(data)} bytes")
    elif mode == "stdin-lines":
        init()
        for raw in sys.stdin.buffer:
            emit({"type": "fake", "line": raw.decode().rstrip("\n")})
        result("stdin closed")
    elif mode == "live":
        init()
        live()
    elif mode == "big-output":
        init()
        line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "x" * 1000}]}})
        data = ((line + "\n") * 1000).encode()
        remaining = int(a.mb * 1024 * 1024)
        out = sys.stdout.buffer
        while remaining > 0:
            out.write(data)
            remaining -= len(data)
        out.flush()
        result("big")
    elif mode == "long-line":
        init()
        out = sys.stdout.buffer
        block = b"y" * (1024 * 1024)
        for _ in range(int(a.mb)):
            out.write(block)
        out.write(b"\n")
        out.flush()
        result("long")
    elif mode == "retrying":
        init()
        for attempt in (1, 2):
            emit({"type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": 10,
                  "retry_delay_ms": 500, "error_status": None, "error": "Connection error."})
        time.sleep(a.seconds)
        result("never got here")
    elif mode == "fatal-401":
        init()
        emit({"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10,
              "retry_delay_ms": 600, "error_status": 401, "error": "authentication_failed"})
        time.sleep(a.seconds)
        result("Failed to authenticate. API Error: 401", is_error=True)
        return 1
    else:
        sys.stderr.write(f"unknown mode {mode!r}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
