"""The per-backend cap across processes: several kimi-acp processes on one state dir
(one `kimi-acp acp` per OpenClaw ACP session, `spawn --no-wait` workers) share it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
import pytest
from fakes import fake_argv

from kimi_acp.supervisor import ProcessSlots, ProcessSpec, Supervisor

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def spec(mode: str = "ok", *args: str, backend: str = "kimi") -> ProcessSpec:
    return ProcessSpec(run_id=f"slot-{uuid.uuid4()}", argv=fake_argv(mode, *args), env=dict(os.environ), stdin=b"", backend=backend)


@pytest.mark.asyncio
async def test_two_supervisors_share_one_backend_slot(tmp_path: Path) -> None:
    slots_dir = tmp_path / "slots"
    a = Supervisor(default_backend_cap=4, slots=ProcessSlots(slots_dir, {"kimi": 1}), sweep_escaped=False)
    b = Supervisor(default_backend_cap=4, slots=ProcessSlots(slots_dir, {"kimi": 1}), sweep_escaped=False)
    events: list[str] = []
    async with a, b, anyio.create_task_group() as tg:

        async def first() -> None:
            out = await a.run(spec("sleep", "--seconds", "1"), on_started=lambda pid, pgid: events.append("a-start"))
            events.append("a-end")
            assert out.exit_code == 0

        async def second() -> None:
            await anyio.sleep(0.3)  # a holds the slot by now
            queued: list[bool] = []
            out = await b.run(spec(), on_queued=lambda: queued.append(True), on_started=lambda pid, pgid: events.append("b-start"))
            assert queued == [True]
            assert out.exit_code == 0

        tg.start_soon(first)
        tg.start_soon(second)
    assert events == ["a-start", "a-end", "b-start"]


@pytest.mark.asyncio
async def test_a_slot_held_by_another_process_is_freed_when_it_dies(tmp_path: Path) -> None:
    slots = ProcessSlots(tmp_path / "slots", {"kimi": 1})
    (tmp_path / "slots" / "kimi").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "slots" / "kimi" / "0.lock")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        sup = Supervisor(slots=slots, sweep_escaped=False)
        async with sup:
            started = anyio.Event()
            t0 = time.monotonic()
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    out = await sup.run(spec(), on_started=lambda pid, pgid: started.set())
                    assert out.exit_code == 0

                tg.start_soon(run)
                await anyio.sleep(0.5)
                assert not started.is_set() and sup.status(next(iter(sup._runs))) == "queued"
                os.kill(holder.pid, signal.SIGKILL)  # a crashed kimi-acp: the kernel drops its lock
                holder.wait()
                with anyio.fail_after(5):
                    await started.wait()
            assert time.monotonic() - t0 >= 0.5
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout:
            holder.stdout.close()


@pytest.mark.asyncio
async def test_cancel_while_waiting_for_a_slot(tmp_path: Path) -> None:
    slots = ProcessSlots(tmp_path / "slots", {"kimi": 1})
    fd = slots.try_acquire("kimi")
    assert fd is not None and slots.try_acquire("kimi") is None
    try:
        sup = Supervisor(slots=slots, sweep_escaped=False)
        async with sup:
            s = spec()
            async with anyio.create_task_group() as tg:
                outcomes = []

                async def run() -> None:
                    outcomes.append(await sup.run(s))

                tg.start_soon(run)
                await anyio.sleep(0.3)
                assert sup.cancel(s.run_id) is True
            [out] = outcomes
            assert out.cancelled and out.pid is None
        other = slots.try_acquire("other")
        assert other is not None  # other backends are not affected
        slots.release(other)
    finally:
        slots.release(fd)
    again = slots.try_acquire("kimi")
    assert again is not None  # released: nothing leaked by the cancelled waiter
    slots.release(again)


WAITER = """
import sys, time
sys.path.insert(0, {plugin!r})
import anyio
from kimi_acp.supervisor import ProcessSlots

async def main():
    slots = ProcessSlots({slots!r}, {{"kimi": 1}}, poll=0.01)
    print("waiting", flush=True)
    fd = await slots.acquire("kimi")
    with open({log!r}, "a") as f:
        f.write(sys.argv[1] + "\\n")
    time.sleep(0.2)
    slots.release(fd)

anyio.run(main)
"""


def test_waiters_in_different_processes_are_served_first_come_first_served(tmp_path: Path) -> None:
    """Processes that queue for a busy backend get it in the order they asked for it."""
    import kimi_acp

    slots = ProcessSlots(tmp_path / "slots", {"kimi": 1})
    held = slots.try_acquire("kimi")
    assert held is not None
    log = tmp_path / "order.log"
    script = WAITER.format(plugin=str(Path(kimi_acp.__file__).parents[1]), slots=str(tmp_path / "slots"), log=str(log))
    queue = tmp_path / "slots" / "kimi" / "queue"
    waiters = []
    try:
        for name in ("first", "second", "third", "fourth"):
            w = subprocess.Popen([sys.executable, "-c", script, name], stdout=subprocess.PIPE)
            waiters.append(w)
            assert w.stdout is not None and w.stdout.readline().strip() == b"waiting"
            deadline = time.monotonic() + 20
            while len(os.listdir(queue)) < len(waiters):  # its ticket is taken: it is in line
                assert time.monotonic() < deadline, "the waiter never queued"
                time.sleep(0.01)
        slots.release(held)
        for w in waiters:
            assert w.wait(timeout=30) == 0
    finally:
        for w in waiters:
            if w.poll() is None:
                w.kill()
                w.wait()
            if w.stdout:
                w.stdout.close()
    assert log.read_text().split() == ["first", "second", "third", "fourth"]
    assert os.listdir(queue) == []
