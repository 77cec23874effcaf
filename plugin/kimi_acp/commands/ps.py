"""``kimi-acp ps``, ``show RUN`` and ``prune``: the run registry, read for a person or a script.

Fast on purpose: the store and :mod:`.output` only. The spawner is imported only when a run
of a dead supervisor must be recovered (marked lost, its processes killed, its event queued).
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

from .output import deliveries, dump, is_refused, load_run_json, run_json, waiting_for

DELIVERY_SHOWN = {"none": "-", "waiting": "waiting", "pending": "pending", "delivered": "delivered"}


def open_store(config_path: str | None = None) -> Any:
    """The store, after recovery if some active run's supervisor is dead — and with the
    deliverer started when results wait with no living owner (a killed deliverer, a reboot):
    ``ps``, ``show``, ``outbox``, ``wait`` and ``logs`` all finish what was left."""
    from ..deliverer import start_if_needed
    from ..store import ACTIVE, Store, _owner_alive

    store = Store()
    try:
        active = [r for r in store.list_runs(include_finished=False, limit=1000) if r.status in ACTIVE]
        if any(not _owner_alive(r.owner_pid, r.owner_start) for r in active):
            from ..spawn import recover_runs

            recover_runs(store)
        start_if_needed(store=store, config_path=config_path)
    except BaseException:
        store.close()
        raise
    return store


def resolve_id(store: Any, run_id: str) -> str:
    """A full run id, or a unique prefix of one."""
    from ..errors import RunNotFoundError

    try:
        return str(store.get_run(run_id).run_id)
    except RunNotFoundError:
        rows = store._query("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' LIMIT 2",
                            (run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",))
        if len(rows) == 1:
            return str(rows[0]["run_id"])
        if len(rows) > 1:
            from ..errors import UsageError

            raise UsageError(f"run id prefix '{run_id}' matches more than one run", hint="give more of the id (kimi-acp ps --all)") from None
        raise


def shown_status(rec: Any) -> str:
    return "refused" if is_refused(rec) else str(rec.status)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def cut(text: str, width: int) -> str:
    """One line of at most ``width`` characters, with an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _width() -> int:
    try:
        return max(80, os.get_terminal_size(sys.stdout.fileno()).columns)
    except OSError:
        return 120


def run(args: Any) -> int:
    store = open_store(getattr(args, "config", None))
    try:
        everything = args.all or bool(args.status) or bool(args.agent)
        runs = store.list_runs(include_finished=everything, limit=max(1, args.limit) if not (args.status or args.agent) else 100_000)
        if args.status:
            runs = [r for r in runs if shown_status(r) in args.status]
        if args.agent:
            runs = [r for r in runs if r.requester_agent_id == args.agent]
        runs = runs[: max(1, args.limit)]
        if args.quiet:
            for r in runs:
                print(r.run_id)
            return 0
        rows = deliveries(store, [r.run_id for r in runs])
        waiting = {r.run_id: waiting_for(store, r) for r in runs if r.status == "queued"}
        if args.json:
            dump([run_json(r, rows.get(r.run_id), waiting.get(r.run_id)) for r in runs])
            return 0
        if not runs:
            print("no runs match" if (args.status or args.agent) else "no active runs" + ("" if args.all else " (--all shows finished ones)"))
            return 0
        now = time.time()
        # COST only when a listed run has a price (a K3 run; a run on Anthropic): the task keeps its room otherwise
        priced = any(r.cost_usd is not None and r.cost_source for r in runs)
        fixed = 8 + 2 + 12 + 1 + 10 + 1 + 11 + 1 + 5 + 2 + 7 + 2 + (8 + 2 if priced else 0) + 10 + 1
        width = max(20, _width() - fixed)
        cost_head = f"{'COST':>8}  " if priced else ""
        print(f"{'RUN':8}  {'STATUS':12} {'AGENT':10} {'BACKEND':11} {'AGE':>5}  {'PID':>7}  {cost_head}{'DELIVERY':10} TASK")
        for r in runs:
            status = shown_status(r)
            pid = str(r.pid) if r.status in ("queued", "running") and r.pid else "-"
            delivery = DELIVERY_SHOWN[run_json(r, rows.get(r.run_id))["delivery"]["state"]]
            task = r.label or r.task or ""
            if status in ("refused", "error", "lost") and r.error:
                task = f"{task} — {r.error}"
            elif waiting.get(r.run_id):
                task = f"{task} — waiting: {waiting[r.run_id]}"
            cost = f"{_cost(r):>8}  " if priced else ""
            print(f"{r.run_id[:8]}  {status:12} {cut(r.requester_agent_id or '-', 10):10} {cut(r.backend or '-', 11):11} "
                  f"{_age(now - (r.created_at or now)):>5}  {pid:>7}  {cost}{delivery:10} {cut(task, width)}")
        return 0
    finally:
        store.close()


def _cost(rec: Any) -> str:
    """A run's cost for the table: ``$0.0123``, ``-`` when no price is known (a plan's quota)."""
    if rec.cost_usd is None or not rec.cost_source:
        return "-"
    return f"${rec.cost_usd:.4f}" if rec.cost_usd < 1000 else f"${rec.cost_usd:.0f}"


def show(args: Any) -> int:
    store = open_store(getattr(args, "config", None))
    try:
        run_id = resolve_id(store, args.run_id)
        out = load_run_json(store, run_id)
        if args.json:
            dump(out)
            return 0
        from ..redact import redact

        rec = store.get_run(run_id)
        status = shown_status(rec)
        d = out["delivery"]
        lines = [
            f"run:        {run_id}",
            f"status:     {status}" + (f" (exit {out['exitCode']})" if out["exitCode"] not in (None, 0) else ""),
            f"task:       {cut(out['task'] or '', 200)}",
        ]
        if out["label"]:
            lines.append(f"label:      {out['label']}")
        lines += [
            f"requester:  agent {out['requesterAgentId'] or '-'}, session {out['requesterSessionKey'] or '-'}",
            f"backend:    {out['backend'] or '-'}" + (f" (model {out['model']})" if out["model"] else "")
            + (f": {out['reason']}" if out["reason"] else ""),
            f"cwd:        {out['cwd'] or '-'}",
            f"created:    {out['createdAt']}" + (f"  ended: {out['endedAt']}" if out["endedAt"] else ""),
        ]
        if out["durationMs"] is not None:
            lines.append(f"duration:   {out['durationMs'] / 1000:.1f}s, {out['numTurns'] or 0} turns")
        if out["usage"]:
            lines.append(f"usage:      {_usage_line(out['usage'])}")
        if out["endedAt"]:
            lines.append(f"cost:       {_cost_line(out)}")
        if out["pid"]:
            lines.append(f"pid:        {out['pid']}")
        if out["waiting"]:
            lines.append(f"waiting:    {out['waiting']}")
        lines.append(f"delivery:   {_delivery_line(d, out)}")
        if out["error"]:
            lines.append(f"error:      {out['error']}")
        if out["result"]:
            lines += ["result:", *("  " + line for line in redact(out["result"]).splitlines())]
        lines.append(f"logs:       kimi-acp logs {run_id[:8]}")
        print("\n".join(lines))
        return 0
    finally:
        store.close()


def _usage_line(u: dict[str, Any]) -> str:
    def n(key: str) -> int:
        v = u.get(key)
        return v if isinstance(v, int) else 0

    return (f"{n('input_tokens')} in, {n('cache_read_input_tokens')} cached in, "
            f"{n('cache_creation_input_tokens')} cache-write in, {n('output_tokens')} out (tokens)")


def _cost_line(out: dict[str, Any]) -> str:
    from ..pricing import CLAUDE_CODE, KIMI_ACP

    if out["costUsd"] is None:
        return "n/a (no per-token price for this model: a plan's quota, or set its cost in openclaw.json)"
    if out["costSource"] == KIMI_ACP:
        return f"${out['costUsd']:.4f} (priced by kimi-acp from the model's cost per million tokens)"
    if out["costSource"] == CLAUDE_CODE:
        return f"${out['costUsd']:.4f} (Claude Code's own figure, at Anthropic's prices)"
    return f"${out['costUsd']:.4f}"


def _delivery_line(d: dict[str, Any], out: dict[str, Any]) -> str:
    if d["state"] == "none":
        if not out["requesterSessionKey"]:
            return "none (no requester session: nothing to report to)"
        return "none (no gateway configured: plugins.entries.kimi-acp.config.report.gateway.url)"
    if d["state"] == "waiting":
        return "when the run ends"
    if d["state"] == "delivered":
        return f"delivered ({d['attempts']} attempt{'s' if d['attempts'] != 1 else ''})"
    return f"pending after {d['attempts']} attempts" + (f": {d['lastError']}" if d["lastError"] else "") + " (kimi-acp outbox --retry)"


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_age(text: str) -> float:
    from ..errors import UsageError

    m = _AGE.match(text)
    if not m:
        raise UsageError(f"--older-than {text!r}: expected a number and a unit, like 30m, 12h or 7d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def prune(args: Any) -> int:
    """Finished runs older than ``--older-than`` go (row, outbox rows, transcript); a run whose
    result is not delivered yet stays, so no result is lost."""
    from ..store import TERMINAL

    cutoff = time.time() - parse_age(args.older_than)
    store = open_store(getattr(args, "config", None))
    try:
        marks = ", ".join("?" * len(TERMINAL))
        old = [r["run_id"] for r in store._query(
            f"SELECT run_id FROM runs WHERE status IN ({marks}) AND COALESCE(ended_at, created_at) < ?", (*sorted(TERMINAL), cutoff))]
        pending = {item.run_id for item in store.outbox_pending()}
        gone = [r for r in old if r not in pending]
        kept = [r for r in old if r in pending]
        if not args.dry_run and gone:
            with store._tx() as db:
                for run_id in gone:
                    db.execute("DELETE FROM outbox WHERE run_id = ?", (run_id,))
                    db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            for run_id in gone:
                try:
                    store.transcript_path(run_id).unlink()
                except (FileNotFoundError, ValueError):
                    pass
        if args.json:
            dump({"pruned": gone, "keptUndelivered": kept, "dryRun": bool(args.dry_run)})
        else:
            verb = "would delete" if args.dry_run else "deleted"
            print(f"{verb} {len(gone)} finished run{'s' if len(gone) != 1 else ''} older than {args.older_than}"
                  + (f"; kept {len(kept)} whose result is not delivered yet (kimi-acp outbox)" if kept else ""))
        return 0
    finally:
        store.close()
