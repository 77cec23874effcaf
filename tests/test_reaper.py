"""The reaper: nothing of a run outlives the run or its supervisor — a daemon that setsid()s,
double-forks and clears its environment included, and a supervisor killed with SIGKILL.
Real processes throughout: a separate Python process running the Supervisor, the fake
harness, `sleep` daemons."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fakes import fake_argv
from fakes.spawning import is_alive, live_in_group, pids_carrying_run_id, wait_until_sync
from kimi_acp.supervisor import ProcessSpec, Supervisor, reaper_enabled

pytestmark = pytest.mark.skipif(not reaper_enabled(), reason="the reaper needs Linux prctl")

TESTS = Path(__file__).resolve().parent

SUPERVISOR = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import anyio
    from fakes import fake_argv
    from kimi_acp.supervisor import ProcessSpec, Supervisor

    async def main():
        sup = Supervisor(grace=0.5, sweep_escaped=False)
        seen = []

        def on_line(line):
            obj = json.loads(line)
            if obj.get("type") == "fake":
                print(json.dumps(obj), flush=True)

        def on_started(pid, pgid):
            print(json.dumps({{"started": pid, "pgid": pgid}}), flush=True)

        spec = ProcessSpec(run_id={run_id!r}, argv=fake_argv("sleep", "--seconds", "300", *{flags!r}),
                           env=dict(os.environ), stdin=b"task")
        await sup.run(spec, on_line=on_line, on_started=on_started)

    anyio.run(main)
    """
)


def _start_supervisor(run_id: str, *flags: str) -> tuple[subprocess.Popen[str], dict[str, int], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR.format(tests=str(TESTS), run_id=run_id, flags=list(flags))],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    assert proc.stdout is not None
    started = json.loads(proc.stdout.readline())
    fake = json.loads(proc.stdout.readline())
    kids = fake["grandchildren"] + fake["escaped"] + fake["daemons"]
    return proc, started, kids


def test_daemon_with_empty_environment_dies_with_the_run() -> None:
    import anyio

    lines: list[str] = []

    async def go() -> object:
        sup = Supervisor(grace=0.5, sweep_escaped=False)  # no environ sweep: the reaper alone
        return await sup.run(
            ProcessSpec(run_id="reaper-daemon-1", argv=fake_argv("ok", "--daemon", "--setsid-grandchild"),
                        env=dict(os.environ), stdin=b"t"),
            on_line=lines.append,
        )

    out = anyio.run(go)
    assert out.exit_code == 0  # type: ignore[attr-defined]
    fake = next(json.loads(x) for x in lines if '"fake"' in x)
    (daemon,) = fake["daemons"]
    assert Path(f"/proc/{daemon}/environ").exists() is False or not is_alive(daemon), "the daemon survived its run"
    assert not any(is_alive(p) for p in fake["escaped"] + fake["daemons"])


@pytest.mark.parametrize("flags", [("--grandchild", "--setsid-grandchild", "--daemon")])
def test_kill_9_of_the_supervisor_kills_every_process_of_its_runs(flags: tuple[str, ...]) -> None:
    run_id = f"reaper-k9-{os.getpid()}"
    proc, started, kids = _start_supervisor(run_id, *flags)
    try:
        pgid = started["pgid"]
        assert all(is_alive(p) for p in kids) and live_in_group(pgid)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # Nothing else runs: no kimi-acp command, no recovery. The reaper notices on its own.
        wait_until_sync(lambda: not live_in_group(pgid) and not any(is_alive(p) for p in kids)
                        and not pids_carrying_run_id(run_id), 10, "every process of the run to die")
        assert time.monotonic() - t0 < 10
    finally:
        for p in kids:
            if is_alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_harness_ignoring_sigterm_and_its_daemon_die_on_cancel() -> None:
    import anyio

    lines: list[str] = []

    async def go() -> object:
        sup = Supervisor(grace=0.3, sweep_escaped=False)
        async with anyio.create_task_group() as tg:
            result: list[object] = []

            async def run() -> None:
                result.append(await sup.run(
                    ProcessSpec(run_id="reaper-trap-1", argv=fake_argv("trap-term", "--daemon"), env=dict(os.environ),
                                stdin=b"t"),
                    on_line=lines.append,
                ))

            tg.start_soon(run)
            with anyio.fail_after(20):
                while not any('"fake"' in x for x in lines):
                    await anyio.sleep(0.02)
            sup.cancel("reaper-trap-1")
        return result[0]

    out = anyio.run(go)
    assert out.cancelled and out.exit_code == -signal.SIGKILL  # type: ignore[attr-defined]
    fake = next(json.loads(x) for x in lines if '"fake"' in x)
    assert not any(is_alive(p) for p in fake["daemons"]), "the daemon of a SIGTERM-ignoring harness survived"


# --------------------------------------------------------------------------- handing over when the supervisor dies

HANDOVER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {tests!r})
    import anyio
    from fakes import fake_argv
    from kimi_acp.supervisor import ProcessSpec, Supervisor

    async def main():
        # The "deliverer" of this test writes a marker: it runs only if the reaper or its watch starts it.
        command = {{"argv": [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('started')", {marker!r}],
                    "env": dict(os.environ), "lock": {lock!r}}}
        sup = Supervisor(grace=0.5, orphan_command=command)

        def on_started(pid, pgid):
            print(json.dumps({{"started": pid}}), flush=True)

        spec = ProcessSpec(run_id={run_id!r}, argv=fake_argv(*{mode!r}), env=dict(os.environ), stdin=b"task")
        out = await sup.run(spec, on_started=on_started, hold=True)
        print(json.dumps({{"exit": out.exit_code}}), flush=True)
        if {release!r}:
            out.release()
            print(json.dumps({{"released": True}}), flush=True)
        await anyio.sleep(300)  # "delivering": killed here by the test

    anyio.run(main)
    """
)


def _handover(tmp_path: Path, mode: tuple[str, ...], release: bool) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / "deliverer-started"
    code = HANDOVER.format(tests=str(TESTS), marker=str(marker), lock=str(tmp_path / "deliverer.lock"),
                           run_id=f"handover-{os.getpid()}-{len(mode)}", mode=list(mode), release=release)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    return proc, marker


@pytest.mark.parametrize(("mode", "release", "started"), [
    (("sleep", "--seconds", "300"), False, True),  # dies mid-run: the reaper starts it
    (("ok",), False, True),  # dies after Claude Code exited, before "delivered": the watch starts it
    (("ok",), True, False),  # released (recorded and delivered), then dies: nothing starts
])
def test_the_deliverer_is_started_only_when_the_supervisor_dies_with_work_left(
    tmp_path: Path, mode: tuple[str, ...], release: bool, started: bool
) -> None:
    proc, marker = _handover(tmp_path, mode, release)
    assert proc.stdout is not None
    try:
        assert "started" in json.loads(proc.stdout.readline())
        if mode[0] == "ok":
            assert "exit" in json.loads(proc.stdout.readline())
            if release:
                assert json.loads(proc.stdout.readline()) == {"released": True}
        else:
            time.sleep(0.3)
        assert not marker.exists()  # nothing runs for it while the supervisor lives
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if started:
            wait_until_sync(marker.exists, 10, "the handed-over command to start")
        else:
            time.sleep(1.0)
            assert not marker.exists(), "started although the run was released"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_no_watch_is_left_once_released(tmp_path: Path) -> None:
    """The watch (a fork of the reaper, in its own session) exits when the supervisor releases the run."""
    import anyio

    marker = tmp_path / "never"
    command = {"argv": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"], "env": dict(os.environ), "lock": ""}

    async def go() -> tuple[int, list[int]]:
        sup = Supervisor(grace=0.5, orphan_command=command)
        out = await sup.run(ProcessSpec(run_id="watch-1", argv=fake_argv("ok"), env=dict(os.environ), stdin=b"t"), hold=True)
        watches = _watches(out.pid)
        out.release()
        return out.pid, watches

    reaper, watches = anyio.run(go)
    assert len(watches) == 1  # held: the watch waits
    wait_until_sync(lambda: not any(is_alive(p) for p in watches), 5, "the watch to exit")
    assert not marker.exists()


def _watches(reaper: int) -> list[int]:
    """Live processes in a session of their own whose command line is a reaper's of this process
    (a watch: the fork keeps the reaper's command line)."""
    from kimi_acp.supervisor import REAPER

    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == reaper:
            continue
        try:
            parts = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # ours: the owner argument starts with this process's pid and hands over a release pipe
        if len(parts) > 5 and parts[4] == REAPER.encode() and parts[5].startswith(f"{os.getpid()},".encode()) \
                and b",r=" in parts[5] and is_alive(int(name)) and os.getsid(int(name)) == int(name):
            found.append(int(name))
    return found
