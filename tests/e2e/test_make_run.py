"""What `make run` starts (honcho + Procfile: dev server with UI, worker, API), on free ports.

Drives a ticket to closed over real HTTP, stops everything like Ctrl-C does, starts it
again and acts on a ticket that was open before the restart. And `make run`'s own recipe:
Ctrl-C ends it quietly, every process stopped.
"""

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from models.demo import demo_api_key
from tests.conftest import task_queue
from tests.e2e.helpers import BIN, ROOT, child_env, free_port, group_alive, spawn, stop_group, wait_http

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


STUB = """import signal, sys, time
name = sys.argv[1]
def stop(*_):
    time.sleep(0.3)  # stopping takes a moment, as the worker's grace period does
    print(name, "down", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
print(name, "up", flush=True)
while True:
    time.sleep(0.1)
"""


def test_ctrl_c_ends_make_run_quietly(tmp_path: Path):
    """The Makefile's `run` recipe with the real honcho, over stand-ins for the three processes
    (`-o demo`: no install, migration or demo data; ``VENV`` points at a honcho that starts the
    stand-ins' Procfile). Ctrl-C — SIGINT to make's whole process group, as the terminal sends
    it — stops all three and make says nothing: no "make: *** … Error 130" or "Interrupt"."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not on PATH")
    stub, procfile, venv_bin = tmp_path / "stub.py", tmp_path / "Procfile", tmp_path / "venv" / "bin"
    stub.write_text(STUB)
    names = ("temporal", "worker", "api")
    procfile.write_text("".join(f"{n}: {sys.executable} -u {stub} {n}\n" for n in names))
    venv_bin.mkdir(parents=True)
    honcho = venv_bin / "honcho"
    honcho.write_text(f'#!/bin/sh\nexec "{BIN / "honcho"}" start -f "{procfile}"\n')
    honcho.chmod(0o755)
    log = tmp_path / "make.log"
    venv = os.path.relpath(tmp_path / "venv", ROOT)
    proc = spawn([make, "-o", "demo", "run", f"VENV={venv}"], child_env(), log)
    try:
        deadline = time.monotonic() + 30
        while not all(f"{n} up" in log.read_text() for n in names):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        code = stop_group(proc, signal.SIGINT, timeout=20)  # Ctrl-C
    out = log.read_text()
    assert all(f"{n} down" in out for n in names), out[-3000:]  # each stopped, not just abandoned
    assert "SIGINT received" in out  # honcho heard the Ctrl-C and stopped the three itself
    assert "make: ***" not in out, out[-3000:]
    assert code == -signal.SIGINT, (code, out[-3000:])  # make ends as an interrupted command does
    deadline = time.monotonic() + 5
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(proc.pid), "a process outlived Ctrl-C"
