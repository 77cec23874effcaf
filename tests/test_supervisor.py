"""The supervisor, with real child processes (the fake harness) and no mocks.

Every test that ends a run asserts — by scanning /proc — that nothing of the run's
process group (grandchildren included) is left alive.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import time
import tracemalloc
import uuid
from collections.abc import Callable

import anyio
import pytest

from kimi_acp.supervisor import reaper_enabled
from kimi_acp.supervisor import (
    RUN_ID_ENV,
    ProcessOutcome,
    ProcessSpec,
    Supervisor,
    alive_in_group,
    kill_process_group,
    kill_run_processes,
)
from fakes import fake_argv  # tests/ is on sys.path (rootdir-relative test modules)

pytestmark = pytest.mark.asyncio

GRACE = 0.5
# Environ-based kills match on the run id: keep ids unique across concurrent test sessions.
UNIQUE = uuid.uuid4().hex[:12]


def make_supervisor(**kw: object) -> Supervisor:
    """A supervisor without the environ sweep, so these tests prove that the
    process-group kills alone leave nothing behind (the sweep has its own test)."""
    kw.setdefault("sweep_escaped", False)
    return Supervisor(**kw)  # type: ignore[arg-type]


def spec(run_id: str, mode: str, *args: str, stdin: bytes = b"the task", **kw: object) -> ProcessSpec:
    return ProcessSpec(run_id=run_id, argv=fake_argv(mode, *args), env=dict(os.environ), stdin=stdin, **kw)  # type: ignore[arg-type]


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


def assert_group_gone(outcome: ProcessOutcome) -> None:
    assert outcome.pgid is not None
    assert outcome.pgid == outcome.pid
    assert alive_in_group(outcome.pgid) == []
    assert not is_alive(outcome.pid)  # type: ignore[arg-type]


class Started:
    """on_started recorder that tests can wait on."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pgid: int | None = None
        self.event = anyio.Event()

    def __call__(self, pid: int, pgid: int) -> None:
        self.pid, self.pgid = pid, pgid
        self.event.set()


def grandchildren(lines: list[str]) -> tuple[list[int], list[int]]:
    for line in lines:
        if line.startswith('{"type": "fake", "grandchildren"'):
            obj = json.loads(line)
            return obj["grandchildren"], obj["escaped"]
    raise AssertionError(f"no grandchildren line in {lines!r}")


# --------------------------------------------------------------------------- basics


async def test_ok_run_delivers_every_line() -> None:
    sup = make_supervisor(grace=GRACE)
    lines: list[str] = []
    started = Started()
    out = await sup.run(spec("ok-1", "ok", "--text", "hi there"), on_line=lines.append, on_started=started)

    assert out.exit_code == 0
    assert (out.timed_out, out.cancelled, out.killed_reason) == (False, False, None)
    assert out.stdout_lines == 3 == len(lines)
    events = [json.loads(line) for line in lines]
    assert [e["type"] for e in events] == ["system", "assistant", "result"]
    assert events[0]["run_id"] == "ok-1"  # KIMI_ACP_RUN_ID reached the child
    assert out.pid == started.pid == started.pgid == out.pgid
    # The harness runs under its reaper (the started process), in the reaper's group.
    assert events[0]["pid"] != out.pid or not reaper_enabled()
    assert events[2]["result"] == "hi there" and events[2]["is_error"] is False
    assert out.started_at is not None and out.started_at <= out.ended_at
    assert out.duration is not None and out.duration < 5
    assert sup.status("ok-1") is None and sup.running == 0 and sup.queued == 0
    assert_group_gone(out)


async def test_async_callbacks_are_awaited() -> None:
    sup = make_supervisor(grace=GRACE)
    seen: list[str] = []

    async def on_line(line: str) -> None:
        await anyio.sleep(0)
        seen.append(line)

    async def on_started(pid: int, pgid: int) -> None:
        await anyio.sleep(0)
        seen.append(f"started {pid}")

    out = await sup.run(spec("async-1", "ok"), on_line=on_line, on_started=on_started)
    assert out.exit_code == 0
    assert seen[0] == f"started {out.pid}" and len(seen) == 4


async def test_exit_nonzero_keeps_code_and_stderr() -> None:
    sup = make_supervisor(grace=GRACE)
    out = await sup.run(spec("nz-1", "exit-nonzero", "--code", "7"))
    assert out.exit_code == 7
    assert out.killed_reason is None and not out.timed_out and not out.cancelled
    assert "fatal: something broke" in out.stderr_tail
    assert_group_gone(out)


async def test_spawn_failure_raises_and_frees_the_slot() -> None:
    sup = make_supervisor(max_concurrent=1, default_backend_cap=1)
    bad = ProcessSpec(run_id="bad-1", argv=["/nonexistent/harness"], env=dict(os.environ), stdin=b"")
    with pytest.raises(FileNotFoundError):
        await sup.run(bad)
    assert sup.status("bad-1") is None and sup.running == 0
    out = await sup.run(spec("after-bad", "ok"))  # the slot was released
    assert out.exit_code == 0


async def test_duplicate_run_id_is_refused() -> None:
    sup = make_supervisor(grace=GRACE)
    started = Started()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: sup.run(spec("dup", "sleep", "--seconds", "30"), on_started=started))
        await started.event.wait()
        with pytest.raises(ValueError, match="already"):
            await sup.run(spec("dup", "ok"))
        assert sup.cancel("dup")


# --------------------------------------------------------------------------- ending runs


async def test_timeout_kills_whole_group_including_grandchild() -> None:
    sup = make_supervisor(grace=GRACE)
    lines: list[str] = []
    t0 = time.monotonic()
    out = await sup.run(spec("to-1", "sleep", "--seconds", "60", "--grandchild", timeout=1.0), on_line=lines.append)
    elapsed = time.monotonic() - t0

    assert out.timed_out and not out.cancelled
    assert out.killed_reason is not None and out.killed_reason.startswith("timeout")
    assert out.exit_code == -signal.SIGTERM
    assert 1.0 <= elapsed < 1.0 + GRACE + 1.0
    kids, _ = grandchildren(lines)
    assert kids and not any(is_alive(pid) for pid in kids)
    assert_group_gone(out)


async def test_sigterm_trap_still_dies_by_sigkill_after_grace() -> None:
    sup = make_supervisor(grace=GRACE)
    t0 = time.monotonic()
    out = await sup.run(spec("trap-1", "trap-term", "--seconds", "60", "--grandchild", timeout=0.5))
    elapsed = time.monotonic() - t0
    assert out.timed_out
    assert out.exit_code == -signal.SIGKILL
    assert 0.5 + GRACE - 0.05 <= elapsed < 0.5 + GRACE + 1.0
    assert_group_gone(out)


async def test_timeout_counts_from_start_not_queue_time() -> None:
    sup = make_supervisor(max_concurrent=1)
    results: dict[str, ProcessOutcome] = {}

    async def go(s: ProcessSpec) -> None:
        results[s.run_id] = await sup.run(s)

    async with anyio.create_task_group() as tg:
        tg.start_soon(go, spec("blocker", "sleep", "--seconds", "1.2"))
        await wait_until(lambda: sup.status("blocker") == "running")
        tg.start_soon(go, spec("waiter", "sleep", "--seconds", "0.2", timeout=1.0))
    assert results["blocker"].exit_code == 0
    assert results["waiter"].exit_code == 0 and not results["waiter"].timed_out


async def test_cancel_running_run_kills_group() -> None:
    sup = make_supervisor(grace=GRACE)
    started = Started()
    lines: list[str] = []
    outcome: list[ProcessOutcome] = []

    async def go() -> None:
        outcome.append(
            await sup.run(spec("cr-1", "sleep", "--seconds", "60", "--grandchild"), on_line=lines.append, on_started=started)
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await started.event.wait()
        await wait_until(lambda: len(lines) >= 2)  # grandchild started and reported
        assert sup.status("cr-1") == "running" and sup.running == 1
        assert sup.cancel("cr-1") is True
    (out,) = outcome
    assert out.cancelled and not out.timed_out
    assert out.killed_reason == "cancelled"
    assert out.exit_code == -signal.SIGTERM
    kids, _ = grandchildren(lines)
    assert not any(is_alive(pid) for pid in kids)
    assert_group_gone(out)
    assert sup.cancel("cr-1") is False and sup.cancel("never-seen") is False


async def test_cancel_queued_run_never_starts() -> None:
    sup = make_supervisor(max_concurrent=1, grace=GRACE)
    blocker = Started()
    queued = anyio.Event()
    started_b: list[int] = []
    outcomes: dict[str, ProcessOutcome] = {}

    async def go(s: ProcessSpec, **kw: object) -> None:
        outcomes[s.run_id] = await sup.run(s, **kw)  # type: ignore[arg-type]

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: go(spec("A", "sleep", "--seconds", "60"), on_started=blocker))
        await blocker.event.wait()
        tg.start_soon(
            lambda: go(spec("B", "ok"), on_queued=queued.set, on_started=lambda pid, pgid: started_b.append(pid))
        )
        await queued.wait()
        assert sup.status("B") == "queued" and sup.queued == 1 and sup.running == 1
        assert sup.cancel("B") is True
        await wait_until(lambda: "B" in outcomes)
        assert sup.cancel("A")

    b = outcomes["B"]
    assert b.cancelled and b.pid is None and b.pgid is None and b.started_at is None and b.exit_code is None
    assert started_b == []
    assert outcomes["A"].cancelled
    assert_group_gone(outcomes["A"])


async def test_caller_scope_cancellation_kills_group_and_reraises() -> None:
    sup = make_supervisor(grace=GRACE)
    started = Started()
    lines: list[str] = []
    reached_after = False
    with anyio.move_on_after(1.0) as scope:
        await sup.run(spec("cc-1", "sleep", "--seconds", "60", "--grandchild"), on_line=lines.append, on_started=started)
        reached_after = True
    assert scope.cancelled_caught  # the cancellation propagated out of run()
    assert not reached_after
    assert started.pgid is not None
    assert alive_in_group(started.pgid) == []
    kids, _ = grandchildren(lines)
    assert not any(is_alive(pid) for pid in kids)
    assert sup.running == 0 and sup.status("cc-1") is None


async def test_caller_cancellation_of_sigterm_trapper_waits_grace_then_kills() -> None:
    sup = make_supervisor(grace=GRACE)
    started = Started()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: sup.run(spec("cc-2", "trap-term", "--seconds", "60"), on_started=started))
        await started.event.wait()
        await anyio.sleep(0.2)  # let it install its SIGTERM trap
        t0 = time.monotonic()
        tg.cancel_scope.cancel()
    assert GRACE - 0.05 <= time.monotonic() - t0 < GRACE + 1.0
    assert started.pgid is not None and alive_in_group(started.pgid) == []


async def test_line_callback_stop_reason_kills_fast() -> None:
    sup = make_supervisor(grace=GRACE)

    def on_line(line: str) -> str | None:
        event = json.loads(line)
        if event.get("subtype") == "api_retry" and event.get("error_status") in (401, 403):
            return f"fatal: {event['error']} ({event['error_status']})"
        return None

    t0 = time.monotonic()
    out = await sup.run(spec("f-1", "fatal-401", "--seconds", "60", "--grandchild"), on_line=on_line)
    assert time.monotonic() - t0 < 2.0
    assert out.killed_reason == "fatal: authentication_failed (401)"
    assert not out.cancelled and not out.timed_out
    assert out.exit_code == -signal.SIGTERM
    assert_group_gone(out)


async def test_line_callback_exception_propagates_after_kill() -> None:
    sup = make_supervisor(grace=GRACE)
    started = Started()

    def on_line(line: str) -> None:
        raise LookupError("parser bug")

    with pytest.raises(LookupError, match="parser bug"):
        await sup.run(spec("exc-1", "sleep", "--seconds", "60"), on_line=on_line, on_started=started)
    assert started.pgid is not None and alive_in_group(started.pgid) == []
    assert sup.running == 0


# --------------------------------------------------------------------------- orphans


async def test_grandchild_left_after_normal_exit_is_killed() -> None:
    sup = make_supervisor(grace=GRACE)
    lines: list[str] = []
    t0 = time.monotonic()
    out = await sup.run(spec("gc-1", "grandchild"), on_line=lines.append)
    # The grandchild holds stdout open; the group kill must bring EOF at once.
    assert time.monotonic() - t0 < 1.5
    assert out.exit_code == 0 and out.killed_reason is None
    assert json.loads(lines[-1])["type"] == "result"
    kids, _ = grandchildren(lines)
    assert kids and not any(is_alive(pid) for pid in kids)
    assert_group_gone(out)


async def test_setsid_grandchild_is_killed_by_kill_run_processes() -> None:
    sup = make_supervisor(grace=GRACE, reaper=False)  # without the reaper, only the environ finds it
    lines: list[str] = []
    out = await sup.run(spec(f"esc-1-{UNIQUE}", "ok", "--setsid-grandchild"), on_line=lines.append)
    assert out.exit_code == 0
    _, escaped = grandchildren(lines)
    (pid,) = escaped
    try:
        assert is_alive(pid)  # it left the group: the group kill did not reach it
        assert alive_in_group(out.pgid) == []  # type: ignore[arg-type]
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert f"{RUN_ID_ENV}=esc-1-{UNIQUE}".encode() in f.read().split(b"\0")
        assert kill_run_processes(f"esc-1-{UNIQUE}", out.pgid) >= 1
        await wait_until(lambda: not is_alive(pid), timeout=2)
        assert kill_run_processes(f"esc-1-{UNIQUE}", out.pgid) == 0
    finally:
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)


async def test_sweep_kills_setsid_grandchild_after_the_run() -> None:
    sup = Supervisor(grace=GRACE)  # default: sweep_escaped=True
    lines: list[str] = []
    out = await sup.run(spec(f"esc-2-{UNIQUE}", "ok", "--setsid-grandchild"), on_line=lines.append)
    _, (pid,) = grandchildren(lines)
    try:
        await wait_until(lambda: not is_alive(pid), timeout=2)
    finally:
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert_group_gone(out)


async def test_escaped_process_holding_stdout_cannot_hang_the_run() -> None:
    # Without the sweep, only the bounded drain saves us: the escapee keeps the pipe open.
    sup = make_supervisor(grace=GRACE, drain_timeout=0.3)
    lines: list[str] = []
    t0 = time.monotonic()
    out = await sup.run(
        spec(f"hold-1-{UNIQUE}", "ok", "--setsid-grandchild", "--escaped-holds-stdout"), on_line=lines.append
    )
    try:
        assert time.monotonic() - t0 < 0.3 + 1.0
        assert out.exit_code == 0 and json.loads(lines[-1])["type"] == "result"
    finally:
        kill_run_processes(f"hold-1-{UNIQUE}", None)
    _, (pid,) = grandchildren(lines)
    await wait_until(lambda: not is_alive(pid), timeout=2)

    # With the sweep (the default), the escapee is killed, the pipe closes at once.
    sup = Supervisor(grace=GRACE, drain_timeout=30)
    lines = []
    t0 = time.monotonic()
    out = await sup.run(spec(f"hold-2-{UNIQUE}", "ok", "--setsid-grandchild", "--escaped-holds-stdout"), on_line=lines.append)
    assert time.monotonic() - t0 < 2.0
    _, (pid,) = grandchildren(lines)
    try:
        await wait_until(lambda: not is_alive(pid), timeout=2)
    finally:
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)


async def test_kill_helpers_are_safe() -> None:
    with pytest.raises(ValueError):
        kill_process_group(0)
    with pytest.raises(ValueError):
        kill_process_group(1)
    assert kill_process_group(os.getpgrp()) is False  # never our own group
    with pytest.raises(ValueError):
        kill_run_processes("", None)
    sup = make_supervisor()
    out = await sup.run(spec(f"gone-1-{UNIQUE}", "ok"))
    assert kill_process_group(out.pgid, signal.SIGTERM) is False  # type: ignore[arg-type]
    assert kill_run_processes(f"gone-1-{UNIQUE}", out.pgid) == 0
    assert alive_in_group(os.getpgrp())  # sanity: the scan sees us


# --------------------------------------------------------------------------- queueing


async def test_fifo_order_under_cap_of_one() -> None:
    sup = make_supervisor(max_concurrent=1, grace=GRACE)
    order: list[str] = []
    queued: list[str] = []
    ids = [f"fifo-{i}" for i in range(1, 6)]
    blocker = Started()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: sup.run(spec("fifo-0", "sleep", "--seconds", "30"), on_started=blocker))
        await blocker.event.wait()
        for rid in ids:
            tg.start_soon(
                lambda rid=rid: sup.run(
                    spec(rid, "ok"),
                    on_started=lambda pid, pgid, rid=rid: order.append(rid),
                    on_queued=lambda rid=rid: queued.append(rid),
                )
            )
            await wait_until(lambda rid=rid: sup.status(rid) == "queued")
        assert sup.running == 1 and sup.queued == 5
        sup.cancel("fifo-0")
    assert queued == ids
    assert order == ids


async def test_backend_cap_queues_while_other_backend_starts() -> None:
    # Global 3 (stricter than 8): if the queued kimi run held a global slot,
    # the other backend's run could not start.
    sup = make_supervisor(max_concurrent=3, backend_caps={"kimi": 2}, default_backend_cap=2, grace=GRACE)
    started: dict[str, Started] = {rid: Started() for rid in ("k1", "k2", "k3", "o1")}
    k3_queued = anyio.Event()
    outcomes: dict[str, ProcessOutcome] = {}

    async def go(rid: str, backend: str, **kw: object) -> None:
        s = spec(rid, "sleep", "--seconds", "30", backend=backend)
        outcomes[rid] = await sup.run(s, on_started=started[rid], **kw)  # type: ignore[arg-type]

    async with anyio.create_task_group() as tg:
        tg.start_soon(go, "k1", "kimi")
        tg.start_soon(go, "k2", "kimi")
        await started["k1"].event.wait()
        await started["k2"].event.wait()
        tg.start_soon(lambda: go("k3", "kimi", on_queued=k3_queued.set))
        await k3_queued.wait()
        assert sup.status("k3") == "queued"
        tg.start_soon(go, "o1", "other")
        await started["o1"].event.wait()  # another backend starts while k3 waits
        assert sup.status("k3") == "queued" and sup.running == 3 and sup.queued == 1
        sup.cancel("k1")
        await started["k3"].event.wait()  # k1's backend slot went to k3
        assert sup.status("k3") == "running"
        for rid in ("k2", "k3", "o1"):
            sup.cancel(rid)
    for out in outcomes.values():
        assert out.cancelled
        assert_group_gone(out)


# --------------------------------------------------------------------------- I/O


async def test_one_megabyte_task_on_stdin() -> None:
    sup = make_supervisor()
    task = os.urandom(1024 * 1024)
    lines: list[str] = []
    out = await sup.run(spec("stdin-1", "echo-stdin", stdin=task), on_line=lines.append)
    assert out.exit_code == 0
    echo = json.loads(lines[1])
    assert echo["stdin_bytes"] == len(task)
    assert echo["sha256"] == hashlib.sha256(task).hexdigest()


async def test_child_that_never_reads_stdin_does_not_deadlock() -> None:
    sup = make_supervisor()
    out = await sup.run(spec("noread-1", "no-read", "--seconds", "0.2", stdin=b"x" * (1024 * 1024), timeout=10))
    assert out.exit_code == 0 and not out.timed_out


async def test_non_utf8_and_garbage_are_delivered() -> None:
    sup = make_supervisor()
    lines: list[str] = []
    out = await sup.run(spec("bytes-1", "non-utf8"), on_line=lines.append)
    assert out.exit_code == 0
    assert "bad \ufffd\ufffd\ufffd bytes" in lines
    assert "caf\ufffd" in lines
    assert "\ufffd" in out.stderr_tail
    assert json.loads(lines[-1])["type"] == "result"

    lines.clear()
    out = await sup.run(spec("garbage-1", "garbage"), on_line=lines.append)
    assert out.exit_code == 0
    assert "this is not json" in lines and "" in lines and "{}{}{}" in lines
    assert "\x00\x01\x02 control bytes" in lines
    assert lines[-1] == "trailing line without newline"
    assert out.stdout_lines == len(lines)


async def test_big_output_streams_in_bounded_memory() -> None:
    sup = make_supervisor()
    count = 0
    size = 0

    def on_line(line: str) -> None:
        nonlocal count, size
        count += 1
        size += len(line) + 1

    tracemalloc.start()
    try:
        out = await sup.run(spec("big-1", "big-output", "--mb", "20"), on_line=on_line)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.exit_code == 0
    assert size >= 20 * 1024 * 1024 and count == out.stdout_lines > 20_000
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"


async def test_an_overlong_line_is_dropped_whole_and_said() -> None:
    """Half a JSON line is garbage: a line over the limit is not handed on, but its size is
    (``on_line_cut``), and the outcome lists it; the lines around it go on as usual."""
    sup = make_supervisor(max_line_bytes=1024 * 1024)
    lines: list[str] = []
    cut: list[int] = []
    out = await sup.run(spec("long-1", "long-line", "--mb", "3"), on_line=lines.append, on_line_cut=cut.append)
    assert out.exit_code == 0
    assert cut == out.lines_cut == [3 * 1024 * 1024]
    assert json.loads(lines[0])["subtype"] == "init"
    assert json.loads(lines[-1])["type"] == "result" and len(lines) == 2
    assert out.stdout_lines == 3


async def test_stderr_and_stdout_are_read_concurrently() -> None:
    sup = make_supervisor()
    out = await sup.run(spec("err-1", "ok", "--stderr-kb", "512", timeout=10))
    assert out.exit_code == 0 and out.stdout_lines == 3
    assert out.stderr_tail.endswith("STDERR-END\n")
    assert 4 * 1024 <= len(out.stderr_tail) <= 8 * 1024


# --------------------------------------------------------------------------- shutdown, load


async def test_aclose_kills_everything() -> None:
    sup = make_supervisor(max_concurrent=2, grace=GRACE)
    started = {rid: Started() for rid in ("a", "b", "c")}
    outcomes: dict[str, ProcessOutcome] = {}

    async def go(rid: str, mode: str) -> None:
        outcomes[rid] = await sup.run(spec(rid, mode, "--seconds", "60", "--grandchild"), on_started=started[rid])

    async with anyio.create_task_group() as tg:
        tg.start_soon(go, "a", "sleep")
        tg.start_soon(go, "b", "trap-term")
        await started["a"].event.wait()
        await started["b"].event.wait()
        tg.start_soon(go, "c", "sleep")
        await wait_until(lambda: sup.status("c") == "queued")
        await anyio.sleep(0.2)  # let b trap SIGTERM
        with anyio.fail_after(GRACE + 3):
            await sup.aclose()
        assert sup.running == 0 and sup.queued == 0
    assert all(o.cancelled for o in outcomes.values())
    assert outcomes["c"].pid is None
    assert outcomes["b"].exit_code == -signal.SIGKILL
    for rid in ("a", "b"):
        assert_group_gone(outcomes[rid])
    with pytest.raises(RuntimeError, match="closed"):
        await sup.run(spec("late", "ok"))


async def test_fifty_concurrent_sleeping_runs() -> None:
    sup = make_supervisor(max_concurrent=50, default_backend_cap=50)
    outcomes: list[ProcessOutcome] = []
    results: list[str] = []

    async def go(i: int) -> None:
        def on_line(line: str) -> None:
            if '"type": "result"' in line:
                results.append(line)

        outcomes.append(await sup.run(spec(f"many-{i}", "sleep", "--seconds", "1", timeout=30), on_line=on_line))

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(go, i)
        await wait_until(lambda: sup.running == 50, timeout=20)
        assert sup.queued == 0
    assert time.monotonic() - t0 < 20
    assert len(outcomes) == 50 and all(o.exit_code == 0 for o in outcomes)
    assert len(results) == 50


async def test_five_hundred_concurrent_tiny_runs_are_light() -> None:
    """500 concurrent `sleep` processes: no per-run thread of ours, modest memory."""
    sup = make_supervisor(max_concurrent=500, default_backend_cap=500)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes: list[ProcessOutcome] = []

    async def go(i: int) -> None:
        s = ProcessSpec(run_id=f"tiny-{i}", argv=["sleep", "1.5"], env=dict(os.environ), stdin=b"", timeout=30)
        outcomes.append(await sup.run(s))

    async with anyio.create_task_group() as tg:
        for i in range(500):
            tg.start_soon(go, i)
        await wait_until(lambda: sup.running == 500, timeout=20)
    assert len(outcomes) == 500 and all(o.exit_code == 0 for o in outcomes)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 200 * 1024


async def test_a_run_that_keeps_stdin_takes_more_input_in_order_until_it_is_closed() -> None:
    """keep_stdin: the task, then every later write in order (written by the run's own task, so
    a write never blocks), then EOF at close_stdin; writes after that, or to a run without
    keep_stdin, are refused."""
    sup = make_supervisor(grace=GRACE)
    seen: list[str] = []
    rid = f"live-{UNIQUE}"

    def on_line(line: str) -> None:
        event = json.loads(line)
        if event.get("type") == "fake":
            seen.append(event["line"])
            if event["line"] == "first":
                assert sup.write_stdin(rid, b"second\n") and sup.write_stdin(rid, b"third\n")
            if event["line"] == "third":
                sup.close_stdin(rid)
                assert not sup.write_stdin(rid, b"late\n")

    assert sup.write_stdin(rid, b"nothing\n") is False  # not a run (yet)
    async with sup:
        out = await sup.run(spec(rid, "stdin-lines", stdin=b"first\n", keep_stdin=True), on_line=on_line)
        plain = await sup.run(spec(f"plain-{UNIQUE}", "stdin-lines", stdin=b"only\n"),
                              on_started=lambda pid, pgid: seen.append(f"plain write: {sup.write_stdin(f'plain-{UNIQUE}', b'x')}"))
    assert out.exit_code == 0 and not out.timed_out
    assert seen == ["first", "second", "third", "plain write: False"]
    assert plain.exit_code == 0
