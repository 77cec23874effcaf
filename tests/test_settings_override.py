"""Claude Code's settings files cannot redirect a run: the REAL Claude Code CLI, a settings
file in the user, project or local layer pointing at a SECOND loopback stub (the decoy),
and the run must still go to the Kimi stub only, with the Kimi key only.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from fakes.spawning import CONTEXT, KIMI_ACP, write_config
from kimi_acp.harness.override import OVERRIDE_DIR, override_path, override_settings, remove_override, write_override
from kimi_acp.spawn import SpawnContext, Spawner, SpawnRequest
from kimi_acp.stub.server import StubServer

pytestmark = [pytest.mark.e2e]

KEY = "sk-kimi-ovr0c1f00000000000000000000000000a1b2"
DECOY_TOKEN = "sk-decoy-provider-token-000000000000000001"
HELPER_TOKEN = "sk-decoy-helper-token-00000000000000000002"


@pytest.fixture
def kimi() -> Iterator[StubServer]:
    with StubServer(key=KEY) as server:
        yield server


@pytest.fixture
def decoy() -> Iterator[StubServer]:
    with StubServer(key=None) as server:  # accepts anything: a redirected run would succeed there
        yield server


def redirecting(decoy: StubServer, marker: Path | None = None) -> dict[str, object]:
    """What cc-switch and friends write: another provider, its token, its model; plus a key
    helper, and (to show the file's other settings still apply) a hook that touches ``marker``."""
    hooks = {"UserPromptSubmit": [{"hooks": [{"type": "command", "command": f"touch {marker}"}]}]} if marker else {}
    return {
        "hooks": hooks,
        "env": {
            "ANTHROPIC_BASE_URL": decoy.base_url,
            "ANTHROPIC_AUTH_TOKEN": DECOY_TOKEN,
            "ANTHROPIC_MODEL": "other-model",
            "ANTHROPIC_CUSTOM_HEADERS": "x-decoy: 1",
        },
        "apiKeyHelper": f"echo {HELPER_TOKEN}",
        "permissions": {"allow": ["Bash(echo:*)"]},
    }


def seed_layer(layer: str, home: Path, project: Path, decoy: StubServer) -> Path:
    path = {
        "user": home / ".claude" / "settings.json",
        "project": project / ".claude" / "settings.json",
        "local": project / ".claude" / "settings.local.json",
    }[layer]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(redirecting(decoy, home.parent / f"{layer}-hook-ran")))
    return path


def environ_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], Path, Path]:
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("HOME", str(home))
    return dict(os.environ), home, project


def assert_only_kimi(kimi: StubServer, decoy: StubServer) -> None:
    assert decoy.requests == [], f"the decoy got {len(decoy.requests)} requests"
    posts = kimi.messages_requests()
    assert posts, "the Kimi stub got no /v1/messages request"
    for req in posts:
        assert req.headers.get("x-api-key") == KEY
        assert "authorization" not in req.headers  # neither the settings' token nor the helper's
        assert "x-decoy" not in req.headers
        assert (req.body or {}).get("model") == "kimi-for-coding"


@pytest.mark.parametrize("layer", ["user", "project", "local"])
@pytest.mark.asyncio
async def test_a_settings_layer_cannot_redirect_a_spawn(
    layer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, kimi: StubServer, decoy: StubServer
) -> None:
    environ, home, project = environ_for(tmp_path, monkeypatch)
    seed_layer(layer, home, project, decoy)
    write_config(tmp_path, base_url=kimi.base_url, harness={"command": claude_bin}, limits={"runTimeoutSeconds": 120})
    async with Spawner(environ=environ) as sp:
        answer = await sp.spawn({"task": "say hi", "runtime": "acp", "cwd": str(project)}, CONTEXT)
        assert answer["status"] == "accepted", answer
        result = await sp.wait(answer["runId"], timeout=90)
        stored = sp.store.get_run(answer["runId"])
    assert result.status == "ok", result
    assert "Hello from the Kimi stub" in result.result
    assert result.claudeCodeVersion == "2.1.332" == stored.claude_code_version  # the report records it
    assert result.to_json()["claudeCodeVersion"] == "2.1.332"
    assert_only_kimi(kimi, decoy)
    assert (tmp_path / f"{layer}-hook-ran").exists()  # the layer's hooks still run: only its env and key helper lost
    leftovers = list((Path(os.environ["KIMI_ACP_STATE_DIR"]) / OVERRIDE_DIR).iterdir())
    assert leftovers == []  # the run's --settings file (it holds the key) is gone with the run


def test_the_cli_door_with_a_redirecting_user_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, kimi: StubServer, decoy: StubServer
) -> None:
    """``kimi-acp spawn`` (the early-start path) gets the same override."""
    environ, home, project = environ_for(tmp_path, monkeypatch)
    seed_layer("user", home, project, decoy)
    seed_layer("local", home, project, decoy)
    write_config(tmp_path, base_url=kimi.base_url, harness={"command": claude_bin}, limits={"runTimeoutSeconds": 120})
    done = subprocess.run(
        [KIMI_ACP, "spawn", "say hi", "--agent", "coder", "--cwd", str(project), "--json"],
        capture_output=True, text=True, env=environ, timeout=150, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ok"
    assert KEY not in done.stdout + done.stderr
    assert_only_kimi(kimi, decoy)
    assert list((Path(os.environ["KIMI_ACP_STATE_DIR"]) / OVERRIDE_DIR).iterdir()) == []


@pytest.mark.asyncio
async def test_the_override_file_is_private_and_argv_has_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kimi: StubServer
) -> None:
    environ, _, project = environ_for(tmp_path, monkeypatch)
    write_config(tmp_path, base_url=kimi.base_url, harness={"command": "/bin/true"})
    async with Spawner(environ=environ) as sp:
        prepared = sp.prepare(
            SpawnRequest(task="x", runtime="acp", cwd=str(project)), SpawnContext(**CONTEXT)
        )
        argv = prepared["spec"].argv
        state = Path(sp.store.state_dir)
    assert KEY not in " ".join(argv)
    i = argv.index("--settings")
    path = Path(argv[i + 1])
    assert i == len(argv) - 2 and path == override_path(state, prepared["record"].run_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    content = json.loads(path.read_text())
    assert content["apiKeyHelper"] == ""
    assert content["env"]["ANTHROPIC_API_KEY"] == KEY
    assert content["env"]["ANTHROPIC_BASE_URL"] == kimi.base_url
    assert content["env"]["ANTHROPIC_AUTH_TOKEN"] == ""  # no Bearer
    assert content["env"]["CLAUDE_CODE_USE_BEDROCK"] == ""
    assert set(content) == {"env", "apiKeyHelper"}  # the user's other settings are left alone


def test_passthrough_gets_no_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environ, _, _ = environ_for(tmp_path, monkeypatch)
    write_config(tmp_path, agents={"coder": {"backend": "passthrough"}}, harness={"command": "/bin/true"})

    async def go() -> list[str]:
        async with Spawner(environ=environ) as sp:
            return sp.prepare(SpawnRequest(task="x", runtime="acp"), SpawnContext(**CONTEXT))["spec"].argv

    assert "--settings" not in anyio.run(go)


def test_override_files_are_per_run_private_and_pruned(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": KEY, "X": "1"}
    old = tmp_path / OVERRIDE_DIR / "0000.json"
    old.parent.mkdir()
    old.write_text("{}")
    os.utime(old, (1, 1))
    a = write_override(tmp_path, override_settings(env, {"ANTHROPIC_API_KEY": KEY}), "run-a")
    assert a == override_path(tmp_path, "run-a") and stat.S_IMODE(a.stat().st_mode) == 0o600
    assert "X" not in json.loads(a.read_text())["env"]  # only what kimi-acp set, and the blanked names
    assert not old.exists()  # stale: removed
    remove_override(tmp_path, "run-a")
    assert not a.exists()


@pytest.mark.asyncio
async def test_a_run_whose_init_names_another_model_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, kimi: StubServer
) -> None:
    """Second line: something outranked kimi-acp (here a --model in harness.args, as managed
    settings would); the system/init event shows it and the run is stopped with a clear error."""
    environ, _, project = environ_for(tmp_path, monkeypatch)
    write_config(tmp_path, base_url=kimi.base_url, harness={"command": claude_bin, "args": ["--model", "other-model"]},
                 limits={"runTimeoutSeconds": 120})
    async with Spawner(environ=environ) as sp:
        answer = await sp.spawn({"task": "say hi", "runtime": "acp", "cwd": str(project)}, CONTEXT)
        result = await sp.wait(answer["runId"], timeout=90)
    assert result.status == "error", result
    assert "'other-model', not 'kimi-for-coding'" in (result.error or "")
    assert "kimi-acp doctor" in (result.error or "")
