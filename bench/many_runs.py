"""(d) 500 concurrent runs of a sleeping fake harness through one Spawner.

Reports the supervisor's own RSS growth per run (children excluded) and its CPU time,
against a baseline measured in the same run: the same 500 processes started by bare
anyio.open_process and waited for. Target: < 1 MB of supervisor RSS per run.
Run by hand: .venv/bin/python bench/many_runs.py [N]
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import anyio

from kimi_acp.config import load_config
from kimi_acp.hookspecs import hookimpl
from kimi_acp.plugins import build_plugin_manager
from kimi_acp.spawn import Spawner
from kimi_acp.store import Store

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
SLEEP = 4
RESULT = json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "ok", "session_id": "s",
                     "num_turns": 1, "duration_ms": 1, "usage": {"input_tokens": 1, "output_tokens": 1}})
ARGV = ["/bin/sh", "-c", f"read -r _; sleep {SLEEP}; echo '{RESULT}'"]


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Sleeper:
    @hookimpl
    def kimi_acp_harness_command(self, request, backend):  # type: ignore[no-untyped-def]
        return ARGV


async def baseline() -> tuple[float, int, float]:
    c0, r0, t0 = cpu(), rss_kb(), time.perf_counter()
    peak = r0

    async def one() -> None:
        nonlocal peak
        async with await anyio.open_process(ARGV, start_new_session=True) as p:
            await p.stdin.send(b"x\n")
            await p.stdin.aclose()
            peak = max(peak, rss_kb())
            await p.wait()

    async with anyio.create_task_group() as tg:
        for _ in range(N):
            tg.start_soon(one)
    return cpu() - c0, peak - r0, time.perf_counter() - t0


async def spawner() -> tuple[float, int, float]:
    tmp = Path(tempfile.mkdtemp(prefix="kimi-acp-many-"))
    cfg = tmp / "openclaw.json"
    cfg.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
        "defaultBackend": "passthrough", "limits": {"maxConcurrent": N, "backendMaxConcurrent": N}}}}}}))
    environ = {"PATH": os.environ["PATH"], "KIMI_ACP_NO_SETTINGS_CACHE": "1"}
    pm = build_plugin_manager(entrypoints=False, extra=(Sleeper(),))
    store = Store(tmp / "state")
    async with Spawner(config=load_config(cfg, environ=environ), environ=environ, pm=pm, store=store) as sp:
        c0, r0, t0 = cpu(), rss_kb(), time.perf_counter()
        ids = []
        for _ in range(N):
            ans = await sp.spawn({"task": "x", "runtime": "acp"}, {})
            ids.append(ans["runId"])
        peak = rss_kb()
        while sum(1 for r in store.list_runs(limit=100000) if r.status == "running") < N and time.perf_counter() - t0 < SLEEP:
            await anyio.sleep(0.1)
            peak = max(peak, rss_kb())
        running = sum(1 for r in store.list_runs(limit=100000) if r.status == "running")
        for rid in ids:
            res = await sp.wait(rid)
            assert res.status == "ok", res
        dt = time.perf_counter() - t0
        print(f"  (all {N} were running at once: {running == N}; peak running seen {running})")
        return cpu() - c0, peak - r0, dt


def main() -> None:
    print(f"(d) {N} concurrent runs of a fake harness that sleeps {SLEEP} s")
    b_cpu, b_rss, b_t = anyio.run(baseline)
    s_cpu, s_rss, s_t = anyio.run(spawner)
    print(f"  bare anyio.open_process: CPU {b_cpu:6.2f} s   RSS +{b_rss / 1024:7.1f} MB ({b_rss / N:6.1f} KB/run)   wall {b_t:5.2f} s")
    print(f"  kimi-acp Spawner:        CPU {s_cpu:6.2f} s   RSS +{s_rss / 1024:7.1f} MB ({s_rss / N:6.1f} KB/run)   wall {s_t:5.2f} s")
    print(f"  ratio CPU {s_cpu / b_cpu:.2f}x, RSS per run {s_rss / max(b_rss, 1):.2f}x;"
          f" supervisor RSS per run {s_rss / N / 1024:.3f} MB (target < 1 MB)")


if __name__ == "__main__":
    main()
