"""Thinking levels on K3, on the wire: the REAL Claude Code CLI, spawned by the Spawner against
the local Kimi stub, once per OpenClaw thinking level on ``kimi/k3``; each request body must
carry the effort K3 accepts (low / high / max, mapped as OpenClaw's Kimi provider maps them),
and ``off`` must drop the thinking field (Claude Code cannot send ``thinking.type: disabled``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from fakes.spawning import CONTEXT, write_config
from kimi_acp.spawn import Spawner
from kimi_acp.stub.server import StubServer

pytestmark = [pytest.mark.e2e]

KEY = "sk-kimi-e2ethink000000000000000000000000t1t2"

# level -> (output_config.effort, thinking field sent)
EXPECTED = {
    "off": ("low", False),
    "minimal": ("low", True),
    "low": ("low", True),
    "medium": ("high", True),
    "high": ("high", True),
    "adaptive": ("high", True),
    "xhigh": ("max", True),
    "max": ("max", True),
}


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(key=KEY) as server:
        yield server


def _text(body: dict) -> str:
    return json.dumps(body.get("messages") or [])


@pytest.mark.asyncio
async def test_each_thinking_level_reaches_k3_as_an_effort_it_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, stub: StubServer
) -> None:
    write_config(tmp_path, base_url=stub.base_url, harness={"command": claude_bin},
                 limits={"runTimeoutSeconds": 120, "perBackend": {"kimi": 4}})
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    environ = {**os.environ, "HOME": str(home)}
    results = {}
    async with Spawner(environ=environ) as sp:
        async def one(level: str) -> None:
            answer = await sp.spawn({"task": f"thinking check {level}: say hi", "runtime": "acp", "model": "kimi/k3",
                                     "thinking": level}, CONTEXT)
            assert answer["status"] == "accepted", answer
            results[level] = await sp.wait(answer["runId"], timeout=120)

        async with anyio.create_task_group() as tg:
            for level in EXPECTED:
                tg.start_soon(one, level)
    for level, (effort, thinks) in EXPECTED.items():
        assert results[level].status == "ok", (level, results[level])
        bodies = [r.body for r in stub.messages_requests() if r.body and f"thinking check {level}:" in _text(r.body)]
        assert bodies, f"no request of the {level} run reached the stub"
        for body in bodies:
            assert body["model"] == "k3", (level, body["model"])
            assert (body.get("output_config") or {}).get("effort") == effort, (level, body.get("output_config"))
            assert ("thinking" in body) is thinks, (level, body.get("thinking"))
            if thinks:
                assert body["thinking"]["type"] == "adaptive"
            assert body["max_tokens"] == 128_000  # K3's output limit, as far as Claude Code goes
