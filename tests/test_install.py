"""``kimi-acp install``: edits openclaw.json keeping comments, records what it added, undoes it.

Also the Python side of the OpenClaw extension's bridge (``kimi-acp hook before-tool-call``).
Pure Python and fast; the same configs are checked by the real OpenClaw in test_openclaw.py.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pyjson5
import pytest

from kimi_acp import openclaw_ext
from kimi_acp.cli import main
from kimi_acp.config import load_config
from kimi_acp.routing import resolve

ORIGINAL = """\
// My OpenClaw setup -- hand-written, please keep these comments
{
  /* chat models */
  models: {
    providers: {
      openai: {
        baseUrl: "https://api.openai.com/v1",
        apiKey: "${OPENAI_API_KEY}", // from the gateway env
        api: "openai-completions",
        models: [{ id: "gpt-5", name: "GPT-5" },],
      },
    },
  },
  agents: {
    defaults: { model: "openai/gpt-5" }, // everyone chats on GPT-5
  },
  plugins: {
    entries: {
      // the ACP runtime
      acpx: { enabled: true, config: { permissionMode: "approve-all" } },
    },
  },
}
"""
COMMENTS = [
    "// My OpenClaw setup -- hand-written, please keep these comments",
    "/* chat models */",
    "// from the gateway env",
    "// everyone chats on GPT-5",
    "// the ACP runtime",
]


@pytest.fixture
def ext_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The extension folder install points OpenClaw at (a scratch one: bridge.json lands there)."""
    d = tmp_path / "ext"
    d.mkdir()
    monkeypatch.setattr(openclaw_ext, "extension_dir", lambda: d)
    return d


@pytest.fixture
def cfg_path(tmp_path: Path, ext_dir: Path) -> Path:
    p = tmp_path / "openclaw.json"
    p.write_text(ORIGINAL, encoding="utf-8")
    p.chmod(0o640)
    return p


def install(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["install", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def backups(p: Path) -> list[Path]:
    return sorted(p.parent.glob(p.name + ".bak-*"))


def data(p: Path) -> dict:
    return pyjson5.decode(p.read_text(encoding="utf-8"))


def kimi_acp_bin(p: Path) -> str:
    return data(p)["plugins"]["entries"]["kimi-acp"]["config"]["extension"]["command"][0]


# --------------------------------------------------------------------------- install


def test_install_global_keeps_comments_and_adds_everything(cfg_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = install(capsys, "--global")
    assert code == 0, out
    text = cfg_path.read_text()
    for c in COMMENTS:
        assert c in text
    d = data(cfg_path)  # still JSON5
    # the Kimi provider in OpenClaw's schema, under the seed's (and OpenClaw's) id
    kimi = d["models"]["providers"]["kimi"]
    assert (kimi["baseUrl"], kimi["apiKey"], kimi["api"]) == ("https://api.kimi.com/coding", "${KIMI_API_KEY}", "anthropic-messages")
    rows = {m["id"]: m for m in kimi["models"]}
    assert list(rows) == ["kimi-for-coding", "kimi-for-coding-highspeed", "k3", "k3-256k"]
    assert (rows["k3"]["contextWindow"], rows["k3"]["maxTokens"]) == (262144, 131072)
    assert rows["k3"]["cost"] == {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 0}
    assert "cost" not in rows["kimi-for-coding"]  # the plan's quota: no per-token price
    assert d["models"]["providers"]["openai"]["models"] == [{"id": "gpt-5", "name": "GPT-5"}]
    # current aliases, and modelPolicy: {} so that they do not become a /model allowlist of two
    assert d["agents"]["defaults"] == {
        "model": "openai/gpt-5", "modelPolicy": {},
        "models": {"kimi/kimi-for-coding": {"alias": "Kimi"}, "kimi/k3": {"alias": "Kimi K3"}},
    }
    assert "/model still allows any model" in out
    # the ACP target agent, served by kimi-acp's runtime backend; the implicit main agent kept
    assert d["agents"]["entries"] == {"main": {}, "kimi-acp": {"runtime": {"type": "acp", "acp": {"agent": "kimi-acp", "backend": "kimi-acp"}}}}
    assert d["agents"]["ownership"] == "explicit"
    # OpenClaw's own Kimi and Moonshot plugins are not touched
    assert "kimi" not in d["plugins"]["entries"] and "moonshot" not in d["plugins"]["entries"]
    acpx = d["plugins"]["entries"]["acpx"]
    assert acpx["enabled"] is True and acpx["config"]["permissionMode"] == "approve-all"
    command = acpx["config"]["agents"]["kimi-acp"]["command"]
    exe, sub = command.rsplit(" ", 1)
    assert sub == "acp" and os.path.isabs(exe) and os.access(exe, os.X_OK), command
    assert d["plugins"]["load"]["paths"] == [str(ext_dir)]
    assert d["plugins"]["entries"]["kimi-acp"] == {"enabled": True, "config": {"defaultBackend": "kimi", "extension": {"command": [exe]}}}
    # the user has acpx: it stays the gateway's ACP backend (no acp.backend), the alias is a second door;
    # no allowedAgents list created: empty allows all
    assert d["acp"] == {"defaultAgent": "kimi-acp"}
    # the extension runs this very kimi-acp (from its plugin config: nothing written beside the extension)
    assert not (ext_dir / "bridge.json").exists()

    # kimi-acp's own loader reads it: our section validates and routes every agent to Kimi
    cfg = load_config(cfg_path)
    assert cfg.settings.defaultBackend == "kimi"
    route = resolve(cfg, requester_agent="anyone", target="claude")
    assert (route.name, route.model, route.rule) == ("kimi", "kimi-for-coding", "global")
    assert resolve(cfg, model="Kimi K3").model == "k3"  # the alias works too
    assert resolve(cfg, model="kimi/k3").backend.model_info("k3").cost.input == 3  # the file's rows are read

    # backup first, byte for byte, mode kept; the file keeps its mode
    (bak,) = backups(cfg_path)
    assert bak.read_text() == ORIGINAL
    assert stat.S_IMODE(bak.stat().st_mode) == 0o640 == stat.S_IMODE(cfg_path.stat().st_mode)
    assert f"backup: {bak}" in out
    assert "export KIMI_API_KEY" in out and "gateway restart" in out
    assert "added models.providers.kimi\n" in out


def test_new_keys_follow_the_file_style(cfg_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(capsys, "--agent", "coder")
    text = cfg_path.read_text()
    # unquoted keys and trailing commas, as in the file; indentation of the siblings
    assert '\n      kimi: {\n        baseUrl: ' in text
    assert 'modelPolicy: {}, models: { "kimi/kimi-for-coding": { alias: "Kimi" }, "kimi/k3": { alias: "Kimi K3" } } }' in text  # into an inline object: inline
    assert "        ],\n      },\n    },\n  },\n" in text


def test_install_is_idempotent(cfg_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install(capsys, "--global", "--agent", "coder")[0] == 0
    first = cfg_path.read_bytes()
    record = (Path(os.environ["KIMI_ACP_STATE_DIR"]) / "install.json").read_bytes()
    code, out = install(capsys, "--global", "--agent", "coder")
    assert code == 0
    assert "already installed; nothing to change" in out
    assert cfg_path.read_bytes() == first
    assert (Path(os.environ["KIMI_ACP_STATE_DIR"]) / "install.json").read_bytes() == record
    assert len(backups(cfg_path)) == 1


def test_dry_run_writes_nothing_and_prints_a_diff(cfg_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = install(capsys, "--global", "--dry-run")
    assert code == 0
    assert cfg_path.read_text() == ORIGINAL
    assert backups(cfg_path) == []
    assert not (ext_dir / "bridge.json").exists()
    assert not (Path(os.environ["KIMI_ACP_STATE_DIR"]) / "install.json").exists()
    assert f"--- {cfg_path}\n+++ {cfg_path}\n@@ " in out
    assert '+      kimi: {\n' in out
    assert '+    defaultAgent: "kimi-acp",\n' in out
    assert "nothing written" in out


def test_uninstall_restores_the_original(cfg_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(capsys, "--global", "--agent", "coder", "--agent", "reviewer")
    code, out = install(capsys, "--uninstall")
    assert code == 0, out
    assert data(cfg_path) == pyjson5.decode(ORIGINAL)
    text = cfg_path.read_text()
    for c in COMMENTS:
        assert c in text
    assert text == ORIGINAL  # exactly, in fact
    assert not (ext_dir / "bridge.json").exists()
    assert not (Path(os.environ["KIMI_ACP_STATE_DIR"]) / "install.json").exists()
    assert len(backups(cfg_path)) == 2  # one per write
    assert "removed models.providers.kimi\n" in out and "removed agents.defaults.modelPolicy" in out
    # and once more: nothing recorded, nothing to do
    code, out = install(capsys, "--uninstall")
    assert code == 0 and "nothing to change" in out and cfg_path.read_text() == ORIGINAL


def test_uninstall_keeps_what_the_user_added_since(cfg_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(capsys, "--agent", "coder")
    text = cfg_path.read_text()
    # the user adds an acpx alias of their own next to ours
    text = text.replace('agents: { "kimi-acp"', 'agents: { mine: { command: "my-acp" }, "kimi-acp"')
    d0 = pyjson5.decode(text)
    assert "mine" in d0["plugins"]["entries"]["acpx"]["config"]["agents"], text
    cfg_path.write_text(text)
    install(capsys, "--uninstall")
    d = data(cfg_path)
    assert d["plugins"]["entries"]["acpx"]["config"] == {"permissionMode": "approve-all", "agents": {"mine": {"command": "my-acp"}}}
    assert "kimi-code" not in d["models"]["providers"]
    assert "kimi-acp" not in d["plugins"]["entries"]
    assert "load" not in d["plugins"]


def test_settings_it_changed_are_restored(tmp_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "openclaw.json"
    original = json.dumps(
        {
            "acp": {"defaultAgent": "claude", "allowedAgents": ["claude"]},
            "plugins": {"allow": ["acpx"], "load": {"paths": []}, "entries": {"kimi-acp": {"enabled": False}}},
        },
        indent=2,
    ) + "\n"
    p.write_text(original)
    code, out = install(capsys, "--global", "--backend", "anthropic", "--config", str(p))
    assert code == 0, out
    d = data(p)
    # appended to a list in use; no acpx here, so kimi-acp is the gateway's ACP backend
    assert d["acp"] == {"defaultAgent": "kimi-acp", "allowedAgents": ["claude", "kimi-acp"], "backend": "kimi-acp"}
    assert d["plugins"]["allow"] == ["acpx", "kimi-acp"]
    assert d["plugins"]["load"]["paths"] == [str(ext_dir)]
    assert d["plugins"]["entries"]["kimi-acp"] == {"enabled": True, "config": {"defaultBackend": "anthropic", "extension": {"command": [kimi_acp_bin(p)]}}}
    assert os.path.isabs(kimi_acp_bin(p)) and os.access(kimi_acp_bin(p), os.X_OK)
    json.loads(p.read_text())  # a JSON file stays JSON
    assert 'set acp.defaultAgent = "kimi-acp" (was "claude")' in out
    install(capsys, "--uninstall", "--config", str(p))
    assert p.read_text() == original


def test_agent_routes_only_that_agent(cfg_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = install(capsys, "--agent", "coder", "--agent", "reviewer")
    assert code == 0, out
    d = data(cfg_path)
    assert d["plugins"]["entries"]["kimi-acp"]["config"] == {
        "agents": {"coder": {"backend": "kimi"}, "reviewer": {"backend": "kimi"}}, "extension": {"command": [kimi_acp_bin(cfg_path)]},
    }
    assert "acp" not in d  # no global default agent
    cfg = load_config(cfg_path)
    assert resolve(cfg, requester_agent="coder", target="claude").name == "kimi"
    assert resolve(cfg, requester_agent="writer", target="claude").name == "passthrough"


def test_a_missing_file_is_created(tmp_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = Path(os.environ["OPENCLAW_CONFIG_PATH"])
    assert not p.exists()
    code, out = install(capsys, "--global")
    assert code == 0, out
    d = json.loads(p.read_text())  # created as plain JSON
    assert d["acp"]["defaultAgent"] == "kimi-acp" and "kimi" in d["models"]["providers"]
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert backups(p) == []
    assert load_config(p).settings.defaultBackend == "kimi"
    install(capsys, "--uninstall")
    assert not p.exists()  # it made the file, it takes it away


def test_unknown_backend_is_refused(cfg_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = install(capsys, "--global", "--backend", "nope")
    assert code == 2
    assert "unknown backend 'nope'" in out and str(cfg_path) in out
    assert cfg_path.read_text() == ORIGINAL and backups(cfg_path) == []


def test_a_broken_file_is_refused_with_its_position(cfg_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path.write_text('{\n  models: {\n    providers: { x: 1 \n}\n')
    code, out = install(capsys)
    assert code == 2
    assert f"{cfg_path}:" in out and "JSON5 syntax error" in out


# --------------------------------------------------------------------------- the bridge's Python side


def hook(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, payload: object) -> dict:
    monkeypatch.setattr("sys.stdin", io.StringIO(payload if isinstance(payload, str) else json.dumps(payload)))
    assert main(["hook", "before-tool-call"]) == 0
    return json.loads(capsys.readouterr().out)


def spawn(agent: str, params: dict | None = None, session: dict | None = None) -> dict:
    return {
        "event": {"toolName": "sessions_spawn", "params": {"runtime": "acp", "task": "x", "agentId": "claude", **(params or {})}},
        "context": {"agentId": agent, "sessionKey": f"agent:{agent}:main", "sessionId": "s1"},
        "session": session or {},
    }


def test_hook_routes_per_agent(cfg_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    install(capsys, "--agent", "coder")
    assert hook(capsys, monkeypatch, spawn("coder")) == {
        "params": {"runtime": "acp", "task": "x", "agentId": "kimi-acp", "model": "kimi/kimi-for-coding"}
    }
    assert hook(capsys, monkeypatch, spawn("writer")) == {}
    # the requester session's /model choice routes too: the seed's, and OpenClaw's own Kimi refs
    chose = {"providerOverride": "kimi", "modelOverride": "kimi-k2.5"}
    assert hook(capsys, monkeypatch, spawn("writer", session=chose))["params"]["model"] == "kimi/kimi-k2.5"
    for provider, model, sent in (("kimi", "k3", "kimi/k3"), ("kimi-coding", "kimi-for-coding", "kimi/kimi-for-coding"),
                                  ("kimi-code", "k2p5", "kimi/kimi-for-coding")):
        chose = {"providerOverride": provider, "modelOverride": model}
        assert hook(capsys, monkeypatch, spawn("writer", session=chose))["params"]["model"] == sent
    # a spawn's explicit K3 1M ref is handed on as a ref that keeps the window
    assert hook(capsys, monkeypatch, spawn("writer", {"model": "kimi/k3[1m]"}))["params"]["model"] == "kimi/k3[1m]"
    # Moonshot is not Kimi Code: refused in one line that says what to use
    answer = hook(capsys, monkeypatch, spawn("coder", {"model": "moonshot/kimi-k3"}))
    assert answer["block"] is True and "Moonshot API model" in answer["blockReason"] and "kimi/k3" in answer["blockReason"]
    # ... but a session whose chat runs on Moonshot still spawns by its agent's rule
    chose = {"providerOverride": "moonshot", "modelOverride": "kimi-k3"}
    assert hook(capsys, monkeypatch, spawn("coder", session=chose))["params"]["model"] == "kimi/kimi-for-coding"
    # a chat model that names no backend is not a spawn backend
    assert hook(capsys, monkeypatch, spawn("writer", session={"providerOverride": "openai", "modelOverride": "gpt-5"})) == {}
    # not ACP, or a harness kimi-acp does not run: left alone
    assert hook(capsys, monkeypatch, {"event": {"params": {"runtime": "subagent", "task": "x"}}}) == {}
    assert hook(capsys, monkeypatch, spawn("coder", {"agentId": "codex"})) == {}


def test_hook_blocks_what_it_cannot_route(cfg_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    install(capsys, "--agent", "coder")
    answer = hook(capsys, monkeypatch, spawn("writer", {"model": "nope/model"}))
    assert answer["block"] is True and "unknown model 'nope/model'" in answer["blockReason"]
    answer = hook(capsys, monkeypatch, "not json")
    assert answer["block"] is True and "not JSON" in answer["blockReason"]
    answer = hook(capsys, monkeypatch, spawn("coder", {"task": ""}))  # OpenClaw requires a task
    assert answer["block"] is True and "invalid spawn request" in answer["blockReason"]
    cfg_path.write_text("{ plugins: ")
    answer = hook(capsys, monkeypatch, spawn("coder"))
    assert answer["block"] is True and "JSON5 syntax error" in answer["blockReason"]


# --------------------------------------------------------------------------- the ACP runtime backend path

PLAIN = """\
{
  // a fresh OpenClaw: one chat model, two agents, no acpx
  agents: {
    ownership: "explicit",
    defaults: { model: "openai/gpt-5" },
    entries: { main: {}, coder: {} },
  },
}
"""


def test_without_acpx_kimi_acp_is_the_gateways_acp_backend(tmp_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "openclaw.json"
    p.write_text(PLAIN)
    code, out = install(capsys, "--agent", "coder", "--config", str(p))
    assert code == 0, out
    d = data(p)
    assert d["acp"] == {"backend": "kimi-acp"}
    assert "acpx" not in d["plugins"]["entries"]  # nothing that makes the gateway look for acpx on npm
    assert d["agents"]["entries"] == {
        "main": {}, "coder": {}, "kimi-acp": {"runtime": {"type": "acp", "acp": {"agent": "kimi-acp", "backend": "kimi-acp"}}},
        # /acp spawn claude opens a session on a roster agent: messages into it reach Claude Code
        "claude": {"runtime": {"type": "acp", "acp": {"agent": "claude", "backend": "kimi-acp"}}},
    }
    assert d["agents"]["ownership"] == "explicit"
    assert "// a fresh OpenClaw: one chat model, two agents, no acpx" in p.read_text()
    # twice: nothing to change; uninstall: exactly the original
    assert "already installed" in install(capsys, "--agent", "coder", "--config", str(p))[1]
    install(capsys, "--uninstall", "--config", str(p))
    assert p.read_text() == PLAIN


def test_an_older_installs_acpx_alias_is_removed(tmp_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An install of kimi-acp 0.1 wrote plugins.entries.acpx (acpx is ClawHub-only): reinstalling drops it."""
    p = tmp_path / "openclaw.json"
    p.write_text(PLAIN)
    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = PLAIN.replace("  agents: {", '  plugins: { entries: { acpx: { config: { agents: { "kimi-acp": { command: "/old/kimi-acp acp" } } } } } },\n  agents: {')
    p.write_text(old)
    record = {"version": 1, "configs": {str(p): {"created": [["plugins"]], "containers": [], "appended": [], "replaced": [], "files": []}}}
    (state / "install.json").write_text(json.dumps(record))
    (state / "install.json").chmod(0o600)
    code, out = install(capsys, "--agent", "coder", "--config", str(p))
    assert code == 0, out
    assert "acpx" not in data(p)["plugins"]["entries"]
    assert "removed plugins.entries.acpx" in out


def test_the_seed_kimi_provider_is_kept_and_not_doubled(tmp_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "openclaw.json"
    seed = {"models": {"providers": {"kimi": {"baseUrl": "https://api.kimi.com/coding", "apiKey": "${KIMI_API_KEY}", "api": "anthropic-messages"}}}}
    p.write_text(json.dumps(seed, indent=2))
    code, out = install(capsys, "--global", "--config", str(p))
    assert code == 0, out
    d = data(p)
    assert d["models"]["providers"] == seed["models"]["providers"]  # one Kimi provider, the user's, untouched
    assert "kimi/kimi-for-coding" in d["agents"]["defaults"]["models"]
    assert "kept your models.providers.kimi" in out


def test_a_users_kimi_coding_provider_is_not_doubled(tmp_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "openclaw.json"
    mine = {"models": {"providers": {"kimi-coding": {"baseUrl": "https://api.kimi.com/coding", "api": "anthropic-messages",
                                                     "models": [{"id": "k3", "name": "K3", "contextWindow": 1048576}]}}}}
    p.write_text(json.dumps(mine, indent=2))
    code, out = install(capsys, "--agent", "coder", "--config", str(p))
    assert code == 0, out
    assert list(data(p)["models"]["providers"]) == ["kimi-coding"] and "kept your models.providers.kimi-coding" in out
    cfg = load_config(p)
    route = resolve(cfg, model="kimi-coding/k3")
    assert route.name == "kimi-coding" and route.backend.model_info("k3").context_window == 1048576


def test_openclaws_own_plugin_entries_are_left_alone(tmp_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "openclaw.json"
    p.write_text(json.dumps({"plugins": {"entries": {"kimi": {"enabled": True}, "moonshot": {"config": {"webSearch": {"model": "kimi-k2.6"}}}}}}))
    assert install(capsys, "--global", "--config", str(p))[0] == 0
    d = data(p)
    assert d["plugins"]["entries"]["kimi"] == {"enabled": True}
    assert d["plugins"]["entries"]["moonshot"] == {"config": {"webSearch": {"model": "kimi-k2.6"}}}


def test_hook_with_the_backend_sends_passthrough_to_kimi_acp_too(cfg_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """With kimi-acp's runtime backend registered, every Claude Code spawn goes to it: the
    router picks the env (passthrough = the gateway's own credentials)."""
    install(capsys, "--agent", "coder")
    served = {**spawn("writer"), "backend": True}
    assert hook(capsys, monkeypatch, served) == {"params": {"runtime": "acp", "task": "x", "agentId": "kimi-acp", "model": "passthrough"}}
    assert hook(capsys, monkeypatch, {**spawn("coder"), "backend": True})["params"]["model"] == "kimi/kimi-for-coding"
    # other harnesses stay where they are (acpx, if the user has it)
    assert hook(capsys, monkeypatch, {**spawn("coder", {"agentId": "codex"}), "backend": True}) == {}


def test_an_older_installs_bridge_json_is_removed(cfg_path: Path, ext_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """kimi-acp 0.1 wrote bridge.json into the (site-packages) extension folder; the command now
    lives in our config section, which OpenClaw hands to the extension."""
    assert install(capsys, "--agent", "coder")[0] == 0
    bridge = ext_dir / "bridge.json"
    bridge.write_text(json.dumps({"command": ["/old/kimi-acp"]}))
    rpath = Path(os.environ["KIMI_ACP_STATE_DIR"]) / "install.json"
    record = json.loads(rpath.read_text())
    record["configs"][str(cfg_path)]["files"] = [str(bridge)]
    rpath.write_text(json.dumps(record))
    code, out = install(capsys, "--agent", "coder")
    assert code == 0 and not bridge.exists() and f"removed {bridge}" in out
