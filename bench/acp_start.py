"""Cold start of ``kimi-acp acp``: process start -> ``initialize`` answered.

Runs the console script 20 times (default), alternating with ``python -c pass`` (the
interpreter's own floor, measured in the same run), and prints medians, the ratio, and the
absolute time against the 150 ms target. Each sample waits for the previous process to
exit, so samples never overlap.

    .venv/bin/python bench/acp_start.py [-n 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KIMI_ACP = REPO / ".venv" / "bin" / "kimi-acp"
PYTHON = REPO / ".venv" / "bin" / "python"
TARGET_MS = 150.0

INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": 1,
            "clientCapabilities": {"fs": {"readTextFile": True, "writeTextFile": True}, "terminal": True},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    }
).encode() + b"\n"


def time_initialize(env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen([str(KIMI_ACP), "acp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(INITIALIZE)
    proc.stdin.flush()
    line = proc.stdout.readline()
    took = time.perf_counter() - started
    reply = json.loads(line)
    if reply.get("id") != 0 or "result" not in reply:
        raise SystemExit(f"unexpected initialize answer: {line[:300]!r}")
    proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return took


def time_python_pass(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(PYTHON), "-c", "pass"], env=env, check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="samples of each (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kimi-acp-bench-") as tmp:
        env = {
            **os.environ,
            "HOME": tmp,
            "KIMI_ACP_STATE_DIR": os.path.join(tmp, "state"),
            "OPENCLAW_CONFIG_PATH": os.path.join(tmp, "openclaw.json"),
            "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
        }
        time_initialize(env), time_python_pass(env)  # warm the page cache
        ours: list[float] = []
        floor: list[float] = []
        for i in range(args.n):
            if i % 2:
                floor.append(time_python_pass(env))
                ours.append(time_initialize(env))
            else:
                ours.append(time_initialize(env))
                floor.append(time_python_pass(env))
    med, base = statistics.median(ours) * 1000, statistics.median(floor) * 1000
    print(f"kimi-acp acp -> initialize answered: median {med:.1f} ms (min {min(ours) * 1000:.1f}, max {max(ours) * 1000:.1f}), n={args.n}")
    print(f"python -c pass:                      median {base:.1f} ms (min {min(floor) * 1000:.1f}, max {max(floor) * 1000:.1f})")
    print(f"ratio: {med / base:.2f}x python -c pass; target <= {TARGET_MS:.0f} ms: {'met' if med <= TARGET_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
