"""The ``kimi-acp`` command line.

Parsers are built here (cheap); each command's code is imported only when that
command runs, so ``kimi-acp env`` starts fast.

Exit codes: 0 ok; 1 a run or check failed; 2 bad config or usage; 3 missing key;
4 Claude Code not found; 5 spawn blocked; 6 unknown run; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# command -> "module:function"; the function takes the parsed args and returns an exit code.
COMMANDS = {
    "env": "kimi_acp.commands.env:run",
    "doctor": "kimi_acp.commands.doctor:run",
    "model": "kimi_acp.commands.model:run",
    "stub": "kimi_acp.commands.stub:run",
    "manifest": "kimi_acp.manifest:run",
    "spawn": "kimi_acp.commands.runs:spawn",
    "ps": "kimi_acp.commands.runs:ps",
    "wait": "kimi_acp.commands.runs:wait",
    "kill": "kimi_acp.commands.runs:kill",
    "logs": "kimi_acp.commands.runs:logs",
    "demo": "kimi_acp.commands.demo:run",
    "acp": "kimi_acp.acp_server:run",
    "install": "kimi_acp.install:run",
    "hook": "kimi_acp.commands.hook:run",
}


# One-shot commands whose work is fully done (store closed, output flushed) when they return.
FAST_EXIT = {"spawn", "env"}


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="openclaw.json (default: $OPENCLAW_CONFIG_PATH, else ~/.openclaw/openclaw.json)")


def _route_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", metavar="ID", help="the requesting OpenClaw agent id")
    p.add_argument("--target", metavar="ACP_AGENT", help="the target ACP agent (harness alias), e.g. claude")
    p.add_argument("--session", metavar="KEY", help="the requester session key, e.g. agent:main:main")
    p.add_argument("--model", metavar="REF", help="an explicit model ref (kimi/kimi-k2.5) or alias (Kimi K2.5)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kimi-acp",
        description="Run OpenClaw's ACP spawns of Claude Code on Kimi (or any Anthropic-compatible backend) and report results back.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("env", help="show the backend a spawn would get, why, and its environment")
    _route_args(p)
    _config_arg(p)
    p.add_argument("--json", action="store_true", help='print {"backend", "reason", "set", "unset"}')
    p.add_argument("--reveal", action="store_true", help="show secrets unmasked")
    p.add_argument("--cwd", metavar="DIR", help="the run's cwd, for Claude Code's project settings (default: here)")

    p = sub.add_parser("doctor", help="check config, key, Claude Code and the backend")
    p.add_argument("--agent", metavar="ID")
    p.add_argument("--target", metavar="ACP_AGENT")
    p.add_argument("--model", metavar="REF")
    _config_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--offline", action="store_true", help="skip the live probe of the backend")
    p.add_argument("--timeout", type=float, default=30.0, help="probe timeout in seconds (default 30)")
    p.add_argument("--cwd", metavar="DIR", help="the run's cwd, for Claude Code's project settings (default: here)")

    p = sub.add_parser("model", help="show, set or clear a session's model choice for its spawns")
    p.add_argument("ref", nargs="?", help="a model ref or alias; 'default' clears the choice")
    p.add_argument("--session", metavar="KEY", required=True)
    _config_arg(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("stub", help="run the local Kimi-compatible stub server on 127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--key-env", metavar="VAR",
                      help="read the API key the stub accepts from this environment variable (keeps it out of ps)")
    keys.add_argument("--key", help="the API key the stub accepts, in argv (visible in ps; prefer --key-env); "
                      "default: $KIMI_STUB_KEY, else the built-in test key")
    p.add_argument("--scenario", default="text", help="text, tool_use, error:429, hang, stall, slow:SECONDS")

    p = sub.add_parser("manifest", help="print or regenerate manifest.json")
    p.add_argument("--write", action="store_true", help="write manifest.json and the OpenClaw extension's files")
    p.add_argument("--check", action="store_true", help="exit 1 if the files on disk are stale")

    p = sub.add_parser("spawn", help="spawn Claude Code on the chosen backend and wait for its result")
    p.add_argument("task", help="the task ('-' reads it from stdin)")
    _route_args(p)
    _config_arg(p)
    p.add_argument("--label", metavar="L")
    p.add_argument("--cwd", metavar="DIR")
    p.add_argument("--timeout", type=int, metavar="S", help="runTimeoutSeconds")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="extra child environment (repeatable)")
    p.add_argument("--json", action="store_true", help="print the result object")
    p.add_argument("--no-wait", action="store_true", help="print the accepted answer and return at once")

    p = sub.add_parser("ps", help="list runs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="include finished runs")

    for name, help_ in (("wait", "wait for a run and print its result"), ("kill", "cancel a run (its whole process group)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("run_id", metavar="RUN_ID")
        p.add_argument("--json", action="store_true")
        if name == "wait":
            p.add_argument("--timeout", type=float, metavar="S")

    p = sub.add_parser("logs", help="print a run's transcript")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--follow", "-f", action="store_true")

    p = sub.add_parser("demo", help="spawn a real Claude Code task through kimi-acp against the local stub (or Kimi with --live)")
    p.add_argument("--live", action="store_true", help="use Kimi itself (needs KIMI_API_KEY)")
    p.add_argument("--task", default="Say hello and tell me which backend you run on.")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("acp", help="serve the Agent Client Protocol on stdio (for acpx / OpenClaw)")
    p.add_argument("--agent", metavar="ID", help="requesting agent id for routing")
    p.add_argument("--backend", metavar="NAME", help="force a backend")
    _config_arg(p)

    p = sub.add_parser("install", help="wire kimi-acp into openclaw.json (keeps comments)")
    p.add_argument("--agent", action="append", default=[], metavar="ID")
    p.add_argument("--global", dest="global_", action="store_true")
    p.add_argument("--backend", default="kimi", metavar="NAME")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--uninstall", action="store_true")
    _config_arg(p)

    p = sub.add_parser("hook", help="OpenClaw extension bridge: JSON on stdin, JSON on stdout")
    p.add_argument("name", choices=["before-tool-call"])
    _config_arg(p)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    modname, _, funcname = COMMANDS[args.command].partition(":")
    # pydantic looks for its own plugins in every installed distribution (~30 ms); kimi-acp uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from .errors import KimiAcpError
    from .redact import redact

    try:
        func = getattr(importlib.import_module(modname), funcname)
        return int(func(args) or 0)
    except KimiAcpError as exc:
        print(f"kimi-acp {args.command}: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


def run() -> None:
    """The ``kimi-acp`` console script: :func:`main`, then a fast exit for one-shot commands.

    When ``spawn`` or ``env`` return, everything is committed and closed; the interpreter's
    teardown (tens of ms freeing pydantic and anyio state) is skipped with ``os._exit``.
    Only here, never in :func:`main`, which embedding code and tests call in-process.
    """
    argv = sys.argv[1:]
    code = main(argv)
    if argv and argv[0] in FAST_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
