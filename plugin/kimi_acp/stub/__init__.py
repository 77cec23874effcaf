"""The local Kimi stub: an Anthropic-compatible HTTP server speaking Kimi's dialect.

``StubServer`` runs on a background daemon thread (sync and async tests can both use it);
``serve`` runs it in the foreground for ``kimi-acp stub``. Stdlib only.
"""

from .server import (
    AGENT_PREFIXES,
    DEFAULT_KEY,
    MODEL,
    SCENARIOS,
    RecordedRequest,
    StubServer,
    mask_key,
    parse_scenario,
    serve,
)

__all__ = [
    "AGENT_PREFIXES",
    "DEFAULT_KEY",
    "MODEL",
    "SCENARIOS",
    "RecordedRequest",
    "StubServer",
    "mask_key",
    "parse_scenario",
    "serve",
]
