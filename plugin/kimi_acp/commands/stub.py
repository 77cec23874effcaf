"""``kimi-acp stub``: the local Kimi-compatible server, in the foreground.

The key it accepts comes from ``--key-env VAR`` (the variable's value), ``--key`` (argv: every
local user can read it in ``/proc/*/cmdline``), ``$KIMI_STUB_KEY``, or the built-in test key.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def run(args: Any) -> int:
    from ..stub.server import serve

    kwargs: dict[str, Any] = {"port": args.port, "scenario": args.scenario}
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
    return serve(**kwargs)
