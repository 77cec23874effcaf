"""manifest.json: generated from the pydantic models, never stale, and its configSchema
accepts what our section accepts and rejects what it rejects."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kimi_acp import __version__, hookspecs, manifest
from kimi_acp.cli import main
from kimi_acp.manifest import MANIFEST_PATH, build_manifest, render
from kimi_acp.settings import KimiAcpSettings

HOOK_NAMES = sorted(n for n in dir(hookspecs) if n.startswith("kimi_acp_"))

GOOD = {
    "defaultBackend": "kimi",
    "agents": {"coder": {"backend": "kimi"}, "writer": {"backend": "anthropic", "model": "claude-sonnet-4-5"}},
    "targets": {"claude": {"backend": "kimi"}},
    "backends": {
        "kimi": {
            "baseUrl": "https://api.kimi.com/coding",
            "apiKey": "${KIMI_API_KEY}",
            "model": "kimi-k2.5",
            "contextWindow": 262144,
            "timeoutMs": 600000,
            "authHeader": "x-api-key",
            "env": {"ENABLE_TOOL_SEARCH": "false"},
            "maxConcurrent": 2,
        }
    },
    "limits": {"maxConcurrent": 4, "perBackend": {"kimi": 1}, "runTimeoutSeconds": 0, "graceSeconds": 2.5},
    "harness": {"command": "/usr/bin/claude", "args": ["--verbose"], "permissionMode": "approve-all", "allowRootBypass": True},
    "report": {"gateway": {"url": "http://127.0.0.1:18789", "token": "${OPENCLAW_HOOKS_TOKEN}", "deliver": False}},
}

BAD = {
    "unknown top-level key": {"defaultBackend": "kimi", "defaultBackends": "kimi"},
    "unknown nested key": {"backends": {"kimi": {"baseURL": "https://x"}}},
    "unknown key in a route": {"agents": {"coder": {"backend": "kimi", "model": "m", "extra": 1}}},
    "wrong type": {"defaultBackend": 5},
    "timeout below 120 s": {"backends": {"kimi": {"timeoutMs": 5000}}},
    "bad enum": {"harness": {"permissionMode": "yolo"}},
    "bad auth header": {"backends": {"kimi": {"authHeader": "basic"}}},
    "args not strings": {"harness": {"args": [1]}},
    "negative limit": {"limits": {"maxConcurrent": 0}},
    "grace too long": {"limits": {"graceSeconds": 500}},
}


# --------------------------------------------------------------------------- a tiny validator
# Used when the `jsonschema` package is not importable in the venv. It knows exactly the
# keywords the generated schema uses, and fails loudly if the schema starts using others.

_KNOWN_KEYWORDS = {
    "$schema", "type", "properties", "additionalProperties", "required", "anyOf", "enum",
    "items", "minimum", "maximum", "default", "description", "writeOnly", "const",
}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def mini_errors(schema: dict[str, Any], value: Any, path: str = "$") -> list[str]:
    unknown = set(schema) - _KNOWN_KEYWORDS
    assert not unknown, f"mini validator does not know {unknown} (at {path}); extend it"
    errors: list[str] = []
    if "anyOf" in schema:
        if all(mini_errors(s, value, path) for s in schema["anyOf"]):
            errors.append(f"{path}: matches no anyOf branch")
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_TYPES[x](value) for x in types):
            return [*errors, f"{path}: not of type {t}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not in enum")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: not const")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: above maximum")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                errors.append(f"{path}: missing {req}")
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errors += mini_errors(props[k], v, f"{path}.{k}")
            elif extra is False:
                errors.append(f"{path}: additional property {k}")
            elif isinstance(extra, dict):
                errors += mini_errors(extra, v, f"{path}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += mini_errors(schema["items"], v, f"{path}[{i}]")
    return errors


def jsonschema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return [e.message for e in cls(schema).iter_errors(value)]


def _pydantic_accepts(section: dict[str, Any]) -> bool:
    from pydantic import ValidationError

    try:
        KimiAcpSettings.model_validate(section)
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return build_manifest()["configSchema"]


# --------------------------------------------------------------------------- the file on disk


def test_manifest_on_disk_is_not_stale():
    assert MANIFEST_PATH.exists(), f"{MANIFEST_PATH} is missing: run `kimi-acp manifest --write`"
    on_disk = MANIFEST_PATH.read_text(encoding="utf-8")
    assert on_disk == render(build_manifest()), (
        "manifest.json is stale (the config models or hookspecs changed): run `kimi-acp manifest --write`"
    )


def test_manifest_identity():
    m = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert m["id"] == "kimi-acp"
    assert m["version"] == __version__
    assert m["description"]


def test_manifest_hooks_are_the_hookspecs():
    m = build_manifest()
    assert m["hooks"]["kimi_acp"] == HOOK_NAMES
    assert HOOK_NAMES == manifest.hook_names()


def test_manifest_check_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "manifest.json"
    stale.write_text('{"id": "kimi-acp"}\n')
    monkeypatch.setattr(manifest, "MANIFEST_PATH", stale)
    assert main(["manifest", "--check"]) == 1
    err = capsys.readouterr().err
    assert f"stale: {stale}" in err
    assert "kimi-acp manifest --write" in err


def test_manifest_prints_to_stdout(capsys):
    assert main(["manifest"]) == 0
    assert json.loads(capsys.readouterr().out) == build_manifest()


# --------------------------------------------------------------------------- configSchema


def test_schema_structure(schema):
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(KimiAcpSettings.model_fields)
    assert "$defs" not in json.dumps(schema) and "$ref" not in json.dumps(schema)
    backend = schema["properties"]["backends"]["additionalProperties"]
    assert backend["additionalProperties"] is False
    assert "baseUrl" in backend["properties"]
    # every field carries a description (Field(description=...))
    for name, prop in backend["properties"].items():
        assert prop.get("description"), f"backends.*.{name} has no description"


def test_ui_hints_mark_secrets_sensitive():
    hints = build_manifest()["uiHints"]
    assert hints["backends.*.apiKey"]["sensitive"] is True
    assert hints["report.gateway.token"]["sensitive"] is True
    assert not hints.get("backends.*.baseUrl", {}).get("sensitive")


def test_ui_hints_name_real_fields(schema):
    hints = build_manifest()["uiHints"]
    for dotted in hints:
        node = schema
        for part in dotted.split("."):
            if part == "*":
                node = node["additionalProperties"]
            else:
                assert part in node.get("properties", {}), f"uiHints {dotted!r}: no field {part!r}"
                node = node["properties"][part]
            if "anyOf" in node:  # an optional field, or a map of optional entries (null removes one)
                node = next(s for s in node["anyOf"] if s.get("type") != "null")


def test_schema_accepts_a_good_section(schema):
    assert _pydantic_accepts(GOOD)
    assert mini_errors(schema, GOOD) == []
    assert mini_errors(schema, {}) == []


@pytest.mark.parametrize("case", sorted(BAD))
def test_schema_rejects_a_bad_section(schema, case):
    section = BAD[case]
    assert not _pydantic_accepts(section), f"pydantic accepts {case}"
    assert mini_errors(schema, section), f"the schema accepts {case}"


def test_with_jsonschema_package(schema):
    pytest.importorskip("jsonschema", reason="jsonschema is not installed in the venv; the mini validator covers it")
    assert jsonschema_errors(schema, GOOD) == []
    for case, section in BAD.items():
        assert jsonschema_errors(schema, section), f"jsonschema accepts {case}"
