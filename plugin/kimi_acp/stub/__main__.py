"""``python -m kimi_acp.stub [--port N] [--host H] [--scenario S] [--key K | --key-env VAR | --no-key]``"""

from __future__ import annotations

import argparse
import os
import sys

from .server import DEFAULT_KEY, SCENARIOS, serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kimi_acp.stub", description="Run the local Kimi stub.")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--scenario", default="text", help="one of: " + ", ".join(SCENARIOS))
    p.add_argument(
        "--key",
        default=os.environ.get("KIMI_STUB_KEY", DEFAULT_KEY),
        help="the x-api-key to accept (default: $KIMI_STUB_KEY or the built-in test key)",
    )
    p.add_argument("--key-env", metavar="VAR", help="read the key to accept from this environment variable")
    p.add_argument("--no-key", action="store_true", help="accept any key")
    args = p.parse_args(argv)
    key = args.key
    if args.key_env:
        key = os.environ.get(args.key_env) or ""
        if not key:
            p.error(f"--key-env {args.key_env}: that variable is not set or empty")
    return serve(port=args.port, key=None if args.no_key else key, scenario=args.scenario, host=args.host)


if __name__ == "__main__":
    sys.exit(main())
