"""Helpers shared by the commands."""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def load(args: Any):  # type: ignore[no-untyped-def]
    from ..config import load_config

    return load_config(getattr(args, "config", None))


def route_for(cfg: Any, args: Any):  # type: ignore[no-untyped-def]
    """Resolve the route a spawn with these CLI arguments would get."""
    from ..routing import check_agent, resolve

    agent = getattr(args, "agent", None)
    if agent:
        check_agent(cfg, agent)
    session = getattr(args, "session", None)
    stored = None
    if session:
        from ..sessions import SessionModels

        with SessionModels() as table:
            stored = table.get(session)
    return resolve(
        cfg,
        model=getattr(args, "model", None),
        requester_agent=agent,
        target=getattr(args, "target", None),
        session_key=session,
        stored_session_model=stored,
    )


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def environ() -> dict[str, str]:
    return dict(os.environ)
