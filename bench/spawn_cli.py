"""(b) The CLI: `kimi-acp spawn "say hi"` vs `claude -p` run by hand with the same env, both
against the local Kimi stub. Alternating A/B, medians of N (default 12). Target <= 1.25x.
Run by hand: .venv/bin/python bench/spawn_cli.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import alternate, report  # noqa: E402

from kimi_acp.stub.server import StubServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KIMI_ACP = str(Path(sys.executable).parent / "kimi-acp")
CLAUDE = os.environ.get("KIMI_ACP_CLAUDE") or str(ROOT / ".tools/claude-code/node_modules/.bin/claude")


def timed(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    import time

    t = time.perf_counter()
    r = subprocess.run(argv, env=env, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode != 0 or b"Hello from the Kimi stub" not in r.stdout:
        raise SystemExit(f"{argv[0]} failed ({r.returncode}): {r.stdout[-300:]!r} {r.stderr[-300:]!r}")
    return dt


def main() -> None:
    n = int(os.environ.get("N", "12"))
    with StubServer() as stub, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        cfg = Path(tmp) / "openclaw.json"
        cfg.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
            "defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": stub.base_url}}, "harness": {"command": CLAUDE}}}}}}))
        base = {"PATH": os.environ["PATH"], "HOME": str(home)}
        ours = {**base, "KIMI_API_KEY": stub.key or "", "OPENCLAW_CONFIG_PATH": str(cfg), "KIMI_ACP_STATE_DIR": str(Path(tmp) / "state")}
        # The same child environment kimi-acp builds, for the direct run.
        env_json = subprocess.run([KIMI_ACP, "env", "--json", "--reveal"], env=ours, capture_output=True, check=True).stdout
        direct = {**base, **json.loads(env_json)["set"]}
        argv = [CLAUDE, "-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits", "--model", "kimi-k2.5"]
        xs, ys = alternate(lambda: timed([KIMI_ACP, "spawn", "say hi"], ours),
                           lambda: timed(argv, direct, b"say hi"), n)
        report('kimi-acp spawn "say hi"', xs, "claude -p (same env, by hand)", ys, "(target <= 1.25x)")


if __name__ == "__main__":
    main()
