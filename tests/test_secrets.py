"""The Kimi key after a real run (real Claude Code + the stub): it is in the harness's
environment (where it must be) and nowhere else: not in argv, not at rest in the state
dir, not in CLI output. State files are private."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.spawning import (
    CONTEXT,
    HOOKS_TOKEN,
    KIMI_ACP,
    pids_carrying_run_id,
    wait_until,
    write_config,
)
from kimi_acp.spawn import Spawner
from kimi_acp.stub.gateway import GatewayStub
from kimi_acp.stub.server import StubServer

pytestmark = [pytest.mark.e2e]

# Not shaped like an sk- key on purpose: the generic key pattern cannot mask it, so only
# the spawner's explicit handling of this very secret keeps it out of files and output.
KEY = "kimiDISTINCTIVEsecret_4b1d9e7a0c3f5e2d8a6b"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(key=KEY) as server:
        yield server


@pytest.fixture
def gateway() -> Iterator[GatewayStub]:
    with GatewayStub(token=HOOKS_TOKEN) as gw:
        yield gw


def every_file(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.asyncio
async def test_key_stays_out_of_argv_state_and_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, stub: StubServer, gateway: GatewayStub
) -> None:
    write_config(tmp_path, base_url=stub.base_url, harness={"command": claude_bin}, gateway_url=gateway.url,
                 limits={"runTimeoutSeconds": 60})
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("OPENCLAW_HOOKS_TOKEN", HOOKS_TOKEN)
    home = tmp_path / "home"
    home.mkdir()
    environ = {**os.environ, "HOME": str(home)}
    secret = KEY.encode()

    async with Spawner(environ=environ) as sp:
        answer = await sp.spawn({"task": "say hi slowly [[stub:slow:2]]", "runtime": "acp"}, CONTEXT)
        assert answer["status"] == "accepted", answer
        run_id = answer["runId"]
        rec = await wait_until(
            lambda: (r := sp.store.get_run(run_id)).status == "running" and r.pid and r, 20, "the harness to run"
        )
        await wait_until(lambda: stub.messages_requests(), 20, "the first request (the stub holds it 2 s)")
        # While the harness runs: read the argv and environ of it and of everything it started.
        pids = set(pids_carrying_run_id(run_id)) | {rec.pid}
        cmdlines = {}
        environs = {}
        for pid in pids:
            try:
                cmdlines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
                environs[pid] = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
        assert rec.pid in cmdlines, "the harness ended before it could be inspected"
        result = await sp.wait(run_id, timeout=60)
        await wait_until(lambda: gateway.deliveries, 10, "the completion event")

    assert result.status == "ok", result
    # The control: the key is where it must be (the harness's ANTHROPIC_API_KEY)...
    assert f"ANTHROPIC_API_KEY={KEY}".encode() in environs[rec.pid].split(b"\0")
    assert f"KIMI_API_KEY={KEY}".encode() not in environs[rec.pid].split(b"\0")
    # ...and not in any argv (ps shows argv to every user).
    for pid, cmdline in cmdlines.items():
        assert secret not in cmdline, f"the key is in the argv of pid {pid}"
    assert b"stub:slow:2" not in cmdlines[rec.pid]  # nor the task

    # Not at rest: every byte of every file in the state dir (sqlite, -wal, -shm, transcripts).
    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    files = every_file(state)
    names = {p.name for p in files}
    assert "runs.sqlite3" in names and f"{run_id}.jsonl" in names
    everything = b""
    for path in files:
        data = path.read_bytes()
        assert secret not in data, f"the key is at rest in {path}"
        everything += data
    assert b"say hi slowly" in everything  # the control: the scan does see what the store wrote

    # Not in what went to the gateway.
    for d in gateway.deliveries:
        assert KEY not in json.dumps(d.body) and KEY not in json.dumps(d.headers)

    # Not in CLI output.
    env = dict(os.environ)
    for args in (["ps", "--all", "--json"], ["ps", "--all"], ["logs", run_id], ["wait", run_id, "--json"],
                 ["wait", run_id], ["env", "--agent", "coder"], ["env", "--agent", "coder", "--json"]):
        done = subprocess.run([KIMI_ACP, *args], capture_output=True, text=True, env=env, timeout=30, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (args, done.stderr)
        assert KEY not in done.stdout and KEY not in done.stderr, f"`kimi-acp {' '.join(args)}` printed the key"

    # Private files: the dir 0700, every dir under it 0700, every file 0600.
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in [state, *(p for p in state.rglob("*"))]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path} is {oct(mode)}"
        else:
            assert mode == 0o600, f"{path} is {oct(mode)}"
