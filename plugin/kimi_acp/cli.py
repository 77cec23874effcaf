"""The ``kimi-acp`` command line.

Parsers are built here (cheap); each command's code is imported only when that
command runs, so ``kimi-acp env`` and ``kimi-acp ps`` start fast.

Exit codes: one table for every command, :mod:`kimi_acp.exitcodes` (shown in ``--help``).
Errors follow :mod:`kimi_acp.commands.output`: one line and a ``hint:``, or with ``--json``
one ``{"error": {"code", "message", "hint"}}`` object on stdout.
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
    "ps": "kimi_acp.commands.ps:run",
    "show": "kimi_acp.commands.ps:show",
    "wait": "kimi_acp.commands.runs:wait",
    "kill": "kimi_acp.commands.runs:kill",
    "logs": "kimi_acp.commands.logs:run",
    "outbox": "kimi_acp.commands.outbox:run",
    "prune": "kimi_acp.commands.ps:prune",
    "demo": "kimi_acp.commands.demo:run",
    "acp": "kimi_acp.acp_stdio:run",
    "install": "kimi_acp.install:run",
    "hook": "kimi_acp.commands.hook:run",
}

INTERNAL = ("acp", "hook", "manifest")
"""Commands OpenClaw, acpx or the build call; not listed among the user's commands."""

# One-shot commands whose work is fully done (store closed, output flushed) when they return.
FAST_EXIT = {"spawn", "env", "ps", "show", "logs"}

RUN_COMMANDS = {"ps", "show", "wait", "kill", "logs", "outbox"}
"""Commands on stored runs; their --config is where a lost run's report or a retry goes."""

STATUSES = ("queued", "running", "ok", "error", "refused", "timeout", "cancelled", "lost", "rate_limited")


class UsageError(Exception):
    """argparse's complaint, turned into our error contract by :func:`main`."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _epilog(examples: str = "") -> str:
    from .exitcodes import help_text

    text = f"examples:\n{examples.rstrip()}\n\n" if examples else ""
    return text + help_text()


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="openclaw.json (default: $OPENCLAW_CONFIG_PATH, else ~/.openclaw/openclaw.json)")


def _json_arg(p: argparse.ArgumentParser, what: str = "print JSON") -> None:
    p.add_argument("--json", action="store_true", help=what + "; errors too, as {\"error\": {\"code\", \"message\", \"hint\"}}")


THINKING_LEVELS = ("off", "minimal", "low", "medium", "high", "adaptive", "xhigh", "max")
THINKING_HELP = ("OpenClaw's thinking level (off, minimal, low, medium, high, adaptive, xhigh, max), passed to Claude "
                 "Code as --effort; on K3 as OpenClaw's Kimi provider maps it: minimal/low -> low, "
                 "medium/high/adaptive -> high, xhigh/max -> max, off -> no thinking field and effort low")


def _route_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", metavar="ID", help="the requesting OpenClaw agent id (its routing rule applies)")
    p.add_argument("--target", metavar="ACP_AGENT", help="the target ACP agent (harness alias), e.g. claude")
    p.add_argument("--session", metavar="KEY", help="the requester session key, e.g. agent:main:main (results are reported to it)")
    p.add_argument("--model", metavar="REF", help="an explicit model ref (kimi/k3, kimi/k3[1m], kimi/kimi-for-coding) or alias (Kimi K3)")


def _add(sub: argparse._SubParsersAction, name: str, summary: str, description: str = "", examples: str = "") -> argparse.ArgumentParser:
    kwargs = {} if name in INTERNAL else {"help": summary}
    return sub.add_parser(  # type: ignore[no-any-return]
        name, description=(summary[0].upper() + summary[1:] + ".") + (f"\n\n{description}" if description else ""),
        epilog=_epilog(examples), formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs,
    )


def _positive_timeout(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if not 1 <= n <= 86_400:
        raise argparse.ArgumentTypeError(f"{n} is out of range: 1 to 86400 seconds (24 h)")
    return n


def _nonempty(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kimi-acp",
        description="Run OpenClaw's ACP spawns of Claude Code on Kimi (or any Anthropic-compatible backend) and report results back.",
        epilog=_epilog(
            "  kimi-acp doctor                      # is everything in place?\n"
            "  kimi-acp env --agent coder           # what coder's spawns get, and why\n"
            "  kimi-acp spawn \"fix the test\" --agent coder\n"
            "  kimi-acp ps --all                    # runs, with their delivery\n"
            "  kimi-acp logs RUN --tail 20          # what the run did"
        ) + "\n\ninternal commands (for OpenClaw, acpx and the build): " + ", ".join(INTERNAL),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--state-dir", metavar="DIR", help="where runs, transcripts and the outbox live (default: $KIMI_ACP_STATE_DIR, else ~/.openclaw/kimi-acp)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = _add(sub, "env", "show the backend a spawn would get, why, and its environment",
             "Routing first: the rule that chose the backend. A missing key is shown (and exits 3), not hidden.",
             "  kimi-acp env --agent coder\n  kimi-acp env --session agent:main:main --json")
    _route_args(p)
    _config_arg(p)
    _json_arg(p, 'print {"backend", "reason", "set", "unset", ...}')
    p.add_argument("--reveal", action="store_true", help="show secrets unmasked")
    p.add_argument("--cwd", metavar="DIR", help="the run's cwd, for Claude Code's project settings (default: here)")
    p.add_argument("--thinking", choices=THINKING_LEVELS, metavar="LEVEL", help="also show what this thinking level becomes")

    p = _add(sub, "doctor", "check config, routing, key, Claude Code, the backend and the report path",
             "Checks what your spawns will use: each configured agent's backend and the global default\n"
             "(or only the one --agent/--model picks), its key, a live probe, and the gateway that gets results.",
             "  kimi-acp doctor\n  kimi-acp doctor --agent coder --offline\n  kimi-acp doctor --json")
    p.add_argument("--agent", metavar="ID", help="check only this agent's backend")
    p.add_argument("--target", metavar="ACP_AGENT", help="the target ACP agent (harness alias)")
    p.add_argument("--model", metavar="REF", help="check only this model ref's backend")
    _config_arg(p)
    _json_arg(p)
    p.add_argument("--offline", action="store_true", help="skip the live probes (backend and gateway)")
    p.add_argument("--timeout", type=float, default=30.0, help="probe timeout in seconds (default 30)")
    p.add_argument("--cwd", metavar="DIR", help="the run's cwd, for Claude Code's project settings (default: here)")

    p = _add(sub, "model", "show, set or clear a session's model choice for its spawns", "",
             "  kimi-acp model kimi/k3 --session agent:main:main\n  kimi-acp model default --session agent:main:main")
    p.add_argument("ref", nargs="?", help="a model ref or alias; 'default' clears the choice")
    p.add_argument("--session", metavar="KEY", required=True, type=_nonempty, help="the OpenClaw session key")
    _config_arg(p)
    _json_arg(p)

    p = _add(sub, "stub", "run the local Kimi-compatible stub server on 127.0.0.1",
             "It is as strict as Kimi about paths: only <base path>/v1/messages answers.",
             "  kimi-acp stub --port 8765\n  kimi-acp stub --scenario error:429")
    p.add_argument("--port", type=int, default=0, help="the port (default 0: any free port)")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--key-env", metavar="VAR",
                      help="read the API key the stub accepts from this environment variable (keeps it out of ps)")
    keys.add_argument("--key", help="the API key the stub accepts, in argv (visible in ps; prefer --key-env); "
                      "default: $KIMI_STUB_KEY, else the built-in test key")
    p.add_argument("--scenario", default="text", help="text, tool_use, error:429, hang, stall, slow:SECONDS")
    p.add_argument("--base-path", default="/coding", metavar="PATH", help="where the API lives (default /coding, like Kimi)")
    _json_arg(p, 'print {"baseUrl", "apiKey", "scenario"} (the key masked unless it is the built-in test key) once listening')

    p = _add(sub, "manifest", "print or regenerate manifest.json")
    p.add_argument("--write", action="store_true", help="write manifest.json and the OpenClaw extension's files")
    p.add_argument("--check", action="store_true", help="exit 1 if the files on disk are stale")

    p = _add(sub, "spawn", "spawn Claude Code on the chosen backend and wait for its result",
             "Progress goes to stderr (live on a terminal: elapsed, current tool, retries, tokens);\n"
             "the result text (or with --json the run object) to stdout.",
             "  kimi-acp spawn \"fix the failing test\" --agent coder --cwd ~/src/proj\n"
             "  kimi-acp spawn - --json < task.md\n"
             "  kimi-acp spawn \"long job\" --no-wait --session agent:main:main")
    p.add_argument("task", help="the task ('-' reads it from stdin)")
    _route_args(p)
    _config_arg(p)
    p.add_argument("--label", metavar="L", help="a short name shown by ps")
    p.add_argument("--cwd", metavar="DIR", help="the run's working directory (default: here)")
    p.add_argument("--timeout", type=_positive_timeout, metavar="S", help="runTimeoutSeconds, 1 to 86400")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="extra child environment (repeatable)")
    p.add_argument("--thinking", choices=THINKING_LEVELS, metavar="LEVEL", help=THINKING_HELP)
    _json_arg(p, "print the run object")
    p.add_argument("--no-wait", action="store_true", help="return once the run is accepted (a detached worker supervises it)")

    p = _add(sub, "ps", "list runs", "Active runs by default; DELIVERY says whether the result reached the requester.",
             "  kimi-acp ps --all\n  kimi-acp ps --status error --agent coder\n  kimi-acp ps -q --status running")
    _json_arg(p, "print the run objects")
    p.add_argument("--all", "-a", action="store_true", help="include finished runs")
    p.add_argument("--status", action="append", choices=STATUSES, metavar="STATUS",
                   help=f"only runs with this status (repeatable; implies --all): {', '.join(STATUSES)}")
    p.add_argument("--agent", metavar="ID", help="only runs requested by this agent (implies --all)")
    p.add_argument("--quiet", "-q", action="store_true", help="print run ids only")
    p.add_argument("--limit", type=int, default=200, metavar="N", help="at most N runs (default 200)")
    _config_arg(p)

    p = _add(sub, "show", "show one run: status, backend, result, delivery", "", "  kimi-acp show 3f2a\n  kimi-acp show 3f2a --json")
    p.add_argument("run_id", metavar="RUN", help="a run id or a unique prefix")
    _json_arg(p, "print the run object")
    _config_arg(p)

    for name, help_, ex in (("wait", "wait for a run and print its result", "  kimi-acp wait 3f2a --timeout 60"),
                            ("kill", "cancel a run (its whole process group)", "  kimi-acp kill 3f2a")):
        p = _add(sub, name, help_, "", ex)
        p.add_argument("run_id", metavar="RUN", help="a run id or a unique prefix")
        _json_arg(p, "print the run object")
        _config_arg(p)
        if name == "wait":
            p.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (exit 7; the run goes on)")

    p = _add(sub, "logs", "show what a run did: text, tool calls and results, retries, the result",
             "--raw prints the transcript as stored (Claude Code's stream-json).",
             "  kimi-acp logs 3f2a\n  kimi-acp logs 3f2a --tail 20 --follow\n  kimi-acp logs 3f2a --raw | jq .type")
    p.add_argument("run_id", metavar="RUN", help="a run id or a unique prefix")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    p.add_argument("--raw", action="store_true", help="print the stream-json lines as stored")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N entries (lines with --raw)")
    p.add_argument("--json", action="store_true", help="the transcript's JSON lines, as --raw; errors as JSON too")
    _config_arg(p)

    p = _add(sub, "outbox", "list results not yet delivered to the requester, or retry them now",
             "Results go to the OpenClaw gateway's /hooks/agent; failed deliveries are retried with backoff.",
             "  kimi-acp outbox\n  kimi-acp outbox --retry")
    p.add_argument("--retry", action="store_true", help="try every undelivered result now")
    p.add_argument("--all", action="store_true", help="include delivered results")
    _json_arg(p)
    _config_arg(p)

    p = _add(sub, "prune", "delete finished runs (and their transcripts) older than a given age", "",
             "  kimi-acp prune --older-than 7d\n  kimi-acp prune --older-than 12h --dry-run")
    p.add_argument("--older-than", default="7d", metavar="AGE", help="e.g. 30m, 12h, 7d (default 7d)")
    p.add_argument("--dry-run", action="store_true", help="only say what would go")
    _json_arg(p)

    p = _add(sub, "demo", "spawn a real Claude Code task through kimi-acp against the local stub (or Kimi with --live)", "",
             "  kimi-acp demo\n  kimi-acp demo --json")
    p.add_argument("--live", action="store_true", help="use Kimi itself (needs KIMI_API_KEY)")
    p.add_argument("--task", default="List the files in this directory with a tool, then say which backend you run on.",
                   help="the task to spawn")
    _json_arg(p, "print the run object (the demo's narration goes to stderr)")

    p = _add(sub, "acp", "serve the Agent Client Protocol on stdio (for acpx / OpenClaw)")
    p.add_argument("--agent", metavar="ID", help="requesting agent id for routing")
    p.add_argument("--backend", metavar="NAME", help="force a backend")
    _config_arg(p)

    p = _add(sub, "install", "wire kimi-acp into openclaw.json (keeps comments)", "",
             "  kimi-acp install --agent coder --dry-run\n  kimi-acp install --global")
    p.add_argument("--agent", action="append", default=[], metavar="ID", help="route this agent's spawns to the backend (repeatable)")
    p.add_argument("--global", dest="global_", action="store_true", help="route every spawn to the backend")
    p.add_argument("--backend", default="kimi", metavar="NAME", help="the backend (default kimi)")
    p.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    p.add_argument("--uninstall", action="store_true", help="remove what install added")
    p.add_argument("--no-plugin-lookups", action="store_true",
                   help="for a gateway WITHOUT internet only: turn OpenClaw's own kimi and moonshot plugins off "
                        "(plugins.entries.<id>.enabled: false) so it stops looking them up on npm/ClawHub at every "
                        "start; this also turns off OpenClaw's Kimi Coding and Moonshot providers and Kimi web search "
                        "(see docs/troubleshooting.md)")
    _config_arg(p)

    p = _add(sub, "hook", "OpenClaw extension bridge: JSON on stdin, JSON on stdout")
    p.add_argument("name", choices=["before-tool-call"])
    _config_arg(p)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser()
    from .commands.output import emit_error
    from .exitcodes import CANCELLED, FAILED, USAGE

    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        emit_error(command, "usage", str(exc), f"see `kimi-acp {command + ' ' if command else ''}--help`", as_json=as_json)
        return USAGE
    if not args.command:
        parser.print_help()
        return USAGE
    if args.state_dir:
        os.environ["KIMI_ACP_STATE_DIR"] = os.path.abspath(os.path.expanduser(args.state_dir))
    if args.command in RUN_COMMANDS and getattr(args, "config", None):
        # the run commands read the config only deep inside (recovery's reports, outbox --retry)
        os.environ["OPENCLAW_CONFIG_PATH"] = os.path.abspath(os.path.expanduser(args.config))
    modname, _, funcname = COMMANDS[args.command].partition(":")
    # pydantic looks for its own plugins in every installed distribution (~30 ms); kimi-acp uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from .errors import KimiAcpError, split_hint

    as_json = bool(getattr(args, "json", False))
    try:
        func = getattr(importlib.import_module(modname), funcname)
        return int(func(args) or 0)
    except KimiAcpError as exc:
        emit_error(args.command, exc.code, split_hint(str(exc))[0], exc.hint, as_json=as_json)
        return exc.exit_code
    except KeyboardInterrupt:
        return CANCELLED
    except BrokenPipeError:
        return FAILED
    except OSError as exc:  # a state dir or file we cannot use: say which, no traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        emit_error(args.command, "os_error", f"{exc.strerror or exc}{where}",
                   "check the path and its permissions (state dir: --state-dir or KIMI_ACP_STATE_DIR)", as_json=as_json)
        return FAILED


def run() -> None:
    """The ``kimi-acp`` console script: :func:`main`, then a fast exit for one-shot commands.

    When ``spawn``, ``env``, ``ps``, ``show`` or ``logs`` return, everything is committed and
    closed; the interpreter's teardown (tens of ms freeing pydantic and anyio state) is skipped
    with ``os._exit``. Only here, never in :func:`main`, which embedding code and tests call in-process.
    """
    argv = sys.argv[1:]
    code = main(argv)
    if any(a in FAST_EXIT for a in argv[:3]):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
