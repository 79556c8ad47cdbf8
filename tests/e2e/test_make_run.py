"""What `make run` starts (honcho + Procfile: dev server with UI, worker, API), on free ports.

Drives a ticket to closed over real HTTP, stops everything like Ctrl-C does, starts it
again and acts on a ticket that was open before the restart.
"""

import signal
import time

import httpx

from models.demo import demo_api_key
from tests.conftest import task_queue
from tests.e2e.helpers import BIN, child_env, free_port, group_alive, spawn, stop_group, wait_http

AGENT = {"X-API-Key": demo_api_key("agent-wang")}
ENGINEER = {"X-API-Key": demo_api_key("eng-li")}


def _act(base: str, tid: str, action: str, headers: dict, **body) -> dict:
    r = httpx.post(f"{base}/tickets/{tid}/actions/{action}", json=body or None, headers=headers, timeout=30)
    assert r.status_code == 200, (action, r.text)
    return r.json()


def test_procfile_serves_tickets_and_survives_a_restart(db, database_url, tmp_path):
    api_port, temporal_port, ui_port = free_port(), free_port(), free_port()
    env = child_env(
        database_url=database_url,
        api_port=str(api_port),
        temporal_address=f"127.0.0.1:{temporal_port}",
        temporal_ui_port=str(ui_port),
        data_dir=str(tmp_path / "data"),
        task_queue=task_queue(),
        worker_shutdown_grace_s="5",
    )
    base = f"http://127.0.0.1:{api_port}"
    log = tmp_path / "honcho.log"

    def start():
        proc = spawn([str(BIN / "honcho"), "start", "-f", "Procfile"], env, log)
        try:
            wait_http(f"{base}/health", timeout=90)
        except TimeoutError:
            stop_group(proc, signal.SIGKILL)
            raise AssertionError(log.read_text()[-4000:]) from None
        return proc

    proc = start()
    try:
        ui = wait_http(f"http://127.0.0.1:{ui_port}/", timeout=30)
        assert "<html" in ui.text.lower()

        r = httpx.post(
            f"{base}/tickets", json={"ticket_type": "general", "region": "east", "title": "Kiln fault"}, headers=AGENT
        )
        assert r.status_code == 201, r.text
        done = r.json()["ticket_id"]
        for action, who, body in [
            ("claim", ENGINEER, {}),
            ("start", ENGINEER, {}),
            ("resolve", ENGINEER, {"resolution": "thermocouple replaced"}),
            ("close", AGENT, {}),
        ]:
            _act(base, done, action, who, **body)
        open_ = httpx.post(
            f"{base}/tickets", json={"ticket_type": "general", "region": "east", "title": "Door sensor"}, headers=AGENT
        ).json()["ticket_id"]
        _act(base, open_, "claim", ENGINEER)
    finally:
        code = stop_group(proc, signal.SIGINT)  # Ctrl-C
    deadline = time.monotonic() + 10
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(proc.pid), "a process outlived Ctrl-C"
    assert code in (0, 130), log.read_text()[-3000:]  # 130: stopped by SIGINT, as after Ctrl-C
    assert "worker.stopped" in log.read_text()

    proc = start()  # same .data dir: the dev server's SQLite file keeps every workflow
    try:
        assert _act(base, open_, "start", ENGINEER)["status"] == "in_progress"
        _act(base, open_, "resolve", ENGINEER, resolution="realigned")
        assert _act(base, open_, "close", AGENT)["status"] == "closed"
        assert httpx.get(f"{base}/tickets/{done}", headers=AGENT).json()["status"] == "closed"
    finally:
        stop_group(proc, signal.SIGINT)
