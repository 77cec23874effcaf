"""``./scripts/demo``: the main job, for real, in a stock OpenClaw gateway on this machine.

1. the local Kimi stub plays Kimi (127.0.0.1); a scripted Messages API plays the agents' own
   chat model (it answers ``SPAWN {...}`` with a ``sessions_spawn`` tool call);
2. a scratch ``openclaw.json`` with two agents, ``main`` and ``coder``, then
   ``kimi-acp install --agent coder`` (coder's spawns run on Kimi);
3. ``openclaw gateway run`` (npm's ``openclaw``, Node 24, loopback), with a decoy
   ``ANTHROPIC_AUTH_TOKEN`` in its environment, as a gateway set up for Anthropic has;
4. one turn of ``coder`` that calls ``sessions_spawn(runtime="acp", agentId="claude", task)``;
   kimi-acp routes it, the real Claude Code runs it (using a tool) against the stub;
5. prints the completion event as the parent session ``agent:coder:main`` received it, and
   what Kimi saw (key masked; no Bearer: the decoy never left the gateway);
6. stops the gateway and checks that no process of the run is left.

Everything is kept under ``.demo/`` in the checkout (the gateway's log, the config, the run
store) for a look afterwards; the next demo replaces it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

DECOY = "sk-ant-decoy-token-the-gateway-has-0000000000"
TASK = "Run `echo stub-tool-ok` with the Bash tool and tell me what it printed."


def _say(text: str = "") -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    from ..redact import mask
    from ..stub.agent_model import COMPLETION, AgentModel
    from ..stub.openclaw_gateway import REPO, Gateway, GatewayError, openclaw_bin
    from ..stub.openclaw_plugins import load_stand_ins
    from ..stub.server import StubServer

    claude = os.environ.get("KIMI_ACP_CLAUDE") or shutil.which("claude")
    if not claude:
        print("kimi-acp demo: Claude Code not found\nhint: run ./scripts/demo (it installs it), or npm install -g @anthropic-ai/claude-code", file=sys.stderr)
        return 4
    if not openclaw_bin().exists():
        print(f"kimi-acp demo: OpenClaw is not installed in {openclaw_bin().parents[3]}\nhint: run ./scripts/demo (it installs it)", file=sys.stderr)
        return 4
    root = REPO / ".demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    key = "sk-kimi-demo0000000000000000000000000000d3m0"
    with StubServer(key=key, scenario="tool_use") as kimi, AgentModel() as model:
        env = {
            "KIMI_API_KEY": key,
            "KIMI_ACP_CLAUDE": claude,
            "ANTHROPIC_AUTH_TOKEN": DECOY,  # what a gateway set up for Anthropic carries
        }
        gw = Gateway(root, model_url=model.url, env=env)
        with gw:
            _say("1. a stock OpenClaw gateway with two agents, main and coder")
            gw.write_config(agents=["main", "coder"])
            out = gw.kimi_acp("install", "--config", str(gw.config), "--agent", "coder")
            if out.returncode != 0:
                print(out.stdout + out.stderr, file=sys.stderr)
                return 1
            _say("   kimi-acp install --agent coder:")
            for line in out.stdout.splitlines():
                if line.startswith("  added") or line.startswith("  set"):
                    _say("   " + line.strip())
            cfg = gw.read_config()
            cfg["models"]["providers"]["kimi"]["baseUrl"] = model.url  # OpenClaw's chat side stays on this machine
            section = cfg["plugins"]["entries"]["kimi-acp"].setdefault("config", {})
            section["backends"] = {"kimi": {"baseUrl": kimi.base_url}}  # the stub plays Kimi
            # OpenClaw's own Kimi and Moonshot plugins, which an online gateway installs at its first
            # start: local stand-ins, so this offline gateway looks nothing up on npm or ClawHub.
            load_stand_ins(cfg)
            gw.config.write_text(json.dumps(cfg, indent=2) + "\n")
            _say("   OpenClaw's own kimi and moonshot plugins: local stand-ins (an online gateway installs the real ones)")
            version = gw.openclaw("--version").stdout.strip()
            _say(f"2. openclaw gateway run ({version}, loopback port {gw.port}); its env has a decoy ANTHROPIC_AUTH_TOKEN")
            try:
                took = gw.start(timeout=180)
            except GatewayError as exc:
                print(f"kimi-acp demo: {exc}", file=sys.stderr)
                return 1
            _say(f"   ready in {took:.1f} s; {_line(gw.log(), 'ACP runtime backend')}")
            _say('3. coder calls sessions_spawn(runtime="acp", agentId="claude", task=...)')
            _say(f"   task: {TASK}")
            started = time.monotonic()
            message = "SPAWN " + json.dumps({"runtime": "acp", "agentId": "claude", "task": TASK})
            try:
                gw.agent_turn("agent:coder:main", message, timeout=240)
                seen = model.wait_for(lambda s: COMPLETION in s.last_user_text(), 240, "the completion event")
            except (GatewayError, AssertionError) as exc:
                print(f"kimi-acp demo: {exc}\nhint: the gateway log is {gw.log_path}", file=sys.stderr)
                return 1
            _say(f"   {_line(gw.log(), 'kimi-acp hook:')}")
            _say(f"4. the parent session agent:coder:main received, {time.monotonic() - started:.1f} s after the turn began:")
            _say()
            for line in _event(seen.last_user_text()).splitlines():
                _say("   | " + line)
            _say()
            _say("5. what Kimi (the stub) saw:")
            for rec in kimi.messages_requests():
                auth = rec.headers.get("authorization")
                body = rec.body or {}
                tools = [b.get("type") for m in body.get("messages", []) for b in (m.get("content") if isinstance(m.get("content"), list) else [])]
                _say(f"   POST {rec.path}  model={body.get('model')}  x-api-key={mask(rec.headers.get('x-api-key', ''))}  "
                     f"Authorization: {'Bearer ' + mask(auth.split()[-1]) if auth else '(none)'}" + ("  [tool result]" if "tool_result" in tools else ""))
            leaked = any(DECOY in json.dumps(r.headers) + r.raw_body.decode(errors="replace") for r in kimi.messages_requests())
            _say(f"   the gateway's decoy Anthropic token reached Kimi: {'YES (bug!)' if leaked else 'no'}")
            _say("6. stopping the gateway")
            rc = gw.stop(timeout=120)
            left = _run_processes(Path(gw.env["KIMI_ACP_STATE_DIR"]))
            _say(f"   gateway exited ({rc}); processes of the run left: {len(left)}")
            _say(f"files of this demo (config, gateway log, run store): {root}")
            return 0 if not leaked and not left else 1


def _line(log: str, needle: str) -> str:
    for line in log.splitlines():
        if needle in line:
            return line.split("] ", 1)[-1].strip() if "] " in line else line.strip()
    return f"(no '{needle}' line in the gateway log)"


def _event(text: str) -> str:
    """The completion event as the parent got it, from its marker to its Stats line. OpenClaw
    sends it either as text or quoted as a JSON string inside its internal context."""
    seg = text[text.find("[Internal task completion event]") :]
    first = seg.split("\n", 1)[0]
    if "\\n" in first:  # quoted: one line with \n escapes, ending at the closing quote
        body = first[: first.rfind('"')] if first.rfind('"') > 0 else first
        try:
            seg = json.loads('"' + body + '"')
        except ValueError:
            seg = body.replace("\\n", "\n")
    out: list[str] = []
    for line in seg.splitlines():
        if line.startswith("Action:"):
            break
        out.append(line)
        if line.startswith("Stats:"):
            break
    return "\n".join(out).strip()


def _run_processes(state: Path) -> list[int]:
    from ..store import Store

    with Store(state) as store:
        ids = {r.run_id for r in store.list_runs(include_finished=True)}
    wanted = {f"KIMI_ACP_RUN_ID={r}".encode() for r in ids}
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if set(f.read().split(b"\0")) & wanted:
                        found.append(int(name))
            except OSError:
                continue
    return found


def run(args: Any) -> int:
    return main([])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
