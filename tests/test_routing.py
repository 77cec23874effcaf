"""Backend resolution: every precedence rule, that each beats every lower one, model refs
and aliases, and the notes and errors that say why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kimi_acp.backends import PASSTHROUGH
from kimi_acp.cli import main
from kimi_acp.config import load_config
from kimi_acp.errors import UnknownNameError
from kimi_acp.plugins import build_plugin_manager, registered_backends, set_plugin_manager
from kimi_acp.routing import check_agent, known_agents, known_refs, require_ref, resolve, resolve_ref

KEY = "sk-kimi-test0000000000000000000000000000abcd"

LADDER = """{
  plugins: { entries: { "kimi-acp": { config: {
    backends: {
      e1: { baseUrl: "http://127.0.0.1:9/e1", model: "e1-m" },
      s1: { baseUrl: "http://127.0.0.1:9/s1", model: "s1-m" },
      a1: { baseUrl: "http://127.0.0.1:9/a1", model: "a1-m" },
      t1: { baseUrl: "http://127.0.0.1:9/t1", model: "t1-m" },
      g1: { baseUrl: "http://127.0.0.1:9/g1", model: "g1-m" },
    },
    agents: { coder: { backend: "a1" } },
    targets: { claude: { backend: "t1" } },
    %GLOBAL%
  } } } },
}"""

# (rule, backend, the resolve() argument that triggers it)
RULES = [
    ("explicit", "e1", {"model": "e1"}),
    ("session", "s1", {"session_model": "s1", "session_key": "agent:coder:main"}),
    ("agent", "a1", {"requester_agent": "coder"}),
    ("target", "t1", {"target": "claude"}),
    ("global", "g1", {}),
]


@pytest.fixture
def presets():
    return registered_backends(build_plugin_manager(entrypoints=False))


@pytest.fixture
def cfg_file(clean_env: Path) -> Path:
    return clean_env / "openclaw.json"


@pytest.fixture
def load(cfg_file, presets):
    def _load(text: str):
        cfg_file.write_text(text, encoding="utf-8")
        return load_config(cfg_file, environ={}, presets=presets)

    return _load


@pytest.fixture
def fresh_pm():
    """The CLI's process-wide plugin manager, fresh for this test."""
    set_plugin_manager(build_plugin_manager(entrypoints=False))
    yield
    set_plugin_manager(None)


# --------------------------------------------------------------------------- the ladder


@pytest.mark.parametrize("level", range(len(RULES)), ids=[r[0] for r in RULES])
def test_each_rule_beats_every_lower_rule(load, level):
    cfg = load(LADDER.replace("%GLOBAL%", 'defaultBackend: "g1",'))
    kwargs: dict[str, str] = {}
    for _, _, args in RULES[level:]:  # this rule and every lower one are active
        kwargs.update(args)
    route = resolve(cfg, **kwargs)
    rule, backend, _ = RULES[level]
    assert (route.rule, route.name) == (rule, backend)
    assert route.model == f"{backend}-m"
    assert route.reason  # always says why


def test_passthrough_when_nothing_matches(load):
    cfg = load(LADDER.replace("%GLOBAL%", ""))
    route = resolve(cfg, requester_agent="reviewer", target="codex")
    assert route.rule == "passthrough"
    assert route.name == PASSTHROUGH
    assert route.backend.passthrough
    assert route.model is None
    assert "passthrough" in route.reason


def test_passthrough_with_no_config_at_all(cfg_file, presets):
    cfg = load_config(environ={"OPENCLAW_CONFIG_PATH": str(cfg_file)}, presets=presets)
    assert resolve(cfg).rule == "passthrough"


# --------------------------------------------------------------------------- rule 1: explicit model ref


@pytest.mark.parametrize(
    ("ref", "backend", "model"),
    [
        ("kimi/kimi-k2.5", "kimi", "kimi-k2.5"),
        ("KIMI/kimi-k2.5", "kimi", "kimi-k2.5"),  # provider case-insensitive
        ("kimi/kimi-k2-thinking", "kimi", "kimi-k2-thinking"),  # any model id on a known provider
        ("Kimi K2.5", "kimi", "kimi-k2.5"),  # alias from the preset's model name
        ("kimi k2.5", "kimi", "kimi-k2.5"),
        ("KIMI K2.5", "kimi", "kimi-k2.5"),
        ("Sonnet", "anthropic", "claude-sonnet-4-5"),  # alias from agents.defaults.models
        ("claude sonnet", "anthropic", "claude-sonnet-4-5"),  # second alias of a list
        ("K25", "kimi", "kimi-k2.5"),  # the seed's top-level models table
        ("kimi", "kimi", "kimi-for-coding"),  # bare backend name: its default model
        ("kimi-k2.5", "kimi", "kimi-k2.5"),  # bare model id
        ("passthrough", PASSTHROUGH, None),
    ],
)
def test_explicit_model_refs(load, ref, backend, model):
    cfg = load(
        """{
  agents: { defaults: { models: {
    "anthropic/claude-sonnet-4-5": { alias: ["Sonnet", "Claude Sonnet"] },
    "kimi/kimi-k2.5": { alias: "Kimi K2.5" },
  } } },
  models: { "kimi/kimi-k2.5": { alias: "K25", params: { temperature: 0.6 } } },
}"""
    )
    route = resolve(cfg, model=ref)
    assert (route.rule, route.name, route.model) == ("explicit", backend, model)
    assert route.ref == ref
    assert ref in route.reason


def test_unknown_explicit_ref_lists_known_refs(load):
    cfg = load('{agents: {defaults: {models: {"kimi/kimi-k2.5": {alias: "Kimi K2.5"}}}}}')
    with pytest.raises(UnknownNameError) as ei:
        resolve(cfg, model="nosuch/model-x", requester_agent="coder")
    msg = str(ei.value)
    assert msg.startswith("unknown model 'nosuch/model-x' (known: ")
    for ref in ("kimi/kimi-k2.5", "kimi", "anthropic", "Kimi K2.5", "passthrough"):
        assert ref in msg


def test_known_refs(load):
    cfg = load('{models: {providers: {moon: {api: "anthropic-messages", baseUrl: "http://127.0.0.1:9", models: [{id: "m1", name: "Moon"}, {id: "m2"}]}}}}')
    refs = known_refs(cfg)
    assert refs[-1] == PASSTHROUGH
    for ref in ("kimi/kimi-k2.5", "kimi", "anthropic", "moon/m1", "moon/m2", "moon", "moon"):
        assert ref in refs
    assert len(refs) == len(set(refs))


def test_resolve_ref_of_unknown_provider_is_none(load):
    cfg = load("{}")
    assert resolve_ref(cfg, "openai/gpt-5") is None
    assert resolve_ref(cfg, "gpt-5") is None
    assert resolve_ref(cfg, "   ") is None
    with pytest.raises(UnknownNameError):
        require_ref(cfg, "gpt-5")


def test_models_providers_model_name_is_an_alias(load):
    cfg = load(
        '{models: {providers: {moon: {api: "anthropic-messages", baseUrl: "http://127.0.0.1:9", '
        'models: [{id: "moon-1", name: "Moon One"}]}}}}'
    )
    route = resolve(cfg, model="MOON ONE")
    assert (route.name, route.model) == ("moon", "moon-1")


def test_seed_provider_is_a_backend_for_refs(load):
    cfg = load('{providers: [{id: "corp", type: "anthropic", baseUrl: "http://127.0.0.1:9", apiKey: "${CORP_KEY}"}]}')
    route = resolve(cfg, model="corp/corp-large")
    assert (route.rule, route.name, route.model) == ("explicit", "corp", "corp-large")


def test_provider_with_other_api_is_not_a_backend(load):
    cfg = load('{models: {providers: {oa: {api: "openai-completions", baseUrl: "http://127.0.0.1:9", models: [{id: "gpt-5"}]}}}}')
    with pytest.raises(UnknownNameError):
        resolve(cfg, model="oa/gpt-5")


# --------------------------------------------------------------------------- rule 2: session choice


def test_openclaw_session_choice(load):
    cfg = load('{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "anthropic", agents: {coder: {backend: "anthropic"}}}}}}}')
    route = resolve(cfg, session_model="kimi/kimi-k2.5", session_key="agent:coder:main", requester_agent="coder")
    assert (route.rule, route.name, route.model) == ("session", "kimi", "kimi-k2.5")
    assert "agent:coder:main" in route.reason
    assert "OpenClaw /model" in route.reason


def test_openclaw_session_choice_beats_stored_one(load):
    cfg = load("{}")
    route = resolve(cfg, session_model="kimi", stored_session_model="anthropic")
    assert (route.rule, route.name) == ("session", "kimi")


def test_stored_session_choice(load):
    cfg = load('{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "anthropic"}}}}}')
    route = resolve(cfg, stored_session_model="Kimi K2.5", session_key="agent:main:main")
    assert (route.rule, route.name, route.model) == ("session", "kimi", "kimi-k2.5")
    assert "kimi-acp model" in route.reason


def test_session_choice_naming_no_backend_is_skipped_with_a_note(load):
    cfg = load(
        """{
  models: { providers: { openai: { api: "openai-completions", baseUrl: "http://127.0.0.1:9" } } },
  plugins: { entries: { "kimi-acp": { config: { agents: { coder: { backend: "kimi" } } } } } },
}"""
    )
    route = resolve(cfg, session_model="openai/gpt-5", session_key="agent:coder:main", requester_agent="coder")
    assert (route.rule, route.name) == ("agent", "kimi")
    assert len(route.notes) == 1
    assert "openai/gpt-5" in route.notes[0]
    assert "names no backend" in route.notes[0]


def test_both_session_choices_unknown_fall_through_with_two_notes(load):
    cfg = load("{}")
    route = resolve(cfg, session_model="openai/gpt-5", stored_session_model="gpt-4o")
    assert route.rule == "passthrough"
    assert [n.split("'")[1] for n in route.notes] == ["openai/gpt-5", "gpt-4o"]


def test_session_choice_via_the_cli(cfg_file, fresh_pm, capsys, monkeypatch):
    """`kimi-acp model REF --session KEY` stores a choice that `env --session KEY` then uses."""
    cfg_file.write_text('{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "anthropic", agents: {coder: {backend: "anthropic"}}}}}}}')
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-parent-000000000000000000")
    session = "agent:coder:main"

    assert main(["model", "Kimi K2.5", "--session", session, "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert stored == {"session": session, "model": "Kimi K2.5", "backend": "kimi", "modelId": "kimi-k2.5"}

    assert main(["env", "--agent", "coder", "--session", session, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["backend"], out["rule"], out["model"]) == ("kimi", "session", "kimi-k2.5")
    assert session in out["reason"] and "kimi-acp model" in out["reason"]

    # cleared: the agent default applies again
    assert main(["model", "default", "--session", session]) == 0
    capsys.readouterr()
    assert main(["env", "--agent", "coder", "--session", session, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["backend"], out["rule"]) == ("anthropic", "agent")


def test_cli_model_rejects_unknown_ref(cfg_file, fresh_pm, capsys):
    cfg_file.write_text("{}")
    assert main(["model", "nosuch/x", "--session", "agent:main:main"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nosuch/x'" in err and "kimi/kimi-k2.5" in err
    # nothing was stored
    assert main(["model", "--session", "agent:main:main", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] is None


# --------------------------------------------------------------------------- rule 3: requesting agent


def test_agent_default_from_our_section_with_model_override(load):
    cfg = load('{plugins: {entries: {"kimi-acp": {config: {agents: {coder: {backend: "kimi", model: "kimi-k2-thinking"}}}}}}}')
    route = resolve(cfg, requester_agent="coder")
    assert (route.rule, route.name, route.model) == ("agent", "kimi", "kimi-k2-thinking")
    assert "plugins.entries.kimi-acp.config.agents.coder" in route.reason


def test_agent_default_from_openclaw_subagents_model(load):
    cfg = load('{agents: {entries: {coder: {model: "openai/gpt-5", subagents: {model: "kimi/kimi-k2.5"}}}}}')
    route = resolve(cfg, requester_agent="coder")
    assert (route.rule, route.name, route.model) == ("agent", "kimi", "kimi-k2.5")
    assert "agents.entries.coder.subagents.model" in route.reason


def test_agent_default_from_legacy_agents_list(load):
    cfg = load('{agents: {list: [{id: "coder", subagents: {model: {primary: "Kimi K2.5"}}}]}}')
    route = resolve(cfg, requester_agent="coder")
    assert (route.rule, route.name, route.model) == ("agent", "kimi", "kimi-k2.5")


def test_our_agent_section_beats_openclaw_subagents_model(load):
    cfg = load(
        """{
  agents: { entries: { coder: { subagents: { model: "anthropic/claude-sonnet-4-5" } } } },
  plugins: { entries: { "kimi-acp": { config: { agents: { coder: { backend: "kimi" } } } } } },
}"""
    )
    assert resolve(cfg, requester_agent="coder").name == "kimi"


def test_agent_subagent_model_naming_no_backend_falls_through(load):
    cfg = load(
        """{
  agents: { entries: { coder: { subagents: { model: "openai/gpt-5" } } } },
  plugins: { entries: { "kimi-acp": { config: { defaultBackend: "kimi" } } } },
}"""
    )
    assert resolve(cfg, requester_agent="coder").rule == "global"


def test_agent_default_beats_openclaw_global_subagents_model(load):
    cfg = load(
        """{
  agents: { defaults: { subagents: { model: "anthropic/claude-sonnet-4-5" } },
            entries: { coder: { subagents: { model: "kimi" } } } },
}"""
    )
    assert (resolve(cfg, requester_agent="coder").rule, resolve(cfg, requester_agent="coder").name) == ("agent", "kimi")
    assert (resolve(cfg, requester_agent="main").rule, resolve(cfg, requester_agent="main").name) == ("global", "anthropic")


# --------------------------------------------------------------------------- rule 4: target ACP agent


def test_target_default_from_our_section(load):
    cfg = load('{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "anthropic", targets: {claude: {backend: "kimi"}}}}}}}')
    route = resolve(cfg, requester_agent="main", target="claude")
    assert (route.rule, route.name, route.model) == ("target", "kimi", "kimi-for-coding")
    assert "targets.claude" in route.reason
    assert resolve(cfg, target="codex").rule == "global"


def test_target_default_from_an_openclaw_acp_agent(load):
    cfg = load(
        """{
  agents: { entries: {
    claude: { runtime: { type: "acp", acp: { agent: "claude" } }, model: "kimi/kimi-k2.5" },
    chat: { model: "kimi/kimi-k2.5" },
  } },
}"""
    )
    route = resolve(cfg, target="claude")
    assert (route.rule, route.name) == ("target", "kimi")
    # an agent that is not an ACP runtime is not a target default
    assert resolve(cfg, target="chat").rule == "passthrough"


# --------------------------------------------------------------------------- rule 5: global default


def test_global_default_backend(load):
    cfg = load('{plugins: {entries: {"kimi-acp": {config: {defaultBackend: "kimi"}}}}}')
    route = resolve(cfg, requester_agent="main", target="claude")
    assert (route.rule, route.name, route.model) == ("global", "kimi", "kimi-for-coding")
    assert "defaultBackend" in route.reason


def test_global_default_from_openclaw_subagents_model(load):
    cfg = load('{agents: {defaults: {subagents: {model: "Kimi K2.5"}}}}')
    route = resolve(cfg)
    assert (route.rule, route.name, route.model) == ("global", "kimi", "kimi-k2.5")  # the legacy model's name still works
    assert "agents.defaults.subagents.model" in route.reason


def test_default_backend_beats_openclaw_global_subagents_model(load):
    cfg = load(
        """{
  agents: { defaults: { subagents: { model: "anthropic/claude-sonnet-4-5" } } },
  plugins: { entries: { "kimi-acp": { config: { defaultBackend: "kimi" } } } },
}"""
    )
    assert resolve(cfg).name == "kimi"


# --------------------------------------------------------------------------- agents


def test_unknown_agent_lists_known_ones(load):
    cfg = load(
        """{
  agents: { entries: { reviewer: {} }, list: [{ id: "old" }] },
  plugins: { entries: { "kimi-acp": { config: { agents: { coder: { backend: "kimi" } } } } } },
}"""
    )
    with pytest.raises(UnknownNameError) as ei:
        check_agent(cfg, "nosuch")
    assert str(ei.value) == "unknown agent 'nosuch' (known: coder, main, old, reviewer)"
    assert known_agents(cfg) == ["coder", "main", "old", "reviewer"]
    for ok in ("coder", "main", "reviewer", "old"):
        check_agent(cfg, ok)


def test_any_agent_is_accepted_when_none_are_configured(load):
    cfg = load("{}")
    check_agent(cfg, "whoever")  # no error
    assert resolve(cfg, requester_agent="whoever").rule == "passthrough"
