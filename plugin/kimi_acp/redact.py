"""Masking of secrets for every printer, logger and transcript.

``mask("sk-kimi-abcdef1234")`` gives ``"sk-kimi-…1234"``: the key's family
stays readable, the secret does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_PREFIX = re.compile(r"^(sk-[a-z]{1,8}-|sk-)")  # a short family prefix (sk-kimi-, sk-ant-), never a secret
# Names of variables whose values are secrets.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?|HEADERS)$", re.I)
# Things that look like keys wherever they appear in free text.
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9]+-[A-Za-z0-9_\-]{6,}|sk-[A-Za-z0-9_\-]{16,}")


def mask(secret: str | None) -> str:
    """Mask one secret value: keep a recognisable prefix and the last 4 characters."""
    if not secret:
        return ""
    prefix = ""
    m = _PREFIX.match(secret)
    if m:
        prefix = m.group(1)
    tail = secret[-4:] if len(secret) - len(prefix) > 8 else ""
    return f"{prefix}…{tail}"


def is_secret_name(name: str) -> bool:
    """True when an environment variable's name says its value is a secret."""
    return bool(_SECRET_NAME.search(name))


def mask_env(env: Mapping[str, str]) -> dict[str, str]:
    """Copy of ``env`` with every secret-named variable masked."""
    return {k: (mask(v) if is_secret_name(k) else redact(v)) for k, v in env.items()}


class Redactor:
    """Replaces known secrets (and anything shaped like an API key) in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 6 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, mask(s))
        return _KEY_PATTERN.sub(lambda m: mask(m.group(0)), text)


redact = Redactor()
"""A redactor that knows no particular secret but masks anything shaped like a key."""
