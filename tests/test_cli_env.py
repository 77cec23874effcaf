"""`kimi-acp env`: the backend a spawn would get, why, and its variables, from a realistic
JSON5 openclaw.json; in-process and as a real subprocess; secrets masked unless --reveal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kimi_acp.cli import main
from kimi_acp.plugins import build_plugin_manager, set_plugin_manager

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
KIMI_ACP = REPO / ".venv" / "bin" / "kimi-acp"

KEY = "sk-kimi-test0000000000000000000000000000abcd"
MASKED = "sk-kimi-…abcd"
PARENT_API_KEY = "sk-ant-parent-00000000000000000000wxyz"
PARENT_TOKEN = "parent-oauth-token-0000000000000000"


@pytest.fixture(autouse=True)
def fresh_pm():
    set_plugin_manager(build_plugin_manager(entrypoints=False))
    yield
    set_plugin_manager(None)


@pytest.fixture
def cfg_file(clean_env: Path) -> Path:
    path = clean_env / "openclaw.json"
    shutil.copy(DATA / "openclaw.json", path)
    return path


@pytest.fixture
def parent_env(monkeypatch):
    """The gateway's own Anthropic credentials, inherited by kimi-acp, plus the Kimi key."""
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", PARENT_API_KEY)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", PARENT_TOKEN)


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    return json.loads(out)


def check_coder_output(out: dict, *, revealed: bool) -> None:
    assert out["backend"] == "kimi"
    assert out["model"] == "kimi-for-coding"
    assert out["rule"] == "agent"
    assert "agents.coder" in out["reason"]
    s = out["set"]
    assert s["ANTHROPIC_BASE_URL"] == "https://api.kimi.com/coding"
    assert s["ANTHROPIC_API_KEY"] == (KEY if revealed else MASKED)
    assert "ANTHROPIC_AUTH_TOKEN" not in s
    for tier in ("ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
                 "ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL"):
        assert s[tier] == "kimi-for-coding", tier
    assert s["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "262144"
    assert int(s["API_TIMEOUT_MS"]) >= 120_000
    assert s["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert s["ENABLE_TOOL_SEARCH"] == "false"
    assert "ANTHROPIC_AUTH_TOKEN" in out["unset"]
    assert "ANTHROPIC_API_KEY" in out["unset"]  # inherited one removed, and replaced (above)
    assert "KIMI_API_KEY" in out["unset"]


# --------------------------------------------------------------------------- in-process


def test_env_for_agent_coder(cfg_file, parent_env, capsys):
    assert main(["env", "--agent", "coder", "--json"]) == 0
    text = capsys.readouterr().out
    out = json.loads(text)
    check_coder_output(out, revealed=False)
    assert out["config"] == str(cfg_file)
    assert out["notes"] == []
    # the key never appears in clear; nor do the parent's credentials
    assert KEY not in text
    assert json.dumps(MASKED) in text or MASKED in text  # the JSON may escape the ellipsis
    assert PARENT_API_KEY not in text and PARENT_TOKEN not in text


def test_env_reveal_shows_the_key(cfg_file, parent_env, capsys):
    assert main(["env", "--agent", "coder", "--json", "--reveal"]) == 0
    text = capsys.readouterr().out
    check_coder_output(json.loads(text), revealed=True)
    assert KEY in text


def test_env_text_output_is_masked(cfg_file, parent_env, capsys):
    assert main(["env", "--agent", "coder"]) == 0
    text = capsys.readouterr().out
    assert "backend: kimi (model kimi-for-coding)" in text
    assert "agents.coder" in text
    assert f"ANTHROPIC_API_KEY={MASKED}" in text
    assert KEY not in text
    assert "unset:" in text and "  ANTHROPIC_AUTH_TOKEN" in text


def test_env_global_default_for_other_agents(cfg_file, parent_env, capsys):
    out = run_json(capsys, "env", "--agent", "main", "--json")
    assert (out["backend"], out["rule"]) == ("anthropic", "global")
    assert out["set"]["ANTHROPIC_API_KEY"] == "sk-ant-…wxyz"
    assert out["set"]["ANTHROPIC_BASE_URL"] == "https://api.anthropic.com"


def test_env_explicit_model_beats_the_agent(cfg_file, parent_env, capsys):
    out = run_json(capsys, "env", "--agent", "coder", "--model", "Sonnet", "--json")
    assert (out["backend"], out["rule"], out["model"]) == ("anthropic", "explicit", "claude-sonnet-4-5")


def test_env_with_explicit_config_flag(tmp_path, parent_env, capsys):
    other = tmp_path / "elsewhere.json5"
    other.write_text('{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "kimi"}}}}}')
    out = run_json(capsys, "env", "--config", str(other), "--json")
    assert (out["backend"], out["rule"], out["config"]) == ("kimi", "global", str(other))


def test_env_passthrough_changes_nothing(tmp_path, parent_env, capsys, monkeypatch):
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", str(tmp_path / "none.json"))
    out = run_json(capsys, "env", "--json")
    assert out["backend"] == "passthrough" and out["rule"] == "passthrough"
    assert out["set"] == {} and out["unset"] == []
    assert out["config"] is None


# --------------------------------------------------------------------------- errors and exit codes


def test_missing_key_exits_3_and_names_the_variable(cfg_file, capsys):
    """Routing can be inspected before a key exists: the view is printed, the key shown as
    <not set>, then the error and its hint; exit 3."""
    assert main(["env", "--agent", "coder"]) == 3
    captured = capsys.readouterr()
    assert "backend: kimi (model kimi-for-coding)" in captured.out and "ANTHROPIC_API_KEY=<not set>" in captured.out
    assert "kimi-acp env: error: no API key for backend 'kimi'" in captured.err
    assert "hint: export KIMI_API_KEY=" in captured.err

    assert main(["env", "--agent", "coder", "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "kimi" and out["set"]["ANTHROPIC_API_KEY"] == "<not set>"
    assert out["error"]["code"] == "missing_key" and out["error"]["hint"] == "export KIMI_API_KEY=<your key>"


def test_an_agent_without_a_rule_gets_the_default(clean_env, capsys):
    """Only kimi-acp's routing names agents (README setup 2): another agent is not unknown,
    its spawns get the default, as in OpenClaw."""
    (clean_env / "openclaw.json").write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
        "agents": {"coder": {"backend": "kimi"}}}}}}}))
    out = run_json(capsys, "env", "--agent", "writer", "--json")
    assert out["backend"] == "passthrough"


def test_errors_are_json_with_json(cfg_file, parent_env, capsys):
    assert main(["env", "--agent", "nosuch", "--json"]) == 2
    captured = capsys.readouterr()
    err = json.loads(captured.out)["error"]
    assert err["code"] == "unknown_name" and "unknown agent 'nosuch'" in err["message"] and "hint" in err
    assert captured.err == ""
    assert main(["env", "--bogus-flag", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["code"] == "usage" and "--bogus-flag" in err["message"] and "kimi-acp env --help" in err["hint"]


def test_unknown_agent_lists_known_ones(cfg_file, parent_env, capsys):
    assert main(["env", "--agent", "nosuch"]) == 2
    assert "unknown agent 'nosuch' (known: coder, main, reviewer)" in capsys.readouterr().err


def test_unknown_model_lists_known_refs(cfg_file, parent_env, capsys):
    assert main(["env", "--model", "nosuch/model"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nosuch/model' (known: " in err
    for ref in ("kimi/kimi-k2.5", "Kimi K2.5", "Sonnet", "passthrough"):
        assert ref in err


def test_missing_config_file(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["env", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err


def test_syntax_error_names_line_and_column(cfg_file, parent_env, capsys):
    cfg_file.write_text("{\n  agents: {,\n}\n")
    assert main(["env"]) == 2
    assert f"{cfg_file}:2:12: JSON5 syntax error" in capsys.readouterr().err


def test_unknown_backend_for_agent(cfg_file, parent_env, capsys):
    text = cfg_file.read_text().replace('coder: { backend: "kimi", }', 'coder: { backend: "kimii", }')
    assert 'backend: "kimii"' in text
    cfg_file.write_text(text)
    assert main(["env", "--agent", "coder"]) == 2
    err = capsys.readouterr().err
    line = text[: text.index('backend: "kimii"')].count("\n") + 1
    assert (
        f"{cfg_file}:{line}: plugins.entries.kimi-acp.config.agents.coder.backend: "
        "unknown backend 'kimii' (known: anthropic, kimi, passthrough)"
    ) in err


def test_errors_never_print_the_key(cfg_file, capsys, monkeypatch):
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    cfg_file.write_text('{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "${KIMI_API_KEY}"}}}}}')
    assert main(["env"]) == 2
    err = capsys.readouterr().err
    assert "unknown backend" in err
    assert KEY not in err and MASKED in err


# --------------------------------------------------------------------------- a real subprocess


def _subprocess_env(tmp_path: Path, cfg_file: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "OPENCLAW_CONFIG_PATH": str(cfg_file),
        "KIMI_ACP_STATE_DIR": str(tmp_path / "state"),
        "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
        **extra,
    }


@pytest.mark.skipif(not KIMI_ACP.exists(), reason="the venv's kimi-acp script is missing")
def test_env_as_a_real_subprocess(tmp_path, cfg_file):
    env = _subprocess_env(
        tmp_path, cfg_file, KIMI_API_KEY=KEY, ANTHROPIC_API_KEY=PARENT_API_KEY, ANTHROPIC_AUTH_TOKEN=PARENT_TOKEN
    )
    done = subprocess.run(
        [str(KIMI_ACP), "env", "--agent", "coder", "--json"],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    check_coder_output(json.loads(done.stdout), revealed=False)
    assert KEY not in done.stdout + done.stderr
    assert json.dumps(MASKED) in done.stdout or MASKED in done.stdout


@pytest.mark.skipif(not KIMI_ACP.exists(), reason="the venv's kimi-acp script is missing")
def test_subprocess_missing_key_exits_3(tmp_path, cfg_file):
    done = subprocess.run(
        [sys.executable, "-m", "kimi_acp.cli", "env", "--agent", "coder", "--json"],
        env=_subprocess_env(tmp_path, cfg_file), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 3
    assert json.loads(done.stdout)["error"]["code"] == "missing_key"
    assert done.stderr == ""
