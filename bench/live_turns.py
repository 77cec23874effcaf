"""Live turns through ``kimi-acp acp`` (an ACP client, the real Claude Code, the local Kimi stub):
what a steer and a permission question cost.

1. **Steer.** A turn whose model call is slow (the stub holds it ``--hold`` s); 0.3 s after that
   call reaches the stub, a steer (``_meta.kimiAcp.mode: "steer"``) is sent and goes into the same
   Claude Code process, which takes it up as soon as the model's answer is in. Measured: steer
   sent -> the stub sees a request carrying it, and the part of that after the model's answer
   (the process's own cost of taking it up). Baseline, same run: a new prompt sent right after a
   turn ended -> the stub sees it (a new Claude Code process with ``--resume``, as every turn
   before this issue).
2. **Approval.** A Bash ``touch`` in the session's folder that Claude Code asks about (mode
   ``default``; the client allows it at once), vs the same turn with nothing to ask
   (``acceptEdits`` runs it without asking): the question's round trip (Claude Code ->
   kimi-acp -> ``session/request_permission`` -> the answer -> Claude Code) is the difference.

Each leg runs in batches in its own agent process, A and B alternating batch by batch; wall is
per sample, CPU is the whole batch's (the agent and every Claude Code it ran: this process's
``RUSAGE_CHILDREN`` across the batch) divided by its samples.

    .venv/bin/python bench/live_turns.py [-n 8] [--hold 1.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugin"))

import acp  # noqa: E402
from acp.schema import AllowedOutcome, ClientCapabilities, Implementation, RequestPermissionResponse  # noqa: E402

from kimi_acp.stub.server import StubServer  # noqa: E402

KIMI_ACP = REPO / ".venv" / "bin" / "kimi-acp"
KEY = "sk-kimi-fake-bench000000000000000000000000"


class Client:
    """Allows every permission request at once; ignores updates."""

    def __init__(self) -> None:
        self.asked = 0

    def on_connect(self, conn: Any) -> None:
        pass

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        pass

    async def request_permission(self, options: Any, session_id: str, tool_call: Any, **kwargs: Any) -> Any:
        self.asked += 1
        return RequestPermissionResponse(outcome=AllowedOutcome(option_id="allow_once", outcome="selected"))


class Arrivals:
    """When each Messages request reached the stub (perf_counter), and its body."""

    def __init__(self, stub: StubServer) -> None:
        self.seen: list[tuple[float, str]] = []
        original = stub._record

        def record(rec: Any) -> None:
            if rec.method == "POST" and rec.body:
                self.seen.append((time.perf_counter(), json.dumps(rec.body.get("messages"))))
            original(rec)

        stub._record = record  # type: ignore[method-assign]

    async def first(self, needle: str, after: float, timeout: float = 60) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for at, body in list(self.seen):
                if at >= after and needle in body:
                    return at
            await asyncio.sleep(0.002)
        raise SystemExit(f"the stub never saw {needle!r}")


async def batch(env: dict[str, str], work: Path, body: Any, n: int) -> tuple[list[float], float, list[float]]:
    """One agent process, ``n`` samples of ``body(conn, client, i)``; (walls, CPU s per sample, extras)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = Client()
    walls: list[float] = []
    extras: list[float] = []
    with open(os.devnull, "wb") as quiet:
        async with acp.spawn_agent_process(client, str(KIMI_ACP), "acp", env=env, cwd=str(work),
                                           transport_kwargs={"stderr": quiet}) as (conn, _):
            await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities(),
                                  client_info=Implementation(name="bench", version="0"))
            for i in range(n):
                wall, extra = await body(conn, client, i)
                walls.append(wall)
                if extra is not None:
                    extras.append(extra)
    await asyncio.sleep(0.2)  # the agent and its runs are reaped by now
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return walls, cpu / n, extras


def med(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=8, help="samples per batch (two batches per leg; default 8)")
    parser.add_argument("--hold", type=float, default=1.5, help="seconds the stub holds the slow turn's model call")
    args = parser.parse_args()
    from kimi_acp.harness.command import find_claude

    claude = find_claude()
    with tempfile.TemporaryDirectory(prefix="kimi-acp-bench-") as tmp, StubServer(key=KEY) as stub:
        root = Path(tmp)
        work, home = root / "work", root / "home"
        work.mkdir()
        home.mkdir()
        config = root / "openclaw.json"
        section = {"defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": stub.base_url}}}
        config.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": section}}}}))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "KIMI_ACP_STATE_DIR": str(root / "state"),
            "OPENCLAW_CONFIG_PATH": str(config),
            "KIMI_API_KEY": KEY,
            "KIMI_ACP_CLAUDE": claude,
            "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
        }
        seen = Arrivals(stub)
        hold = args.hold

        async def steer(conn: Any, client: Client, i: int) -> tuple[float, float]:
            sid = (await conn.new_session(cwd=str(work), mcp_servers=[])).session_id
            start = time.perf_counter()
            first = asyncio.create_task(conn.prompt(session_id=sid, prompt=[acp.text_block(f"first {i} [[stub:slow:{hold}]]")]))
            called = await seen.first(f"first {i}", start)
            await asyncio.sleep(0.3)
            sent = time.perf_counter()
            steered = await conn.prompt(session_id=sid, prompt=[acp.text_block(f"steer {i} [[stub:text]]")], kimiAcp={"mode": "steer"})
            await first
            assert steered.field_meta and "steeredInto" in steered.field_meta["kimiAcp"], steered
            arrived = await seen.first(f"steer {i}", sent)
            return arrived - sent, arrived - (called + hold)

        async def after_turn(conn: Any, client: Client, i: int) -> tuple[float, None]:
            sid = (await conn.new_session(cwd=str(work), mcp_servers=[])).session_id
            await conn.prompt(session_id=sid, prompt=[acp.text_block(f"first {i} [[stub:text]]")])
            sent = time.perf_counter()
            second = asyncio.create_task(conn.prompt(session_id=sid, prompt=[acp.text_block(f"next {i} [[stub:text]]")]))
            arrived = await seen.first(f"next {i}", sent)
            await second
            return arrived - sent, None

        def approval(mode: str) -> Any:
            sessions: dict[int, str] = {}

            async def body(conn: Any, client: Client, i: int) -> tuple[float, None]:
                sid = sessions.get(id(conn))
                if sid is None:
                    sid = sessions[id(conn)] = (await conn.new_session(cwd=str(work), mcp_servers=[])).session_id
                    await conn.set_session_mode(session_id=sid, mode_id=mode)
                marker = work / f"{mode}-{i}-{time.monotonic_ns()}"
                asked = client.asked
                start = time.perf_counter()
                await conn.prompt(session_id=sid, prompt=[acp.text_block(f"make it [[stub:touch:{marker}]]")])
                took = time.perf_counter() - start
                assert marker.exists() and (client.asked > asked) == (mode == "default"), (mode, client.asked, asked)
                return took, None

            return body

        legs = {
            "steer (sent -> the stub sees it)": steer,
            "new prompt after the turn ended": after_turn,
            "turn with an approval (default, allowed)": approval("default"),
            "same turn, nothing to ask (acceptEdits)": approval("acceptEdits"),
        }
        walls: dict[str, list[float]] = {k: [] for k in legs}
        cpus: dict[str, list[float]] = {k: [] for k in legs}
        extras: dict[str, list[float]] = {k: [] for k in legs}
        await batch(env, work, after_turn, 2)  # warm-up: page cache, Claude Code's first-run files
        for _ in range(2):
            for name, body in legs.items():
                w, c, e = await batch(env, work, body, args.n)
                walls[name] += w
                cpus[name].append(c)
                extras[name] += e
    for name in legs:
        print(f"{name:44s} wall median {med(walls[name]):7.0f} ms (min {min(walls[name]) * 1000:.0f}, max {max(walls[name]) * 1000:.0f}), "
              f"CPU {statistics.mean(cpus[name]) * 1000:6.0f} ms/sample, n={len(walls[name])}")
    s, p = "steer (sent -> the stub sees it)", "new prompt after the turn ended"
    taken = med(extras[s])
    print(f"steer CPU (both turns in one process) vs two processes: {statistics.mean(cpus[s]) / statistics.mean(cpus[p]):.2f}x")
    print(f"steer: {med(walls[s]):.0f} ms from sent to seen, of which {taken:.0f} ms after the model's answer was in "
          f"(the process taking it up) vs {med(walls[p]):.0f} ms for a new prompt after the turn: "
          f"{taken / med(walls[p]):.2f}x (taken up) / {med(walls[s]) / med(walls[p]):.2f}x (sent to seen, incl. the {hold - 0.3:.1f} s the model was still answering)")
    a, b = "turn with an approval (default, allowed)", "same turn, nothing to ask (acceptEdits)"
    print(f"approval: {med(walls[a]) / med(walls[b]):.2f}x wall ({med(walls[a]) - med(walls[b]):+.0f} ms per question), "
          f"{statistics.mean(cpus[a]) / statistics.mean(cpus[b]):.2f}x CPU")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
