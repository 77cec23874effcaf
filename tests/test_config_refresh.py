"""A long-lived process follows ``openclaw.json`` without re-reading it for nothing, and never
falls back to passthrough because the file went away (``config.refresh_config``; the warm
``kimi-acp acp`` process calls it before every turn and route)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from fakes.spawning import KIMI_ACP, wrapper_script, write_config
from kimi_acp import config as config_mod
from kimi_acp.config import load_config, refresh_config
from kimi_acp.store import Store

KEY = "sk-kimi-refresh0000000000000000000000000c0f1"


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every load_config call refresh_config makes."""
    calls: list[Any] = []
    real = config_mod.load_config

    def counting(*args: Any, **kw: Any) -> Any:
        calls.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(config_mod, "load_config", counting)
    return calls


def _touch_later(path: Path, text: str) -> None:
    """Rewrite ``path`` so that its mtime surely differs (coarse file-system clocks)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_unchanged_is_the_same_object_without_reading(tmp_path: Path, loads: list[Any]) -> None:
    write_config(tmp_path, extra={"defaultBackend": "kimi"})
    cfg = load_config()
    assert refresh_config(cfg) == (cfg, None)
    assert refresh_config(cfg)[0] is cfg
    assert loads == []


def test_a_changed_config_is_reloaded(tmp_path: Path, loads: list[Any]) -> None:
    path = write_config(tmp_path, extra={"defaultBackend": "kimi"})
    cfg = load_config()
    data = json.loads(path.read_text().split("\n", 1)[1])
    data["plugins"]["entries"]["kimi-acp"]["config"]["defaultBackend"] = "passthrough"
    _touch_later(path, json.dumps(data))
    fresh, note = refresh_config(cfg)
    assert fresh is not cfg and fresh.settings.defaultBackend == "passthrough"
    assert note and "reloaded" in note
    assert len(loads) == 1
    assert refresh_config(fresh) == (fresh, None)


def test_a_broken_edit_keeps_the_last_good_config_and_says_so_once(tmp_path: Path, loads: list[Any]) -> None:
    path = write_config(tmp_path, extra={"defaultBackend": "kimi"})
    cfg = load_config()
    _touch_later(path, "{ plugins: { entries: ")
    kept, note = refresh_config(cfg)
    assert kept is cfg and note and "does not load" in note and str(path) in note
    assert refresh_config(cfg) == (cfg, None)  # said once, not parsed again
    assert len(loads) == 1


def test_a_deleted_config_keeps_the_last_good_one(tmp_path: Path, loads: list[Any]) -> None:
    """Deleting openclaw.json must not be weaker than breaking it: Kimi-routed agents stay on Kimi."""
    from kimi_acp.routing import resolve

    path = write_config(tmp_path, extra={"defaultBackend": "kimi"})
    cfg = load_config()
    text = path.read_text()
    path.unlink()
    kept, note = refresh_config(cfg)
    assert kept is cfg and note and "deleted" in note
    assert resolve(kept).name == "kimi"
    assert refresh_config(cfg) == (cfg, None)  # said once
    assert loads == []
    _touch_later(path, text.replace('"defaultBackend": "kimi"', '"defaultBackend": "passthrough"'))
    back, note = refresh_config(cfg)
    assert back is not cfg and back.settings.defaultBackend == "passthrough" and note


def test_a_big_config_is_not_read_again_for_every_turn(tmp_path: Path, loads: list[Any]) -> None:
    """A 50 MB openclaw.json costs a stat per turn, not a parse."""
    write_config(tmp_path, extra={"defaultBackend": "kimi"})
    path = tmp_path / "openclaw.json"
    data = json.loads(path.read_text().split("\n", 1)[1])
    data["padding"] = {"notes": "x" * (50 * 2**20)}
    path.write_text(json.dumps(data))
    cfg = load_config()
    t = time.perf_counter()
    for _ in range(100):
        assert refresh_config(cfg)[0] is cfg
    assert loads == []
    assert time.perf_counter() - t < 1.0  # 100 stats (a parse of 50 MB alone takes longer)


@pytest.mark.asyncio
async def test_the_warm_acp_process_keeps_routing_to_kimi_when_the_config_is_deleted_mid_run(tmp_path: Path) -> None:
    """`kimi-acp acp` (the gateway's warm process): the config is deleted between two turns;
    the second turn still runs on Kimi, and the log says why."""
    import acp
    from acp.schema import ClientCapabilities

    from test_acp import Recorder

    work = tmp_path / "work"
    work.mkdir()
    path = write_config(tmp_path, extra={"defaultBackend": "kimi"},
                        harness={"command": str(wrapper_script(tmp_path, "ok", "--text", "from the fake"))})
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KIMI_API_KEY": KEY, "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
           "KIMI_ACP_STATE_DIR": os.environ["KIMI_ACP_STATE_DIR"], "OPENCLAW_CONFIG_PATH": str(path)}
    stderr = tmp_path / "acp.stderr"
    with open(stderr, "wb") as err:
        async with acp.spawn_agent_process(Recorder(), KIMI_ACP, "acp", env=env, cwd=str(work),
                                           transport_kwargs={"stderr": err}) as (conn, _proc):
            await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities())
            session = await conn.new_session(cwd=str(work), mcp_servers=[])
            first = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("one")])
            path.unlink()
            second = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("two")])
    assert first.stop_reason == second.stop_reason == "end_turn"
    with Store() as store:
        runs = list(reversed(store.list_runs(include_finished=True)))
    assert [(r.backend, r.status) for r in runs] == [("kimi", "ok"), ("kimi", "ok")]
    assert "was deleted" in stderr.read_text(errors="replace")
