"""What the spawner adds on top of running the harness directly.

(a) a real Claude Code task against the local Kimi stub: Spawner.spawn -> result, vs the same
    `claude` argv, env and stdin run by bare anyio.run_process (target <= 1.03x);
(c) a fake harness that exits at once: Spawner.spawn -> result vs bare anyio.run_process
    (target <= 5 ms added at p50).
Alternating A/B, medians of N (default 12 for (a), 40 for (c)), in one process.
Run by hand: .venv/bin/python bench/spawn_overhead.py [a|c]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes import fake_argv  # noqa: E402

from kimi_acp.config import load_config  # noqa: E402
from kimi_acp.hookspecs import hookimpl  # noqa: E402
from kimi_acp.plugins import build_plugin_manager  # noqa: E402
from kimi_acp.spawn import Spawner  # noqa: E402
from kimi_acp.store import Store  # noqa: E402
from kimi_acp.stub.server import StubServer  # noqa: E402


def stats(name: str, xs: list[float]) -> float:
    m = statistics.median(xs)
    s = sorted(xs)
    print(f"  {name:44} p50 {m * 1000:8.2f} ms   p10 {s[len(s) // 10] * 1000:8.2f}   p90 {s[len(s) * 9 // 10] * 1000:8.2f}")
    return m


class FixedHarness:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    @hookimpl
    def kimi_acp_harness_command(self, request, backend):  # type: ignore[no-untyped-def]
        return self.argv


async def bench(which: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kimi-acp-bench-"))
    claude = os.environ.get("KIMI_ACP_CLAUDE") or str(ROOT / ".tools/claude-code/node_modules/.bin/claude")
    stub = StubServer().start()
    home = tmp / "home"
    home.mkdir()
    cfg_path = tmp / "openclaw.json"
    cfg_path.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
        "defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": stub.base_url}},
        "harness": {"command": claude}, "limits": {"backendMaxConcurrent": 8}}}}}}))
    environ = {"PATH": os.environ["PATH"], "HOME": str(home), "KIMI_API_KEY": stub.key or "",
               "KIMI_ACP_STATE_DIR": str(tmp / "state"), "KIMI_ACP_NO_SETTINGS_CACHE": "1"}
    os.environ["KIMI_ACP_STATE_DIR"] = str(tmp / "state")
    cfg = load_config(cfg_path, environ=environ)
    task = "say hi"

    if which == "a":
        pm = build_plugin_manager(entrypoints=False)
        n = int(os.environ.get("N", "12"))
    else:
        argv = fake_argv("ok")
        pm = build_plugin_manager(entrypoints=False, extra=(FixedHarness(argv),))
        n = int(os.environ.get("N", "40"))
    store = Store(tmp / "state")
    async with Spawner(config=cfg, environ=environ, pm=pm, store=store) as sp:
        prepared = sp.prepare(__import__("kimi_acp.spawn", fromlist=["SpawnRequest"]).SpawnRequest(task=task, runtime="acp"),
                              __import__("kimi_acp.spawn", fromlist=["SpawnContext"]).SpawnContext())
        spec = prepared["spec"]
        direct_argv, direct_env = spec.argv, spec.env

        async def via_spawner() -> float:
            t = time.perf_counter()
            ans = await sp.spawn({"task": task, "runtime": "acp"}, {})
            res = await sp.wait(ans["runId"])
            dt = time.perf_counter() - t
            assert res.status == "ok", res
            return dt

        async def direct() -> float:
            t = time.perf_counter()
            r = await anyio.run_process(direct_argv, input=spec.stdin, env=direct_env, check=False)  # the same stdin
            dt = time.perf_counter() - t
            assert r.returncode == 0, r.stderr[-500:]
            return dt

        for _ in range(2):
            await via_spawner()
            await direct()
        xs, ys = [], []
        for i in range(n):
            if i % 2:
                ys.append(await direct())
                xs.append(await via_spawner())
            else:
                xs.append(await via_spawner())
                ys.append(await direct())
    store.close()
    stub.stop()
    label = "real Claude Code vs stub" if which == "a" else "fake harness (exits at once)"
    print(f"({which}) {label}, n={n} each, alternating")
    a = stats("Spawner.spawn -> result", xs)
    b = stats("anyio.run_process(same argv, env, stdin)", ys)
    target = "target <= 1.03x" if which == "a" else "target <= 5 ms added at p50"
    print(f"  ratio {a / b:.3f}x   added {1000 * (a - b):+.2f} ms at p50   ({target})")


if __name__ == "__main__":
    for which in (sys.argv[1:] or ["c", "a"]):
        anyio.run(bench, which)
