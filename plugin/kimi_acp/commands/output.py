"""The CLI's output contract, in one place.

* **One run shape.** :func:`run_json` is the JSON object of a run, the same keys (camelCase,
  like OpenClaw's own JSON) from ``spawn``, ``wait``, ``ps``, ``show`` and ``demo --json``.
* **Errors.** With ``--json`` an error is one object on stdout,
  ``{"error": {"code", "message", "hint"}}`` with a stable ``code``; without, it is one line on
  stderr (``kimi-acp CMD: error: …``) and a ``hint:`` line naming the fix.

Stdlib only: ``ps`` and ``show`` import this, never the spawner.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

RUN_KEYS: tuple[str, ...] = (
    "runId", "childSessionKey", "status", "refused", "task", "label", "targetAgentId", "requesterAgentId",
    "requesterSessionKey", "backend", "model", "reason", "cwd", "createdAt", "startedAt", "endedAt", "durationMs",
    "pid", "exitCode", "result", "error", "usage", "costUsd", "costSource", "numTurns", "sessionId",
    "claudeCodeVersion", "delivery", "waiting",
)
"""The keys of :func:`run_json`, in order (documented in the README)."""


def is_refused(rec: Any) -> bool:
    """A spawn refused before anything started (unknown agent, missing key, blocked, …)."""
    return rec.status == "error" and rec.started_at is None and rec.pid is None


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def deliveries(store: Any, run_ids: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Outbox rows per run (read-only): target, delivered or not, attempts, last error."""
    sql = "SELECT id, run_id, target, attempts, delivered_at, next_attempt_at, last_error FROM outbox"
    params: list[Any] = []
    if run_ids is not None:
        if not run_ids:
            return {}
        sql += f" WHERE run_id IN ({', '.join('?' * len(run_ids))})"
        params = list(run_ids)
    out: dict[str, list[dict[str, Any]]] = {}
    for row in store._query(sql + " ORDER BY id", params):
        out.setdefault(row["run_id"], []).append(dict(row))
    return out


def delivery_json(rec: Any, rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``{"state", "attempts", "lastError"}``: ``none`` (nothing to report to: no gateway or
    no requester session), ``waiting`` (the run is not finished), ``pending`` (queued or being
    retried), ``delivered``."""
    rows = rows or []
    if not rows:
        state = "waiting" if rec.status in ("queued", "running") and rec.expects_completion and rec.requester_session_key else "none"
        return {"state": state, "attempts": 0, "lastError": None}
    attempts = sum(int(r["attempts"] or 0) for r in rows)
    last = next((r["last_error"] for r in reversed(rows) if r["last_error"]), None)
    state = "delivered" if all(r["delivered_at"] for r in rows) else "pending"
    return {"state": state, "attempts": attempts, "lastError": last if state != "delivered" else None}


def run_json(rec: Any, rows: list[dict[str, Any]] | None = None, waiting: str | None = None) -> dict[str, Any]:
    """The run, as every command shows it (see :data:`RUN_KEYS`). ``waiting``: why a queued run
    has not started (:func:`waiting_for`)."""
    from ..redact import redact

    active = rec.status in ("queued", "running")
    out = {
        "runId": rec.run_id,
        "childSessionKey": rec.child_session_key,
        "status": rec.status,
        "refused": is_refused(rec),
        "task": rec.task,
        "label": rec.label,
        "targetAgentId": rec.agent_id,
        "requesterAgentId": rec.requester_agent_id,
        "requesterSessionKey": rec.requester_session_key,
        "backend": rec.backend,
        "model": rec.model,
        "reason": rec.reason,
        "cwd": rec.cwd,
        "createdAt": _iso(rec.created_at),
        "startedAt": _iso(rec.started_at),
        "endedAt": _iso(rec.ended_at),
        "durationMs": rec.duration_ms,
        "pid": rec.pid if active else None,  # a finished run's pid is history, maybe someone else's now
        "exitCode": rec.exit_code,
        "result": rec.result_text,
        "error": redact(rec.error) if rec.error else rec.error,
        "usage": rec.usage or {},
        # kimi-acp's price of the run (usage x the model's cost), or Claude Code's own figure for a
        # run on Anthropic: costSource says which (see pricing.py); None when no price is known.
        "costUsd": rec.cost_usd if rec.cost_source else None,
        "costSource": rec.cost_source,
        "numTurns": rec.num_turns,
        "sessionId": rec.claude_session_id,
        "claudeCodeVersion": rec.claude_code_version,
        "delivery": delivery_json(rec, rows),
        "waiting": waiting if rec.status == "queued" else None,
    }
    assert tuple(out) == RUN_KEYS
    return out


def waiting_for(store: Any, rec: Any) -> str | None:
    """Why a queued run has not started: its backend's quota or 429 pause (the state dir's
    ``admission/`` files, see :mod:`kimi_acp.admission`), else a busy backend; ``None`` for a
    run that is not queued. No network."""
    if rec.status != "queued":
        return None
    from ..admission import waiting_reason

    return waiting_reason(store.state_dir, rec)


def load_run_json(store: Any, run_id: str) -> dict[str, Any]:
    rec = store.get_run(run_id)
    return run_json(rec, deliveries(store, [run_id]).get(run_id), waiting_for(store, rec))


def exit_for_run(rec_json: dict[str, Any]) -> int:
    from .. import exitcodes

    if rec_json["refused"]:
        return exitcodes.USAGE
    return exitcodes.BY_STATUS.get(rec_json["status"], exitcodes.FAILED)


def dump(obj: Any) -> None:
    from ..redact import redact

    sys.stdout.write(redact(json.dumps(obj, indent=2, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


def error_json(code: str, message: str, hint: str | None = None, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "hint": hint}
    err.update(extra)
    return {"error": err}


def emit_error(command: str | None, code: str, message: str, hint: str | None, *, as_json: bool, **extra: Any) -> None:
    """Print one error by the contract (see the module docstring); secrets masked."""
    from ..redact import redact

    message, hint = redact(message), (redact(hint) if hint else hint)
    if as_json:
        dump(error_json(code, message, hint, **extra))
        return
    where = f"kimi-acp {command}" if command else "kimi-acp"
    print(f"{where}: error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def refusal_exit(answer: dict[str, Any]) -> int:
    """The exit code of a refused spawn, from the answer's ``errorCode`` and message."""
    from .. import exitcodes

    code, message = answer.get("errorCode") or "", answer.get("error") or ""
    if code == "runtime_policy":
        return exitcodes.BLOCKED
    if "no API key" in message:
        return exitcodes.MISSING_KEY
    if "To install:" in message or ("Claude Code" in message and "not found" in message):
        return exitcodes.NO_CLAUDE
    return exitcodes.USAGE


def refusal_hint(answer: dict[str, Any]) -> str | None:
    from ..errors import split_hint

    message = answer.get("error") or ""
    hint = split_hint(message)[1]
    if hint:
        return hint
    if "unknown agent" in message:
        return "name an agent from the list, or add it to plugins.entries.kimi-acp.config.agents"
    if "no API key" in message and ": " in message:
        return message.rsplit(": ", 1)[1]
    return None
