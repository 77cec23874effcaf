"""Hooks and plugins: a fresh plugin manager per test, default plugins, entry points, the
block list, and documentation of every hook."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pluggy
import pytest

from kimi_acp import PROJECT, hookspecs
from kimi_acp.backends import Backend
from kimi_acp.config import load_config
from kimi_acp.environment import build_child_env
from kimi_acp.hookspecs import hookimpl
from kimi_acp.plugins import DEFAULT_PLUGINS, build_plugin_manager, registered_backends
from kimi_acp.routing import resolve

REPO = Path(__file__).resolve().parents[1]
HOOK_NAMES = sorted(n for n in dir(hookspecs) if n.startswith("kimi_acp_"))


def backend_names(pm: pluggy.PluginManager) -> list[str]:
    return [b.name for b in registered_backends(pm)]


class MyBackends:
    """A third-party plugin object handed to the factory."""

    @hookimpl
    def kimi_acp_register_backends(self, register):
        register(Backend(name="corp", base_url="http://127.0.0.1:9/corp", api_key_env=("CORP_KEY",), model="corp-1"))


# --------------------------------------------------------------------------- the factory


def test_fresh_manager_has_the_default_plugins():
    pm = build_plugin_manager(entrypoints=False)
    assert pm.project_name == PROJECT
    for name in DEFAULT_PLUGINS:
        assert pm.get_plugin(name) is not None, name
    assert pm.hook.kimi_acp_register_backends is not None


def test_kimi_preset_is_registered_by_the_default_plugin():
    pm = build_plugin_manager(entrypoints=False)
    backends = {b.name: b for b in registered_backends(pm)}
    kimi = backends["kimi"]
    assert kimi.base_url == "https://api.kimi.com/coding"
    assert kimi.model == "kimi-for-coding"
    assert kimi.api_key_env[0] == "KIMI_API_KEY"
    assert kimi.auth_header == "x-api-key"
    assert kimi.quirks["ENABLE_TOOL_SEARCH"] == "false"
    assert "anthropic" in backends
    # the registration came from the kimi default plugin
    callers = [impl.plugin_name for impl in pm.hook.kimi_acp_register_backends.get_hookimpls()]
    assert "kimi_acp.default_plugins.kimi" in callers


def test_managers_are_independent():
    a = build_plugin_manager(entrypoints=False, extra=(MyBackends(),))
    b = build_plugin_manager(entrypoints=False)
    assert "corp" in backend_names(a)
    assert "corp" not in backend_names(b)


def test_extra_plugin_backend_reaches_the_config(tmp_path):
    pm = build_plugin_manager(entrypoints=False, extra=(MyBackends(),))
    cfg = load_config(environ={"OPENCLAW_CONFIG_PATH": str(tmp_path / "none.json")}, presets=registered_backends(pm))
    assert cfg.backends["corp"].base_url == "http://127.0.0.1:9/corp"
    route = resolve(cfg, model="corp/corp-1")
    assert (route.name, route.model) == ("corp", "corp-1")


def test_a_plugin_can_override_a_builtin_preset():
    """Built-ins are plugins like any other: a third-party registration of the same name wins."""

    class Override:
        @hookimpl
        def kimi_acp_register_backends(self, register):
            register(Backend(name="kimi", base_url="http://127.0.0.1:9/mirror", api_key_env=("MIRROR_KEY",), model="k"))

    backends = {b.name: b for b in registered_backends(build_plugin_manager(entrypoints=False, extra=(Override(),)))}
    assert backends["kimi"].base_url == "http://127.0.0.1:9/mirror"


def test_register_rejects_what_is_not_a_backend():
    class Bad:
        @hookimpl
        def kimi_acp_register_backends(self, register):
            register({"name": "dict"})

    pm = build_plugin_manager(entrypoints=False, extra=(Bad(),))
    with pytest.raises(TypeError, match="expected a Backend, got dict"):
        registered_backends(pm)


def test_unknown_hook_in_a_plugin_is_an_error():
    class Typo:
        @hookimpl
        def kimi_acp_register_backend(self, register):  # missing "s"
            pass

    with pytest.raises(pluggy.PluginValidationError):
        build_plugin_manager(entrypoints=False, extra=(Typo(),))


def test_spawn_env_hook_results_feed_the_child_env():
    class EnvPlugin:
        @hookimpl
        def kimi_acp_spawn_env(self, request, backend):
            return {"FROM_PLUGIN": backend.name, "LANG": None}

    class Quiet:
        @hookimpl
        def kimi_acp_spawn_env(self, request, backend):
            return None

    pm = build_plugin_manager(entrypoints=False, extra=(EnvPlugin(), Quiet()))
    b = Backend(name="corp", base_url="http://127.0.0.1:9")
    results = pm.hook.kimi_acp_spawn_env(request=None, backend=b)
    assert results == [{"FROM_PLUGIN": "corp", "LANG": None}]  # None answers are dropped by pluggy
    child = build_child_env({"LANG": "C"}, b, key="k" * 12, plugin_env=results)
    assert child.env["FROM_PLUGIN"] == "corp"
    assert "LANG" not in child.env


def test_harness_command_stops_at_first_result():
    class A:
        @hookimpl
        def kimi_acp_harness_command(self, request, backend):
            return ["a"]

    class B:
        @hookimpl
        def kimi_acp_harness_command(self, request, backend):
            return None

    pm = build_plugin_manager(entrypoints=False, extra=(A(), B()))
    assert pm.hook.kimi_acp_harness_command(request=None, backend=None) == ["a"]


# --------------------------------------------------------------------------- block list


def test_block_list_blocks_a_default_plugin(monkeypatch):
    monkeypatch.setenv("KIMI_ACP_BLOCK_PLUGINS", " kimi_acp.default_plugins.kimi , ")
    pm = build_plugin_manager(entrypoints=False)
    assert pm.is_blocked("kimi_acp.default_plugins.kimi")
    assert pm.get_plugin("kimi_acp.default_plugins.kimi") is None
    assert backend_names(pm) == ["anthropic"]


def test_block_list_with_two_names(monkeypatch):
    monkeypatch.setenv("KIMI_ACP_BLOCK_PLUGINS", "kimi_acp.default_plugins.kimi,kimi_acp.default_plugins.anthropic")
    assert backend_names(build_plugin_manager(entrypoints=False)) == []


# --------------------------------------------------------------------------- entry points


PLUGIN_MODULE = """
from kimi_acp import hookimpl
from kimi_acp.backends import Backend

@hookimpl
def kimi_acp_register_backends(register):
    register(Backend(name=%(name)r, base_url="http://127.0.0.1:9/myplug", api_key_env=("MYPLUG_KEY",), model="myplug-1"))
"""


@pytest.fixture
def make_dist(tmp_path, monkeypatch):
    """Install a real distribution (dist-info + module) with a ``kimi_acp`` entry point on sys.path."""
    modules: list[str] = []

    def make(backend_name: str = "myplug", module: str = "myplug_mod", dist_name: str = "myplug") -> Path:
        site = tmp_path / f"site-{module}"
        dist = site / f"{dist_name}-1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[kimi_acp]\n{dist_name} = {module}\n")
        (site / f"{module}.py").write_text(PLUGIN_MODULE % {"name": backend_name})
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.delitem(sys.modules, module, raising=False)
        modules.append(module)
        return site

    yield make
    for module in modules:
        sys.modules.pop(module, None)


@pytest.fixture
def fake_dist(make_dist):
    return make_dist()


def test_entry_point_plugin_is_loaded(fake_dist, tmp_path):
    pm = build_plugin_manager(entrypoints=True)
    plugin = pm.get_plugin("myplug")
    assert plugin is not None and plugin.__name__ == "myplug_mod"

    cfg = load_config(environ={"OPENCLAW_CONFIG_PATH": str(tmp_path / "none.json")}, presets=registered_backends(pm))
    assert cfg.backends["myplug"].base_url == "http://127.0.0.1:9/myplug"
    assert "myplug" in cfg.known_backends()
    route = resolve(cfg, model="myplug/myplug-1")
    assert route.name == "myplug"


def test_entry_point_plugin_can_override_a_builtin_preset(make_dist):
    make_dist(backend_name="kimi", module="kimi_mirror_mod", dist_name="kimi-mirror")
    pm = build_plugin_manager(entrypoints=True)
    assert pm.get_plugin("kimi-mirror") is not None
    backends = {b.name: b for b in registered_backends(pm)}
    assert backends["kimi"].base_url == "http://127.0.0.1:9/myplug"


def test_entry_points_are_off_when_asked(fake_dist):
    assert build_plugin_manager(entrypoints=False).get_plugin("myplug") is None
    # the conftest sets KIMI_ACP_DISABLE_ENTRYPOINTS: the default follows it
    assert build_plugin_manager().get_plugin("myplug") is None


def test_block_list_blocks_an_entry_point_plugin(fake_dist, monkeypatch):
    monkeypatch.setenv("KIMI_ACP_BLOCK_PLUGINS", "myplug")
    pm = build_plugin_manager(entrypoints=True)
    assert pm.get_plugin("myplug") is None
    assert "myplug" not in backend_names(pm)


# --------------------------------------------------------------------------- documentation


def test_every_hookspec_is_documented_in_its_docstring():
    assert HOOK_NAMES, "no hookspecs found"
    for name in HOOK_NAMES:
        func = getattr(hookspecs, name)
        doc = inspect.getdoc(func) or ""
        assert len(doc) > 40, f"{name} has no real docstring"
        for param in inspect.signature(func).parameters:
            assert f":param {param}:" in doc, f"{name}: parameter {param} is not documented"
        assert ":return:" in doc, f"{name}: the docstring does not say what the return means"


def test_every_hookspec_is_a_registered_hookspec():
    pm = build_plugin_manager(entrypoints=False)
    specs = sorted(n for n in dir(pm.hook) if n.startswith("kimi_acp_"))
    assert specs == HOOK_NAMES


def test_every_hook_is_in_docs_hooks_md():
    """Every ``kimi_acp_*`` hookspec has a ``## kimi_acp_xxx(params)`` heading in docs/hooks.md."""
    doc = REPO / "docs" / "hooks.md"
    assert doc.exists(), "docs/hooks.md is missing: document every hook there"
    headings = {
        m.group(1): [p.strip() for p in m.group(2).split(",") if p.strip()]
        for m in re.finditer(r"^## (kimi_acp_\w+)\(([^)]*)\)", doc.read_text(encoding="utf-8"), re.M)
    }
    missing = [n for n in HOOK_NAMES if n not in headings]
    assert not missing, f"hooks missing from docs/hooks.md (add a '## name(args)' heading): {missing}"
    for name in HOOK_NAMES:
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        assert headings[name] == params, f"docs/hooks.md: {name} signature {headings[name]} != hookspec {params}"
    stale = sorted(set(headings) - set(HOOK_NAMES))
    assert not stale, f"docs/hooks.md documents hooks that do not exist: {stale}"


def test_model_switched_hook_is_called_by_the_model_command(clean_env, capsys):
    from kimi_acp.cli import main
    from kimi_acp.plugins import set_plugin_manager

    seen: list[tuple[str, object]] = []

    class Recorder:
        @hookimpl
        def kimi_acp_model_switched(self, session_key, model_ref):
            seen.append((session_key, model_ref))

    (clean_env / "openclaw.json").write_text("{}")
    set_plugin_manager(build_plugin_manager(entrypoints=False, extra=(Recorder(),)))
    try:
        assert main(["model", "kimi/kimi-k2.5", "--session", "agent:main:main"]) == 0
        assert main(["model", "default", "--session", "agent:main:main"]) == 0
        assert main(["model", "nosuch/x", "--session", "agent:main:main"]) == 2  # refused: no hook call
    finally:
        set_plugin_manager(None)
    capsys.readouterr()
    assert seen == [("agent:main:main", "kimi/kimi-k2.5"), ("agent:main:main", None)]
