"""Start-up of the quick commands vs `python -c pass`: median wall and CPU time of 20, alternating.

Commands: `env --agent coder --json`, `ps --all` (a store of 50 runs), `logs RUN` (a transcript
of 200 events), `spawn --help`. Target: each <= 120 ms wall on the 2-core dev machine.
Run by hand: .venv/bin/python bench/cli_start.py   (N=40 for more samples)
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

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
KIMI_ACP = str(Path(PY).parent / "kimi-acp")
sys.path.insert(0, str(ROOT / "plugin"))


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU user+sys of the child) in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def seed(state: Path) -> str:
    from kimi_acp.store import RunRecord, Store

    with Store(state) as store:
        for i in range(50):
            store.create_run(RunRecord(run_id=f"bench-{i:04d}", child_session_key=f"agent:claude:acp:{i}", status="ok",
                                       task=f"bench task {i} " * 5, backend="kimi", started_at=time.time(), ended_at=time.time()))
        run_id = "bench-0000"
        for i in range(100):
            store.append_transcript(run_id, json.dumps({"type": "assistant", "message": {"id": f"m{i}", "content": [
                {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {"command": f"ls {i}"}}]}}))
            store.append_transcript(run_id, json.dumps({"type": "user", "message": {"content": [
                {"type": "tool_result", "tool_use_id": f"t{i}", "content": "a\nb\nc"}]}}))
        store.close_transcript(run_id)
    return run_id


def main() -> None:
    n = int(os.environ.get("N", "20"))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "openclaw.json"
        cfg.write_text('{ // bench\n plugins: { entries: { "kimi-acp": { config: { agents: { coder: { backend: "kimi" } } } } } } }\n')
        state = Path(tmp) / "state"
        env = {**os.environ, "OPENCLAW_CONFIG_PATH": str(cfg), "KIMI_API_KEY": "sk-kimi-fake-bench0000000abcd",
               "KIMI_ACP_STATE_DIR": str(state)}
        run_id = seed(state)
        cases = {
            "python -c pass": [PY, "-c", "pass"],
            "env --agent coder --json": [KIMI_ACP, "env", "--agent", "coder", "--json"],
            "ps --all": [KIMI_ACP, "ps", "--all"],
            "logs RUN": [KIMI_ACP, "logs", run_id],
            "spawn --help": [KIMI_ACP, "spawn", "--help"],
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for argv in cases.values():  # warm-up
            timed(argv, env)
        for i in range(n):  # round-robin, rotating the start, so drift hits every case alike
            names = list(cases)
            names = names[i % len(names):] + names[: i % len(names)]
            for name in names:
                samples[name].append(timed(cases[name], env))
    base_wall = statistics.median(w for w, _ in samples["python -c pass"])
    print(f"{'command':28} {'wall ms':>8} {'cpu ms':>8} {'x python':>9}   (median of {n}; target: each <= 120 ms wall)")
    for name, xs in samples.items():
        wall = statistics.median(w for w, _ in xs)
        cpu = statistics.median(c for _, c in xs)
        flag = "" if name == "python -c pass" else ("  ok" if wall <= 0.120 else "  OVER")
        print(f"{name:28} {wall * 1000:8.1f} {cpu * 1000:8.1f} {wall / base_wall:8.2f}x{flag}")


if __name__ == "__main__":
    main()
