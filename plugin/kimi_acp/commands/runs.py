"""``kimi-acp spawn / ps / wait / kill / logs``.

Exit codes of ``spawn`` and ``wait``: 0 ok; 1 error or lost; 2 the spawn was refused
(bad request, unknown agent or model, missing key or binary, blocked); 75 rate
limited (try again later); 124 timeout; 130 cancelled. A foreground ``spawn`` that gets
SIGINT, SIGTERM or SIGHUP cancels its run (whole process group, recorded ``cancelled``,
result delivered) and exits 128 + the signal number: 130, 143, 129.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from ..hookspecs import hookimpl

EXIT_BY_STATUS = {"ok": 0, "error": 1, "lost": 1, "rate_limited": 75, "timeout": 124, "cancelled": 130}
EXIT_REFUSED = 2


def _task_from_args(args: Any) -> str:
    """The task text; bytes that are not UTF-8 are a one-line usage error, not a pydantic one."""
    from ..errors import ConfigError

    if args.task == "-":
        raw = sys.stdin.buffer.read()
        where = "the task on stdin"
    else:
        raw = os.fsencode(args.task)  # argv bytes as given (undecodable ones kept by surrogateescape)
        where = "the task argument"
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{where} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "convert it first, e.g. iconv -f LATIN1 -t UTF-8"
        ) from None


def _request_from_args(args: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    task = _task_from_args(args)
    env: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            from ..errors import ConfigError

            raise ConfigError(f"--env {item!r}: expected NAME=VALUE")
        env[name] = value
    request: dict[str, Any] = {"task": task, "runtime": "acp", "env": env}
    for key, value in (("agentId", args.target), ("model", args.model), ("label", args.label), ("cwd", args.cwd), ("runTimeoutSeconds", args.timeout)):
        if value is not None:
            request[key] = value
    if request.get("cwd"):
        request["cwd"] = os.path.abspath(request["cwd"])
    context = {"requesterAgentId": args.agent, "requesterSessionKey": args.session}
    return request, context


class Progress:
    """Live progress on stderr: elapsed, turns, tool calls, tokens."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.turns = 0
        self.tools = 0
        self.tokens = 0
        self._messages: set[str] = set()
        self._last = 0.0

    def line(self) -> str:
        return f"[{time.monotonic() - self.start:5.1f}s] turns {self.turns} · tool calls {self.tools} · tokens {self.tokens}"

    def _show(self, text: str, force: bool = False) -> None:
        if self.tty:
            now = time.monotonic()
            if force or now - self._last > 0.1:
                self._last = now
                self.stream.write("\r\033[K" + text)
                self.stream.flush()
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    @hookimpl
    def kimi_acp_run_event(self, run: Any, event: Any) -> None:
        kind = getattr(event, "type", None) or (event.get("type") if isinstance(event, dict) else None)
        if kind == "status":
            self._show(f"run {run.run_id} started on {run.backend}" + (f" ({run.model})" if run.model else "") + f": {run.reason}", force=True)
            if self.tty:
                self.stream.write("\n")
            return
        if kind == "assistant":
            msg = getattr(event, "message", None)
            mid = getattr(msg, "id", None) if msg is not None else None
            if mid and mid not in self._messages:
                self._messages.add(mid)
                self.turns += 1
                usage = getattr(msg, "usage", None) or {}
                if not isinstance(usage, dict):
                    usage = getattr(usage, "model_dump", lambda: {})()
                self.tokens += int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
            for block in getattr(msg, "content", None) or []:
                btype = getattr(block, "type", None) or (block.get("type") if isinstance(block, dict) else None)
                if btype == "tool_use":
                    self.tools += 1
                    name = getattr(block, "name", None) or (block.get("name") if isinstance(block, dict) else "?")
                    if not self.tty:
                        self._show(f"{self.line()} · tool {name}")
            if self.tty:
                self._show(self.line())
        elif kind == "result":
            usage = getattr(event, "usage", None) or {}
            if isinstance(usage, dict) and usage:
                self.tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0) + int(
                    usage.get("cache_read_input_tokens") or 0
                ) + int(usage.get("cache_creation_input_tokens") or 0)
            self._show(self.line(), force=True)
            if self.tty:
                self.stream.write("\n")


def _print_result(result: Any, args: Any) -> int:
    from ..redact import redact

    if getattr(args, "json", False):
        out = {
            "runId": result.runId,
            "childSessionKey": result.childSessionKey,
            "status": result.status,
            "result": result.result,
            "backend": result.backend,
            "model": result.model,
            "reason": result.reason,
            "usage": result.usage,
            "durationMs": result.durationMs,
            "sessionId": result.sessionId,
            "error": result.error,
        }
        sys.stdout.write(redact(json.dumps(out, indent=2)) + "\n")
    else:
        if result.result:
            sys.stdout.write(redact(result.result).rstrip("\n") + "\n")
        secs = f"{result.durationMs / 1000:.1f}s" if result.durationMs is not None else "n/a"
        summary = f"{result.status} · {secs} · backend {result.backend}"
        if result.error:
            summary += f" · {result.error}"
        print(f"kimi-acp: run {result.runId} {redact(summary)}", file=sys.stderr)
    return EXIT_BY_STATUS.get(result.status, 1)


class ResultPrinter:
    """The CLI's reporter: prints the result of the run it was told to watch."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.run_id: str | None = None
        self.exit_code: int | None = None

    @hookimpl
    def kimi_acp_run_finished(self, run: Any, result: Any) -> None:
        if run.run_id == self.run_id:
            self.exit_code = _print_result(result, self.args)


def spawn(args: Any) -> int:
    request, context = _request_from_args(args)
    if args.no_wait:
        return _spawn_detached(request, context, args)
    import anyio

    return anyio.run(_spawn_and_wait, request, context, args)


#: Signals that cancel a foreground spawn (and the --no-wait worker's run) like Ctrl-C does.
CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def unwrap(group: BaseExceptionGroup) -> BaseException:
    """The one exception a task group wrapped (so the CLI's one-line error handling sees it)."""
    while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
        group = group.exceptions[0]  # type: ignore[assignment]
    return group


class SignalCancel:
    """Turns SIGINT/SIGTERM/SIGHUP into a cancel of the run (SIGTERM to its group, grace,
    SIGKILL), recorded ``cancelled``; a second signal stops waiting for the grace."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.spawner: Any = None
        self.run_id: str | None = None
        self.scope: Any = None

    async def watch(self, *, task_status: Any) -> None:
        import anyio

        with anyio.open_signal_receiver(*CANCEL_SIGNALS) as signals:
            task_status.started()
            async for signum in signals:
                self.received.append(int(signum))
                if len(self.received) == 1:
                    await self.cancel_run()
                elif self.scope is not None:
                    self.scope.cancel()  # the spawner's exit kills what is left

    async def cancel_run(self) -> None:
        if self.received and self.spawner is not None and self.run_id is not None:
            await self.spawner.cancel(self.run_id)

    @property
    def exit_code(self) -> int | None:
        return 128 + self.received[0] if self.received else None


async def _spawn_and_wait(request: dict[str, Any], context: dict[str, Any], args: Any) -> int:
    import anyio

    guard = SignalCancel()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(guard.watch)
            try:
                code = await _spawn_and_wait_inner(request, context, args, guard)
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise unwrap(group) from None
    return guard.exit_code if guard.exit_code is not None and code == EXIT_BY_STATUS["cancelled"] else code


async def _spawn_and_wait_inner(request: dict[str, Any], context: dict[str, Any], args: Any, guard: SignalCancel) -> int:
    import anyio

    from ..plugins import get_plugin_manager
    from ..prestart import prestart
    from ..redact import redact

    pm = get_plugin_manager()
    # Claude Code boots while the rest of kimi-acp imports (see kimi_acp.prestart).
    early = await prestart(request, context, config_path=args.config, pm=pm)
    progress, printer = Progress(), ResultPrinter(args)
    pm.register(progress, name="kimi_acp.cli.progress")
    pm.register(printer, name="kimi_acp.cli.printer")
    try:
        from ..spawn import Spawner

        async with Spawner(config_path=args.config, pm=pm) as spawner:
            guard.spawner = spawner
            answer = await spawner.spawn(request, context, prestarted=early)
            if answer["status"] != "accepted":
                if args.json:
                    sys.stdout.write(json.dumps(answer, indent=2) + "\n")
                print(f"kimi-acp spawn: {answer['status']}: {redact(answer.get('error', ''))}", file=sys.stderr)
                return EXIT_REFUSED
            printer.run_id = guard.run_id = answer["runId"]
            await guard.cancel_run()  # a signal that came while the spawn was being accepted
            with anyio.CancelScope() as guard.scope:
                result = await spawner.wait(answer["runId"])
            if guard.scope.cancelled_caught:  # a second signal: the spawner's exit kills the run now
                return EXIT_BY_STATUS["cancelled"]
            return printer.exit_code if printer.exit_code is not None else _print_result(result, args)
    finally:
        if early is not None:
            await early.discard()  # started early but not adopted (a refused spawn): kill it
        pm.unregister(progress)
        pm.unregister(printer)


def _spawn_detached(request: dict[str, Any], context: dict[str, Any], args: Any) -> int:
    """Hand the spawn to a detached worker process; print its accepted answer and return."""
    payload = json.dumps({"request": request, "context": context, "config": args.config})
    proc = subprocess.Popen(
        [sys.executable, "-m", "kimi_acp.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # until it has accepted; then it writes to <state dir>/worker.log
        start_new_session=True,
        close_fds=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(payload.encode())
    proc.stdin.close()
    line = proc.stdout.readline().decode()
    proc.stdout.close()
    if not line:
        errors = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        code = proc.wait()
        from ..redact import redact

        said = [x for x in errors.splitlines() if x.strip()]
        why = f": {redact(said[-1].strip())}" if said else ""
        print(f"kimi-acp spawn: the background worker exited ({code}) before accepting the spawn{why}", file=sys.stderr)
        return 1
    proc.stderr.close()
    answer = json.loads(line)
    sys.stdout.write(json.dumps(answer, indent=2) + "\n")
    return 0 if answer.get("status") == "accepted" else EXIT_REFUSED


def _store() -> Any:
    """The store, after recovery: runs of dead supervisors are marked lost, their processes
    killed, and their completion events queued (whoever notices first, the CLI included)."""
    from ..spawn import recover_runs
    from ..store import Store

    store = Store()
    recover_runs(store)
    return store


def _resolve_id(store: Any, run_id: str) -> str:
    """A full run id, or a unique prefix of a recent one."""
    from ..errors import RunNotFoundError

    try:
        return store.get_run(run_id).run_id
    except RunNotFoundError:
        matches = [r.run_id for r in store.list_runs(include_finished=True, limit=1000) if r.run_id.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        raise


def ps(args: Any) -> int:
    store = _store()
    try:
        runs = store.list_runs(include_finished=args.all, limit=200)
        if args.json:
            sys.stdout.write(json.dumps([_public(r) for r in runs], indent=2) + "\n")
            return 0
        if not runs:
            print("no active runs" + ("" if args.all else " (--all shows finished ones)"))
            return 0
        now = time.time()
        print(f"{'RUN':8}  {'STATUS':12} {'BACKEND':11} {'AGE':>7}  {'PID':>7}  TASK")
        for r in runs:
            age = now - (r.created_at or now)
            age_s = f"{age:.0f}s" if age < 120 else f"{age / 60:.0f}m" if age < 7200 else f"{age / 3600:.0f}h"
            task = " ".join((r.label or r.task or "").split())[:60]
            print(f"{r.run_id[:8]}  {r.status:12} {(r.backend or '-'):11} {age_s:>7}  {str(r.pid or '-'):>7}  {task}")
        return 0
    finally:
        store.close()


def _public(r: Any) -> dict[str, Any]:
    d = r.to_dict()
    d.pop("owner_start", None)
    return d


def wait(args: Any) -> int:
    import anyio

    from ..spawn import wait_in_store

    store = _store()
    try:
        run_id = _resolve_id(store, args.run_id)

        async def go() -> Any:
            with anyio.fail_after(args.timeout):
                return await wait_in_store(store, run_id)

        try:
            result = anyio.run(go)
        except TimeoutError:
            print(f"kimi-acp wait: run {run_id} still {store.get_run(run_id).status} after {args.timeout:g} s", file=sys.stderr)
            return 124
        return _print_result(result, args)
    finally:
        store.close()


def kill(args: Any) -> int:
    from ..store import TERMINAL
    from ..supervisor import alive_in_group, kill_process_group, kill_run_processes

    store = _store()
    try:
        run_id = _resolve_id(store, args.run_id)
        rec = store.get_run(run_id)
        if rec.status in TERMINAL:
            print(f"run {run_id} already {rec.status}")
            return 0
        store.request_cancel(run_id)
        if rec.pgid:
            kill_process_group(rec.pgid, signal.SIGTERM)
        grace = 5.0
        deadline = time.monotonic() + grace + 5
        while time.monotonic() < deadline:
            rec = store.get_run(run_id)
            if rec.status in TERMINAL:
                break
            if rec.pgid and time.monotonic() > deadline - 5 and alive_in_group(rec.pgid):
                kill_run_processes(run_id, rec.pgid)
            time.sleep(0.1)
        rec = store.get_run(run_id)
        if rec.status in TERMINAL:
            # Descendants that left the group (setsid) still carry the run id: none outlives `kill`.
            kill_run_processes(run_id, None)
        if args.json:
            sys.stdout.write(json.dumps({"runId": run_id, "status": rec.status}) + "\n")
        else:
            print(f"run {run_id} {rec.status}")
        return 0 if rec.status in TERMINAL else 1
    finally:
        store.close()


def logs(args: Any) -> int:
    from ..store import TERMINAL

    store = _store()
    try:
        run_id = _resolve_id(store, args.run_id)
        path = store.transcript_path(run_id)
        pos = 0
        while True:
            if path.exists():
                with open(path, encoding="utf-8", errors="replace") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
                if chunk:
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
            if not args.follow or store.get_run(run_id).status in TERMINAL:
                if args.follow and path.exists() and path.stat().st_size > pos:
                    continue
                return 0
            time.sleep(0.2)
    finally:
        store.close()
