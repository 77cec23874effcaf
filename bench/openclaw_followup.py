"""B12: a follow-up message in a persistent session, through kimi-acp's OpenClaw backend.

Message in (the runtime's startTurn, as OpenClaw's reply_dispatch calls it for a chat message
into an ACP session) -> Claude Code's first request at the stub, in ONE persistent session that
keeps its Claude Code conversation (each turn resumes it), vs `claude -p --resume <id>` started
by hand with the same env, from the same cwd, on its own conversation of the same length:
start -> first request at the stub. Alternating, medians of N (default 12); the whole turn's
wall and CPU beside it (ours: Node's CPU + the warm process's CPU incl. its reaped Claude Code;
baseline: the child's CPU). Goal: <= 1.10x for "message in -> first request".

Run by hand: N=12 .venv/bin/python bench/openclaw_followup.py
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

from kimi_acp.stub.openclaw_gateway import node_bin_dir
from kimi_acp.stub.server import StubServer

ROOT = Path(__file__).resolve().parents[1]
KIMI_ACP = str(Path(sys.executable).parent / "kimi-acp")
CLAUDE = os.environ.get("KIMI_ACP_CLAUDE") or str(ROOT / ".tools/claude-code/node_modules/.bin/claude")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def first_request_after(stub: StubServer, t0: float) -> float:
    for _ in range(200):
        later = [r.received_at for r in stub.messages_requests() if r.received_at >= t0]
        if later:
            return min(later) - t0
        time.sleep(0.01)
    raise SystemExit("no request reached the stub")


def main() -> None:
    n = int(os.environ.get("N", "12"))
    with StubServer() as stub, tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        home, work, bare_work, state = tmpd / "home", tmpd / "work", tmpd / "bare", tmpd / "state"
        for d in (home, work, bare_work):
            d.mkdir()
        cfg = tmpd / "openclaw.json"
        cfg.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
            "defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": stub.base_url}}, "harness": {"command": CLAUDE}}}}}}))
        base = {"PATH": f"{node_bin_dir()}:{os.environ['PATH']}", "HOME": str(home)}
        ours_env = {**base, "KIMI_API_KEY": stub.key or "", "OPENCLAW_CONFIG_PATH": str(cfg), "KIMI_ACP_STATE_DIR": str(state),
                    "KIMI_ACP_BIN": KIMI_ACP, "KIMI_ACP_DISABLE_ENTRYPOINTS": "1"}
        env_json = subprocess.run([KIMI_ACP, "env", "--json", "--reveal"], env=ours_env, capture_output=True, check=True).stdout
        direct = {**base, **json.loads(env_json)["set"]}
        argv = [CLAUDE, "-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits", "--model", "kimi-for-coding"]
        first = subprocess.run(argv, env=direct, input=b"first message", capture_output=True, cwd=bare_work, check=True)
        bare_session = [json.loads(line) for line in first.stdout.splitlines() if line.strip()][-1]["session_id"]

        index = (ROOT / "plugin/kimi_acp/openclaw_ext/index.js").as_uri()
        driver = subprocess.Popen([str(node_bin_dir() / "node"), str(ROOT / "bench/openclaw_followup.mjs"), index, str(work)],
                                  env=ours_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=work)
        assert driver.stdin and driver.stdout
        warm_pid = json.loads(driver.stdout.readline())["pid"]

        def ours() -> tuple[float, float, float]:
            before = proc_cpu(warm_pid)
            driver.stdin.write("go\n")
            driver.stdin.flush()
            r = json.loads(driver.stdout.readline())
            if not r["ok"] or r["status"] != "completed":
                raise SystemExit(f"the follow-up failed: {r}")
            time.sleep(0.05)
            return first_request_after(stub, r["sentAt"] / 1000), r["wallMs"] / 1000, (proc_cpu(warm_pid) - before) + r["nodeCpuMs"] / 1000

        def bare() -> tuple[float, float, float]:
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.time()
            p = subprocess.run([*argv, "--resume", bare_session], env=direct, input=b"follow-up", capture_output=True, cwd=bare_work)
            wall = time.time() - t0
            ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if p.returncode != 0:
                raise SystemExit(f"claude -p --resume failed: {p.stderr[-300:]!r}")
            return first_request_after(stub, t0), wall, (ru2.ru_utime - ru.ru_utime) + (ru2.ru_stime - ru.ru_stime)

        ours()  # the session's first turn: its conversation exists from here on
        for _ in range(2):
            ours()
            bare()
        rows_o, rows_b = [], []
        for i in range(n):
            for f in ([ours, bare] if i % 2 == 0 else [bare, ours]):
                (rows_o if f is ours else rows_b).append(f())
        driver.stdin.write("quit\n")
        driver.stdin.flush()
        driver.wait(30)

    med = statistics.median

    def col(rows: list[tuple[float, float, float]], i: int) -> float:
        return med(r[i] for r in rows)

    print(f"B12 follow-up in a persistent session (n={n}):")
    print(f"  message in -> first request at the stub: kimi-acp {col(rows_o, 0) * 1000:7.1f} ms   claude -p --resume {col(rows_b, 0) * 1000:7.1f} ms"
          f"   ratio {col(rows_o, 0) / col(rows_b, 0):.2f}x (goal <= 1.10x)")
    print(f"  the whole turn, wall:                    kimi-acp {col(rows_o, 1) * 1000:7.1f} ms   claude -p --resume {col(rows_b, 1) * 1000:7.1f} ms"
          f"   ratio {col(rows_o, 1) / col(rows_b, 1):.2f}x")
    print(f"  the whole turn, CPU:                     kimi-acp {col(rows_o, 2) * 1000:7.1f} ms   claude -p --resume {col(rows_b, 2) * 1000:7.1f} ms"
          f"   ratio {col(rows_o, 2) / col(rows_b, 2):.2f}x")


if __name__ == "__main__":
    main()
