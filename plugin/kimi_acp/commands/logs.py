"""``kimi-acp logs RUN``: what a run did, for a person (``--raw``: the stream-json as stored).

The readable view has one entry per event: assistant text, a tool call with its input in
short, the tool's result (first lines), API retries, and the final result with its usage.
Stdlib only (no spawner): ``logs`` starts fast.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from .ps import cut, open_store, resolve_id, shown_status

_TOOL_ARGS = ("command", "file_path", "path", "pattern", "url", "query", "description", "prompt")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(c.get("text") if isinstance(c, dict) and "text" in c else c.get("content", "") if isinstance(c, dict) else c)
                         for c in content)
    return "" if content is None else str(content)


def _tool_input(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    for name in _TOOL_ARGS:
        if isinstance(data.get(name), str):
            return cut(data[name], 100)
    return cut(json.dumps(data, ensure_ascii=False), 100) if data else ""


def render(event: dict[str, Any]) -> list[str]:
    """The readable lines of one transcript event ([] for events a person does not need)."""
    kind, sub = event.get("type"), event.get("subtype")
    if kind == "system" and sub == "init":
        return [f"· Claude Code {event.get('claude_code_version') or '?'} started (model {event.get('model') or '?'}, cwd {event.get('cwd') or '?'})"]
    if kind == "system" and sub == "api_retry":
        status = event.get("error_status") or event.get("error") or "error"
        delay = (event.get("retry_delay_ms") or 0) / 1000
        return [f"↻ API {status}: retry {event.get('attempt', '?')}/{event.get('max_retries', '?')} in {delay:.1f}s"]
    if kind == "system" and sub == "permission_denied":
        return [f"✗ permission denied: {event.get('tool_name', '?')}: {cut(str(event.get('message', '')), 200)}"]
    if kind == "assistant":
        msg = event.get("message") or {}
        out = []
        for block in msg.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and block.get("text", "").strip():
                out += ["", *block["text"].rstrip().splitlines(), ""]
            elif block.get("type") == "tool_use":
                out.append(f"→ {block.get('name', '?')} {_tool_input(block.get('input'))}".rstrip())
            elif block.get("type") == "thinking" and block.get("thinking", "").strip():
                out.append(f"… thinking: {cut(block['thinking'], 120)}")
        return out
    if kind == "user":
        out = []
        for block in (event.get("message") or {}).get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                text = _text_of(block.get("content")).strip().splitlines()
                mark = "✗" if block.get("is_error") else "←"
                head = cut(text[0], 120) if text else "(no output)"
                more = f" (+{len(text) - 1} lines)" if len(text) > 1 else ""
                out.append(f"  {mark} {head}{more}")
        return out
    if kind == "kimi-acp":  # kimi-acp's own lines: a live turn's questions, answers and steers; cut lines
        if sub == "permission_question":
            return [f"? {event.get('question') or event.get('tool', '?')}"]
        if sub == "permission_answer":
            how = {"allow_once": "✓ allowed once", "allow_always": "✓ allowed for the session"}.get(str(event.get("decision")), "✗ denied")
            why = f": {event['reason']}" if event.get("reason") else ""
            return [f"  {how} (by {event.get('by', '?')}){why}"]
        if sub == "user_message":
            return [f"» steer: {cut(str(event.get('text', '')), 200)}"]
        return [f"! {event['message']}"] if event.get("message") else []
    if kind == "result":
        usage = event.get("usage") or {}
        tokens = sum(int(usage.get(k) or 0) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
        secs = (event.get("duration_ms") or 0) / 1000
        state = "error" if event.get("is_error") else "done"
        return [f"■ {state} after {secs:.1f}s, {event.get('num_turns') or 0} turns, {tokens} tokens"]
    return []


def _events(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            yield line, None
            continue
        yield line, data if isinstance(data, dict) else None


def _entries(lines: Iterable[str], raw: bool) -> Iterator[list[str]]:
    for line, data in _events(lines):
        if raw:
            yield [line]
        elif data is None:
            yield [line]  # not JSON (a harness's plain output): as is
        else:
            shown = render(data)
            if shown:
                yield shown


def _emit(entries: Iterable[list[str]]) -> None:
    for entry in entries:
        sys.stdout.write("\n".join(entry) + "\n")
    sys.stdout.flush()


def run(args: Any) -> int:
    from .. import exitcodes
    from ..store import TERMINAL
    from .output import emit_error

    store = open_store(getattr(args, "config", None))
    try:
        args.raw = args.raw or getattr(args, "json", False)
        run_id = resolve_id(store, args.run_id)
        rec = store.get_run(run_id)
        path = store.transcript_path(run_id)
        if not path.exists() and rec.status in TERMINAL:
            if shown_status(rec) == "refused":
                emit_error("logs", "refused", f"run {run_id} was refused before it started: {rec.error}", "fix the cause, then spawn again",
                           as_json=bool(getattr(args, "json", False)))
                return exitcodes.USAGE
            print(f"run {run_id} ({rec.status}) has no transcript", file=sys.stderr)
            return 0
        pos = 0
        first = True
        while True:
            chunk = ""
            if path.exists():
                with open(path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
                # only whole lines; a partial last line waits for the next read
                data = data[: data.rfind(b"\n") + 1]
                pos += len(data)
                chunk = data.decode("utf-8", errors="replace")
            if chunk:
                entries: Iterable[list[str]] = _entries(chunk.splitlines(), args.raw)
                if first and args.tail is not None:
                    entries = deque(entries, maxlen=max(0, args.tail))
                _emit(entries)
            first = False
            if not args.follow:
                return 0
            if store.get_run(run_id).status in TERMINAL:
                if path.exists() and path.stat().st_size > pos:
                    continue
                return 0
            time.sleep(0.2)
    finally:
        store.close()
