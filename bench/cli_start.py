"""`kimi-acp env` wall time vs `python -c pass`, median of 20, alternating.

Target: kimi-acp env ≤ 120 ms absolute on the 2-core dev machine.
Run by hand: .venv/bin/python bench/cli_start.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import alternate, report, time_cmd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
KIMI_ACP = str(Path(PY).parent / "kimi-acp")

with tempfile.TemporaryDirectory() as tmp:
    cfg = Path(tmp) / "openclaw.json"
    cfg.write_text('{ // bench\n plugins: { entries: { "kimi-acp": { config: { agents: { coder: { backend: "kimi" } } } } } } }\n')
    env = {**os.environ, "OPENCLAW_CONFIG_PATH": str(cfg), "KIMI_API_KEY": "sk-kimi-fake-bench0000000abcd",
           "KIMI_ACP_STATE_DIR": str(Path(tmp) / "state")}
    n = int(os.environ.get("N", "20"))
    xs, ys = alternate(lambda: time_cmd([KIMI_ACP, "env", "--agent", "coder", "--json"], env=env),
                       lambda: time_cmd([PY, "-c", "pass"], env=env), n)
    report("kimi-acp env --agent coder --json", xs, "python -c pass", ys, "(target: kimi-acp env <= 120 ms)")
