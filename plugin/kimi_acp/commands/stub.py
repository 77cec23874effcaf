"""``kimi-acp stub``: the local Kimi-compatible server, in the foreground.

The key it accepts comes from ``--key-env VAR`` (the variable's value), ``--key`` (argv: every
local user can read it in ``/proc/*/cmdline``), ``$KIMI_STUB_KEY``, or the built-in test key.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def run(args: Any) -> int:
    from ..errors import UsageError
    from ..stub.server import parse_scenario, serve

    try:
        parse_scenario(args.scenario)
    except ValueError as exc:
        raise UsageError(f"--scenario: {exc}", hint="use text, tool_use, error:429, hang, stall or slow:SECONDS") from None
    kwargs: dict[str, Any] = {"port": args.port, "scenario": args.scenario, "base_path": args.base_path,
                              "as_json": bool(getattr(args, "json", False))}
    key_env = getattr(args, "key_env", None)
    if key_env:
        key = os.environ.get(key_env)
        if not key:
            print(f"kimi-acp stub: --key-env {key_env}: that variable is not set or empty\nhint: export {key_env}=<the key>",
                  file=sys.stderr)
            return 2
        kwargs["key"] = key
    elif args.key:
        kwargs["key"] = args.key
    elif os.environ.get("KIMI_STUB_KEY"):
        kwargs["key"] = os.environ["KIMI_STUB_KEY"]
    try:
        return serve(**kwargs)
    except OSError as exc:  # a busy or privileged port
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
                         hint="pick another --port, or 0 for any free port") from None
