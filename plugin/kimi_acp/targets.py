"""Which target ACP agents (harness aliases) kimi-acp runs: a spawn for any other is refused
before anything starts (``kimi-acp spawn --target ghost`` must not run Claude Code)."""

from __future__ import annotations

from typing import Any

from .errors import UnknownNameError


def known_targets(cfg: Any) -> list[str]:
    """``harness.targets``, the ``targets`` of our section, OpenClaw's ACP-typed agents, and the
    default target (``acp.defaultAgent``, else ``claude``)."""
    from .routing import default_target

    names = set(cfg.settings.harness.targets) | set(cfg.settings.targets) | {default_target(cfg)}
    names |= {aid for aid, info in cfg.agents.items() if getattr(info, "runtime_type", None) == "acp"}
    return sorted(names)


def check_target(cfg: Any, target: str) -> None:
    known = known_targets(cfg)
    if target not in known:
        raise UnknownNameError(
            f"unknown target ACP agent '{target}' (kimi-acp runs: {', '.join(known)}); "
            "use one of them, or add it to plugins.entries.kimi-acp.config.harness.targets"
        )
