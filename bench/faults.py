"""Faults, timed (run by hand: .venv/bin/python bench/faults.py).

1. kill -9 of a foreground `kimi-acp spawn` mid-run -> the last process of its run gone
   (the harness, a grandchild, a setsid'd grandchild, an env-clearing double-forked daemon).
   p50/max over N tries (default 20); goal <= 2 s. Baseline in the same run: the reaper off
   (KIMI_ACP_NO_REAPER=1, the old behaviour), where they live on until another command runs.
2. a foreground spawn's exit -> the gateway receiving its result (negative: received before
   the CLI exited, i.e. flushed before exit); goal <= 1 s.
3. a gateway outage ending -> the result delivered (by the detached deliverer, after the CLI
   has exited); goal <= the backoff ceiling (300 s), in practice the next backoff step.

Wall time and the CPU time of the children (user+sys) per try. Fake harness, stand-in gateway
on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes import fake_argv  # noqa: E402

from kimi_acp.deliverer import stop_deliverer  # noqa: E402
from kimi_acp.store import Store  # noqa: E402
from kimi_acp.stub.gateway import GatewayStub  # noqa: E402

KIMI_ACP = str(Path(sys.executable).parent / "kimi-acp")
TOKEN = "hooks-token-bench"
KEY = "sk-kimi-bench00000000000000000000000000000b3c"
REQUESTER = "agent:coder:main"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _group(pgid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                out.append(int(name))
    return out


class World:
    def __init__(self, gw: GatewayStub, mode: str, *args: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="kimi-acp-bench-"))
        self.state = self.tmp / "state"
        wrapper = self.tmp / "fake-claude"
        wrapper.write_text("#!/bin/sh\nexec " + " ".join(fake_argv(mode, *args)) + "\n")
        wrapper.chmod(0o755)
        section = {"agents": {"coder": {"backend": "kimi"}}, "backends": {"kimi": {"baseUrl": "http://127.0.0.1:9/coding"}},
                   "limits": {"graceSeconds": 0.5}, "harness": {"command": str(wrapper)},
                   "report": {"gateway": {"url": gw.url}}}
        cfg = self.tmp / "openclaw.json"
        cfg.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": section}}}}))
        self.env = {**os.environ, "KIMI_ACP_STATE_DIR": str(self.state), "OPENCLAW_CONFIG_PATH": str(cfg),
                    "KIMI_API_KEY": KEY, "OPENCLAW_HOOKS_TOKEN": TOKEN}

    def spawn(self, **env: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([KIMI_ACP, "spawn", "bench", "--agent", "coder", "--session", REQUESTER, "--json"],
                                env={**self.env, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def running(self, timeout: float = 30.0) -> tuple[str, int, list[int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.state / "runs.sqlite3").exists():
                with Store(self.state) as store:
                    runs = store.list_runs()
                    if runs and runs[0].pgid:
                        path = store.transcript_path(runs[0].run_id)
                        if path.exists():
                            for line in path.read_text().splitlines():
                                obj = json.loads(line) if line.startswith("{") else {}
                                if obj.get("type") == "fake":
                                    return runs[0].run_id, runs[0].pgid, obj["grandchildren"] + obj["escaped"] + obj["daemons"]
            time.sleep(0.01)
        raise SystemExit("the run never started")

    def close(self) -> None:
        import shutil

        stop_deliverer(self.state)
        shutil.rmtree(self.tmp, ignore_errors=True)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def kill9_once(gw: GatewayStub, reaper: bool, limit: float = 5.0) -> float | None:
    w = World(gw, "sleep", "--seconds", "300", "--grandchild", "--setsid-grandchild", "--daemon")
    env = {} if reaper else {"KIMI_ACP_NO_REAPER": "1", "KIMI_ACP_NO_DELIVERER": "1"}
    proc = w.spawn(**env)
    try:
        _, pgid, kids = w.running()
        victims = set(_group(pgid)) | set(kids)
        t0 = time.perf_counter()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        while any(_alive(p) for p in victims):
            if time.perf_counter() - t0 > limit:
                return None
            time.sleep(0.001)
        return time.perf_counter() - t0
    finally:
        for p in set(kids) | set(_group(pgid)):
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        w.close()


def exit_to_gateway_once(gw: GatewayStub) -> float:
    w = World(gw, "ok")
    before = len(gw.deliveries)
    try:
        proc = w.spawn()
        proc.wait()
        t_exit = time.time()
        gw.wait_for(before + 1, timeout=30)
        return gw.deliveries[before].received_at - t_exit
    finally:
        w.close()


def outage_once(gw: GatewayStub, outage: float) -> float:
    w = World(gw, "ok")
    before = len(gw.deliveries)
    try:
        gw.stop()
        proc = w.spawn()
        proc.wait()
        time.sleep(outage)
        gw.start()
        t_up = time.time()
        gw.wait_for(before + 1, timeout=400)
        return gw.deliveries[before].received_at - t_up
    finally:
        w.close()


def summary(name: str, xs: list[float], goal: str) -> None:
    xs = sorted(xs)
    print(f"{name:58} p50 {statistics.median(xs) * 1000:8.1f} ms   max {xs[-1] * 1000:8.1f} ms   (n={len(xs)}; goal {goal})")


def main() -> None:
    n = int(os.environ.get("N", "20"))
    with GatewayStub(token=TOKEN) as gw:
        c0, t0 = cpu(), time.perf_counter()
        times = [kill9_once(gw, reaper=True) for _ in range(n)]
        c1, t1 = cpu(), time.perf_counter()
        gone = [t for t in times if t is not None]
        summary("kill -9 of spawn -> last process of its run gone", gone, "<= 2 s")
        print(f"{'':58} survivors after 5 s: {times.count(None)}/{n}; wall {t1 - t0:.1f} s, children CPU {c1 - c0:.1f} s")
        base = [kill9_once(gw, reaper=False) for _ in range(3)]
        print(f"{'baseline (reaper off, as before): gone within 5 s':58} {sum(t is not None for t in base)}/3 tries")

        c0, t0 = cpu(), time.perf_counter()
        lat = [exit_to_gateway_once(gw) for _ in range(n)]
        c1, t1 = cpu(), time.perf_counter()
        summary("foreground spawn exit -> gateway has the result", lat, "<= 1 s (negative: before exit)")
        print(f"{'':58} wall {t1 - t0:.1f} s, children CPU {c1 - c0:.1f} s")

        delays = [outage_once(gw, outage) for outage in (2.0, 5.0, 10.0)]
        summary("gateway back up -> result delivered (outages 2, 5, 10 s)", delays, "<= backoff ceiling 300 s")


if __name__ == "__main__":
    main()
