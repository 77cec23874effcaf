"""Reading openclaw.json: JSON5, ``${VAR}`` substitution, OpenClaw's sections, our strict
section, and errors that name the file, the JSON path and the line/column."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from kimi_acp.backends import PASSTHROUGH
from kimi_acp.config import (
    SECTION,
    default_config_path,
    find_key_line,
    line_col,
    load_config,
    parse_json5,
    substitute,
)
from kimi_acp.errors import ConfigError, MissingKeyError, UnknownNameError
from kimi_acp.plugins import build_plugin_manager, registered_backends

DATA = Path(__file__).parent / "data"
KEY = "sk-kimi-test0000000000000000000000000000abcd"


@pytest.fixture
def presets():
    return registered_backends(build_plugin_manager(entrypoints=False))


@pytest.fixture
def cfg_file(clean_env: Path) -> Path:
    """The openclaw.json that OPENCLAW_CONFIG_PATH points at (not written yet)."""
    return clean_env / "openclaw.json"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def lineno(text: str, needle: str) -> int:
    """1-based line of the first occurrence of ``needle``."""
    idx = text.index(needle)
    return text.count("\n", 0, idx) + 1


# --------------------------------------------------------------------------- the realistic file


def test_realistic_json5_file_loads(cfg_file, presets):
    shutil.copy(DATA / "openclaw.json", cfg_file)
    cfg = load_config(cfg_file, environ={"KIMI_API_KEY": KEY}, presets=presets)

    assert cfg.exists and cfg.path == cfg_file
    # our section (trailing commas, comments)
    assert cfg.settings.defaultBackend == "anthropic"
    assert cfg.settings.agents["coder"].backend == "kimi"
    assert cfg.settings.limits.maxConcurrent == 4
    # models.providers.kimi (api: anthropic-messages) merged over the kimi preset
    kimi = cfg.backends["kimi"]
    assert kimi.base_url == "https://api.kimi.com/coding"
    assert kimi.resolve_key({}) == KEY  # ${KIMI_API_KEY} substituted at load
    assert kimi.model == "kimi-for-coding"  # the preset's default: the file's rows update models, not the default
    assert kimi.context_window == 262144
    assert kimi.model_info("kimi-k2.5").max_tokens == 32768 and kimi.model_info("k3") is not None  # merged by id
    assert kimi.quirks == {"ENABLE_TOOL_SEARCH": "false"}  # kept from the preset
    assert any("models.providers.kimi" in s for s in kimi.sources)
    # openai-completions is not Anthropic-compatible: not a backend
    assert "openai" not in cfg.backends
    assert set(cfg.backends) == {"anthropic", "kimi"}
    # aliases, case-insensitive keys
    assert cfg.aliases["kimi k2.5"] == "kimi/kimi-k2.5"
    assert cfg.aliases["sonnet"] == "anthropic/claude-sonnet-4-5"
    assert cfg.aliases["claude sonnet"] == "anthropic/claude-sonnet-4-5"
    assert set(cfg.agents) == {"main", "coder", "reviewer"}
    assert cfg.agents["coder"].model == "openai/gpt-5"  # {primary: ...}
    # the unresolved variable is noted
    assert cfg.missing_vars == {"OPENAI_API_KEY"}


def test_no_file_means_presets_only(cfg_file, presets):
    assert not cfg_file.exists()
    cfg = load_config(environ={"OPENCLAW_CONFIG_PATH": str(cfg_file)}, presets=presets)
    assert cfg.exists is False
    assert set(cfg.backends) == {"anthropic", "kimi"}
    assert cfg.settings.defaultBackend is None
    assert cfg.kimi_section_present is False


def test_empty_file_is_an_empty_config(cfg_file, presets):
    write(cfg_file, "  \n")
    cfg = load_config(cfg_file, environ={}, presets=presets)
    assert cfg.exists and cfg.data == {}


def test_default_config_path(tmp_path):
    assert default_config_path({"OPENCLAW_CONFIG_PATH": "/x/y.json"}) == Path("/x/y.json")
    assert default_config_path({"HOME": str(tmp_path)}) == tmp_path / ".openclaw" / "openclaw.json"


def test_explicit_path_beats_environment(tmp_path, cfg_file, presets):
    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "anthropic"}}}}}')
    other = write(tmp_path / "other.json5", '{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "kimi"}}}}}')
    assert load_config(other, environ={}, presets=presets).settings.defaultBackend == "kimi"
    env = {"OPENCLAW_CONFIG_PATH": str(cfg_file)}
    assert load_config(environ=env, presets=presets).settings.defaultBackend == "anthropic"


# --------------------------------------------------------------------------- ${VAR} substitution


def test_substitute_rules():
    missing: set[str] = set()
    env = {"KIMI_API_KEY": "k", "HOME": "/home/u"}
    data = {
        "a": "${KIMI_API_KEY}",
        "b": "pre-${HOME}-post",
        "c": "$${KIMI_API_KEY}",  # escape: literal
        "d": "${NOPE_VAR}",  # missing: kept, noted
        "e": "${lower}",  # not a variable reference (uppercase only)
        "f": ["${HOME}", 3, None, True],
        "g": {"h": "${HOME}"},
    }
    out = substitute(data, env, missing)
    assert out == {
        "a": "k",
        "b": "pre-/home/u-post",
        "c": "${KIMI_API_KEY}",
        "d": "${NOPE_VAR}",
        "e": "${lower}",
        "f": ["/home/u", 3, None, True],
        "g": {"h": "/home/u"},
    }
    assert missing == {"NOPE_VAR"}


def test_escaped_reference_stays_literal_through_load(cfg_file, presets):
    write(
        cfg_file,
        """{
  plugins: { entries: { "kimi-acp": { config: {
    backends: { kimi: { env: { LITERAL: "$${HOME}", EXPANDED: "${HOME}" } } },
  } } } },
}""",
    )
    cfg = load_config(cfg_file, environ={"HOME": "/home/u"}, presets=presets)
    assert cfg.backends["kimi"].env == {"LITERAL": "${HOME}", "EXPANDED": "/home/u"}
    assert cfg.missing_vars == set()


def test_missing_variable_leaves_key_unresolved(cfg_file, presets):
    write(
        cfg_file,
        """{
  plugins: { entries: { "kimi-acp": { config: {
    backends: { corp: { baseUrl: "http://127.0.0.1:9", apiKey: "${CORP_KEY}" } },
  } } } },
}""",
    )
    cfg = load_config(cfg_file, environ={}, presets=presets)
    assert cfg.missing_vars == {"CORP_KEY"}
    corp = cfg.backends["corp"]
    assert corp.key_variables() == ["CORP_KEY"]
    with pytest.raises(MissingKeyError) as ei:
        corp.resolve_key({})
    assert "CORP_KEY" in str(ei.value)
    assert ei.value.exit_code == 3
    # and once set, the same backend resolves it
    assert corp.resolve_key({"CORP_KEY": "sk-corp-123456789012"}) == "sk-corp-123456789012"


def test_missing_kimi_key_names_the_variable(cfg_file, presets):
    shutil.copy(DATA / "openclaw.json", cfg_file)
    cfg = load_config(cfg_file, environ={}, presets=presets)
    assert "KIMI_API_KEY" in cfg.missing_vars
    with pytest.raises(MissingKeyError, match=r"set KIMI_API_KEY"):
        cfg.backends["kimi"].resolve_key({})


# --------------------------------------------------------------------------- syntax and shape errors


def test_json5_syntax_error_names_file_line_and_column(cfg_file, presets):
    text = "{\n  plugins: {\n    entries: ]\n  },\n}\n"
    write(cfg_file, text)
    with pytest.raises(ConfigError) as ei:
        load_config(cfg_file, environ={}, presets=presets)
    # the ']' is on line 3, column 14
    assert str(ei.value).startswith(f"{cfg_file}:3:14: JSON5 syntax error")
    assert ei.value.exit_code == 2


def test_json5_column_counts_characters_not_bytes():
    text = '{\n  "😀é": "日本",\n  b: ]\n}'
    with pytest.raises(ConfigError, match=r"^f\.json5:3:6: JSON5 syntax error"):
        parse_json5(text, "f.json5")


def test_json5_error_position_later_in_a_long_file():
    text = "{\n  // comment\n  a: 1,\n  b: {\n    c: 1 2,\n  },\n}\n"
    with pytest.raises(ConfigError, match=r"^x\.json:5:10: "):
        parse_json5(text, "x.json")


def test_line_col():
    text = "ab\ncd\n\nef"
    assert line_col(text, 0) == (1, 1)
    assert line_col(text, 1) == (1, 2)
    assert line_col(text, 3) == (2, 1)
    assert line_col(text, 7) == (4, 1)
    assert line_col(text, 999) == (4, 3)  # clamped


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "list"), ('"hello"', "str"), ("42", "int")])
def test_top_level_must_be_an_object(cfg_file, presets, text, kind):
    write(cfg_file, text)
    with pytest.raises(ConfigError) as ei:
        load_config(cfg_file, environ={}, presets=presets)
    assert str(ei.value) == f"{cfg_file}:1:1: the top level must be an object, not {kind}"


def test_our_section_must_be_an_object(cfg_file, presets):
    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: "kimi"}}}}')
    with pytest.raises(ConfigError, match=re.escape(f"{cfg_file}: {SECTION}: must be an object")):
        load_config(cfg_file, environ={}, presets=presets)


def test_explicit_config_that_does_not_exist(tmp_path, presets):
    missing = tmp_path / "nope" / "openclaw.json"
    with pytest.raises(ConfigError) as ei:
        load_config(missing, environ={}, presets=presets)
    assert str(missing) in str(ei.value)
    assert "no such file" in str(ei.value)


def test_unknown_key_in_our_section_names_the_json_path(cfg_file, presets):
    text = """{
  // our section is strict
  plugins: {
    entries: {
      "kimi-acp": {
        config: {
          defaultBackend: "kimi",
          limts: { maxConcurrent: 2 },
        },
      },
    },
  },
}
"""
    write(cfg_file, text)
    with pytest.raises(ConfigError) as ei:
        load_config(cfg_file, environ={}, presets=presets)
    msg = str(ei.value)
    assert msg.startswith(f"{cfg_file}:{lineno(text, 'limts')}: plugins.entries.kimi-acp.config.limts: unknown key")


def test_unknown_nested_key_names_the_full_path(cfg_file, presets):
    text = """{
  plugins: { entries: { "kimi-acp": { config: {
    backends: {
      kimi: {
        baseURL: "http://127.0.0.1:9",
      },
    },
  } } } },
}
"""
    write(cfg_file, text)
    with pytest.raises(ConfigError) as ei:
        load_config(cfg_file, environ={}, presets=presets)
    assert str(ei.value).startswith(
        f"{cfg_file}:{lineno(text, 'baseURL')}: plugins.entries.kimi-acp.config.backends.kimi.baseURL: unknown key"
    )


def test_openclaw_sections_are_tolerant(cfg_file, presets):
    write(
        cfg_file,
        """{
  agents: { defaults: { somethingNew: 1, subagents: { model: "kimi/kimi-k2.5", futureKey: true } } },
  models: { providers: { kimi: { api: "anthropic-messages", baseUrl: "http://127.0.0.1:9", brandNew: {} } } },
  gateway: { whatever: [1, 2, 3] },
}""",
    )
    cfg = load_config(cfg_file, environ={}, presets=presets)
    assert cfg.default_subagent_model == "kimi/kimi-k2.5"
    assert cfg.backends["kimi"].base_url == "http://127.0.0.1:9"


def test_timeout_below_minimum_is_rejected(cfg_file, presets):
    text = '{plugins: {entries: {"kimi-acp": {config: {backends: {kimi: {timeoutMs: 5000}}}}}}}'
    write(cfg_file, text)
    with pytest.raises(ConfigError, match=r"plugins\.entries\.kimi-acp\.config\.backends\.kimi\.timeoutMs: .*120000"):
        load_config(cfg_file, environ={}, presets=presets)


def test_unknown_backend_for_an_agent(cfg_file, presets):
    text = """{
  plugins: {
    entries: {
      "kimi-acp": {
        config: {
          agents: {
            coder: { backend: "kimii" },
          },
        },
      },
    },
  },
}
"""
    write(cfg_file, text)
    with pytest.raises(UnknownNameError) as ei:
        load_config(cfg_file, environ={}, presets=presets)
    line = lineno(text, 'backend: "kimii"')
    assert str(ei.value) == (
        f"{cfg_file}:{line}: plugins.entries.kimi-acp.config.agents.coder.backend: "
        "unknown backend 'kimii' (known: anthropic, kimi, passthrough)"
    )
    assert ei.value.exit_code == 2


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ('defaultBackend: "nope"', "defaultBackend"),
        ('targets: { claude: { backend: "nope" } }', "targets.claude.backend"),
        ("limits: { perBackend: { nope: 1 } }", "limits.perBackend.nope"),
    ],
)
def test_unknown_backend_anywhere_in_our_section(cfg_file, presets, section, path):
    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: {' + section + "}}}}}")
    with pytest.raises(UnknownNameError) as ei:
        load_config(cfg_file, environ={}, presets=presets)
    msg = str(ei.value)
    assert str(cfg_file) in msg
    assert f"{SECTION}.{path}: unknown backend 'nope' (known: anthropic, kimi, passthrough)" in msg


def test_passthrough_is_always_a_known_backend(cfg_file, presets):
    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "passthrough"}}}}}')
    cfg = load_config(cfg_file, environ={}, presets=presets)
    assert cfg.backend(PASSTHROUGH).passthrough


def test_passthrough_cannot_be_redefined(cfg_file, presets):
    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: {backends: {passthrough: {baseUrl: "http://x"}}}}}}}')
    with pytest.raises(ConfigError, match=r"config\.backends: .*'passthrough' is reserved"):
        load_config(cfg_file, environ={}, presets=presets)


def test_backend_without_base_url_is_an_error(cfg_file, presets):
    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: {backends: {corp: {model: "m1"}}}}}}}')
    with pytest.raises(ConfigError, match=r"backend 'corp' has no base URL: set plugins\.entries\.kimi-acp\.config\.backends\.corp\.baseUrl"):
        load_config(cfg_file, environ={}, presets=presets)


def test_config_backend_lookup_lists_known(cfg_file, presets):
    cfg = load_config(environ={"OPENCLAW_CONFIG_PATH": str(cfg_file)}, presets=presets)
    with pytest.raises(UnknownNameError, match=r"unknown backend 'nope' \(known: anthropic, kimi, passthrough\)"):
        cfg.backend("nope")


def test_error_location_helpers(cfg_file, presets):
    text = '{\n  plugins: {\n    entries: {\n      "kimi-acp": {\n        config: { defaultBackend: "kimi" },\n      },\n    },\n  },\n}\n'
    write(cfg_file, text)
    cfg = load_config(cfg_file, environ={}, presets=presets)
    assert find_key_line(text, ["plugins", "entries", "kimi-acp", "config", "defaultBackend"]) == 5
    assert cfg.where("plugins", "entries") == f"{cfg_file}:3"
    assert str(cfg.error(["plugins", "entries"], "boom")) == f"{cfg_file}:3: plugins.entries: boom"


# --------------------------------------------------------------------------- providers, in both shapes


def test_models_providers_other_apis_are_ignored(cfg_file, presets):
    write(
        cfg_file,
        """{
  models: { providers: {
    moon: { api: "anthropic-messages", baseUrl: "http://127.0.0.1:1/moon", apiKey: "${MOON_KEY}",
            timeoutSeconds: 300, models: [{ id: "moon-1", name: "Moon One", contextWindow: 131072 }] },
    oa: { api: "openai-completions", baseUrl: "http://127.0.0.1:2" },
    resp: { api: "openai-responses", baseUrl: "http://127.0.0.1:3" },
    noapi: { baseUrl: "http://127.0.0.1:4" },
    notadict: "x",
  } },
}""",
    )
    cfg = load_config(cfg_file, environ={"MOON_KEY": "sk-moon-1234567890"}, presets=presets)
    assert set(cfg.backends) == {"anthropic", "kimi", "moon"}
    moon = cfg.backends["moon"]
    assert moon.base_url == "http://127.0.0.1:1/moon"
    assert moon.model == "moon-1"
    assert moon.context_window == 131072
    assert moon.timeout_ms == 300_000
    assert moon.resolve_key({}) == "sk-moon-1234567890"
    assert cfg.aliases["moon one"] == "moon/moon-1"  # a model's name is an alias


def test_seed_providers_shape(cfg_file, presets):
    write(
        cfg_file,
        """{
  providers: [
    { id: "kimi", type: "anthropic", baseUrl: "http://127.0.0.1:5/coding", apiKey: "${KIMI_API_KEY}" },
    { id: "corp", type: "anthropic", baseUrl: "http://127.0.0.1:6", apiKey: "${CORP_KEY}" },
    { id: "chat", type: "openai", baseUrl: "http://127.0.0.1:7" },
    { type: "anthropic", baseUrl: "http://127.0.0.1:8" },
  ],
  models: { "kimi/kimi-k2.5": { alias: "K25", params: { temperature: 0.6 } } },
}""",
    )
    cfg = load_config(cfg_file, environ={"KIMI_API_KEY": KEY}, presets=presets)
    assert set(cfg.backends) == {"anthropic", "kimi", "corp"}
    assert cfg.backends["kimi"].base_url == "http://127.0.0.1:5/coding"
    assert cfg.backends["kimi"].resolve_key({}) == KEY
    assert cfg.backends["kimi"].model == "kimi-for-coding"  # preset fields kept
    assert any("providers[0]" in s for s in cfg.backends["kimi"].sources)
    assert cfg.backends["corp"].key_variables() == ["CORP_KEY"]
    assert cfg.aliases["k25"] == "kimi/kimi-k2.5"


def test_secret_ref_api_key(cfg_file, presets):
    write(
        cfg_file,
        '{models: {providers: {corp: {api: "anthropic-messages", baseUrl: "http://127.0.0.1:9", '
        'apiKey: {source: "env", id: "CORP_TOKEN"}}}}}',
    )
    cfg = load_config(cfg_file, environ={}, presets=presets)
    corp = cfg.backends["corp"]
    assert corp.key_variables() == ["CORP_TOKEN"]
    assert corp.resolve_key({"CORP_TOKEN": "tok-1234567890"}) == "tok-1234567890"


def test_layers_merge_field_by_field(cfg_file, presets):
    """preset < openclaw.json provider < our section, field by field."""
    write(
        cfg_file,
        """{
  models: { providers: { kimi: { api: "anthropic-messages", baseUrl: "http://127.0.0.1:1/coding" } } },
  plugins: { entries: { "kimi-acp": { config: {
    backends: { kimi: { model: "kimi-k2-thinking", apiKeyEnv: "MY_KIMI", authHeader: "bearer",
                        env: { EXTRA: "1" }, maxConcurrent: 3 } },
  } } } },
}""",
    )
    cfg = load_config(cfg_file, environ={}, presets=presets)
    kimi = cfg.backends["kimi"]
    assert kimi.base_url == "http://127.0.0.1:1/coding"  # from the provider
    assert kimi.model == "kimi-k2-thinking"  # from our section
    assert kimi.auth_header == "bearer"
    assert kimi.max_concurrent == 3
    assert kimi.env == {"EXTRA": "1"}
    assert kimi.quirks == {"ENABLE_TOOL_SEARCH": "false"}  # from the preset
    assert kimi.key_variables() == ["MY_KIMI"]
    assert len(kimi.sources) == 3


def test_apikey_literal_in_our_section(cfg_file, presets):
    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: {backends: {kimi: {apiKey: "${KIMI_API_KEY}"}}}}}}}')
    cfg = load_config(cfg_file, environ={"KIMI_API_KEY": KEY}, presets=presets)
    assert cfg.backends["kimi"].resolve_key({}) == KEY


# --------------------------------------------------------------------------- OpenClaw agents


def test_agents_entries_and_legacy_list(cfg_file, presets):
    write(
        cfg_file,
        """{
  agents: {
    defaults: { subagents: { model: { primary: "kimi/kimi-k2.5" } } },
    list: [
      { id: "old", model: "anthropic/claude-sonnet-4-5", subagents: { model: "kimi" } },
      { model: "no-id-ignored" },
    ],
    entries: {
      coder: { subagents: { model: "Kimi K2.5" } },
      claude: { runtime: { type: "acp", acp: { agent: "claude" } }, model: "kimi/kimi-k2.5" },
    },
  },
}""",
    )
    cfg = load_config(cfg_file, environ={}, presets=presets)
    assert set(cfg.agents) == {"old", "coder", "claude"}
    assert cfg.agents["old"].model == "anthropic/claude-sonnet-4-5"
    assert cfg.agents["old"].subagent_model == "kimi"
    assert cfg.agents["coder"].subagent_model == "Kimi K2.5"
    assert cfg.agents["claude"].runtime_type == "acp"
    assert cfg.agents["claude"].acp_agent == "claude"
    assert cfg.default_subagent_model == "kimi/kimi-k2.5"


def test_error_line_points_at_the_right_key_not_a_longer_one(cfg_file, presets):
    """`coder` must not match inside `mycoder` (nor `sub-coder`) when locating an error."""
    text = """{
  plugins: { entries: { "kimi-acp": { config: {
    agents: {
      mycoder: { backend: "kimi" },
      "sub-coder": { backend: "kimi" },
      coder: { backend: "kimii" },
    },
  } } } },
}
"""
    write(cfg_file, text)
    with pytest.raises(UnknownNameError) as ei:
        load_config(cfg_file, environ={}, presets=presets)
    assert str(ei.value).startswith(f"{cfg_file}:6: plugins.entries.kimi-acp.config.agents.coder.backend: ")
    assert find_key_line(text, ["plugins", "entries", "kimi-acp", "config", "agents", "coder"]) == 6
    assert find_key_line(text, ["plugins", "entries", "kimi-acp", "config", "agents", "sub-coder"]) == 5


def test_settings_cache_holds_no_secret_and_gives_the_same_settings(tmp_path, monkeypatch):
    """The validated-settings cache (fast start) never stores a key, and a cached load equals a fresh one."""
    import json as _json

    from kimi_acp.config import load_config

    key = "sk-kimi-cachetest0000000000000000wxyz"
    monkeypatch.setenv("KIMI_API_KEY", key)
    cfg = tmp_path / "cache-openclaw.json"
    cfg.write_text(_json.dumps({"plugins": {"entries": {"kimi-acp": {"config": {
        "defaultBackend": "kimi",
        "backends": {"kimi": {"apiKey": "${KIMI_API_KEY}", "env": {"EXTRA_TOKEN": "tok-secret-123456", "PLAIN": "v"}}},
        "report": {"gateway": {"url": "http://127.0.0.1:18789", "token": "hooks-secret-abcdef"}},
    }}}}}))
    fresh = load_config(cfg)
    cache = tmp_path / "state" / "settings-cache.json"
    assert cache.exists() and oct(cache.stat().st_mode & 0o777) == "0o600"
    raw = cache.read_text()
    for secret in (key, "tok-secret-123456", "hooks-secret-abcdef"):
        assert secret not in raw
    cached = load_config(cfg)
    assert type(cached.settings).__name__ == "_View"  # really the fast path
    b1, b2 = fresh.backends["kimi"], cached.backends["kimi"]
    assert b1 == b2 and b2.resolve_key({}) == key
    assert dict(b2.env) == {"EXTRA_TOKEN": "tok-secret-123456", "PLAIN": "v"}
    assert cached.settings.report.gateway.token.get_secret_value() == "hooks-secret-abcdef"
    assert cached.settings.defaultBackend == fresh.settings.defaultBackend == "kimi"
    assert cached.settings.limits.maxConcurrent == fresh.settings.limits.maxConcurrent


# --------------------------------------------------------------------------- backend URLs


BAD_URLS = [
    ("http://10.0.0.5:8080/coding", "loopback only"),
    ("ftp://files.example/coding", "scheme 'ftp'"),
    ("file:///etc/passwd", "not a URL with a host"),
    ("not a url", "not a URL"),
    ("https://user:pw@api.kimi.com/coding", "credentials"),
    ("https://api.kimi.com/coding?x=1", "no query"),
]


@pytest.mark.parametrize(("url", "why"), BAD_URLS)
def test_a_backend_url_must_be_https_or_loopback_http(cfg_file, presets, url, why):
    text = '{plugins: {entries: {"kimi-acp": {config: {\n  backends: {\n    glm: {\n      baseUrl: "%s"}}}}}}}\n' % url
    write(cfg_file, text)
    with pytest.raises(ConfigError) as exc:
        load_config(presets=presets)
    msg = str(exc.value)
    assert msg.startswith(f"{cfg_file}:4: {SECTION}.backends.glm.baseUrl: ")
    assert why in msg and "https" in msg and "loopback" in msg


def test_an_openclaw_provider_url_is_checked_too(cfg_file, presets):
    text = '{models: {providers: {\n  lan: {api: "anthropic-messages",\n    baseUrl: "http://192.168.1.9/anthropic"}}}}\n'
    write(cfg_file, text)
    with pytest.raises(ConfigError, match=r":3: models\.providers\.lan\.baseUrl: 'http://192\.168\.1\.9/anthropic': http is allowed on loopback only"):
        load_config(presets=presets)


@pytest.mark.parametrize("url", ["https://api.kimi.com/coding", "http://127.0.0.1:8080/coding", "http://[::1]:9/x", "http://localhost:1/c"])
def test_good_backend_urls_load(cfg_file, presets, url):
    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: {backends: {glm: {baseUrl: "%s", apiKeyEnv: "GLM"}}}}}}}' % url)
    assert load_config(presets=presets).backends["glm"].base_url == url


@pytest.mark.parametrize("path", ["hooks/agent", "//evil.example/hooks", "http://evil.example/hooks", "/hooks?x=1", "/a/../b", "/a b"])
def test_the_gateway_path_must_be_a_path(cfg_file, presets, path):
    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: {report: {gateway: {path: %s}}}}}}}' % __import__("json").dumps(path))
    with pytest.raises(ConfigError, match=r"report\.gateway\.path: .*is not a path"):
        load_config(presets=presets)


def test_every_command_refuses_a_bad_backend_url(cfg_file, monkeypatch):
    import subprocess
    import sys

    write(cfg_file, '{plugins: {entries: {"kimi-acp": {config: {backends: {kimi: {baseUrl: "http://10.0.0.5:8080/coding"}}}}}}}')
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    kimi_acp = str(Path(sys.executable).with_name("kimi-acp"))
    for args in (["env"], ["doctor", "--offline"], ["spawn", "x"]):
        done = subprocess.run([kimi_acp, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode != 0, args
        out = done.stdout + done.stderr
        assert "backends.kimi.baseUrl" in out and "loopback only" in out, (args, out)
        assert "Traceback" not in out and "✓ config" not in out
