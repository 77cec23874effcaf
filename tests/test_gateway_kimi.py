"""OpenClaw's own Kimi refs in a REAL, stock OpenClaw gateway (``openclaw@2026.9.6``, Node 24,
loopback only), with kimi-acp installed by ``kimi-acp install --agent coder``.

OpenClaw's Kimi and Moonshot providers are external plugins (``@openclaw/kimi-provider``, plugin
id ``kimi``, providers ``kimi``, ``kimi-code``, ``kimi-coding``; ``@openclaw/moonshot-provider``)
that an online gateway installs at its first start. This gateway is offline, so it loads LOCAL
STAND-INS for both (``kimi_acp/stub/openclaw_plugins``), through ``plugins.load.paths`` as an
installed plugin is found (the shared rig, tests/fakes/gateway_world.py, does it). They declare
the official ids and register no runtime code; OpenClaw's chat side of provider ``kimi`` is the
scripted model, kimi-acp's side is the Kimi stub, and the real Claude Code runs the spawns.

One gateway for the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fakes.gateway_world import World, accepted, kimi_requests_clean, make_world, runs, spawn_message

pytestmark = pytest.mark.openclaw


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, claude_bin: str) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("gw-kimi"), ["--agent", "coder"], claude_bin)


def session_spawn(w: World, key: str, ref: str, task: str) -> tuple[list, dict]:
    """``/model <ref>`` for session ``key`` (sessions.patch, what the command calls), then one
    turn of it that spawns Claude Code without a model; the Kimi requests and the run."""
    w.gw.call("sessions.patch", {"key": key, "model": ref})
    before = len(w.kimi.messages_requests())
    seen = w.turn(key, spawn_message(agentId="claude", task=task))
    answer = accepted(seen)
    assert answer["status"] == "accepted", answer
    event = w.completion(answer["childSessionKey"])
    assert "status: completed" in event.last_user_text()
    return kimi_requests_clean(w.kimi, before), runs(w.state)[-1]


def test_install_leaves_openclaws_own_kimi_and_moonshot_plugins_alone(world: World) -> None:
    cfg = world.gw.read_config()
    entries = cfg["plugins"]["entries"]
    assert "kimi" not in entries and "moonshot" not in entries  # never turned off
    assert cfg["models"]["providers"]["kimi"]["api"] == "anthropic-messages"  # the seed's id, OpenClaw's schema
    log = world.gw.log()
    for needle in ("@openclaw/kimi-provider", "@openclaw/moonshot-provider", "npm view", "degraded"):
        assert needle not in log.lower(), needle  # the stand-ins are there: nothing looked up
    # the aliases install added did not become a /model allowlist: a Kimi model outside them is allowed
    assert set(cfg["agents"]["defaults"]["models"]) == {"kimi/kimi-for-coding", "kimi/k3"}
    world.gw.call("sessions.patch", {"key": "agent:main:any-model", "model": "kimi/k3-256k"})


def test_model_kimi_k3_moves_the_sessions_spawns_to_k3(world: World) -> None:
    reqs, run = session_spawn(world, "agent:main:k3", "kimi/k3", "k3 task: say hi")
    assert reqs and {r.body["model"] for r in reqs} == {"k3"}
    assert {r.body["max_tokens"] for r in reqs} == {128_000}  # K3's 131,072, as far as Claude Code goes
    assert (run["backend"], run["model"]) == ("kimi", "k3"), run
    # priced from K3's cost by kimi-acp, not Claude Code's Anthropic price
    assert run["cost_source"] == "kimi-acp" and run["cost_usd"] and run["cost_usd"] > 0, run


def test_model_kimi_coding_kimi_for_coding_reaches_kimi_as_kimi_for_coding(world: World) -> None:
    reqs, run = session_spawn(world, "agent:main:kimi-coding", "kimi-coding/kimi-for-coding", "kfc task: say hi")
    assert reqs and {r.body["model"] for r in reqs} == {"kimi-for-coding"}
    assert (run["backend"], run["model"]) == ("kimi", "kimi-for-coding"), run
    assert run["cost_usd"] is None  # the plan's quota: no per-token price


def test_a_moonshot_model_for_a_spawn_is_refused_in_one_line(world: World) -> None:
    before = len(world.kimi.messages_requests())
    seen = world.turn("agent:coder:main", spawn_message(agentId="claude", model="moonshot/kimi-k3", task="never runs"))
    text = json.dumps(seen.tool_results())
    assert "Moonshot API model" in text and "not Kimi Code" in text and "kimi/k3" in text, text
    assert len(world.kimi.messages_requests()) == before
