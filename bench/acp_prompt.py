"""One trivial prompt: ``acpx -> kimi-acp acp -> claude`` vs ``claude -p`` run directly.

Both hit the local Kimi stub with the same child environment (the one kimi-acp builds for
the ``kimi`` backend) and the same Claude Code argv; A and B alternate, each sample runs
alone, and the medians and their ratio are printed (target <= 1.5x).

A third leg, ``acpx -> a null agent`` (a few lines of Python that answer at once), measures
acpx's own cost, so the output also says how much of the difference is kimi-acp's.

    .venv/bin/python bench/acp_prompt.py [-n 10]

Needs Claude Code (``KIMI_ACP_CLAUDE`` or a local install) and acpx
(``scripts/install-acpx.sh .tools/acpx``, or ``KIMI_ACP_ACPX``).
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
sys.path.insert(0, str(REPO / "plugin"))

from kimi_acp.harness.command import user_message  # noqa: E402
from kimi_acp.stub.server import StubServer  # noqa: E402

KIMI_ACP = REPO / ".venv" / "bin" / "kimi-acp"
ACPX = Path(os.environ.get("KIMI_ACP_ACPX") or REPO / ".tools" / "acpx" / "node_modules" / ".bin" / "acpx")
KEY = "sk-kimi-fake-bench000000000000000000000000"
TASK = "say hi"
TARGET = 1.5

# The null agent: answers initialize, session/new and session/prompt at once, with one
# agent_message_chunk; exits on stdin EOF. Hand-written JSON-RPC on purpose (a baseline).
NULL_AGENT = r"""
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if mid is None:
        continue
    if method == "initialize":
        result = {"protocolVersion": 1, "agentCapabilities": {}, "authMethods": []}
    elif method == "session/new":
        result = {"sessionId": "00000000-0000-4000-8000-000000000000"}
    elif method == "session/prompt":
        note = {"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": msg["params"]["sessionId"],
                "update": {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "Hello from the Kimi stub (null agent)"}}}}
        sys.stdout.write(json.dumps(note) + "\n")
        result = {"stopReason": "end_turn"}
    else:
        result = {}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}) + "\n")
    sys.stdout.flush()
"""


def direct_command(claude: str, config: Path, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment kimi-acp would give Claude Code for the kimi backend."""
    from kimi_acp.config import load_config
    from kimi_acp.environment import build_child_env
    from kimi_acp.harness.claude_code import build_argv

    cfg = load_config(config, environ=env)
    backend = cfg.backend("kimi")
    child = build_child_env(env, backend, key=backend.resolve_key(env), model=backend.model)
    argv, extra = build_argv(claude, model=backend.model, permission=cfg.settings.harness.permissionMode)
    return argv, {**child.env, **extra, "ENABLE_TOOL_SEARCH": "false"}


def time_run(argv: list[str], env: dict[str, str], cwd: Path, stdin: str | None, expect: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0 or expect not in done.stdout:
        raise SystemExit(f"{argv[0]} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="samples of each (default 10)")
    args = parser.parse_args()
    from kimi_acp.harness.claude_code import find_claude

    claude = find_claude()
    if not ACPX.exists():
        raise SystemExit(f"acpx not found at {ACPX}: run scripts/install-acpx.sh .tools/acpx")
    with tempfile.TemporaryDirectory(prefix="kimi-acp-bench-") as tmp, StubServer(key=KEY) as stub:
        root = Path(tmp)
        work, home = root / "work", root / "home"
        work.mkdir()
        home.mkdir()
        config = root / "openclaw.json"
        section = {"defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": stub.base_url}}}
        config.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": section}}}}))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))},
            "HOME": str(home),
            "KIMI_ACP_STATE_DIR": str(root / "state"),
            "OPENCLAW_CONFIG_PATH": str(config),
            "KIMI_API_KEY": KEY,
            "KIMI_ACP_CLAUDE": claude,
            "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
        }
        direct_argv, direct_env = direct_command(claude, config, env)
        null_agent = root / "null_agent.py"
        null_agent.write_text(NULL_AGENT)
        quiet = ["--approve-all", "--format", "quiet", "exec", TASK]
        legs = {
            "acpx -> kimi-acp acp -> claude": ([str(ACPX), "--agent", f"{KIMI_ACP} acp", *quiet], env, None),
            "claude -p (direct, same env)": (direct_argv, direct_env, user_message(TASK).decode()),  # the task as kimi-acp writes it
            "acpx -> null agent (acpx alone)": ([str(ACPX), "--agent", f"{sys.executable} {null_agent}", *quiet], env, None),
        }
        expect = "Hello from the Kimi stub"
        times: dict[str, list[float]] = {name: [] for name in legs}
        names = list(legs)
        for name in names:  # warm-up (page cache, Claude Code's first-run files)
            argv, leg_env, stdin = legs[name]
            time_run(argv, leg_env, work, stdin, expect)
        for i in range(args.n):
            for name in names[i % len(names):] + names[: i % len(names)]:  # rotate the order
                argv, leg_env, stdin = legs[name]
                times[name].append(time_run(argv, leg_env, work, stdin, expect))
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:32s} median {med[name] * 1000:5.0f} ms (min {min(t) * 1000:.0f}, max {max(t) * 1000:.0f}), n={args.n}")
    full, direct, floor = (med[n] for n in names)
    ratio = full / direct
    print(f"ratio: {ratio:.2f}x (target <= {TARGET}x: {'met' if ratio <= TARGET else 'MISSED'}); overhead {1000 * (full - direct):.0f} ms")
    share = full - floor - direct
    print(f"of which acpx itself: {1000 * floor:.0f} ms; kimi-acp acp (start, imports, spawn, relay, exit): {1000 * share:.0f} ms")
    print(f"without acpx's own cost: {(full - floor) / direct:.2f}x claude -p")
    return 0


if __name__ == "__main__":
    sys.exit(main())
