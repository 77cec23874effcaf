"""The real-gateway rig shared by the gateway tests: a stock OpenClaw gateway (npm's
``openclaw@2026.9.6`` on Node 24, loopback only) with kimi-acp installed by its own
``kimi-acp install``, the scripted :class:`AgentModel` as every agent's own chat model, the
kimi-acp stub as Kimi, and a second stub as the gateway's own Anthropic endpoint (passthrough).
The gateway's environment carries decoy Anthropic credentials that must never reach Kimi.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kimi_acp.store import Store
from kimi_acp.stub.agent_model import COMPLETION, AgentModel, Seen
from kimi_acp.stub.openclaw_gateway import Gateway, openclaw_bin
from kimi_acp.stub.openclaw_plugins import load_stand_ins
from kimi_acp.stub.server import StubServer

from .spawning import pids_carrying_run_id

TEST_KEY = "sk-kimi-test0000000000000000000000000000abcd"  # conftest's key
GATEWAY_KEY = "sk-ant-gateway-own-key-0000000000000000000"  # the gateway's own Anthropic key
DECOY = "sk-ant-decoy-gateway-token-must-not-leak-0000"  # an inherited Bearer token
TURN = 240  # seconds for one agent turn through the gateway (the machine may be loaded)


def spawn_message(**args: Any) -> str:
    return "SPAWN " + json.dumps({"runtime": "acp", **args})


def accepted(seen: Seen) -> dict[str, Any]:
    """The sessions_spawn answer inside the tool result the parent model got."""
    for text in seen.tool_results():
        try:
            outer = json.loads(text)
        except ValueError:
            continue
        details = (outer.get("result") or {}).get("details") if isinstance(outer, dict) else None
        if isinstance(details, dict):
            return details
    raise AssertionError(f"no sessions_spawn result in {seen.tool_results()}")


def run_processes(state: Path) -> list[int]:
    """Live processes of any run in this kimi-acp state dir (by KIMI_ACP_RUN_ID in their env)."""
    with Store(state) as store:
        ids = [r.run_id for r in store.list_runs(include_finished=True)]
    return [pid for run_id in ids for pid in pids_carrying_run_id(run_id)]


def runs(state: Path) -> list[dict[str, Any]]:
    with Store(state) as store:
        return [r.to_dict() for r in reversed(store.list_runs(include_finished=True))]


def kimi_requests_clean(kimi: StubServer, start: int) -> list[Any]:
    reqs = kimi.messages_requests()[start:]
    for r in reqs:
        assert r.headers.get("x-api-key") == TEST_KEY
        assert "authorization" not in r.headers, "an inherited Bearer token reached Kimi"
        blob = json.dumps(r.headers) + r.raw_body.decode(errors="replace")
        assert DECOY not in blob and GATEWAY_KEY not in blob
        assert r.route.endswith("/coding/v1/messages")
    return reqs


ADMIN = Path(__file__).with_name("gateway_admin.mjs")
#: Gateway methods that only read (safe to ask again when OpenClaw says to retry).
READS = frozenset({"chat.history", "sessions.list", "sessions.preview", "sessions.resolve", "status", "health"})


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


class World:
    def __init__(self, gw: Gateway, model: AgentModel, kimi: StubServer, anthropic: StubServer) -> None:
        self.gw, self.model, self.kimi, self.anthropic = gw, model, kimi, anthropic
        self.state = Path(gw.env["KIMI_ACP_STATE_DIR"])
        self._client: Any = None

    def admin(self, method: str, params: dict[str, Any], timeout: float = 60, *, expect_final: bool = False) -> Any:
        """A gateway call with operator.admin, through OpenClaw's own client: one long-lived Node
        process (tests/fakes/gateway_admin.mjs) for all of a world's calls."""
        import subprocess

        from kimi_acp.stub.openclaw_gateway import node_bin_dir, openclaw_prefix

        if self._client is None or self._client.poll() is not None:
            pkg = openclaw_prefix() / "oc" / "node_modules" / "openclaw"
            self._client = subprocess.Popen([str(node_bin_dir() / "node"), str(ADMIN), str(pkg)], env=self.gw.env, text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert self._client.stdout is not None and json.loads(self._client.stdout.readline()).get("ready")
        assert self._client.stdin is not None and self._client.stdout is not None
        for _ in range(5):
            answer = self._ask(method, params, timeout, expect_final)
            # OpenClaw's read-only session calls race its own writes (retainGatewaySessionEntryReadOnly,
            # dist/session-utils-read-lifetime-*.mjs) and say to retry: a read is asked again
            if answer.get("ok") or method not in READS or "Retry the request" not in str(answer.get("error")):
                break
            time.sleep(0.2)
        assert answer.get("ok"), f"{method} failed: {answer.get('error')}"
        return answer["result"]

    def _ask(self, method: str, params: dict[str, Any], timeout: float, expect_final: bool) -> dict[str, Any]:
        import select

        assert self._client.stdin is not None and self._client.stdout is not None
        self._client.stdin.write(json.dumps({"method": method, "params": params, "timeoutMs": int(timeout * 1000), "expectFinal": expect_final}) + "\n")
        self._client.stdin.flush()
        ready, _, _ = select.select([self._client.stdout], [], [], timeout + 30)
        assert ready, f"{method}: the gateway client did not answer within {timeout + 30} s"
        return dict(json.loads(self._client.stdout.readline()))

    def call(self, method: str, params: dict[str, Any], timeout: float = 60) -> Any:
        return self.admin(method, params, timeout)

    def close(self) -> None:
        if self._client is not None:
            if self._client.stdin is not None:
                self._client.stdin.close()
            try:
                self._client.wait(10)
            except Exception:  # noqa: BLE001 - a client that hangs is killed
                self._client.kill()
                self._client.wait(10)
            if self._client.stdout is not None:
                self._client.stdout.close()
            self._client = None

    def history(self, session_key: str) -> list[dict[str, Any]]:
        return list((self.admin("chat.history", {"sessionKey": session_key, "limit": 100}) or {}).get("messages") or [])

    def say(self, session_key: str, message: str, *, timeout: float = TURN, method: str = "chat.send") -> str:
        """A chat message into a session (a command like ``/acp status``, or words for its agent),
        as a user with the operator.admin scope sends it; returns the reply that follows it."""
        import time
        import uuid

        before = len(self.history(session_key))
        key = "key" if method == "sessions.send" else "sessionKey"
        self.admin(method, {key: session_key, "message": message, "idempotencyKey": str(uuid.uuid4())})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.history(session_key)
            replies = [m for m in messages[before:] if m.get("role") == "assistant" and message_text(m).strip()]
            if replies:
                return message_text(replies[-1])
            time.sleep(0.5)
        raise AssertionError(f"no reply to {message!r} in {session_key} after {timeout} s; log: {self.gw.log_tail(3000)}")

    def turn(self, session_key: str, message: str) -> Seen:
        """One parent turn that should call sessions_spawn; returns the request holding its result."""
        import uuid

        start = len(self.model.seen)
        params = {"message": message, "sessionKey": session_key, "idempotencyKey": str(uuid.uuid4()), "timeout": TURN}
        self.admin("agent", params, timeout=TURN + 30, expect_final=True)
        return self.model.wait_for(lambda s: s in self.model.seen[start:] and bool(s.tool_results()), 30, "the spawn's tool result")

    def completion(self, child_key: str, timeout: float = TURN) -> Seen:
        return self.model.wait_for(lambda s: COMPLETION in s.last_user_text() and child_key in s.last_user_text(), timeout, f"the completion event of {child_key}")


FALLBACK_STANDIN = Path(__file__).with_name("fallback_backend")


def with_fallback(cfg: dict[str, Any]) -> None:
    """A second ACP backend for OpenClaw's acp.fallbacks: the local stand-in plugin
    (tests/fakes/fallback_backend, standing in for acpx or another harness backend), loaded the
    way a path-loaded plugin is; kimi-acp's backends give up after one API retry, so a
    failure after output comes quickly."""
    plugins = cfg.setdefault("plugins", {})
    plugins.setdefault("load", {}).setdefault("paths", []).append(str(FALLBACK_STANDIN))
    plugins.setdefault("entries", {})["fallback-standin"] = {"enabled": True}
    cfg.setdefault("acp", {})["fallbacks"] = ["fallback-standin"]
    section = plugins["entries"]["kimi-acp"]["config"]
    for backend in section["backends"].values():
        backend.setdefault("env", {})["CLAUDE_CODE_MAX_RETRIES"] = "1"


def make_world(tmp: Path, install_args: list[str], claude: str, configure: Any = None) -> Iterator[World]:
    assert openclaw_bin().exists(), "OpenClaw is not installed: run ./scripts/test (it installs it into .tools/openclaw)"
    with StubServer(key=TEST_KEY) as kimi, StubServer(key=None) as anthropic, AgentModel() as model:
        env = {
            "KIMI_API_KEY": TEST_KEY,
            "KIMI_ACP_CLAUDE": claude,
            "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
            # the gateway's own Anthropic setup, which passthrough runs keep and Kimi runs must not see
            "ANTHROPIC_BASE_URL": anthropic.base_url,
            "ANTHROPIC_API_KEY": GATEWAY_KEY,
            "ANTHROPIC_AUTH_TOKEN": DECOY,
        }
        gw = Gateway(tmp, model_url=model.url, env=env)
        with gw:
            gw.write_config(agents=["main", "coder"])
            out = gw.kimi_acp("install", "--config", str(gw.config), *install_args)
            assert out.returncode == 0, out.stdout + out.stderr
            cfg = gw.read_config()
            # OpenClaw's chat side of provider kimi: the scripted model (the parent keeps calling
            # tools after /model kimi/k3); kimi-acp's side: the Kimi stub.
            cfg["models"]["providers"]["kimi"]["baseUrl"] = model.url
            section = cfg["plugins"]["entries"]["kimi-acp"].setdefault("config", {})
            section["backends"] = {"kimi": {"baseUrl": kimi.base_url}}
            section["limits"] = {"graceSeconds": 2}
            # OpenClaw's own Kimi and Moonshot plugins, which an online gateway with provider kimi
            # and KIMI_API_KEY installs at its first start: local stand-ins (stub/openclaw_plugins),
            # loaded the way an installed plugin is, so this offline gateway looks nothing up.
            load_stand_ins(cfg)
            if configure is not None:
                configure(cfg)
            gw.config.write_text(json.dumps(cfg, indent=2))
            gw.start(timeout=180)
            assert 'ACP runtime backend "kimi-acp" registered' in gw.log()
            world = World(gw, model, kimi, anthropic)
            try:
                yield world
            finally:
                world.close()
