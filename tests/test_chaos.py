"""The chaos suite: whatever dies, whenever, no result is lost and no process survives.

Each case runs the real thing — the ``kimi-acp`` CLI as a separate process, the fake
harness (a real program that sleeps, traps SIGTERM, starts a setsid'd double-forked
daemon with an empty environment), the stand-in gateway on 127.0.0.1 — and breaks it:
kill -9 at named points, SIGTERM and SIGHUP, a gateway that is down, answers 500s or
hangs, 200 spawns through a per-backend cap of 2. Then, for each case:

- the result is delivered exactly once at the gateway (answered 200 once for its
  idempotency key), or the run is recorded ``lost`` with a reason and delivered as such;
- 0 processes of the run are left (its group, its ``KIMI_ACP_RUN_ID`` carriers, its
  grandchildren and daemons);
- 0 stuck rows (no queued or running run, no undelivered outbox item).

Nothing else runs in between: no other kimi-acp command does the cleaning up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from fakes.spawning import (
    CONTEXT,
    HOOKS_TOKEN,
    KIMI_ACP,
    REQUESTER,
    FakeHarness,
    fake_argv,
    fake_line,
    is_alive,
    live_in_group,
    make_pm,
    pids_carrying_run_id,
    processes_of_state_dir,
    wait_until_sync,
    wrapper_script,
    write_config,
)
from kimi_acp.hookspecs import hookimpl
from kimi_acp.store import Store
from kimi_acp.stub.gateway import GatewayStub
from kimi_acp.supervisor import reaper_enabled

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(not reaper_enabled(), reason="kill -9 of a supervisor needs the reaper (Linux prctl)"),
]

KEY = "sk-kimi-chaos0000000000000000000000000000c4a5"
SLEEPER = ("sleep", "--seconds", "300", "--grandchild", "--setsid-grandchild", "--daemon")


@pytest.fixture
def gw() -> Iterator[GatewayStub]:
    with GatewayStub(token=HOOKS_TOKEN) as g:
        yield g


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("OPENCLAW_HOOKS_TOKEN", HOOKS_TOKEN)


class Cli:
    """One ``kimi-acp spawn --session K`` process on the fake harness."""

    def __init__(self, tmp_path: Path, gw: GatewayStub, mode: str, *args: str, no_wait: bool = False) -> None:
        wrapper = wrapper_script(tmp_path, mode, *args)
        write_config(tmp_path, harness={"command": str(wrapper)}, gateway_url=gw.url)
        argv = [KIMI_ACP, "spawn", "chaos task", "--agent", "coder", "--session", REQUESTER, "--json"]
        if no_wait:
            argv.append("--no-wait")
        self.proc = subprocess.Popen(argv, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.store = Store()

    def run(self, timeout: float = 60) -> Any:
        def one() -> Any:
            runs = self.store.list_runs(include_finished=True)
            return runs[0] if runs else None

        return wait_until_sync(one, timeout, "the run to be recorded")

    def running_with_kids(self, timeout: float = 60) -> tuple[Any, list[int]]:
        rec = self.run(timeout)
        path = self.store.transcript_path(rec.run_id)
        fake = wait_until_sync(lambda: fake_line(path, "daemons"), timeout, "the harness to start its grandchildren")
        rec = self.store.get_run(rec.run_id)
        assert rec.status == "running" and rec.pgid
        return rec, fake["grandchildren"] + fake["escaped"] + fake["daemons"]

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.finish(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)
        self.store.close()


@pytest.fixture
def cli_factory(tmp_path: Path, gw: GatewayStub) -> Iterator[Any]:
    made: list[Cli] = []

    def make(mode: str, *args: str, **kw: Any) -> Cli:
        c = Cli(tmp_path, gw, mode, *args, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def delivered(gw: GatewayStub, run_id: str) -> list[Any]:
    return [d for d in gw.deliveries if d.body.get("idempotencyKey") == f"kimi-acp:{run_id}"]


def assert_delivered_once(gw: GatewayStub, run_id: str, status_text: str, timeout: float = 60) -> Any:
    wait_until_sync(lambda: delivered(gw, run_id), timeout, f"the gateway to receive run {run_id}")
    with Store() as store:  # marked delivered: nothing is going to send it again
        wait_until_sync(lambda: not store.outbox_pending(), 15, "the outbox to be empty")
    got = delivered(gw, run_id)
    assert len(got) == 1, f"delivered {len(got)} times"
    assert got[0].body["sessionKey"] == REQUESTER
    assert f"status: {status_text}" in got[0].body["message"], got[0].body["message"]
    return got[0]


def assert_no_process_left(run_id: str, pgid: int | None, kids: list[int], timeout: float = 10) -> None:
    wait_until_sync(
        lambda: (not pgid or not live_in_group(pgid)) and not pids_carrying_run_id(run_id)
        and not any(is_alive(p) for p in kids),
        timeout, f"every process of run {run_id} to be gone",
    )


def assert_no_stuck_rows(timeout: float = 15) -> None:
    """No run left queued or running, no item left undelivered. The stand-in gateway records a
    delivery before it answers, and the deliverer marks it only after the answer: wait for that."""
    with Store() as store:
        assert store.list_runs() == [], "runs left queued or running"
        try:
            wait_until_sync(lambda: not store.outbox_pending(), timeout, "the outbox to be empty")
        except AssertionError:
            assert store.outbox_pending() == [], "undelivered outbox items left"


def _cleanup(kids: list[int]) -> None:
    for p in kids:
        if is_alive(p):
            os.kill(p, signal.SIGKILL)


# --------------------------------------------------------------------------- kill -9 at named points


def test_kill_9_before_the_result_is_written(cli_factory: Any, gw: GatewayStub) -> None:
    cli = cli_factory(*SLEEPER)
    rec, kids = cli.running_with_kids()
    try:
        cli.kill9()
        assert_no_process_left(rec.run_id, rec.pgid, kids)
        assert_delivered_once(gw, rec.run_id, "lost")
        lost = cli.store.get_run(rec.run_id)
        assert lost.status == "lost" and "died" in (lost.error or "")
        assert_no_stuck_rows()
    finally:
        _cleanup(kids)


def test_kill_9_after_the_result_is_written_before_delivery(cli_factory: Any, gw: GatewayStub) -> None:
    gw.stop()  # the result cannot go out while the CLI lives
    cli = cli_factory("ok", "--text", "written, then the CLI died")
    rec = cli.run()
    wait_until_sync(lambda: cli.store.get_run(rec.run_id).status == "ok" and cli.store.outbox_pending(), 30,
                    "the result committed with its outbox row")
    cli.kill9()
    gw.start()  # same port
    got = assert_delivered_once(gw, rec.run_id, "completed successfully")
    assert "written, then the CLI died" in got.body["message"]
    assert_no_process_left(rec.run_id, rec.pgid, [])
    assert_no_stuck_rows()


def test_kill_9_during_delivery(cli_factory: Any, gw: GatewayStub) -> None:
    gw.hang_next = 1  # the CLI's POST is received and never answered
    cli = cli_factory("ok", "--text", "killed mid-POST")
    rec = cli.run()
    gw.wait_for_hung(1, timeout=30)
    cli.kill9()
    gw.release()
    got = assert_delivered_once(gw, rec.run_id, "completed successfully")
    assert "killed mid-POST" in got.body["message"]
    assert_no_stuck_rows()


def test_kill_9_while_the_gateway_is_down(cli_factory: Any, gw: GatewayStub) -> None:
    gw.stop()
    cli = cli_factory(*SLEEPER)
    rec, kids = cli.running_with_kids()
    try:
        cli.kill9()
        assert_no_process_left(rec.run_id, rec.pgid, kids)
        with Store() as store:
            wait_until_sync(lambda: store.get_run(rec.run_id).status == "lost", 15, "the run recorded lost")
        gw.start()
        assert_delivered_once(gw, rec.run_id, "lost")
        assert_no_stuck_rows()
    finally:
        _cleanup(kids)


def test_kill_9_of_the_no_wait_worker(cli_factory: Any, gw: GatewayStub) -> None:
    cli = cli_factory(*SLEEPER, no_wait=True)
    code, out, err = cli.finish(60)
    assert code == 0, err
    rec, kids = cli.running_with_kids()
    try:
        worker = rec.owner_pid
        assert worker and worker != cli.proc.pid and is_alive(worker)
        os.kill(worker, signal.SIGKILL)
        assert_no_process_left(rec.run_id, rec.pgid, kids)
        assert_delivered_once(gw, rec.run_id, "lost")
        assert_no_stuck_rows()
    finally:
        _cleanup(kids)


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_signal_to_a_foreground_spawn_cancels_its_run(cli_factory: Any, gw: GatewayStub, sig: int, code: int) -> None:
    cli = cli_factory(*SLEEPER)
    rec, kids = cli.running_with_kids()
    try:
        os.kill(cli.proc.pid, sig)
        rc, out, err = cli.finish(60)
        assert rc == code, err
        assert json.loads(out)["status"] == "cancelled"
        assert cli.store.get_run(rec.run_id).status == "cancelled"
        assert_no_process_left(rec.run_id, rec.pgid, kids, timeout=1)  # gone before the CLI returned
        assert_delivered_once(gw, rec.run_id, "cancelled", timeout=1)  # delivered before it returned
        assert_no_stuck_rows()
    finally:
        _cleanup(kids)


def test_harness_ignoring_sigterm(cli_factory: Any, gw: GatewayStub) -> None:
    cli = cli_factory("trap-term", "--seconds", "300", "--daemon", "--setsid-grandchild")
    rec, kids = cli.running_with_kids()
    try:
        os.kill(cli.proc.pid, signal.SIGTERM)
        rc, out, err = cli.finish(60)
        assert rc == 143, err
        final = cli.store.get_run(rec.run_id)
        assert final.status == "cancelled" and final.exit_code == -signal.SIGKILL
        assert_no_process_left(rec.run_id, rec.pgid, kids, timeout=1)
        assert_delivered_once(gw, rec.run_id, "cancelled", timeout=1)
        assert_no_stuck_rows()
    finally:
        _cleanup(kids)


def test_env_clearing_double_forked_daemon(cli_factory: Any, gw: GatewayStub) -> None:
    cli = cli_factory("ok", "--daemon", "--setsid-grandchild", "--text", "left a daemon behind")
    rc, out, err = cli.finish(60)
    assert rc == 0, err
    rec = cli.run()
    fake = fake_line(cli.store.transcript_path(rec.run_id), "daemons")
    assert fake and fake["daemons"]
    kids = fake["daemons"] + fake["escaped"]
    try:
        assert not any(is_alive(p) for p in kids), "the daemon outlived its run"
        assert_delivered_once(gw, rec.run_id, "completed successfully", timeout=1)
        assert_no_stuck_rows()
    finally:
        _cleanup(kids)


# --------------------------------------------------------------------------- a bad gateway


def test_gateway_answering_500s(cli_factory: Any, gw: GatewayStub) -> None:
    gw.fail_status, gw.fail_next = 500, 3
    cli = cli_factory("ok", "--text", "after the 500s")
    rc, out, err = cli.finish(60)
    assert rc == 0, err
    rec = cli.run()
    assert_delivered_once(gw, rec.run_id, "completed successfully")
    assert gw.failures == 3
    assert_no_stuck_rows()


def test_gateway_hanging(cli_factory: Any, gw: GatewayStub) -> None:
    gw.hang_next = 1
    cli = cli_factory("ok", "--text", "after the hang")
    t0 = time.monotonic()
    rc, out, err = cli.finish(60)
    assert rc == 0, err
    assert time.monotonic() - t0 < 30  # the flush before exit is bounded
    rec = cli.run()
    assert_delivered_once(gw, rec.run_id, "completed successfully")
    assert gw.hung == 1
    gw.release()
    assert_no_stuck_rows()


def test_gateway_down_then_back(cli_factory: Any, gw: GatewayStub) -> None:
    gw.stop()
    cli = cli_factory("ok", "--text", "while it was down")
    rc, out, err = cli.finish(60)
    assert rc == 0, err
    rec = cli.run()
    with Store() as store:
        (item,) = store.outbox_pending(rec.run_id)
        assert item.attempts >= 1 and "connect" in (item.last_error or "").lower()
    gw.start()
    assert_delivered_once(gw, rec.run_id, "completed successfully")
    assert_no_stuck_rows()


def test_the_no_wait_worker_retries_a_failing_gateway(cli_factory: Any, gw: GatewayStub) -> None:
    gw.fail_status, gw.fail_next = 500, 2
    cli = cli_factory("ok", "--text", "from the worker", no_wait=True)
    code, out, err = cli.finish(60)
    assert code == 0, err
    run_id = json.loads(out)["runId"]
    got = assert_delivered_once(gw, run_id, "completed successfully")
    assert "from the worker" in got.body["message"] and gw.failures == 2
    with Store() as store:
        owner = store.get_run(run_id).owner_pid
    assert owner and owner != cli.proc.pid  # the worker ran (and retried) it, not the CLI
    assert_no_stuck_rows()


# --------------------------------------------------------------------------- load


class Concurrency:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    @hookimpl
    def kimi_acp_run_event(self, run: Any, event: Any) -> None:
        if isinstance(event, dict) and event.get("type") == "status" and event.get("status") == "running":
            self.now += 1
            self.peak = max(self.peak, self.now)

    @hookimpl
    def kimi_acp_run_finished(self, run: Any, result: Any) -> None:
        self.now -= 1


@pytest.mark.asyncio
async def test_a_spawner_that_exits_in_a_living_process_hands_its_results_over(tmp_path: Path, gw: GatewayStub) -> None:
    """An embedding host (or a test) closes its Spawner while the gateway fails, and lives on:
    the deliverer must not wait for that process to exit before it delivers."""
    from kimi_acp.spawn import Spawner

    write_config(tmp_path, gateway_url=gw.url)
    gw.fail_status, gw.fail_next = 500, 10_000  # every attempt while the Spawner lives fails
    async with Spawner(environ=dict(os.environ), pm=make_pm(FakeHarness(fake_argv("ok"))), flush_timeout=0.5) as sp:
        answer = await sp.spawn({"task": "hand me over", "runtime": "acp"}, CONTEXT)
        assert (await sp.wait(answer["runId"])).status == "ok"
    assert delivered(gw, answer["runId"]) == []
    gw.fail_next = 0  # the gateway is back; this process is still alive
    wait_until_sync(lambda: delivered(gw, answer["runId"]), 30, "the deliverer to deliver the handed-over result")
    with Store() as store:
        assert store.get_run(answer["runId"]).owner_pid is None


@pytest.mark.asyncio
async def test_200_spawns_through_a_cap_of_2(tmp_path: Path, gw: GatewayStub) -> None:
    from kimi_acp.spawn import Spawner

    write_config(tmp_path, gateway_url=gw.url, limits={"perBackend": {"kimi": 2}, "maxConcurrent": 8})
    counter = Concurrency()
    async with Spawner(environ=dict(os.environ), pm=make_pm(FakeHarness(fake_argv("ok", "--daemon")), counter)) as sp:
        answers = [await sp.spawn({"task": f"task {i}", "runtime": "acp"}, CONTEXT) for i in range(200)]
        assert all(a["status"] == "accepted" for a in answers)
        with anyio.fail_after(240):
            results = [await sp.wait(a["runId"]) for a in answers]
    assert all(r.status == "ok" for r in results)
    assert counter.peak == 2
    ids = [a["runId"] for a in answers]
    try:
        wait_until_sync(lambda: all(delivered(gw, i) for i in ids), 60, "every result delivered")
    except AssertionError as exc:  # say where delivery stood (a flake must be diagnosable from CI's output)
        with Store() as store:
            pending = store.outbox_pending()
        log = Path(os.environ["KIMI_ACP_STATE_DIR"]) / "deliverer.log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no deliverer.log)"
        raise AssertionError(f"{exc}: {len(gw.deliveries)} delivered, {gw.failures} gateway failures, "
                             f"{len(pending)} pending (first: {pending[:1]}); deliverer.log: {tail}") from None
    assert all(len(delivered(gw, i)) == 1 for i in ids)
    assert len(gw.deliveries) == 200
    with Store() as store:
        daemons = []
        for i in ids:
            fake = fake_line(store.transcript_path(i), "daemons")
            assert fake is not None
            daemons += fake["daemons"]
    assert not any(is_alive(p) for p in daemons)
    assert not any(pids_carrying_run_id(i) for i in ids[-5:])
    assert_no_stuck_rows()


# --------------------------------------------------------------------------- the ACP door


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_kill_9_of_the_acp_server(tmp_path: Path, claude_bin: str) -> None:
    """`kimi-acp acp` killed with SIGKILL mid-run: the real Claude Code (waiting on a hung
    stub) and everything it started are gone within seconds, and the run is recorded lost —
    with no other kimi-acp command running."""
    import asyncio

    import acp
    from acp.schema import ClientCapabilities
    from test_acp import Recorder, Rig

    from kimi_acp.stub.server import StubServer

    with StubServer(key="sk-kimi-test0000000000000000000000000000abcd") as stub:
        rig = Rig(tmp_path, claude_bin, stub)
        async with acp.spawn_agent_process(Recorder(), KIMI_ACP, "acp", env=rig.env, cwd=str(rig.work)) as (conn, proc):
            await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities())
            session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
            pending = asyncio.create_task(
                conn.prompt(session_id=session.session_id, prompt=[acp.text_block("wait forever [[stub:hang]]")])
            )
            deadline = time.monotonic() + 60
            while not stub.messages_requests():
                assert time.monotonic() < deadline, "Claude Code never called the stub"
                await asyncio.sleep(0.05)
            [run] = rig.runs()
            assert pids_carrying_run_id(run["run_id"]) and run["pgid"]
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
            with pytest.raises((acp.RequestError, ConnectionError, asyncio.TimeoutError)):
                await asyncio.wait_for(pending, 5)
        assert_no_process_left(run["run_id"], run["pgid"], [])
        with Store(rig.state) as store:
            wait_until_sync(lambda: store.get_run(run["run_id"]).status == "lost", 15, "the run recorded lost")
        assert_no_stuck_rows()


def test_no_deliverer_while_the_supervisor_lives_the_reaper_starts_it_when_it_dies(cli_factory: Any, gw: GatewayStub) -> None:
    """The process model: supervisor -> reaper -> harness, nothing else while the run goes
    well; kill -9 of the supervisor and the run's reaper (the first to know) starts the
    deliverer, which records the run lost and reports it."""
    from kimi_acp.deliverer import running_pid

    cli = cli_factory(*SLEEPER)
    rec, kids = cli.running_with_kids()
    try:
        time.sleep(1.0)
        assert running_pid(cli.store.state_dir) is None, "a deliverer runs on the happy path"
        cli.kill9()
        started = wait_until_sync(lambda: running_pid(cli.store.state_dir), 10, "the reaper to start the deliverer")
        assert is_alive(started)
        # in its own session, with no signal blocked (the reaper blocks some for itself)
        status = Path(f"/proc/{started}/status").read_text()
        assert int(status.split("SigBlk:")[1].split()[0], 16) == 0, status
        assert os.getsid(started) == started
        assert_no_process_left(rec.run_id, rec.pgid, kids)
        assert_delivered_once(gw, rec.run_id, "lost")
        assert_no_stuck_rows()
        os.kill(started, signal.SIGTERM)  # as stop_deliverer does
        wait_until_sync(lambda: not is_alive(started), 5, "the deliverer to stop on SIGTERM")
    finally:
        _cleanup(kids)


def test_a_killed_deliverer_is_restarted_by_kimi_acp_outbox(cli_factory: Any, gw: GatewayStub) -> None:
    """A result waits (the gateway was down), its deliverer is killed (or the machine rebooted):
    `kimi-acp outbox` starts a new one, which delivers it — no spawn needed."""
    from kimi_acp.deliverer import running_pid

    gw.stop()
    cli = cli_factory("ok", "--text", "stranded, then found")
    rc, out, err = cli.finish(60)
    assert rc == 0, err
    rec = cli.run()
    first = wait_until_sync(lambda: running_pid(cli.store.state_dir), 10, "the deliverer the CLI left its result to")
    os.kill(first, signal.SIGKILL)
    wait_until_sync(lambda: not is_alive(first), 10, "the deliverer to die")
    gw.start()
    time.sleep(3)
    assert delivered(gw, rec.run_id) == [], "something delivered it without a deliverer"
    shown = subprocess.run([KIMI_ACP, "outbox", "--json"], capture_output=True, text=True, env=dict(os.environ), timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert [i["runId"] for i in json.loads(shown.stdout)["items"]] == [rec.run_id]
    assert_delivered_once(gw, rec.run_id, "completed successfully", timeout=30)
    assert_no_stuck_rows()


def test_the_warm_acp_process_starts_the_deliverer_for_stranded_results(cli_factory: Any, gw: GatewayStub) -> None:
    """The same stranded result, and its deliverer killed; then the gateway's warm `kimi-acp
    acp` process starts: it starts a deliverer at once (the result has no living owner), which
    delivers it when the gateway is back — no spawn, no CLI command."""
    from kimi_acp.deliverer import running_pid

    gw.stop()
    cli = cli_factory("ok", "--text", "stranded until the gateway came back")
    rc, out, err = cli.finish(60)
    assert rc == 0, err
    rec = cli.run()
    first = wait_until_sync(lambda: running_pid(cli.store.state_dir), 10, "the deliverer the CLI left its result to")
    os.kill(first, signal.SIGKILL)
    wait_until_sync(lambda: not is_alive(first), 10, "the deliverer to die")
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}) + "\n"
    warm = subprocess.Popen([KIMI_ACP, "acp"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        assert warm.stdin is not None
        warm.stdin.write(init.encode())
        warm.stdin.flush()
        second = wait_until_sync(lambda: (pid := running_pid(cli.store.state_dir)) and pid != first and is_alive(pid) and pid, 15,
                                 "the warm process to start a deliverer")
        assert is_alive(second)
        gw.start()
        assert_delivered_once(gw, rec.run_id, "completed successfully", timeout=30)
    finally:
        if warm.stdin is not None:
            warm.stdin.close()
        warm.wait(30)
    assert_no_stuck_rows()


def test_nothing_is_left_1_s_after_a_foreground_spawn(cli_factory: Any, gw: GatewayStub) -> None:
    """No daemon per spawn: a foreground spawn whose result was delivered leaves no process."""
    cli = cli_factory("ok", "--text", "and nothing lingers")
    rc, out, err = cli.finish(60)
    assert rc == 0, err
    time.sleep(1.0)
    state = os.environ["KIMI_ACP_STATE_DIR"]
    assert processes_of_state_dir(state) == [], "kimi-acp processes left 1 s after the spawn"
    assert not (Path(state) / "deliverer.log").exists(), "a deliverer was started on the happy path"
    assert_delivered_once(gw, json.loads(out)["runId"], "completed successfully", timeout=1)  # by the CLI itself


def test_a_killed_reaper_is_reported_as_such(cli_factory: Any, gw: GatewayStub) -> None:
    """kill -9 of the run's reaper (not of Claude Code): the run fails saying the reaper was
    killed, Claude Code and its processes are stopped, and the report says the same. (Not a
    daemon that cleared its environment: with its subreaper gone, it is out of reach; see
    docs/durability.md.)"""
    cli = cli_factory("sleep", "--seconds", "300", "--grandchild", "--setsid-grandchild")
    rec, kids = cli.running_with_kids()
    try:
        assert rec.pid == rec.pgid and is_alive(rec.pid)
        os.kill(rec.pid, signal.SIGKILL)  # the reaper is the run's process-group leader
        rc, out, err = cli.finish(60)
        final = cli.store.get_run(rec.run_id)
        assert final.status == "error", final
        assert "reaper" in (final.error or "") and "SIGKILL" in (final.error or ""), final.error
        assert "Claude Code was killed" not in (final.error or "")
        assert json.loads(out)["error"] == final.error
        assert_no_process_left(rec.run_id, rec.pgid, kids)
        got = assert_delivered_once(gw, rec.run_id, "failed", timeout=10)
        assert "reaper" in got.body["message"]
        assert_no_stuck_rows()
    finally:
        _cleanup(kids)


@pytest.mark.e2e
def test_kill_9_of_spawn_running_the_real_claude_code(tmp_path: Path, gw: GatewayStub, claude_bin: str) -> None:
    """The hostile user's case, with the real Claude Code waiting on a hung backend: kill -9 of
    `kimi-acp spawn --session K` leaves nothing running, and the session is told `lost`."""
    from kimi_acp.stub.server import StubServer

    with StubServer(key=KEY) as stub:
        home = tmp_path / "home"
        home.mkdir()
        write_config(tmp_path, base_url=stub.base_url, harness={"command": claude_bin}, gateway_url=gw.url)
        proc = subprocess.Popen(
            [KIMI_ACP, "spawn", "wait forever [[stub:hang]]", "--agent", "coder", "--session", REQUESTER],
            env={**os.environ, "HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until_sync(stub.messages_requests, 60, "Claude Code to call the stub")
            with Store() as store:
                (rec,) = store.list_runs()
            carriers = pids_carrying_run_id(rec.run_id)
            assert rec.status == "running" and rec.pgid and carriers
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            t0 = time.monotonic()
            assert_no_process_left(rec.run_id, rec.pgid, carriers)
            assert time.monotonic() - t0 < 5
            assert_delivered_once(gw, rec.run_id, "lost")
            assert_no_stuck_rows()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- a disk that fills mid-turn


def _fill(directory: Path) -> int:
    """Write a file in ``directory`` until its file system is full; returns the bytes written."""
    written = 0
    with open(directory / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
                written += 65536
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    return written


def test_a_run_that_finishes_on_a_full_disk_is_recorded_true(cli_factory: Any, gw: GatewayStub) -> None:
    """The state dir's disk (a real 3 MB tmpfs) fills while Claude Code works: the run is
    recorded with its real status (never left `running`, later called `lost`), its result is
    delivered, and the next spawn on the full disk — CLI and Python API — is refused with one
    line and a hint, never a traceback."""
    from test_faults import _mount_tmpfs, _umount

    from kimi_acp.deliverer import stop_deliverer

    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    if not _mount_tmpfs(state, "size=3m"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        cli = cli_factory("sleep", "--seconds", "2")
        rec = wait_until_sync(lambda: (r := cli.run()) and r.status == "running" and r, 30, "the run to start")
        assert _fill(state) > 0
        rc, out, err = cli.finish(60)
        assert "Traceback" not in err, err
        assert rc == 0, err
        assert json.loads(out)["status"] == "ok"
        with Store() as store:
            final = store.get_run(rec.run_id)
        assert final.status == "ok" and final.result_text == "slept", final
        shown = subprocess.run([KIMI_ACP, "ps", "--all", "--json"], capture_output=True, text=True, env=dict(os.environ), timeout=30)
        assert shown.returncode == 0, shown.stderr
        assert [(r["runId"], r["status"]) for r in json.loads(shown.stdout)] == [(rec.run_id, "ok")]
        assert_delivered_once(gw, rec.run_id, "completed successfully", timeout=15)

        # The reserve went to that result: the disk has room again. Fill it for good.
        (state / "filler").rename(state / "filler.1")
        _fill(state)
        again = subprocess.run([KIMI_ACP, "spawn", "once more", "--agent", "coder"], capture_output=True, text=True,
                               env=dict(os.environ), timeout=60)
        assert again.returncode == 2, again.stderr
        lines = [x for x in again.stderr.splitlines() if x.strip()]
        assert "Traceback" not in again.stderr and len(lines) == 2 and lines[1].startswith("hint: "), again.stderr
        assert str(state) in lines[0] and ("full" in lines[0] or "No space" in lines[0]), lines[0]

        async def python_api() -> dict[str, Any]:
            from kimi_acp.spawn import Spawner

            async with Spawner(pm=make_pm(FakeHarness(fake_argv("ok")))) as sp:
                return await sp.spawn({"task": "and once more", "runtime": "acp"}, CONTEXT)

        answer = anyio.run(python_api)
        assert answer["status"] == "error" and str(state) in answer["error"], answer
        assert "fix:" in answer["error"]
    finally:
        for name in ("filler", "filler.1"):
            (state / name).unlink(missing_ok=True)
        stop_deliverer(state)
        _umount(state)
