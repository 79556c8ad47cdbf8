"""Kill -9 the worker in the middle of a ticket, start another: nothing is lost or doubled."""

import asyncio
import signal
import sys

import httpx

from api.app import create_app
from tests.conftest import Stack, settings_for, task_queue
from tests.e2e.helpers import child_env, spawn


async def test_worker_killed_mid_ticket_loses_nothing(db, database_url, devserver, tmp_path):
    settings = settings_for(database_url, devserver, task_queue())
    env = child_env(
        database_url=database_url,
        temporal_address=settings.temporal_address,
        task_queue=settings.task_queue,
        worker_shutdown_grace_s="5",
        action_signing_key=settings.action_signing_key.get_secret_value(),
        action_signing_key_id=settings.action_signing_key_id,
    )
    worker = spawn([sys.executable, "-m", "workers"], env, tmp_path / "worker1.log")
    app = create_app(settings, client=devserver.client)  # no in-process worker: only the child
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            stack = Stack(http, settings, devserver.client, worker=None)
            tid = (await stack.create(title="Boiler pressure low")).json()["ticket_id"]
            assert (await stack.act(tid, "claim")).status_code == 200
            assert (await stack.act(tid, "start")).status_code == 200

            worker.send_signal(signal.SIGKILL)  # no goodbye, no graceful shutdown
            worker.wait()

            # An action sent while no worker runs is not lost: it waits for a worker.
            pending = asyncio.create_task(stack.act(tid, "resolve", resolution="valve reseated"))
            await asyncio.sleep(1.5)
            assert not pending.done()

            worker = spawn([sys.executable, "-m", "workers"], env, tmp_path / "worker2.log")
            try:
                r = await asyncio.wait_for(pending, 60)
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "resolved"
                assert (await stack.act(tid, "close", "agent-wang")).status_code == 200
                t = (await stack.get(tid)).json()
                assert t["status"] == "closed"
                assert [(e["seq"], e["action"]) for e in t["events"]] == [
                    (1, "created"),
                    (2, "task_opened"),
                    (3, "claim"),
                    (4, "start"),
                    (5, "resolve"),
                    (6, "resolved"),
                    (7, "close"),
                ]
            finally:
                worker.send_signal(signal.SIGTERM)
                code = worker.wait(timeout=30)
            assert code == 0, (tmp_path / "worker2.log").read_text()
            assert "worker.stopped" in (tmp_path / "worker2.log").read_text()
