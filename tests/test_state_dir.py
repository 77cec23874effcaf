"""The state dir is trusted only when it is safe (OpenSSH's StrictModes rule): owned by the
current user, not writable by group or others; its cache files 0600 and the user's own.
A planted cache in a shared dir must never choose the harness command or load plugins."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from kimi_acp.config import _settings_fingerprint, load_config
from kimi_acp.errors import ConfigError
from kimi_acp.plugins import build_plugin_manager, entry_points, registered_backends
from kimi_acp.sessions import SessionModels, ensure_state_dir
from kimi_acp.store import Store

from fakes.spawning import KIMI_ACP

EVIL = "/tmp/evil-harness-that-must-never-run"


@pytest.fixture
def presets():
    return registered_backends(build_plugin_manager(entrypoints=False))


def plant_settings_cache(state: Path, section: dict) -> Path:
    """What another local user can write: a valid cache for the victim's section, with their command."""
    state.mkdir(parents=True, exist_ok=True)
    from kimi_acp.settings import KimiAcpSettings

    dump = KimiAcpSettings.model_validate(section).model_dump()
    dump["harness"]["command"] = EVIL
    cache = state / "settings-cache.json"
    cache.write_text(json.dumps({"fingerprint": _settings_fingerprint(section), "settings": dump}))
    return cache


def world_writable(path: Path) -> Path:
    os.chmod(path, 0o777)
    return path


def test_a_planted_settings_cache_in_a_world_writable_dir_is_ignored(clean_env, presets, capsys):
    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    cache = plant_settings_cache(state, {})
    os.chmod(cache, 0o600)
    world_writable(state)
    cfg = load_config(presets=presets)
    assert cfg.settings.harness.command is None  # the planted command is not used
    err = capsys.readouterr().err
    assert str(state) in err and "writable by group and others" in err and "chmod 700" in err


@pytest.mark.parametrize("how", ["mode", "owner", "symlink"])
def test_an_untrusted_cache_file_in_a_safe_dir_is_ignored(clean_env, presets, capsys, how):
    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    cache = plant_settings_cache(state, {})
    os.chmod(state, 0o700)
    if how == "mode":
        os.chmod(cache, 0o644)
        said = "mode 0o644"
    elif how == "owner":
        if os.getuid() != 0:
            pytest.skip("chown to another uid needs root")
        os.chmod(cache, 0o600)
        os.chown(cache, 12345, -1)
        said = "owned by uid 12345"
    else:
        real = clean_env / "elsewhere.json"
        cache.rename(real)
        os.chmod(real, 0o600)
        cache.symlink_to(real)
        said = "not a regular file"
    cfg = load_config(presets=presets)
    assert cfg.settings.harness.command is None
    err = capsys.readouterr().err
    assert str(cache) in err and said in err and "fix: rm" in err


def test_a_trusted_cache_is_still_used(clean_env, presets):
    """The control: the same planted file, 0600 in a 0700 dir of ours, is read (that is the
    cache working), so the tests above do show the refusal and not a broken cache."""
    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    cache = plant_settings_cache(state, {})
    os.chmod(cache, 0o600)
    os.chmod(state, 0o700)
    assert load_config(presets=presets).settings.harness.command == EVIL


def test_the_settings_cache_is_written_0600_under_umask_000(clean_env, presets):
    old = os.umask(0)
    try:
        load_config(presets=presets)
        entry_points()
    finally:
        os.umask(old)
    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    for name in ("settings-cache.json", "entrypoints-cache.json"):
        path = state / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_a_planted_entrypoints_cache_is_ignored(clean_env, capsys):
    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    entry_points()  # writes a genuine cache (the key matches this process's sys.path)
    cache = state / "entrypoints-cache.json"
    data = json.loads(cache.read_text())
    data["entry_points"] = [["evil", "evil_module_that_does_not_exist"]]
    cache.write_text(json.dumps(data))
    os.chmod(cache, 0o666)
    assert ("evil", "evil_module_that_does_not_exist") not in entry_points()
    assert str(cache) in capsys.readouterr().err
    # and in a world-writable dir, even a 0600 one is not trusted
    os.chmod(cache, 0o600)
    cache.write_text(json.dumps(data))
    world_writable(state)
    assert ("evil", "evil_module_that_does_not_exist") not in entry_points()


def test_the_store_refuses_a_world_writable_state_dir(clean_env):
    state = Path(os.environ["KIMI_ACP_STATE_DIR"]).parent / "shared"
    state.mkdir()
    world_writable(state)
    with pytest.raises(ConfigError) as exc:
        Store(state)
    assert str(state) in str(exc.value) and "chmod 700" in str(exc.value)
    with pytest.raises(ConfigError):
        SessionModels(state)
    with pytest.raises(ConfigError, match="group"):
        os.chmod(state, 0o770)
        ensure_state_dir(state)


def test_spawn_refuses_a_world_writable_state_dir_with_a_clear_error(clean_env, monkeypatch):
    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    state.mkdir()
    world_writable(state)
    plant_settings_cache(state, {})
    monkeypatch.setenv("KIMI_API_KEY", "sk-kimi-test0000000000000000000000000000abcd")
    done = subprocess.run([KIMI_ACP, "spawn", "x"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert f"state dir {state} is writable by group and others" in done.stderr
    assert "Traceback" not in done.stderr and EVIL not in done.stdout + done.stderr
