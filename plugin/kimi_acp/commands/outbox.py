"""``kimi-acp outbox``: results not delivered to their requester yet, and ``--retry`` to send them now.

Every finished run that has someone to tell (a requester session and a gateway) gets an outbox
row in the same transaction as its result; a running spawner delivers it and retries failures
with backoff. This command shows what is still waiting and why, and can push it at once
(each delivery carries an idempotency key, so the gateway drops a duplicate).
"""

from __future__ import annotations

import time
from typing import Any

from .output import dump
from .ps import cut, open_store


def _item_json(item: Any) -> dict[str, Any]:
    payload = item.payload or {}
    return {
        "id": item.id,
        "runId": item.run_id,
        "target": item.target,
        "url": payload.get("url"),
        "attempts": item.attempts,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item.created_at)),
        "nextAttemptInS": None if item.delivered_at else max(0.0, round(item.next_attempt_at - time.time(), 1)),
        "delivered": item.delivered_at is not None,
        "lastError": item.last_error,
    }


def _items(store: Any, include_delivered: bool) -> list[Any]:
    if not include_delivered:
        return list(store.outbox_pending())
    from ..store import _outbox_from_row

    return [_outbox_from_row(r) for r in store._query("SELECT * FROM outbox ORDER BY id")]


def run(args: Any) -> int:
    from .. import exitcodes

    store = open_store(getattr(args, "config", None))
    try:
        retried: dict[str, int] | None = None
        if args.retry:
            retried = _retry(store, args)
        items = _items(store, args.all)
        if args.json:
            out: dict[str, Any] = {"items": [_item_json(i) for i in items]}
            if retried is not None:
                out["retry"] = retried
            dump(out)
        else:
            if retried is not None:
                print(f"retried: {retried['delivered']} delivered, {retried['failed']} failed", flush=True)
            if not items:
                print("outbox empty: every result was delivered" if not args.all else "outbox empty")
            else:
                print(f"{'RUN':8}  {'STATE':9} {'TRIES':>5}  {'NEXT':>6}  TARGET / LAST ERROR")
                for i in items:
                    j = _item_json(i)
                    state = "delivered" if j["delivered"] else "pending"
                    nxt = "-" if j["nextAttemptInS"] is None else f"{j['nextAttemptInS']:.0f}s"
                    print(f"{i.run_id[:8]}  {state:9} {i.attempts:>5}  {nxt:>6}  {j['url'] or i.target}"
                          + (f" — {cut(i.last_error, 100)}" if i.last_error and not j["delivered"] else ""))
        still = [i for i in items if i.delivered_at is None]
        return exitcodes.FAILED if (retried is not None and still) else exitcodes.OK
    finally:
        store.close()


def _retry(store: Any, args: Any) -> dict[str, int]:
    import anyio

    from ..config import load_config
    from ..errors import ConfigError
    from ..report import GatewayReporter, flush_outbox

    settings = load_config(getattr(args, "config", None)).settings
    if not settings.report.gateway.url:
        raise ConfigError("no gateway to deliver to: plugins.entries.kimi-acp.config.report.gateway.url is not set",
                          hint="set it to your OpenClaw gateway (e.g. http://127.0.0.1:18789), then retry")
    with store._tx() as db:  # due now (an item another process is sending may go twice: the gateway dedups it)
        db.execute("UPDATE outbox SET next_attempt_at = ? WHERE delivered_at IS NULL", (time.time(),))

    async def go() -> tuple[int, int]:
        import os

        reporter = GatewayReporter(settings, dict(os.environ))
        try:
            return await flush_outbox(store, reporter)
        finally:
            await reporter.aclose()

    delivered, failed = anyio.run(go)
    return {"delivered": delivered, "failed": failed}
