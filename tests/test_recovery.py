"""Durability: a supervisor killed with SIGKILL mid-run, and a gateway that goes down and
comes back. Real processes throughout: a separate Python supervisor process, fake
harnesses, the gateway stand-in on loopback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from fakes.spawning import (
    CONTEXT,
    HOOKS_TOKEN,
    REQUESTER,
    FakeHarness,
    assert_no_orphans,
    fake_argv,
    is_alive,
    live_in_group,
    make_pm,
    pids_carrying_run_id,
    wait_until,
    write_config,
)
from kimi_acp.spawn import Spawner
from kimi_acp.store import Store
from kimi_acp.stub.gateway import GatewayStub

KEY = "sk-kimi-recovery000000000000000000000000c0de"
TESTS = Path(__file__).resolve().parent

SUPERVISOR_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    import anyio
    from fakes import fake_argv
    from fakes.spawning import CONTEXT, fake_line, make_pm
    from kimi_acp.hookspecs import hookimpl
    from kimi_acp.spawn import Spawner

    class Harness:
        @hookimpl
        def kimi_acp_harness_command(self, request, backend):
            if request.task == "finish":
                return fake_argv("ok", "--text", "finished before the crash")
            return fake_argv("sleep", "--seconds", "120", "--grandchild", "--setsid-grandchild")

    async def main():
        async with Spawner(pm=make_pm(Harness())) as sp:
            done = await sp.spawn({{"task": "finish", "runtime": "acp"}}, CONTEXT)
            await sp.wait(done["runId"])
            run = await sp.spawn({{"task": "sleep long", "runtime": "acp"}}, CONTEXT)
            path = sp.store.transcript_path(run["runId"])
            while True:
                rec = sp.store.get_run(run["runId"])
                kids = fake_line(path, "grandchildren")
                if rec.status == "running" and kids:
                    break
                await anyio.sleep(0.02)
            print(json.dumps({{"finished": done["runId"], "running": run["runId"], "pgid": rec.pgid, "pid": rec.pid,
                              "kids": kids["grandchildren"] + kids["escaped"]}}), flush=True)
            await anyio.sleep(3600)

    anyio.run(main)
    """
)


@pytest.fixture
def gateway() -> Iterator[GatewayStub]:
    with GatewayStub(token=HOOKS_TOKEN) as gw:
        yield gw


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("OPENCLAW_HOOKS_TOKEN", HOOKS_TOKEN)


async def run_and_kill_a_supervisor(tmp_path: Path, gateway: GatewayStub) -> dict:
    """Start a separate supervisor process with one finished and one running run, then SIGKILL it."""
    script = tmp_path / "supervisor.py"
    script.write_text(SUPERVISOR_SCRIPT.format(tests=str(TESTS)))
    # Without the reaper and the deliverer (as off Linux, or with both turned off), recovery
    # by whichever kimi-acp process notices first is what finds and reports the run.
    env = {**os.environ, "KIMI_ACP_NO_REAPER": "1", "KIMI_ACP_NO_DELIVERER": "1"}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        with anyio.fail_after(30):
            line = await anyio.to_thread.run_sync(proc.stdout.readline)
        assert line, proc.stderr.read().decode() if proc.stderr else "no output"
        info = json.loads(line)
        # The finished run's report was delivered by the supervisor itself.
        await wait_until(lambda: len(gateway.deliveries) >= 1, 10, "the first run's delivery")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    # The control: with its supervisor dead, the run's processes live on.
    assert live_in_group(info["pgid"]), "the harness died with its supervisor; the test proves nothing"
    assert pids_carrying_run_id(info["running"])
    return info


@pytest.mark.asyncio
async def test_supervisor_killed_mid_run_the_run_becomes_lost(tmp_path: Path, gateway: GatewayStub) -> None:
    write_config(tmp_path, gateway_url=gateway.url)
    info = await run_and_kill_a_supervisor(tmp_path, gateway)

    run_id, pgid = info["running"], info["pgid"]
    with Store() as store:
        before = store.get_run(info["finished"])
        assert store.get_run(run_id).status == "running"

    async with Spawner(environ=dict(os.environ), pm=make_pm(FakeHarness(fake_argv("ok")))) as sp:
        lost = sp.store.get_run(run_id)
        after = sp.store.get_run(info["finished"])
        got = await wait_until(
            lambda: [d for d in gateway.deliveries if d.body.get("idempotencyKey") == f"kimi-acp:{run_id}"],
            10, "the lost run's completion event",
        )
        result = await sp.wait(run_id, timeout=5)

    assert lost.status == "lost" and "died" in (lost.error or "")
    assert result.status == "lost"
    assert_no_orphans(run_id, pgid, info["kids"])
    assert not is_alive(info["pid"])
    assert after == before and after.status == "ok" and after.result_text == "finished before the crash"
    assert len(got) == 1
    assert got[0].body["sessionKey"] == REQUESTER
    assert "status: lost (the supervising process died)" in got[0].body["message"]


@pytest.mark.asyncio
async def test_the_cli_noticing_first_still_queues_the_lost_event(tmp_path: Path, gateway: GatewayStub) -> None:
    """`kimi-acp ps` may be the first to notice a dead supervisor: the run's processes are
    killed AND its completion event ("lost") is queued, so the next spawner delivers it."""
    from fakes.spawning import KIMI_ACP

    write_config(tmp_path, gateway_url=gateway.url)
    info = await run_and_kill_a_supervisor(tmp_path, gateway)
    run_id = info["running"]
    done = subprocess.run([KIMI_ACP, "ps", "--all", "--json"], capture_output=True, text=True, timeout=30, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    rows = {r["runId"]: r for r in json.loads(done.stdout)}
    assert rows[run_id]["status"] == "lost" and rows[info["finished"]]["status"] == "ok"
    assert_no_orphans(run_id, info["pgid"], info["kids"])
    with Store() as store:
        items = store.outbox_pending(run_id)
    assert len(items) == 1, "the lost run's completion event was not queued"
    assert "status: lost" in items[0].payload["body"]["message"]
    async with Spawner(environ=dict(os.environ), pm=make_pm()) as sp:
        await wait_until(
            lambda: [d for d in gateway.deliveries if d.body.get("idempotencyKey") == f"kimi-acp:{run_id}"], 10, "delivery"
        )
        await wait_until(lambda: sp.store.outbox_pending(run_id) == [], 5, "the item marked delivered")


@pytest.mark.asyncio
async def test_recover_directly_with_the_supervisors_killer(tmp_path: Path) -> None:
    """Store.recover with kill_run_processes, without a Spawner: a run owned by a dead
    process whose harness still runs is killed and marked lost; live owners are left alone."""
    from kimi_acp.store import RunRecord
    from kimi_acp.supervisor import kill_run_processes

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = "orphaned-run-1"
    harness = subprocess.Popen(
        fake_argv("sleep", "--seconds", "120", "--grandchild"),
        env={**os.environ, "KIMI_ACP_RUN_ID": run_id}, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        await wait_until(lambda: len(live_in_group(harness.pid)) >= 2, 10, "the harness and its grandchild")
        with Store() as store:
            store.create_run(RunRecord(run_id=run_id, child_session_key="agent:claude:acp:x", status="running", task="t",
                                       pid=harness.pid, pgid=harness.pid, owner_pid=dead.pid, owner_start="1"))
            store.create_run(RunRecord(run_id="mine", child_session_key="agent:claude:acp:y", status="running", task="t"))
            lost = store.recover(kill=lambda rec: kill_run_processes(rec.run_id, rec.pgid))
            assert [r.run_id for r in lost] == [run_id]
            assert store.get_run(run_id).status == "lost"
            assert store.get_run("mine").status == "running"  # its owner (this process) lives
        harness.wait(timeout=5)
        assert_no_orphans(run_id, harness.pid)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()


@pytest.mark.asyncio
async def test_gateway_down_then_back(tmp_path: Path) -> None:
    gw = GatewayStub(token=HOOKS_TOKEN).start()
    port = gw.port
    gw.stop()  # down: nobody listens on the port
    write_config(tmp_path, gateway_url=f"http://127.0.0.1:{port}")
    back: GatewayStub | None = None
    try:
        async with Spawner(environ=dict(os.environ), pm=make_pm(FakeHarness(fake_argv("ok", "--text", "kept safe")))) as sp:
            answer = await sp.spawn({"task": "t", "runtime": "acp"}, CONTEXT)
            assert (await sp.wait(answer["runId"], timeout=10)).status == "ok"
            failed = await wait_until(
                lambda: [i for i in sp.store.outbox_pending(answer["runId"]) if i.attempts >= 1], 10, "a failed delivery"
            )
            item = failed[0]
            assert item.delivered_at is None and item.last_error
            assert item.payload["body"]["idempotencyKey"] == f"kimi-acp:{answer['runId']}"

            back = GatewayStub(token=HOOKS_TOKEN, port=port).start()  # the gateway comes back
            t0 = time.monotonic()
            await wait_until(lambda: back is not None and back.deliveries, 15, "delivery after the gateway came back")
            assert time.monotonic() - t0 < 10
            # marked delivered once the gateway's answer is in
            await wait_until(lambda: sp.store.outbox_pending(answer["runId"]) == [], 5, "the item marked delivered")
            with sqlite3.connect(sp.store.db_path) as db:
                [(delivered_at, attempts)] = db.execute(
                    "SELECT delivered_at, attempts FROM outbox WHERE run_id = ?", (answer["runId"],)
                ).fetchall()
            db.close()
            assert delivered_at is not None and attempts >= 2
        assert back is not None
        [d] = back.deliveries
        assert d.body["idempotencyKey"] == f"kimi-acp:{answer['runId']}"
        assert "kept safe" in d.body["message"] and d.headers["authorization"] == f"Bearer {HOOKS_TOKEN}"
    finally:
        if back is not None:
            back.stop()


@pytest.mark.asyncio
async def test_flush_outbox_delivers_due_items_now(tmp_path: Path) -> None:
    gw = GatewayStub(token=HOOKS_TOKEN).start()
    port = gw.port
    gw.stop()
    write_config(tmp_path, gateway_url=f"http://127.0.0.1:{port}")
    with Store() as store:
        # A result left undelivered by an earlier process (its item is due).
        from kimi_acp.report import RunResult, outbox_entries
        from kimi_acp.settings import KimiAcpSettings
        from kimi_acp.store import RunRecord

        settings = KimiAcpSettings.model_validate({"report": {"gateway": {"url": f"http://127.0.0.1:{port}"}}})
        store.create_run(RunRecord(run_id="old-run", child_session_key="agent:claude:acp:o", status="running", task="t"))
        res = RunResult(runId="old-run", childSessionKey="agent:claude:acp:o", status="ok", result="from before",
                        requesterSessionKey=REQUESTER, requesterAgentId="coder")
        store.finish_run("old-run", status="ok", result_text="from before", outbox=outbox_entries(res, settings))
    back = GatewayStub(token=HOOKS_TOKEN, port=port).start()
    try:
        async with Spawner(environ=dict(os.environ), pm=make_pm()) as sp:
            delivered, failed = await sp.flush_outbox()
            if delivered == 0:  # the outbox loop may have been first
                await wait_until(lambda: back.deliveries, 5, "delivery")
            await wait_until(lambda: sp.store.outbox_pending() == [], 5, "the item marked delivered")
        assert [d.body["idempotencyKey"] for d in back.deliveries] == ["kimi-acp:old-run"]
    finally:
        back.stop()
