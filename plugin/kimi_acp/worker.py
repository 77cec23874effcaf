"""The detached worker behind ``kimi-acp spawn --no-wait``.

Reads ``{"request", "context", "config"}`` as JSON on stdin, accepts the spawn,
writes the accepted (or error) answer as one JSON line on stdout, closes stdout
so the CLI can return, and supervises the run to its end (result committed,
outbox delivered). It runs in its own session; if it is killed, the next
kimi-acp process marks its run ``lost`` and kills the run's processes.
"""

from __future__ import annotations

import json
import os
import sys

import anyio


async def _main() -> int:
    from .spawn import Spawner

    payload = json.loads(sys.stdin.read())
    async with Spawner(config_path=payload.get("config")) as spawner:
        answer = await spawner.spawn(payload["request"], payload.get("context") or {})
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        if answer.get("status") != "accepted":
            return 2
        result = await spawner.wait(answer["runId"])
        await spawner.flush_outbox()
        return 0 if result.ok else 1


def main() -> int:
    return anyio.run(_main)


if __name__ == "__main__":
    sys.exit(main())
