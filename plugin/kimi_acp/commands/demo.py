"""``kimi-acp demo``: the whole path, once, on this machine.

Starts the local Kimi stub (or, with ``--live``, uses Kimi itself) and a local
stand-in for the OpenClaw gateway's ``/hooks/agent``; writes a scratch
``openclaw.json`` that routes agent ``main``'s spawns to the ``kimi`` backend;
puts a decoy Anthropic credential in the parent environment (to show it is
scrubbed); spawns a real Claude Code task through the :class:`Spawner` exactly
as an OpenClaw agent's ``sessions_spawn(runtime="acp")`` would; shows progress;
and prints the completion event that goes back to the requesting session.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

SESSION = "agent:main:main"
DECOY = "sk-ant-decoy-fake-gateway-token-000000000"

_out = sys.stdout


def _say(text: str = "") -> None:
    """The demo's narration: stdout, or stderr with --json (stdout then holds the run object only)."""
    print(text, file=_out, flush=True)


def run(args: Any) -> int:
    import anyio

    return anyio.run(_demo, args)


async def _demo(args: Any) -> int:
    import anyio

    global _out
    _out = sys.stderr if args.json else sys.stdout

    from ..plugins import get_plugin_manager
    from ..redact import mask, redact
    from ..spawn import Spawner
    from ..stub.gateway import GatewayStub
    from ..progress import Progress

    live = bool(args.live)
    if live and not os.environ.get("KIMI_API_KEY"):
        print("kimi-acp demo --live: set KIMI_API_KEY to your Kimi For Coding key (sk-kimi-…)", file=sys.stderr)
        return 3
    stub = None
    work = Path(tempfile.mkdtemp(prefix="kimi-acp-demo-"))
    gateway = GatewayStub(token="demo-hooks-token").start()
    try:
        backend: dict[str, Any] = {}
        environ = dict(os.environ)
        if live:
            key = environ["KIMI_API_KEY"]
        else:
            from ..stub.server import StubServer

            # tool_use: the stub asks Claude Code to run a tool, so the demo shows a tool call too
            stub = StubServer(key="sk-kimi-demo-local-stub-key-7d3a", scenario="tool_use").start()
            key = stub.key
            backend = {"baseUrl": stub.base_url}
        config = {
            "plugins": {
                "entries": {
                    "kimi-acp": {
                        "config": {
                            "agents": {"main": {"backend": "kimi"}},
                            **({"backends": {"kimi": backend}} if backend else {}),
                            "report": {"gateway": {"url": gateway.url, "tokenEnv": "OPENCLAW_HOOKS_TOKEN"}},
                            "limits": {"runTimeoutSeconds": 300},
                        }
                    }
                }
            }
        }
        cfg_path = work / "openclaw.json"
        cfg_path.write_text("// written by kimi-acp demo\n" + json.dumps(config, indent=2) + "\n")
        home = work / "home"
        home.mkdir()
        environ.update(
            {
                "KIMI_API_KEY": key,
                "OPENCLAW_HOOKS_TOKEN": "demo-hooks-token",
                # A decoy: the gateway's own Anthropic credential, which the child must not get.
                "ANTHROPIC_AUTH_TOKEN": DECOY,
                "HOME": str(home),
                "KIMI_ACP_STATE_DIR": str(work / "state"),
            }
        )
        os.environ["KIMI_ACP_STATE_DIR"] = str(work / "state")

        _say(f"== kimi-acp demo ({'Kimi, live' if live else 'local Kimi stub at ' + stub.base_url if stub else ''})")
        _say("setup:  a scratch openclaw.json (removed at exit) routes requester agent 'main' to the kimi backend;")
        _say("        the parent environment holds a decoy Anthropic token (ANTHROPIC_AUTH_TOKEN) the child must not get")
        _say(f'spawn:  requester agent main (session {SESSION}) calls sessions_spawn(runtime="acp",')
        _say(f"        agentId=\"claude\" (the target ACP agent), task={args.task!r})")
        _say()
        pm = get_plugin_manager()
        progress = Progress()
        pm.register(progress, name="kimi_acp.demo.progress")
        from ..config import load_config
        from ..store import Store

        store = Store(work / "state")
        try:
            async with Spawner(config=load_config(cfg_path, environ=environ), environ=environ, pm=pm, store=store) as spawner:
                answer = await spawner.spawn(
                    {"task": args.task, "runtime": "acp", "agentId": "claude"},
                    {"requesterAgentId": "main", "requesterSessionKey": SESSION},
                )
                _say("accepted: " + json.dumps({k: answer.get(k) for k in ("status", "runId", "childSessionKey", "backend", "reason", "error")}))
                if answer["status"] != "accepted":
                    return 2
                progress.begin()
                result = await spawner.wait(answer["runId"])
                with anyio.move_on_after(15):
                    while not gateway.deliveries:
                        await spawner.flush_outbox()
                        await anyio.sleep(0.1)
            run_obj = None
            if args.json:
                from .output import load_run_json

                run_obj = load_run_json(store, answer["runId"])
        finally:
            progress.end()
            pm.unregister(progress)
            store.close()
        _say()
        if run_obj is not None:
            from .output import dump

            dump(run_obj)
        _say("== completion event delivered to the requester session (POST /hooks/agent):")
        if gateway.deliveries:
            d = gateway.deliveries[-1]
            _say(f"   sessionKey={d.body.get('sessionKey')} agentId={d.body.get('agentId')} deliver={d.body.get('deliver')}")
            _say()
            _say(d.body["message"])
        else:
            _say("(not delivered: it stays in the outbox and is retried)")
        if stub is not None:
            reqs = stub.messages_requests()
            _say()
            _say("== what the Kimi stub received:")
            for r in reqs:
                auth = "Authorization: (none)" if "authorization" not in r.headers else "Authorization: PRESENT (should not be)"
                _say(f"   {r.method} {r.path}  model: {(r.body or {}).get('model')}")
                _say(f"      x-api-key: {mask(r.headers.get('x-api-key'))}  {auth}")
                _say(f"      user-agent: {r.headers.get('user-agent', '')}")
            leaked = any("authorization" in r.headers or DECOY in json.dumps(r.headers) for r in reqs)
            _say("   Authorization: (none) means the decoy Anthropic token from the parent environment never reached"
                 " the backend; the child got only the Kimi key, as x-api-key" if not leaked else
                 "   the decoy Anthropic token reached the backend: the child environment was NOT clean")
        _say()
        _say(f"status: {result.status}" + (f" ({redact(result.error)})" if result.error else "")
             + (f"; {result.numTurns} turns, {result.durationMs / 1000:.1f}s" if result.durationMs is not None else ""))
        _say("(the scratch config, state and transcripts are removed now; a real run's stay: kimi-acp ps, show, logs)")
        return 0 if result.ok else 1
    finally:
        gateway.stop()
        if stub is not None:
            stub.stop()
        shutil.rmtree(work, ignore_errors=True)
