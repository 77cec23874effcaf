"""The real acpx (0.19.1) drives ``kimi-acp acp``, which runs the real Claude Code against
the local Kimi stub: one-shot ``exec``, a persistent named session, ``--model``, and cancel.

acpx is installed by ``scripts/install-acpx.sh .tools/acpx`` (``KIMI_ACP_ACPX`` overrides
the path). It runs with a scratch HOME and passes its environment through to the agent.
Persistent sessions start a detached ``acpx __queue-owner``; the tests give it a 1 s TTL
and make sure it (and every agent and run process) is gone afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kimi_acp.store import Store
from kimi_acp.stub.server import StubServer

pytestmark = [pytest.mark.acpx, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
KIMI_ACP = REPO / ".venv" / "bin" / "kimi-acp"
DEFAULT_ACPX = REPO / ".tools" / "acpx" / "node_modules" / ".bin" / "acpx"
TEST_KEY = "sk-kimi-test0000000000000000000000000000abcd"  # conftest's key
DECOY = "sk-ant-decoy-gateway-token-must-not-leak-0000"
AGENT_CMD = f"{KIMI_ACP} acp"


@pytest.fixture(scope="session")
def acpx_bin() -> str:
    path = os.environ.get("KIMI_ACP_ACPX") or str(DEFAULT_ACPX)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"acpx not found at {path}: run scripts/install-acpx.sh .tools/acpx (or set KIMI_ACP_ACPX)")
    if shutil.which("node") is None:
        pytest.fail("node not found on PATH (acpx needs Node.js >= 20)")
    return path


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return {}
    if state in (b"Z", b"X"):
        return {}
    out = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            out[name.decode(errors="replace")] = value.decode(errors="replace")
    return out


def _ours(state_dir: Path) -> list[int]:
    """Live processes started for this test: they carry its KIMI_ACP_STATE_DIR (acpx, its
    queue owner, kimi-acp, Claude Code and anything Claude Code started)."""
    want = str(state_dir)
    me = os.getpid()
    return [
        int(n) for n in os.listdir("/proc")
        if n.isdigit() and int(n) != me and _environ(int(n)).get("KIMI_ACP_STATE_DIR") == want
    ]


class AcpxRig:
    def __init__(self, tmp_path: Path, acpx: str, claude: str, stub: StubServer) -> None:
        self.acpx = acpx
        self.stub = stub
        self.state = tmp_path / "state"
        self.work = tmp_path / "work"
        self.work.mkdir()
        home = tmp_path / "home"
        home.mkdir()
        self.config = tmp_path / "openclaw.json"
        self.write_config("kimi")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ACPX_", "KIMI_ACP_ACPX"))}
        env.update(
            {
                "HOME": str(home),
                "KIMI_ACP_STATE_DIR": str(self.state),
                "OPENCLAW_CONFIG_PATH": str(self.config),
                "KIMI_API_KEY": TEST_KEY,
                "KIMI_ACP_CLAUDE": claude,
                "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
                "ANTHROPIC_AUTH_TOKEN": DECOY,
                "NO_COLOR": "1",
            }
        )
        self.env = env
        # A named agent for persistent sessions (acpx's project config).
        (self.work / ".acpxrc.json").write_text(json.dumps({"agents": {"kimiacp": {"argv": [str(KIMI_ACP), "acp"]}}}))

    def write_config(self, default: str) -> None:
        section = {
            "defaultBackend": default,
            "backends": {
                "kimi": {"baseUrl": self.stub.base_url},
                "alt": {"baseUrl": self.stub.url + "/alt", "apiKeyEnv": "KIMI_API_KEY", "model": "alt-model"},
            },
            "limits": {"graceSeconds": 2},
        }
        self.config.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": section}}}}))

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.acpx, *args], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, check=False,
        )

    def runs(self) -> list[Any]:
        with Store(self.state) as store:
            return list(reversed(store.list_runs(include_finished=True)))

    def wait_gone(self, timeout: float = 10) -> list[int]:
        deadline = time.monotonic() + timeout
        while (left := _ours(self.state)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


@pytest.fixture
def rig(tmp_path: Path, acpx_bin: str, claude_bin: str) -> Iterator[AcpxRig]:
    with StubServer(key=TEST_KEY, extra_base_paths=("/alt",)) as stub:
        r = AcpxRig(tmp_path, acpx_bin, claude_bin, stub)
        try:
            yield r
        finally:
            # Nothing of this test may outlive it (queue owners included): wait out the
            # short TTLs, then kill leftovers so one failure does not leak into the next.
            left = r.wait_gone()
            for pid in left:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            assert not left, f"processes left behind: {left}"


def _explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


def test_exec_prints_the_stub_reply(rig: AcpxRig) -> None:
    done = rig.run("--agent", AGENT_CMD, "--approve-all", "exec", "say hi")
    assert done.returncode == 0, _explain(done)
    assert "Hello from the Kimi stub. You said: say hi" in done.stdout, _explain(done)
    assert "end_turn" in done.stdout + done.stderr
    posts = rig.stub.messages_requests()
    assert posts and all(r.headers.get("x-api-key") == TEST_KEY and "authorization" not in r.headers for r in posts)
    [run] = rig.runs()
    assert run.status == "ok" and run.backend == "kimi"
    assert TEST_KEY not in done.stdout + done.stderr and DECOY not in done.stdout + done.stderr


def test_persistent_session_keeps_history(rig: AcpxRig) -> None:
    made = rig.run("kimiacp", "sessions", "new", "--name", "t1")
    assert made.returncode == 0, _explain(made)
    first = rig.run("--ttl", "1", "kimiacp", "-s", "t1", "first turn")
    assert first.returncode == 0, _explain(first)
    n_first = len(rig.stub.messages_requests())
    # The first turn's queue owner shuts down 1 s after going idle. A second turn sent while
    # it is closing is refused ("Queue owner is shutting down"), so wait until it and its
    # agent are gone: the second turn then starts a fresh owner, which must bring the
    # conversation back with session/load.
    assert rig.wait_gone(30) == [], "the first turn's queue owner did not leave after --ttl 1"
    second = rig.run("--ttl", "1", "kimiacp", "-s", "t1", "second turn")
    assert second.returncode == 0, _explain(second)
    assert "You said: second turn" in second.stdout
    posts = rig.stub.messages_requests()
    before, after = posts[n_first - 1].body["messages"], posts[-1].body["messages"]
    assert len(after) > len(before)
    assert "first turn" in json.dumps(after)
    runs = rig.runs()
    assert len(runs) == 2 and runs[0].requester_session_key == runs[1].requester_session_key
    assert rig.wait_gone() == []  # the queue owner and its agent left after the TTL


def test_model_flag_selects_the_backend(rig: AcpxRig) -> None:
    rig.write_config("alt")  # the default is now alt; --model must win
    done = rig.run("--agent", AGENT_CMD, "--approve-all", "--model", "kimi/kimi-k2.5", "exec", "which one")
    assert done.returncode == 0, _explain(done)
    assert "Hello from the Kimi stub" in done.stdout
    [run] = rig.runs()
    assert run.backend == "kimi" and run.model == "kimi-k2.5"
    assert "explicit model 'kimi/kimi-k2.5'" in (run.reason or "")
    post = rig.stub.messages_requests()[-1]
    assert post.route == "/coding/v1/messages" and post.body["model"] == "kimi-k2.5"

    refused = rig.run("--agent", AGENT_CMD, "--approve-all", "--model", "nope/nothing", "exec", "never sent")
    assert refused.returncode != 0
    assert "nope/nothing" in refused.stdout + refused.stderr
    assert len(rig.runs()) == 1


def test_cancel_on_timeout_leaves_no_process(rig: AcpxRig) -> None:
    started = time.monotonic()
    done = rig.run("--agent", AGENT_CMD, "--approve-all", "--timeout", "3", "exec", "wait [[stub:hang]]")
    took = time.monotonic() - started
    assert done.returncode != 0, _explain(done)
    assert "Timed out" in done.stdout + done.stderr, _explain(done)
    assert took < 15, took
    [run] = rig.runs()
    assert run.status == "cancelled", run
    assert rig.wait_gone(5) == []
