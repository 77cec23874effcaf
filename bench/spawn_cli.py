"""(b) The CLI: `kimi-acp spawn "say hi"` vs `claude -p` run by hand with the same env, both
against the local Kimi stub. Alternating A/B (and C: kimi-acp without the reaper, to measure
the reaper's cost apart), medians of N (default 12). Wall time and CPU time (the process and
every descendant it waited for). Target <= 1.15x wall.

This process is a child subreaper, so anything a run leaves behind (a detached deliverer)
is re-parented here: it is counted ("left behind 1 s later") and its CPU is reported too.

Run by hand: .venv/bin/python bench/spawn_cli.py
(PYTHONPATH=/path/to/other/checkout/plugin measures another checkout's kimi-acp the same way.)
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report  # noqa: E402

from kimi_acp.harness.command import user_message  # noqa: E402
from kimi_acp.stub.server import StubServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KIMI_ACP = str(Path(sys.executable).parent / "kimi-acp")
CLAUDE = os.environ.get("KIMI_ACP_CLAUDE") or str(ROOT / ".tools/claude-code/node_modules/.bin/claude")
PR_SET_CHILD_SUBREAPER = 36


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _children() -> list[int]:
    """Live children of this process (what a run left behind is re-parented to us)."""
    me = str(os.getpid())
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] not in ("Z", "X"):
            out.append(int(name))
    return out


STRAYS = {"cpu": 0.0}


def _reap_strays() -> None:
    """Reap what runs left behind (re-parented to us) and add up its CPU."""
    before = _cpu()
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    STRAYS["cpu"] += _cpu() - before


class Case:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> None:
        self.name, self.argv, self.env, self.stdin = name, argv, env, stdin
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.left: list[int] = []

    def __call__(self, record: bool = True) -> None:
        _reap_strays()
        c0 = _cpu()
        t = time.perf_counter()
        r = subprocess.run(self.argv, env=self.env, input=self.stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t
        cpu = _cpu() - c0
        if r.returncode != 0 or b"Hello from the Kimi stub" not in r.stdout:
            raise SystemExit(f"{self.argv[0]} failed ({r.returncode}): {r.stdout[-300:]!r} {r.stderr[-300:]!r}")
        time.sleep(1.0)  # what is still alive 1 s later was left behind
        left = len(_children())
        if record:
            self.wall.append(dt)
            self.cpu.append(cpu)
            self.left.append(left)


def main() -> None:
    n = int(os.environ.get("N", "12"))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    with StubServer() as stub, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        cfg = Path(tmp) / "openclaw.json"
        cfg.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
            "defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": stub.base_url}}, "harness": {"command": CLAUDE}}}}}}))
        base = {"PATH": os.environ["PATH"], "HOME": str(home)}
        # PYTHONPATH=<another checkout>/plugin measures that checkout (e.g. a "before" copy).
        ours = {**base, **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}), "KIMI_API_KEY": stub.key or "", "OPENCLAW_CONFIG_PATH": str(cfg), "KIMI_ACP_STATE_DIR": str(Path(tmp) / "state")}
        # The same child environment kimi-acp builds, for the direct run.
        env_json = subprocess.run([KIMI_ACP, "env", "--json", "--reveal"], env=ours, capture_output=True, check=True).stdout
        direct = {**base, **json.loads(env_json)["set"]}
        # The baseline is the Claude Code invocation kimi-acp makes (the task as a stream-json user
        # message on stdin, today's default model), started by hand; D is the plainest `claude -p`
        # (the task as text), to show what reading stream-json costs Claude Code itself.
        argv = [CLAUDE, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
                "--permission-mode", "acceptEdits", "--model", "kimi-for-coding"]
        a = Case('kimi-acp spawn "say hi"', [KIMI_ACP, "spawn", "say hi"], ours)
        b = Case("claude -p (same env, by hand)", argv, direct, user_message("say hi"))
        c = Case("kimi-acp spawn, no reaper", [KIMI_ACP, "spawn", "say hi"], {**ours, "KIMI_ACP_NO_REAPER": "1"})
        plain = [CLAUDE, "-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits", "--model", "kimi-for-coding"]
        d = Case("claude -p, the task as text", plain, direct, b"say hi")
        for case in (a, b, c, d, a, b, c, d):  # warm-up
            case(record=False)
        for i in range(n):
            order = (a, b, c, d) if i % 2 == 0 else (d, c, b, a)
            for case in order:
                case()
        while _children():  # whatever is still running (deliverers) ends by itself; count its CPU
            time.sleep(0.2)
            _reap_strays()
        _reap_strays()
        report(a.name, a.wall, b.name, b.wall, "(target <= 1.15x)")
        med = statistics.median
        print(f"CPU median: {a.name} {med(a.cpu) * 1000:.1f} ms, {b.name} {med(b.cpu) * 1000:.1f} ms, "
              f"ratio {med(a.cpu) / med(b.cpu):.2f}x")
        print(f"reaper's cost: wall {(med(a.wall) - med(c.wall)) * 1000:+.1f} ms, CPU {(med(a.cpu) - med(c.cpu)) * 1000:+.1f} ms "
              f"(with vs without; without: wall {med(c.wall) * 1000:.1f} ms, CPU {med(c.cpu) * 1000:.1f} ms)")
        print(f"processes left behind 1 s after a spawn: max {max(a.left)} (reaper on), {max(c.left)} (off); "
              f"their CPU in all ({4 * (n + 2)} runs): {STRAYS['cpu'] * 1000:.1f} ms")
        print(f"{d.name}: wall {med(d.wall) * 1000:.1f} ms ({med(a.wall) / med(d.wall):.2f}x for kimi-acp), "
              f"CPU {med(d.cpu) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
