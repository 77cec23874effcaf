"""Today's Kimi Code lineup: the preset's models and their limits, OpenClaw's own Kimi refs and
legacy ids, K3's 1M window only when the user says so, thinking levels mapped onto K3's efforts
as OpenClaw's Kimi provider maps them, and a run's cost priced from the model's ``cost``."""

from __future__ import annotations

from pathlib import Path

import pytest

from kimi_acp.backends import Backend, Cost
from kimi_acp.config import load_config
from kimi_acp.default_plugins.claude_code import ClaudeCodeHarness
from kimi_acp.environment import backend_variables
from kimi_acp.errors import UnknownNameError
from kimi_acp.harness.command import build_argv, effort_for
from kimi_acp.plugins import build_plugin_manager, registered_backends
from kimi_acp.pricing import run_cost
from kimi_acp.routing import require_ref, resolve, resolve_ref
from kimi_acp.settings import HarnessSettings

KEY = "sk-kimi-test0000000000000000000000000000abcd"


@pytest.fixture
def load(clean_env: Path):
    presets = registered_backends(build_plugin_manager(entrypoints=False))

    def _load(text: str = "{}"):
        path = clean_env / "openclaw.json"
        path.write_text(text, encoding="utf-8")
        return load_config(path, environ={"KIMI_API_KEY": KEY}, presets=presets)

    return _load


def env_of(cfg, ref: str) -> dict[str, str]:
    backend, model = require_ref(cfg, ref)
    return backend_variables(backend, KEY, model)


# --------------------------------------------------------------------------- lineup and refs


@pytest.mark.parametrize(
    ("ref", "wire", "context", "output"),
    [
        ("kimi/kimi-for-coding", "kimi-for-coding", "262144", "32768"),
        ("kimi/kimi-for-coding-highspeed", "kimi-for-coding-highspeed", "262144", "32768"),
        ("kimi/k3", "k3", "262144", "128000"),  # plan-gated 1M: only when the user says so
        ("kimi/k3-256k", "k3-256k", "262144", "128000"),
        ("kimi/kimi-k2.5", "kimi-k2.5", "262144", "32768"),  # the seed's id: legacy, sent as is
        ("kimi/kimi-k2.6", "kimi-k2.6", "262144", "32768"),
        ("kimi/kimi-code", "kimi-for-coding", "262144", "32768"),  # legacy names of kimi-for-coding
        ("kimi/k2p5", "kimi-for-coding", "262144", "32768"),
        ("kimi-coding/kimi-for-coding", "kimi-for-coding", "262144", "32768"),  # OpenClaw's Kimi provider ids
        ("kimi-coding/k3", "k3", "262144", "128000"),
        ("kimi-code/k2p5", "kimi-for-coding", "262144", "32768"),
        ("Kimi K3", "k3", "262144", "128000"),  # the model's name is an alias
        ("k3", "k3", "262144", "128000"),  # a bare model id
        ("k2p5", "kimi-for-coding", "262144", "32768"),  # a bare legacy id
        ("kimi", "kimi-for-coding", "262144", "32768"),  # the backend: its default model
    ],
)
def test_refs_route_to_kimi_with_the_wire_id_and_its_limits(load, ref, wire, context, output):
    cfg = load()
    route = resolve(cfg, model=ref)
    assert (route.name, route.model) == ("kimi", wire)
    v = env_of(cfg, ref)
    assert v["ANTHROPIC_MODEL"] == wire and "[" not in v["ANTHROPIC_MODEL"]
    assert v["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == v["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == context
    assert v["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == output


def test_k3_1m_ref_gets_the_1m_window_and_never_sends_the_suffix(load):
    cfg = load()
    route = resolve(cfg, model="kimi/k3[1m]")
    assert route.model == "k3"
    v = backend_variables(route.backend, KEY, route.model)
    assert v["ANTHROPIC_MODEL"] == "k3"
    assert v["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == v["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "1048576"
    assert route.model_ref == "kimi/k3[1m]"  # what the OpenClaw hook hands on: it routes the same again
    again = resolve(cfg, model=route.model_ref)
    assert backend_variables(again.backend, KEY, again.model)["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "1048576"
    # the configured backend itself is untouched: plain kimi/k3 stays at the window every plan has
    assert cfg.backends["kimi"].model_info("k3").context_window == 262144
    assert resolve(cfg, model="kimi/k3").model_ref == "kimi/k3"


def test_a_1m_ref_of_a_model_without_one_is_refused(load):
    with pytest.raises(UnknownNameError, match=r"k3-256k has no larger window.*works for: k3"):
        resolve(load(), model="kimi/k3-256k[1m]")


def test_the_plans_1m_window_from_openclaw_json(load):
    cfg = load('{models: {providers: {kimi: {baseUrl: "https://api.kimi.com/coding", api: "anthropic-messages", '
               'models: [{id: "k3", name: "Kimi K3", contextWindow: 1048576}]}}}}')
    assert env_of(cfg, "kimi/k3")["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "1048576"
    assert env_of(cfg, "kimi/k3")["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "1048576"
    assert env_of(cfg, "kimi/k3")["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "128000"  # the preset's k3 fields kept
    assert env_of(cfg, "kimi/kimi-for-coding")["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "262144"  # not every model
    assert cfg.backends["kimi"].model == "kimi-for-coding"  # the default stays the preset's


def test_context_tokens_caps_the_compact_window(load):
    cfg = load('{models: {providers: {kimi: {baseUrl: "https://api.kimi.com/coding", api: "anthropic-messages", '
               'models: [{id: "k3", name: "Kimi K3", contextWindow: 1048576, contextTokens: 400000}]}}}}')
    v = env_of(cfg, "kimi/k3")
    assert (v["CLAUDE_CODE_MAX_CONTEXT_TOKENS"], v["CLAUDE_CODE_AUTO_COMPACT_WINDOW"]) == ("1048576", "400000")


def test_an_older_installs_kimi_code_provider_is_still_kimi(load):
    cfg = load('{models: {providers: {"kimi-code": {baseUrl: "https://api.kimi.com/coding", api: "anthropic-messages", '
               'models: [{id: "kimi-k2.5", name: "Kimi K2.5", contextWindow: 262144, maxTokens: 32768}]}}}}')
    route = resolve(cfg, model="kimi-code/k3")
    assert (route.name, route.model) == ("kimi-code", "k3")  # its own backend, with the Kimi lineup
    assert env_of(cfg, "kimi-code/k3")["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "128000"
    assert resolve(cfg, model="kimi-coding/k3").name == "kimi"  # and no ambiguity for the other alias


@pytest.mark.parametrize("model", ["kimi-k2.7-code", "kimi-k2.7-code-highspeed", "kimi-k3"])
def test_moonshots_model_ids_on_kimi_are_refused_with_what_to_use(load, model):
    with pytest.raises(UnknownNameError, match=rf"{model} is a Moonshot API model \(moonshot/{model}.*kimi/k3"):
        resolve(load(), model=f"kimi/{model}")


def test_a_moonshot_id_the_user_lists_for_their_kimi_provider_is_theirs(load):
    cfg = load('{models: {providers: {kimi: {baseUrl: "https://api.kimi.com/coding", api: "anthropic-messages", '
               'models: [{id: "kimi-k2.7-code", name: "K2.7 via Kimi"}]}}}}')
    assert resolve(cfg, model="kimi/kimi-k2.7-code").model == "kimi-k2.7-code"


@pytest.mark.parametrize("ref", ["moonshot/kimi-k3", "moonshot/kimi-k2.7-code", "moonshotai/kimi-k3"])
def test_moonshot_refs_are_refused_in_one_line(load, ref):
    with pytest.raises(UnknownNameError) as err:
        resolve(load(), model=ref)
    message = str(err.value)
    assert "\n" not in message and "Moonshot API model" in message and "not Kimi Code" in message
    assert "use kimi/k3 or kimi/kimi-for-coding" in message
    assert err.value.hint


def test_a_sessions_moonshot_chat_model_is_not_a_spawn_backend(load):
    cfg = load('{plugins: {entries: {"kimi-acp": {config: {agents: {coder: {backend: "kimi"}}}}}}}')
    route = resolve(cfg, session_model="moonshot/kimi-k3", session_key="agent:coder:main", requester_agent="coder")
    assert (route.rule, route.name) == ("agent", "kimi")
    assert any("moonshot/kimi-k3" in n and "Moonshot API model" in n for n in route.notes)


def test_unknown_ref_lists_the_lineup_before_legacy_ids(load):
    with pytest.raises(UnknownNameError) as err:
        require_ref(load(), "nope/x")
    known = str(err.value).split("known: ", 1)[1]
    assert known.index("kimi/k3") < known.index("kimi/kimi-k2.5")
    assert "kimi/kimi-k2.7-code" not in known


def test_resolve_ref_keeps_two_values_for_callers(load):
    backend, model = resolve_ref(load(), "kimi/k3[1m]")
    assert isinstance(backend, Backend) and model == "k3"
    backend, model = resolve_ref(load(), "k3[1m]")  # a bare 1M ref too
    assert model == "k3" and backend.model_info("k3").context_window == 1_048_576


# --------------------------------------------------------------------------- thinking -> effort


K3_EXPECTED = {
    "off": ("low", {"CLAUDE_CODE_DISABLE_THINKING": "1"}),
    "minimal": ("low", {}),
    "low": ("low", {}),
    "medium": ("high", {}),
    "high": ("high", {}),
    "adaptive": ("high", {}),
    "xhigh": ("max", {}),
    "max": ("max", {}),
}


@pytest.mark.parametrize("level", list(K3_EXPECTED))
def test_openclaws_levels_map_onto_k3s_efforts_as_its_kimi_provider_maps_them(level):
    assert effort_for(level, ("low", "high", "max")) == K3_EXPECTED[level]
    assert effort_for(level.upper(), ("low", "high", "max")) == K3_EXPECTED[level]


def test_models_with_unknown_efforts_keep_todays_mapping():
    assert [effort_for(lv)[0] for lv in ("off", "minimal", "low", "medium", "high", "xhigh", "max")] == [
        "low", "low", "low", "medium", "high", "xhigh", "max"]
    assert effort_for("off") == ("low", {})  # no thinking switch for a model kimi-acp knows nothing of
    assert effort_for("bogus", ("low", "high", "max")) == (None, {}) and effort_for(None) == (None, {})


def test_the_harness_passes_the_mapped_effort_and_the_off_switch(load):
    cfg = load()
    backend, model = require_ref(cfg, "kimi/k3")
    harness = ClaudeCodeHarness(HarnessSettings(command="/bin/true"))

    class Req:
        def __init__(self, model: str, thinking: str | None) -> None:
            self.model, self.thinking, self.resumeSessionId = model, thinking, None

    argv = harness.kimi_acp_harness_command(request=Req("k3", "medium"), backend=backend)
    assert argv[argv.index("--effort") + 1] == "high"
    assert harness.kimi_acp_spawn_env(request=Req("k3", "off"), backend=backend) == {"CLAUDE_CODE_DISABLE_THINKING": "1"}
    assert harness.kimi_acp_spawn_env(request=Req("k3", "high"), backend=backend) is None
    # kimi-for-coding's efforts are unknown: today's mapping, no switch
    kfc, _ = require_ref(cfg, "kimi/kimi-for-coding")
    argv = harness.kimi_acp_harness_command(request=Req("kimi-for-coding", "medium"), backend=kfc)
    assert argv[argv.index("--effort") + 1] == "medium"
    assert harness.kimi_acp_spawn_env(request=Req("kimi-for-coding", "off"), backend=kfc) is None


def test_build_argv_with_efforts():
    argv, env = build_argv("/bin/claude", model="k3", thinking="xhigh", efforts=("low", "high", "max"))
    assert argv[argv.index("--effort") + 1] == "max" and env == {}
    argv, env = build_argv("/bin/claude", model="k3", thinking="off", efforts=("low", "high", "max"))
    assert argv[argv.index("--effort") + 1] == "low" and env == {"CLAUDE_CODE_DISABLE_THINKING": "1"}


# --------------------------------------------------------------------------- cost


USAGE = {"input_tokens": 100_000, "output_tokens": 20_000, "cache_read_input_tokens": 400_000,
         "cache_creation_input_tokens": 0}


def test_k3_runs_are_priced_from_its_cost_not_claude_codes(load):
    cfg = load()
    # 0.1M x $3 + 0.02M x $15 + 0.4M x $0.30 = 0.30 + 0.30 + 0.12
    assert run_cost(cfg.backends["kimi"], "k3", USAGE, claude_cost=9.99) == (0.72, "kimi-acp")
    assert run_cost(cfg.backends["kimi"], "k3-256k", USAGE, claude_cost=9.99) == (0.72, "kimi-acp")


def test_membership_ids_have_no_price_unless_configured(load):
    cfg = load()
    assert run_cost(cfg.backends["kimi"], "kimi-for-coding", USAGE, claude_cost=9.99) == (None, None)
    assert run_cost(cfg.backends["kimi"], "kimi-k2.5", USAGE, claude_cost=9.99) == (None, None)
    priced = load('{models: {providers: {kimi: {baseUrl: "https://api.kimi.com/coding", api: "anthropic-messages", '
                  'models: [{id: "kimi-for-coding", name: "Kimi Code", cost: {input: 1, output: 2}}], }}}}')
    assert run_cost(priced.backends["kimi"], "kimi-for-coding", USAGE, claude_cost=None) == (0.14, "kimi-acp")
    zero = load('{models: {providers: {kimi: {baseUrl: "https://api.kimi.com/coding", api: "anthropic-messages", '
                'models: [{id: "k3", name: "K3", cost: {input: 0, output: 0, cacheRead: 0, cacheWrite: 0}}], }}}}')
    assert run_cost(zero.backends["kimi"], "k3", USAGE, claude_cost=None) == (None, None)  # OpenClaw's "no price"


def test_runs_on_anthropic_keep_claude_codes_own_figure(load):
    cfg = load()
    assert run_cost(None, None, USAGE, claude_cost=0.25) == (0.25, "claude-code")  # passthrough
    assert run_cost(cfg.backends["anthropic"], "claude-sonnet-4-5", USAGE, claude_cost=0.25) == (0.25, "claude-code")
    other = Backend(name="glm", base_url="https://open.bigmodel.cn/api/anthropic", model="glm")
    assert run_cost(other, "glm", USAGE, claude_cost=0.25) == (None, None)  # Claude's price for another model: never


def test_cost_price_counts_every_token_kind():
    c = Cost(input=1, output=2, cache_read=0.5, cache_write=4)
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000,
             "cache_creation_input_tokens": 1_000_000}
    assert c.price(usage) == 7.5 and not c.free and Cost().free
    assert c.price({"input_tokens": "12", "output_tokens": True}) == 0  # not counts: ignored, not a crash
