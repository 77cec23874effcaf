"""The detached worker behind ``kimi-acp spawn --no-wait``.

Reads ``{"request", "context", "config"}`` as JSON on stdin, accepts the spawn,
writes the accepted (or error) answer as one JSON line on stdout, closes stdout
so the CLI can return, and supervises the run to its end (result committed,
outbox delivered). Until it answers, its errors go to stderr, which the CLI shows
(one line, no traceback); after that to ``<state dir>/worker.log``.

It runs in its own session. SIGTERM, SIGHUP or SIGINT cancel its run like ``kimi-acp kill``.
If it is killed, its run's reaper kills the run's processes at once and the deliverer
marks the run ``lost`` and reports it. Delivery is retried here for up to
:data:`FLUSH_TIMEOUT` seconds, then by the deliverer until it succeeds or expires.
"""

from __future__ import annotations

import json
import os
import sys

import anyio

FLUSH_TIMEOUT = 30.0


def _to_log(state_dir: str) -> None:
    """Point stdout at /dev/null and stderr at the worker log (the CLI has stopped reading)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        log = os.open(os.path.join(state_dir, "worker.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        log = os.open(os.devnull, os.O_WRONLY)
    os.dup2(log, 2)
    os.close(log)


async def _main() -> int:
    from .commands.runs import SignalCancel
    from .spawn import Spawner

    payload = json.loads(sys.stdin.read())
    guard = SignalCancel()
    async with anyio.create_task_group() as tg:
        await tg.start(guard.watch)
        async with Spawner(config_path=payload.get("config"), flush_timeout=FLUSH_TIMEOUT) as spawner:
            guard.spawner = spawner
            answer = await spawner.spawn(payload["request"], payload.get("context") or {})
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            _to_log(str(spawner.store.state_dir))
            if answer.get("status") != "accepted":
                tg.cancel_scope.cancel()
                return 2
            guard.run_id = answer["runId"]
            await guard.cancel_run()
            result = await spawner.wait(answer["runId"])
        tg.cancel_scope.cancel()
    return 0 if result.ok else 1


def main() -> int:
    from .errors import KimiAcpError
    from .redact import redact

    from .commands.runs import unwrap

    try:
        try:
            return anyio.run(_main)
        except BaseExceptionGroup as group:
            raise unwrap(group) from None
    except KimiAcpError as exc:
        print(f"kimi-acp worker: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, KeyError, TypeError) as exc:
        print(f"kimi-acp worker: error: bad request from the CLI: {redact(repr(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
