"""``kimi-acp stub``: the local Kimi-compatible server, in the foreground."""

from __future__ import annotations

from typing import Any


def run(args: Any) -> int:
    from ..stub.server import serve

    kwargs: dict[str, Any] = {"port": args.port, "scenario": args.scenario}
    if args.key:
        kwargs["key"] = args.key
    return serve(**kwargs)
