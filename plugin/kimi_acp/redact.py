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


def _base64_forms(secret: str) -> list[str]:
    """Fragments that appear in any base64 (standard or URL-safe) text that encodes
    ``secret``, wherever it starts in the encoded bytes: for each of the three alignments,
    the characters that depend on the secret's bytes only."""
    import base64

    raw = secret.encode()
    forms: list[str] = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
        start = 4 if shift else 0  # the first group mixes in the bytes before the secret
        usable = (shift + len(raw)) // 3 * 4  # whole groups only: the last may mix in what follows
        piece = enc[start:usable]
        if len(piece) >= 12:
            forms.append(piece)
            forms.append(piece.replace("+", "-").replace("/", "_"))
    return forms


class Redactor:
    """Replaces known secrets (and anything shaped like an API key) in text.

    A known secret is also masked when it shows up partly or encoded: its body without a
    family prefix (``sk-kimi-``), and its base64 (standard or URL-safe, at any alignment).
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        self._forms: list[tuple[str, str]] = []  # (text to find, what to show instead)
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < 6 or secret in self._secrets:
            return
        self._secrets.append(secret)
        shown = mask(secret)
        forms = [(secret, shown)]
        m = _PREFIX.match(secret)
        body = secret[m.end():] if m else ""
        if len(body) >= 16:  # a real key's body; a short one would mask unrelated text
            forms.append((body, shown))
        forms += [(b, f"{shown} (base64)") for b in _base64_forms(secret)]
        self._forms.extend(f for f in forms if f[0] not in {x for x, _ in self._forms})
        self._forms.sort(key=lambda f: len(f[0]), reverse=True)

    def __call__(self, text: str) -> str:
        # Key-shaped text first: a known secret's part must not cut into another key.
        text = _KEY_PATTERN.sub(lambda m: mask(m.group(0)), text)
        for found, shown in self._forms:
            if found in text:
                text = text.replace(found, shown)
        return text


redact = Redactor()
"""A redactor that knows no particular secret but masks anything shaped like a key."""
