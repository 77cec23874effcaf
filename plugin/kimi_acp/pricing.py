"""What a run cost, and who priced it.

Claude Code prices every run as if a Claude model ran it (its result's ``total_cost_usd``):
right for Anthropic, meaningless for Kimi. So a run's cost is

- ``kimi-acp``-priced when the run's model has a per-token price (OpenClaw's model ``cost``,
  USD per million tokens, from ``openclaw.json`` or the backend's preset: K3 is $3 input,
  $0.30 cached input, $15 output): its usage times those prices;
- ``claude-code``-priced (Claude Code's own figure) when the run went to Anthropic itself
  (``passthrough``, or a backend on api.anthropic.com) and no price is configured;
- unknown (``None``) otherwise, e.g. ``kimi-for-coding``, which runs on the plan's quota: an
  all-zero ``cost`` (OpenClaw's catalog has one for it) also means "no per-token price".

Stdlib only: ``ps`` and ``show`` import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KIMI_ACP = "kimi-acp"
CLAUDE_CODE = "claude-code"
SOURCES = (KIMI_ACP, CLAUDE_CODE)
"""The values of a run's ``costSource``."""

_ANTHROPIC_HOSTS = ("api.anthropic.com",)


def _host(url: str | None) -> str:
    return (url or "").split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()


def run_cost(backend: Any, model: str | None, usage: Mapping[str, Any] | None,
             claude_cost: float | None) -> tuple[float | None, str | None]:
    """``(costUsd, costSource)`` of a run on ``backend`` (a :class:`~kimi_acp.backends.Backend`,
    or None when unknown) and ``model`` with ``usage`` (Claude Code's four token counts) and
    Claude Code's own ``claude_cost``. See the module docstring for the rules."""
    if backend is not None and not backend.passthrough:
        info = backend.model_info(model)
        if info is not None and info.cost is not None and not info.cost.free:
            return round(info.cost.price(usage or {}), 6), KIMI_ACP
        if _host(backend.base_url) not in _ANTHROPIC_HOSTS:
            return None, None
    if claude_cost is None:
        return None, None
    return claude_cost, CLAUDE_CODE


def describe(cost_usd: float | None, source: str | None) -> str:
    """``$0.0123 (kimi-acp)``, or ``n/a`` when unknown; for tables and the completion event."""
    if cost_usd is None or source not in SOURCES:  # unpriced, or a figure of unknown origin (older runs)
        return "n/a"
    return f"${cost_usd:.4f}" + (f" ({source})" if source else "")
