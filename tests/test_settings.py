"""Settings that keep the service safe (issue #9): no default webhook secret, no production start
without an action signing key, and security headers on every API answer."""

import httpx
import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from api import middleware
from api.app import create_app
from models.db import Database
from models.settings import MIN_SECRET_LENGTH, Settings, get_settings
from tests.conftest import Stack, settings_for, task_queue

STRONG = "s" * MIN_SECRET_LENGTH


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Only what each test sets: no TICKETFLOW_* variable of the machine, no .env file."""
    import os

    for name in list(os.environ):
        if name.startswith("TICKETFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_the_webhook_secret_has_no_default() -> None:
    assert Settings().webhook_secret is None
    assert Settings().webhook_url is None  # no webhook, no secret needed


@pytest.mark.parametrize("secret", [None, "change-me", "x" * (MIN_SECRET_LENGTH - 1)])
def test_a_webhook_url_without_a_strong_secret_refuses_to_load(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="TICKETFLOW_WEBHOOK_SECRET"):
        Settings(webhook_url="https://im.example/hook", webhook_secret=secret)


def test_a_webhook_url_with_a_strong_secret_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_WEBHOOK_URL", "https://im.example/hook")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("TICKETFLOW_WEBHOOK_SECRET", STRONG)
    assert Settings().webhook_secret.get_secret_value() == STRONG


@pytest.mark.parametrize("key", [None, "short"])
def test_production_refuses_to_start_without_an_action_signing_key(monkeypatch: pytest.MonkeyPatch, key) -> None:
    monkeypatch.setenv("TICKETFLOW_ENVIRONMENT", "production")
    if key:
        monkeypatch.setenv("TICKETFLOW_ACTION_SIGNING_KEY", key)
    with pytest.raises(ValidationError, match="TICKETFLOW_ACTION_SIGNING_KEY"):
        Settings()
    get_settings.cache_clear()  # settings read earlier in this process must not stand in
    try:
        with pytest.raises(ValidationError):
            create_app()  # the API reads its settings when it is built: it never starts
    finally:
        get_settings.cache_clear()


def test_production_starts_with_a_strong_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_ENVIRONMENT", "production")
    monkeypatch.setenv("TICKETFLOW_ACTION_SIGNING_KEY", STRONG)
    assert Settings().environment == "production"


def test_edge_limit_defaults() -> None:
    s = Settings()
    assert s.max_body_bytes == 1_000_000
    assert (s.rate_limit_per_minute, s.rate_limit_burst) == (1_200, 200)
    assert s.db_statement_timeout_ms == 5_000
    assert s.hsts is False


def assert_security_headers(r: httpx.Response) -> None:
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    if r.headers.get("content-type", "").startswith("application/json"):
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_security_headers_on_api_answers(
    db: Database, database_url: str, devserver: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(middleware, "clock", lambda: 1_000.0)  # no token refills mid-test, however slow the machine
    settings = settings_for(database_url, devserver, task_queue()).model_copy(
        update={"hsts": True, "max_body_bytes": 100, "rate_limit_per_minute": 60, "rate_limit_burst": 5}
    )
    app = create_app(settings, client=devserver.client)
    admin = Stack.as_actor("admin")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ticketflow.test") as http:
            answers = [
                await http.get("/me/contact", headers=admin),  # 200 from a route
                await http.get("/me/contact"),  # 401
                await http.put("/me/contact", json={"im_user": "x" * 200}, headers=admin),  # 413 at the edge
                await http.get("/inventory/stock", params={"sku": "\x00"}, headers=admin),  # 422 at the edge
            ]
            answers.append(await http.get("/me/contact", headers=admin))  # the 4th of admin's burst of 5
            answers.append(await http.get("/me/contact", headers=admin))  # the 5th
            answers.append(await http.get("/me/contact", headers=admin))  # 429
            assert [r.status_code for r in answers] == [200, 401, 413, 422, 200, 200, 429]
            for r in answers:
                assert_security_headers(r)
                assert r.headers["strict-transport-security"].startswith("max-age=")
            page = await http.get("/dashboard")  # a page keeps its own policy
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "DENY"
