"""The Anthropic backend preset: Claude Code on Anthropic's own API, with a clean env.

Unlike ``passthrough`` (which leaves the child the gateway's environment as is),
this backend scrubs inherited redirects and sets ``ANTHROPIC_API_KEY`` from the
parent's ``ANTHROPIC_API_KEY`` explicitly.
"""

from __future__ import annotations

from ..backends import Backend
from ..hookspecs import hookimpl

PRESET = Backend(
    name="anthropic",
    base_url="https://api.anthropic.com",
    api_key_env=("ANTHROPIC_API_KEY",),
    model=None,
    timeout_ms=600_000,
    auth_header="x-api-key",
    sources=("preset anthropic (kimi_acp.default_plugins.anthropic)",),
)


@hookimpl
def kimi_acp_register_backends(register):  # type: ignore[no-untyped-def]
    register(PRESET)
