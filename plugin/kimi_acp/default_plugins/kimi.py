"""The Kimi backend preset: Kimi K2.5 (default), K2.6 and K2.7 Code through Kimi's
Anthropic-compatible endpoint.

Works with only ``KIMI_API_KEY`` set and no provider in ``openclaw.json``.
"""

from __future__ import annotations

from ..backends import Backend, ModelInfo
from ..hookspecs import hookimpl

KIMI_BASE_URL = "https://api.kimi.com/coding"
KIMI_MODEL = "kimi-k2.5"
KIMI_CONTEXT = 262_144

PRESET = Backend(
    name="kimi",
    base_url=KIMI_BASE_URL,
    api_key_env=("KIMI_API_KEY", "KIMICODE_API_KEY"),
    model=KIMI_MODEL,
    # kimi-k2.5 stays the default; the newer Kimi Code models are served on the same /coding endpoint.
    models=(
        ModelInfo(id=KIMI_MODEL, name="Kimi K2.5", context_window=KIMI_CONTEXT, max_tokens=32_768),
        ModelInfo(id="kimi-k2.6", name="Kimi K2.6", context_window=KIMI_CONTEXT),
        ModelInfo(id="kimi-k2.7-code", name="Kimi K2.7 Code", context_window=KIMI_CONTEXT),
    ),
    context_window=KIMI_CONTEXT,
    timeout_ms=600_000,
    auth_header="x-api-key",
    max_concurrent=2,
    # Kimi's documented fix for the ToolSearch -> tool_reference 400.
    quirks={"ENABLE_TOOL_SEARCH": "false"},
    sources=("preset kimi (kimi_acp.default_plugins.kimi)",),
)


@hookimpl
def kimi_acp_register_backends(register):  # type: ignore[no-untyped-def]
    register(PRESET)
