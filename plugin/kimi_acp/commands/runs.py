"""``kimi-acp spawn / wait / kill`` (``ps``, ``show``, ``prune``: :mod:`.ps`; ``logs``: :mod:`.logs`).

Exit codes: :mod:`kimi_acp.exitcodes`. Output: :mod:`.output` (one run shape, errors).
A foreground ``spawn`` that gets SIGINT, SIGTERM or SIGHUP cancels its run (whole process group,
recorded ``cancelled``, result delivered) and exits 128 + the signal number: 130, 143, 129.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from ..exitcodes import BY_STATUS as EXIT_BY_STATUS  # noqa: F401 - the old names
from ..exitcodes import USAGE as EXIT_REFUSED  # noqa: F401
from ..hookspecs import hookimpl
from ..progress import Progress  # noqa: F401 - kept importable from here


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
    for key, value in (("agentId", args.target), ("model", args.model), ("label", args.label), ("cwd", args.cwd), ("runTimeoutSeconds", args.timeout),
                       ("thinking", getattr(args, "thinking", None))):
        if value is not None:
            request[key] = value
    if request.get("cwd"):
        request["cwd"] = os.path.abspath(request["cwd"])
    context = {"requesterAgentId": args.agent, "requesterSessionKey": args.session}
    return request, context


def _print_result(result: Any, args: Any, store: Any = None) -> int:
    """Print a finished run: with ``--json`` the run object (see :mod:`.output`), else its
    result text on stdout and a summary (status, time, backend, delivery) on stderr."""
    from ..redact import redact
    from .output import dump, exit_for_run

    out = _run_json(result, store)
    if getattr(args, "json", False):
        dump(out)
    else:
        if result.result:
            sys.stdout.write(redact(result.result).rstrip("\n") + "\n")
        secs = f"{result.durationMs / 1000:.1f}s" if result.durationMs is not None else "n/a"
        summary = f"{result.status} · {secs} · backend {result.backend}"
        if result.error:
            summary += f" · {result.error}"
        print(f"kimi-acp: run {result.runId} {redact(summary)}", file=sys.stderr)
        print(f"kimi-acp: result {_delivery_words(out)}", file=sys.stderr)
    return exit_for_run(out)


def _run_json(result: Any, store: Any) -> dict[str, Any]:
    from .output import load_run_json

    if store is not None:
        return load_run_json(store, result.runId)
    from ..store import Store

    with Store() as own:
        return load_run_json(own, result.runId)


def _delivery_words(out: dict[str, Any]) -> str:
    d = out["delivery"]
    if d["state"] == "delivered":
        return f"delivered to {out['requesterSessionKey']}"
    if d["state"] in ("pending", "waiting"):
        return f"queued for {out['requesterSessionKey']} (kimi-acp outbox shows it until it is delivered)"
    if not out["requesterSessionKey"]:
        return "not reported: no requester session (--session KEY)"
    return "not reported: no gateway configured (report.gateway.url)"


class ResultPrinter:
    """The CLI's reporter: prints the result of the run it was told to watch."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.run_id: str | None = None
        self.exit_code: int | None = None
        self.store: Any = None
        self.progress: Any = None  # stopped before the result is printed (no status line in between)

    @hookimpl
    def kimi_acp_run_finished(self, run: Any, result: Any) -> None:
        if run.run_id == self.run_id:
            if self.progress is not None:
                self.progress.end()
            self.exit_code = _print_result(result, self.args, self.store)


def spawn(args: Any) -> int:
    request, context = _request_from_args(args)
    if args.no_wait:
        return _spawn_detached(request, context, args)
    from ..plugins import get_plugin_manager
    from ..prestart import prestart

    # Claude Code boots while the rest of kimi-acp (the event loop, the spawner) imports:
    # started before anything else (see kimi_acp.prestart).
    early = prestart(request, context, config_path=args.config, pm=get_plugin_manager())
    import anyio

    return anyio.run(_spawn_and_wait, request, context, args, early)


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


async def _spawn_and_wait(request: dict[str, Any], context: dict[str, Any], args: Any, early: Any = None) -> int:
    import anyio

    guard = SignalCancel()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(guard.watch)
            try:
                code = await _spawn_and_wait_inner(request, context, args, guard, early)
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise unwrap(group) from None
    return guard.exit_code if guard.exit_code is not None and code == EXIT_BY_STATUS["cancelled"] else code


async def _spawn_and_wait_inner(request: dict[str, Any], context: dict[str, Any], args: Any, guard: SignalCancel,
                                early: Any = None) -> int:
    import anyio

    from ..plugins import get_plugin_manager

    pm = get_plugin_manager()
    progress, printer = Progress(), ResultPrinter(args)
    printer.progress = progress
    pm.register(progress, name="kimi_acp.cli.progress")
    pm.register(printer, name="kimi_acp.cli.printer")
    try:
        from ..spawn import Spawner

        async with Spawner(config_path=args.config, pm=pm) as spawner:
            guard.spawner = spawner
            answer = await spawner.spawn(request, context, prestarted=early)
            if answer["status"] != "accepted":
                return _refused(answer, args)
            printer.run_id, printer.store = answer["runId"], spawner.store
            guard.run_id = answer["runId"]
            await guard.cancel_run()  # a signal that came while the spawn was being accepted
            with anyio.CancelScope() as guard.scope:
                result = await spawner.wait(answer["runId"])
            progress.end()
            if guard.scope.cancelled_caught:  # a second signal: the spawner's exit kills the run now
                return EXIT_BY_STATUS["cancelled"]
            return printer.exit_code if printer.exit_code is not None else _print_result(result, args, spawner.store)
    finally:
        progress.end()
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
    if answer.get("status") != "accepted":
        return _refused(answer, args)
    _print_accepted(answer, args)
    return 0


def _refused(answer: dict[str, Any], args: Any) -> int:
    """A refused spawn, by the error contract; its exit code says why (3 key, 4 Claude Code, 5 blocked, else 2)."""
    from .output import emit_error, refusal_exit, refusal_hint

    extra = {"runId": answer["runId"]} if answer.get("runId") else {}
    emit_error("spawn", answer.get("errorCode") or "spawn_failed", ("" if answer.get("status", "error") == "error" else f"{answer['status']}: ") + str(answer.get("error", "")),
               refusal_hint(answer), as_json=bool(args.json), **extra)
    return refusal_exit(answer)


def _print_accepted(answer: dict[str, Any], args: Any) -> None:
    """``--no-wait``: the run object with --json, else what was started and where its result goes."""
    from ..store import Store
    from .output import dump, load_run_json

    with Store() as store:
        out = load_run_json(store, answer["runId"])
    if args.json:
        dump(out)
        return
    run_id = answer["runId"]
    print(run_id)
    where = f"on {out['backend']}" + (f" ({out['model']})" if out["model"] else "")
    print(f"kimi-acp: run {run_id} accepted {where}; a background worker supervises it", file=sys.stderr)
    if out["delivery"]["state"] == "waiting":
        goes = f"its result is reported to {out['requesterSessionKey']}"
    elif not out["requesterSessionKey"]:
        goes = "its result is not reported anywhere (no --session)"
    else:
        goes = "its result is not reported anywhere (no gateway: report.gateway.url)"
    print(f"kimi-acp: {goes}; kimi-acp wait {run_id[:8]} prints it, kimi-acp logs {run_id[:8]} -f follows it",
          file=sys.stderr)


def _store(args: Any = None) -> Any:
    from .ps import open_store

    return open_store(getattr(args, "config", None))


def _resolve_id(store: Any, run_id: str) -> str:
    from .ps import resolve_id

    return resolve_id(store, run_id)


def wait(args: Any) -> int:
    import anyio

    from ..spawn import wait_in_store

    store = _store(args)
    try:
        run_id = _resolve_id(store, args.run_id)

        async def go() -> Any:
            with anyio.fail_after(args.timeout):
                return await wait_in_store(store, run_id)

        try:
            result = anyio.run(go)
        except TimeoutError:
            from ..exitcodes import STILL_RUNNING
            from .output import dump, load_run_json

            if args.json:
                dump(load_run_json(store, run_id))
            else:
                print(f"kimi-acp wait: run {run_id} still {store.get_run(run_id).status} after {args.timeout:g} s "
                      f"(it goes on; wait again, or kimi-acp kill {run_id[:8]})", file=sys.stderr)
            return STILL_RUNNING
        if result.status == "lost":  # found lost while waiting: its report needs a deliverer
            from ..deliverer import start_if_needed

            start_if_needed(store=store, config_path=getattr(args, "config", None))
        return _print_result(result, args, store)
    finally:
        store.close()


def kill(args: Any) -> int:
    from ..store import TERMINAL
    from ..supervisor import alive_in_group, kill_process_group, kill_run_processes

    store = _store(args)
    try:
        run_id = _resolve_id(store, args.run_id)
        rec = store.get_run(run_id)
        if rec.status in TERMINAL:
            if args.json:
                from .output import dump, load_run_json

                dump(load_run_json(store, run_id))
            else:
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
            from .output import dump, load_run_json

            dump(load_run_json(store, run_id))
        else:
            print(f"run {run_id} {rec.status}")
        return 0 if rec.status in TERMINAL else 1
    finally:
        store.close()
