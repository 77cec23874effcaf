"""Masking secrets for every printer, logger and transcript."""

from __future__ import annotations

import pytest

from kimi_acp.redact import Redactor, is_secret_name, mask, mask_env, redact

KEY = "sk-kimi-test0000000000000000000000000000abcd"


@pytest.mark.parametrize(
    ("secret", "masked"),
    [
        ("sk-kimi-abcdef1234", "sk-kimi-…1234"),
        (KEY, "sk-kimi-…abcd"),
        ("sk-ant-api03-abcdefghijklmnop", "sk-ant-…mnop"),
        ("sk-proj-ABCDEFGHIJKLMNOPQRSTUV", "sk-proj-…STUV"),
        ("sk-ABCDEFGHIJKLMNOP1234", "sk-…1234"),
        ("hunter2hunter2", "…ter2"),
        # short secrets: nothing of the secret itself is shown
        ("sk-kimi-short", "sk-kimi-…"),
        ("sk-kimi-12345678", "sk-kimi-…"),
        ("abc", "…"),
        ("12345678", "…"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask(secret, masked):
    assert mask(secret) == masked


def test_mask_never_shows_more_than_a_short_prefix_and_four_characters():
    secret = "sk-" + "qwertyuiopasdfghjklzxcvbnm" + "-tail1234"
    shown = mask(secret)
    assert "qwertyuiop" not in shown
    assert shown.endswith("…1234")
    assert len(shown) <= len("sk-") + 9 + 1 + 4


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("KIMI_API_KEY", True),
        ("ANTHROPIC_API_KEY", True),
        ("ANTHROPIC_AUTH_TOKEN", True),
        ("CLAUDE_CODE_OAUTH_TOKEN", True),
        ("ANTHROPIC_CUSTOM_HEADERS", True),
        ("OTEL_EXPORTER_OTLP_HEADERS", True),
        ("DB_PASSWORD", True),
        ("aws_secret", True),
        ("CLAUDE_CODE_MAX_CONTEXT_TOKENS", False),
        ("CLAUDE_CODE_MAX_OUTPUT_TOKENS", False),
        ("ANTHROPIC_BASE_URL", False),
        ("ANTHROPIC_MODEL", False),
        ("KEYBOARD", False),
        ("API_TIMEOUT_MS", False),
    ],
)
def test_is_secret_name(name, secret):
    assert is_secret_name(name) is secret


def test_mask_env():
    env = {
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_AUTH_TOKEN": "bearer-token-000000000000wxyz",
        "ANTHROPIC_CUSTOM_HEADERS": "x-secret: 0000000000000000000",
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "262144",
        "ANTHROPIC_BASE_URL": "https://api.kimi.com/coding",
        "NOTE": f"the key is {KEY}",  # a key-shaped value under an innocent name is still masked
    }
    out = mask_env(env)
    assert out == {
        "ANTHROPIC_API_KEY": "sk-kimi-…abcd",
        "ANTHROPIC_AUTH_TOKEN": "…wxyz",
        "ANTHROPIC_CUSTOM_HEADERS": "…0000",
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "262144",
        "ANTHROPIC_BASE_URL": "https://api.kimi.com/coding",
        "NOTE": "the key is sk-kimi-…abcd",
    }
    assert env["ANTHROPIC_API_KEY"] == KEY  # a copy; the input is untouched


def test_redactor_replaces_known_secrets():
    r = Redactor(["hunter2hunter2", None, "", "abc"])
    text = "password=hunter2hunter2; again hunter2hunter2; abc stays"
    out = r(text)
    assert "hunter2hunter2" not in out
    assert out == "password=…ter2; again …ter2; abc stays"  # secrets under 6 characters are not touched


def test_redactor_longest_secret_first():
    r = Redactor(["secret-1234", "secret-1234-extended-9999"])
    out = r("a=secret-1234-extended-9999 b=secret-1234")
    assert "extended" not in out and "secret-1234" not in out


def test_redactor_add():
    r = Redactor()
    assert r("token plainsecretvalue") == "token plainsecretvalue"
    r.add("plainsecretvalue")
    r.add("plainsecretvalue")  # twice is harmless
    assert r("token plainsecretvalue") == "token …alue"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization failed for {KEY}.", "Authorization failed for sk-kimi-…abcd."),
        ("key=sk-proj-abcdefghijklmnopqrstuvwxyz", "key=sk-proj-…wxyz"),
        ("x sk-ABCDEFGHIJKLMNOP1234 y", "x sk-…1234 y"),
        ("a skimpy sk-short text", "a skimpy sk-short text"),  # not key-shaped
    ],
)
def test_default_redactor_masks_key_shaped_text(text, expected):
    assert redact(text) == expected


def test_redaction_is_idempotent():
    once = Redactor([KEY])(f"k={KEY}")
    assert Redactor([KEY])(once) == once == "k=sk-kimi-…abcd"


# --------------------------------------------------------------------------- partial and encoded echoes


def test_a_known_key_without_its_family_prefix_is_masked():
    r = Redactor([KEY])
    body = KEY.removeprefix("sk-kimi-")
    out = r(f"unknown key '{body}'")
    assert body not in out and "test0000" not in out
    assert "…abcd" in out


@pytest.mark.parametrize("prefix", ["", "a", "ab", "x-api-key: "])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_the_base64_of_a_known_key_is_masked_at_any_alignment(prefix, urlsafe):
    import base64

    secret = "sk-kimi-" + "Zq9/+x7Yw3Vb" * 3 + "abcd"  # bytes that give + and / in base64
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    b64 = encode((prefix + secret + "\n").encode()).decode()
    out = Redactor([secret])(f"echo: {b64}")
    # no run of 12 characters of the encoding that depends only on the key is left
    core = encode(secret.encode()).decode()[4:-8]
    assert core not in out
    assert "(base64)" in out


def test_the_hooks_token_is_masked_once_the_config_names_it(clean_env, monkeypatch):
    """A token that is not shaped like a key: masked only because the config says it is one."""
    from kimi_acp.config import load_config
    from kimi_acp.plugins import build_plugin_manager, registered_backends

    token = "gw-hooks-0f3c9a77d2e1b6a54c8e"
    monkeypatch.setenv("MY_HOOKS", token)
    (clean_env / "openclaw.json").write_text('{plugins: {entries: {"kimi-acp": {config: {report: {gateway: {tokenEnv: "MY_HOOKS"}}}}}}}')
    assert token in redact(f"500: {token}")  # the control: unknown, it is not masked
    load_config(presets=registered_backends(build_plugin_manager(entrypoints=False)))
    assert token not in redact(f"500: Bearer {token}")
    assert "…6a54c8e"[-4:] in redact(f"500: Bearer {token}")


def test_a_gateway_500_echoing_the_hooks_token_is_masked_in_the_outbox(clean_env, monkeypatch):
    """The token is the gateway's own (not key-shaped); a 500 body echoes it; what the store
    keeps as the outbox item's last_error has it masked."""
    import anyio

    from fakes import fake_argv
    from fakes.spawning import CONTEXT, FakeHarness, make_pm, wait_until, write_config
    from kimi_acp.spawn import Spawner
    from kimi_acp.stub.gateway import GatewayStub

    token = "gw-hooks-token-77aa31c0e5d94b28"
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("OPENCLAW_HOOKS_TOKEN", token)
    with GatewayStub(token=token) as gw:
        gw.echo_next = 1000  # every attempt: the item stays pending with the echo as its last error
        write_config(clean_env, gateway_url=gw.url)

        async def go():
            async with Spawner(pm=make_pm(FakeHarness(fake_argv("ok")))) as sp:
                answer = await sp.spawn({"task": "x", "runtime": "acp"}, CONTEXT)
                await sp.wait(answer["runId"], timeout=30)
                await wait_until(lambda: gw.failures >= 1, 20, "the echoing 500")
                items = await wait_until(
                    lambda: [i for i in sp.store.outbox_pending(answer["runId"]) if i.last_error], 20, "the failure recorded"
                )
                return items

        items = anyio.run(go)
    error = items[0].last_error
    assert "500" in error and "internal error for Bearer" in error  # the control: the echo is kept, masked
    assert token not in error and token[9:] not in error


def test_a_short_known_secret_body_does_not_cut_into_other_keys():
    r = Redactor(["sk-moon-1234567890"])
    leaked = "sk-kimi-leakedkey1234567890abcdefghijkl"
    assert r(f"my key is {leaked}") == "my key is sk-kimi-…ijkl"
