"""B10 and B11: kimi-acp in a running, stock OpenClaw gateway (npm's openclaw, Node 24, loopback).

B10: gateway start -> GET /healthz answers, with the config `kimi-acp install --global` writes
vs the same config without kimi-acp (alternating, medians of N, default 3 each): a restart (the
everyday case), and the first start after the config changed (OpenClaw then runs a one-off
config preflight), also to the gateway's "ready" line (after plugin services). Goal <= 1.1x.

B11: the agent's sessions_spawn tool call (the scripted chat model's tool_use answer) ->
Claude Code's first request at the Kimi stub, vs `claude -p`'s own start -> its first request
(same env, by hand). Goal <= +300 ms. Also: Claude Code's last request at the stub -> the
completion event in the parent's next model request (OpenClaw's announce flow).

Run by hand: .venv/bin/python bench/openclaw_gateway.py   (N=3 SPAWNS=5 by default)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kimi_acp.stub.agent_model import COMPLETION, AgentModel
from kimi_acp.stub.openclaw_gateway import Gateway
from kimi_acp.stub.server import StubServer

ROOT = Path(__file__).resolve().parents[1]
KIMI_ACP = str(Path(sys.executable).parent / "kimi-acp")
CLAUDE = os.environ.get("KIMI_ACP_CLAUDE") or str(ROOT / ".tools/claude-code/node_modules/.bin/claude")
ARRIVALS: list[float] = []

_record = StubServer._record


def _stamped(self, rec):  # type: ignore[no-untyped-def]
    ARRIVALS.append(time.time())  # when the stub got each request (bench only)
    return _record(self, rec)


StubServer._record = _stamped  # type: ignore[method-assign]


def gateway(root: Path, model: AgentModel, kimi: StubServer, *, with_kimi_acp: bool, key_in_env: bool = True) -> Gateway:
    env = {"KIMI_ACP_CLAUDE": CLAUDE, "KIMI_ACP_DISABLE_ENTRYPOINTS": "1", "KIMI_ACP_TRACE": "1"}
    if key_in_env:
        env["KIMI_API_KEY"] = kimi.key or ""
    gw = Gateway(root, model_url=model.url, env=env)
    gw.write_config(agents=["main", "coder"])
    if with_kimi_acp:
        out = gw.kimi_acp("install", "--config", str(gw.config), "--global")
        assert out.returncode == 0, out.stderr
        cfg = gw.read_config()
        cfg["models"]["providers"]["kimi-code"]["baseUrl"] = model.url
        cfg["plugins"]["entries"]["kimi-acp"]["config"]["backends"] = {"kimi": {"baseUrl": kimi.base_url}}
        gw.config.write_text(json.dumps(cfg, indent=2))
    return gw


def b10(n: int, model: AgentModel, kimi: StubServer, tmp: Path) -> None:
    """The baseline is the same openclaw.json without kimi-acp and without KIMI_API_KEY in the
    gateway's env (that variable alone makes a stock gateway look for OpenClaw's own Kimi and
    Moonshot plugins on npm and ClawHub at every start: ~150 s here, offline)."""
    rows: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    for i in range(n * 2):
        ours = i % 2 == 0
        root = tmp / f"b10-{i}"
        with gateway(root, model, kimi, with_kimi_acp=ours, key_in_env=ours) as gw:
            # the first start after a config change runs OpenClaw's config preflight; then a restart
            first = gw.start(timeout=240, ready=False)
            t = time.monotonic()
            while "[gateway] ready" not in gw.log():
                time.sleep(0.05)
            ready = first + time.monotonic() - t
            gw.stop()
            gw.proc = None
            again = gw.start(timeout=240, ready=False)
            rows[ours].append((first, ready, again))
    med = statistics.median

    def col(ours: bool, k: int) -> float:
        return med(r[k] for r in rows[ours])

    print(f"B10 gateway restart -> /healthz: with kimi-acp {col(True, 2):.2f} s, without {col(False, 2):.2f} s: "
          f"{col(True, 2) / col(False, 2):.2f}x (goal <= 1.1x)")
    print(f"    first start after the config change -> /healthz: with {col(True, 0):.2f} s, without {col(False, 0):.2f} s: "
          f"{col(True, 0) / col(False, 0):.2f}x (OpenClaw's one-off config preflight)")
    print(f"    first start -> 'ready' (plugin services up, the warm process started): with {col(True, 1):.2f} s, "
          f"without {col(False, 1):.2f} s: {col(True, 1) / col(False, 1):.2f}x")


def _trace(log: str, what: str, key: str) -> float | None:
    for line in log.splitlines():
        if f" {what} {key}" in line and "kimi-acp trace " in line:
            return int(line.split("kimi-acp trace ", 1)[1].split()[0]) / 1000
    return None


def b11(spawns: int, model: AgentModel, kimi: StubServer, tmp: Path) -> None:
    from kimi_acp.store import Store

    med = statistics.median
    with gateway(tmp / "b11", model, kimi, with_kimi_acp=True) as gw:
        gw.start(timeout=240)
        state = Path(gw.env["KIMI_ACP_STATE_DIR"])
        to_first, to_event, parts = [], [], []
        for i in range(spawns + 1):  # the first is a warm-up
            seen_before, arrivals_before = len(model.seen), len(ARRIVALS)
            task = f"bench spawn {i}: say hi"
            gw.agent_turn("agent:main:main", "SPAWN " + json.dumps({"runtime": "acp", "task": task}), timeout=240)
            call = model.wait_for(lambda s: s in model.seen[seen_before:] and "SPAWN" in s.last_user_text(), 60, "the spawn turn")
            event = model.wait_for(lambda s: COMPLETION in s.last_user_text() and task in s.last_user_text(), 240, "the completion event")
            mine = ARRIVALS[arrivals_before:]
            if i == 0 or not mine:
                continue
            to_first.append(mine[0] - call.at)
            to_event.append(event.at - mine[-1])
            child = next(line.split("session_key: ", 1)[1].split()[0] for line in event.last_user_text().splitlines() if "session_key: " in line)
            log = gw.log()
            t_ensure, t_turn = _trace(log, "ensureSession", child), _trace(log, "startTurn", child)
            with Store(state) as store:
                run = store.list_runs(include_finished=True)[0]
            if t_ensure and t_turn and run.started_at:
                parts.append((t_ensure - call.at, t_turn - t_ensure, run.started_at - t_turn, mine[0] - run.started_at))
        gw.stop(timeout=120)
    # baseline: claude -p's own start -> its first request, same env
    cfg_env = {"PATH": os.environ["PATH"], "HOME": str(tmp / "home"), "KIMI_API_KEY": kimi.key or "",
               "OPENCLAW_CONFIG_PATH": str(tmp / "b11" / "openclaw.json"), "KIMI_ACP_STATE_DIR": str(tmp / "b11-env-state")}
    (tmp / "home").mkdir(exist_ok=True)
    direct = {"PATH": os.environ["PATH"], "HOME": str(tmp / "home"),
              **json.loads(subprocess.run([KIMI_ACP, "env", "--json", "--reveal"], env=cfg_env, capture_output=True, check=True).stdout)["set"]}
    argv = [CLAUDE, "-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits", "--model", "kimi-k2.5"]
    base = []
    for _ in range(spawns):
        before = len(ARRIVALS)
        t = time.time()
        subprocess.run(argv, env=direct, input=b"say hi", capture_output=True, check=True, cwd=tmp)
        base.append(ARRIVALS[before] - t)
    print(f"B11 sessions_spawn tool call -> Claude Code's first request at Kimi: median {med(to_first) * 1000:.0f} ms "
          f"(min {min(to_first) * 1000:.0f}, max {max(to_first) * 1000:.0f}; n={len(to_first)})")
    print(f"    claude -p start -> its first request:                      median {med(base) * 1000:.0f} ms")
    print(f"    difference: {(med(to_first) - med(base)) * 1000:+.0f} ms (goal <= +300 ms)")
    if parts:
        names = ("tool call -> ensureSession (OpenClaw + the hook)", "ensureSession -> startTurn (OpenClaw's spawn dispatch)",
                 "startTurn -> Claude Code started (kimi-acp)", "Claude Code started -> first request (Claude Code)")
        for k, name in enumerate(names):
            print(f"      {name:58} median {med(p[k] for p in parts) * 1000:6.0f} ms")
    print(f"    Claude Code's last request -> completion event at the parent's model: median {med(to_event) * 1000:.0f} ms "
          f"(max {max(to_event) * 1000:.0f}) - OpenClaw's announce flow")


def main() -> None:
    n, spawns = int(os.environ.get("N", "3")), int(os.environ.get("SPAWNS", "5"))
    with StubServer() as kimi, AgentModel() as model, tempfile.TemporaryDirectory() as tmp:
        if os.environ.get("SKIP_B10") != "1":
            b10(n, model, kimi, Path(tmp))
        b11(spawns, model, kimi, Path(tmp))


if __name__ == "__main__":
    main()
