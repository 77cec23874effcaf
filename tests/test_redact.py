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
