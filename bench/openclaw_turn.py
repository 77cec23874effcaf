"""B8 and B9: kimi-acp as OpenClaw's ACP runtime backend, driven directly from Node.

B8: one spawn through the extension's runtime object (ensureSession -> setConfigOption ->
startTurn -> done -> close, a new oneshot session each time, the warm kimi-acp process
already up) for "say hi" against the local Kimi stub, vs `claude -p` by hand with the same
env. Alternating, medians of N (default 12). Wall time and CPU time (ours: Node's own CPU +
the warm process's CPU incl. its reaped Claude Code; baseline: the child's CPU).
Goal: <= 1.10x wall, <= 1.15x CPU.

B9: ensureSession -> Claude Code process started (the run's started_at in kimi-acp's store),
p50 over the same spawns (>= 20 with N=20). Goal <= 50 ms.

Run by hand: N=20 .venv/bin/python bench/openclaw_turn.py
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kimi_acp.store import Store
from kimi_acp.stub.openclaw_gateway import node_bin_dir
from kimi_acp.stub.server import StubServer

ROOT = Path(__file__).resolve().parents[1]
KIMI_ACP = str(Path(sys.executable).parent / "kimi-acp")
CLAUDE = os.environ.get("KIMI_ACP_CLAUDE") or str(ROOT / ".tools/claude-code/node_modules/.bin/claude")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """utime+stime+cutime+cstime of a live process, in seconds (reaped children included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def main() -> None:
    n = int(os.environ.get("N", "12"))
    with StubServer() as stub, tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        home, work, state = tmpd / "home", tmpd / "work", tmpd / "state"
        home.mkdir()
        work.mkdir()
        cfg = tmpd / "openclaw.json"
        cfg.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
            "defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": stub.base_url}}, "harness": {"command": CLAUDE}}}}}}))
        base = {"PATH": f"{node_bin_dir()}:{os.environ['PATH']}", "HOME": str(home)}
        ours_env = {**base, "KIMI_API_KEY": stub.key or "", "OPENCLAW_CONFIG_PATH": str(cfg), "KIMI_ACP_STATE_DIR": str(state),
                    "KIMI_ACP_BIN": KIMI_ACP, "KIMI_ACP_DISABLE_ENTRYPOINTS": "1"}
        env_json = subprocess.run([KIMI_ACP, "env", "--json", "--reveal"], env=ours_env, capture_output=True, check=True).stdout
        direct = {**base, **json.loads(env_json)["set"]}
        argv = [CLAUDE, "-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits", "--model", "kimi-k2.5"]
        index = (ROOT / "plugin/kimi_acp/openclaw_ext/index.js").as_uri()
        driver = subprocess.Popen([str(node_bin_dir() / "node"), str(ROOT / "bench/openclaw_turn.mjs"), index, str(work)],
                                  env=ours_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=work)
        assert driver.stdin and driver.stdout
        hello = json.loads(driver.stdout.readline())
        warm_pid = hello["pid"]

        def ours() -> tuple[float, float, dict]:
            before = proc_cpu(warm_pid)
            driver.stdin.write("go\n")
            driver.stdin.flush()
            r = json.loads(driver.stdout.readline())
            if not r["ok"]:
                raise SystemExit(f"spawn failed: {r}")
            time.sleep(0.05)  # let the warm process finish its post-run bookkeeping before reading its CPU
            return r["wallMs"] / 1000, (proc_cpu(warm_pid) - before) + r["nodeCpuMs"] / 1000, r

        def bare() -> tuple[float, float]:
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            p = subprocess.run(argv, env=direct, input=b"say hi", capture_output=True, cwd=work)
            wall = time.perf_counter() - t
            ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if p.returncode != 0 or b"Hello from the Kimi stub" not in p.stdout:
                raise SystemExit(f"claude -p failed: {p.stderr[-300:]!r}")
            return wall, (ru2.ru_utime - ru.ru_utime) + (ru2.ru_stime - ru.ru_stime)

        for _ in range(2):  # warm-up
            ours()
            bare()
        ow, oc, bw, bc, rows = [], [], [], [], []
        for i in range(n):
            pair = [ours, bare] if i % 2 == 0 else [bare, ours]
            for f in pair:
                r = f()
                if f is ours:
                    ow.append(r[0])
                    oc.append(r[1])
                    rows.append(r[2])
                else:
                    bw.append(r[0])
                    bc.append(r[1])
        driver.stdin.write("quit\n")
        driver.stdin.flush()
        driver.wait(30)
        with Store(state) as store:
            runs = {r.run_id: r for r in store.list_runs(include_finished=True)}
        starts = sorted(r.started_at for r in runs.values() if r.started_at)
        # B9: each measured spawn's t0 (before ensureSession) -> its run's started_at
        t0s = [row["t0"] / 1000 for row in rows]
        lat = []
        for t0 in t0s:
            later = [s for s in starts if s >= t0]
            if later:
                lat.append(later[0] - t0)

    med = statistics.median
    print(f"B8 backend turn (warm, from Node)  wall median {med(ow) * 1000:7.1f} ms   CPU median {med(oc) * 1000:7.1f} ms   (n={len(ow)})")
    print(f"   claude -p by hand, same env     wall median {med(bw) * 1000:7.1f} ms   CPU median {med(bc) * 1000:7.1f} ms")
    print(f"   ratio: wall {med(ow) / med(bw):.2f}x (goal <= 1.10x), CPU {med(oc) / med(bc):.2f}x (goal <= 1.15x)")
    print(f"   ensureSession alone: median {med(r['ensureMs'] for r in rows):.1f} ms")
    lat.sort()
    print(f"B9 ensureSession -> Claude Code started: p50 {med(lat) * 1000:.1f} ms, p90 {lat[len(lat) * 9 // 10] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms "
          f"over {len(lat)} warm sessions (goal p50 <= 50 ms)")


if __name__ == "__main__":
    main()
