"""/dashboard in a real browser: Playwright driving Debian's chromium against the real app.

The app (``create_app``, no Temporal: reports never ask it) is served by uvicorn on a free
port, in this test's event loop, over the test database. Tickets and people are seeded
straight into the read model (as ``tests/api/test_reports.py`` does) in a region of this
test's own (``dash-<suffix>``), so tickets other tests leave in east/south/north never reach
these figures; the people are deactivated at the end.

Skipped without chromium or Playwright, except under CI=true, where either missing is a
failure (``.ci/run`` installs Debian's chromium; Playwright comes with the ``test`` extra).
``playwright install`` is never needed: the browser is ``shutil.which("chromium")``.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import uvicorn
from sqlmodel import col, select
from temporalio.client import Client

from api.app import create_app
from models.db import Database
from models.settings import Settings
from models.tables import Actor, ApiKey, Region, Ticket, TicketEventRow
from tests.e2e.helpers import free_port

NO_TEMPORAL = cast(Client, object())  # reports never talk to Temporal
B = datetime(2024, 3, 10, tzinfo=UTC)  # in the period the page asks for (March 2024)
BEFORE = datetime(2024, 2, 1, tzinfo=UTC)  # before it
h = timedelta(hours=1)
XSS = '<img src=x onerror="window.__pwned=1">Wu <b>Two</b>'  # a name that must show as text

# short name: (roles, team, capacity, name); "tech" becomes a role of this test's own
PEOPLE: dict[str, tuple[list[str], str | None, int, str]] = {
    "mgr": (["manager"], None, 10, "Manager"),
    "eng": (["engineer"], None, 10, "Engineer"),
    "w1": (["tech"], "alpha", 4, "Wang One"),
    "w2": (["tech"], "beta", 1, XSS),
    "w3": (["tech"], "alpha", 5, "Wei Three"),
    "w4": (["tech"], None, 0, "Wu Four"),
}


@dataclass
class T:
    key: str
    status: str
    priority: str = "normal"
    ticket_type: str = "general"
    created_at: datetime = B
    breached: bool = False
    escalation: str | None = None
    assignee: str | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None


TICKETS = [
    T("o1", "new", "high", "equipment_repair", breached=True, escalation="supervisor", assignee="w1"),
    T("o2", "assigned", assignee="w1"),
    T("o3", "in_progress", "urgent", created_at=BEFORE, breached=True, escalation="manager", assignee="w2"),
    T("o4", "in_progress", created_at=BEFORE, assignee="w1"),
    # resolved in the period after 2 h, 4 h and 10 h: p50 4 h, p90 4 + 0.8 × 6 = 8.8 h
    T("r1", "closed", resolved_at=B + 2 * h, closed_at=B + 3 * h),
    T("r2", "resolved", resolved_at=B + 4 * h),
    T("r3", "resolved", breached=True, resolved_at=B + 10 * h),
]


@dataclass
class Site:
    base: str
    db: Database
    suffix: str

    @property
    def region(self) -> str:
        return f"dash-{self.suffix}"

    @property
    def role(self) -> str:
        return f"tech-{self.suffix}"

    def pid(self, short: str) -> str:
        return f"dash-{self.suffix}-{short}"

    def key(self, short: str) -> str:
        return f"key-{self.pid(short)}"

    async def add_ticket(self, t: T) -> None:
        async with self.db.session() as session:
            session.add(Ticket(
                id=f"D{self.suffix}{t.key}", ticket_type=t.ticket_type, region=self.region, priority=t.priority,
                status=t.status, assignee=self.pid(t.assignee) if t.assignee else None, title=f"dashboard {t.key}",
                channel="agent", created_by="agent-wang", created_at=t.created_at,
                updated_at=t.closed_at or t.resolved_at or t.created_at, closed_at=t.closed_at,
                sla_breached=t.breached, escalation=t.escalation, snapshot={},
            ))  # fmt: skip
            await session.flush()
            moves: list[tuple[str, str | None, str, datetime]] = [("create", None, "new", t.created_at)]
            if t.resolved_at is not None:
                moves.append(("resolve", "in_progress", "resolved", t.resolved_at))
            if t.closed_at is not None:
                moves.append(("close", "resolved", "closed", t.closed_at))
            for seq, (action, before, after, at) in enumerate(moves, 1):
                session.add(
                    TicketEventRow(
                        ticket_id=f"D{self.suffix}{t.key}",
                        seq=seq,
                        action=action,
                        actor_id="agent-wang",
                        from_status=before,
                        to_status=after,
                        at=at,
                    )
                )
            await session.commit()


def _playwright() -> tuple[Any, str]:
    """The async Playwright module and chromium's path, or a skip (a failure under CI=true)."""
    ci = os.environ.get("CI") == "true"
    try:
        from playwright import async_api
    except ImportError:
        if ci:
            pytest.fail("playwright is not installed (required when CI=true): pip install -e '.[test]'")
        pytest.skip("playwright is not installed")
    exe = shutil.which("chromium")
    if exe is None:
        if ci:
            pytest.fail("chromium is not on PATH (required when CI=true): apt-get install chromium")
        pytest.skip("chromium is not on PATH")
    return async_api, exe


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async_api, exe = _playwright()
    async with async_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=exe, headless=True)
        yield chromium
        await chromium.close()


@pytest.fixture
async def site(db: Database, database_url: str) -> AsyncIterator[Site]:
    site = Site(base="", db=db, suffix=uuid.uuid4().hex[:6])
    async with db.session() as session:
        session.add(Region(code=site.region, name=f"Dashboard test {site.suffix}"))
        for short, (roles, team, capacity, name) in PEOPLE.items():
            session.add(Actor(
                id=site.pid(short), name=name, roles=[site.role if r == "tech" else r for r in roles],
                regions=[site.region], team=f"{team}-{site.suffix}" if team else None, capacity=capacity,
            ))  # fmt: skip
            session.add(ApiKey.for_secret(site.pid(short), site.key(short), created_by="test"))
        await session.commit()
    for t in TICKETS:
        await site.add_ticket(t)

    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, task.exception() if task.done() else "uvicorn did not start in 10 s"
    site.base = f"http://127.0.0.1:{port}"
    try:
        yield site
    finally:
        server.should_exit = True
        await task
        async with db.session() as session:  # leave no active test people behind for later tests
            for actor in (await session.exec(select(Actor).where(col(Actor.id).like(f"dash-{site.suffix}-%")))).all():
                actor.active = False
                session.add(actor)
            await session.commit()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh context (empty sessionStorage) in Shanghai's time zone; uncaught script errors
    and CSP violations fail the test."""
    context = await browser.new_context(timezone_id="Asia/Shanghai", locale="en-GB")
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    await context.close()
    assert not problems, problems


def _expect() -> Any:
    from playwright.async_api import expect

    return expect


async def _load(page: Any, key: str, **filters: str) -> None:
    for name, value in filters.items():
        await page.fill(f"#{name}", value)
    await page.fill("#api-key", key)
    await page.click("#refresh")


def kpi(page: Any, name: str) -> Any:
    return page.locator(f'[data-kpi="{name}"] .value')


async def test_manager_sees_exact_figures_and_the_busiest_first(page: Any, site: Site):
    expect = _expect()
    await page.clock.install(time=datetime(2026, 12, 1, 9, 0, tzinfo=UTC))  # timers we can move
    await page.goto(f"{site.base}/dashboard")
    await expect(page).to_have_title("Ticketflow · manager dashboard")
    await expect(page.locator("#content")).to_be_hidden()

    # March 2024 in Shanghai's days: [Feb 29 16:00 UTC, Mar 31 16:00 UTC)
    await _load(page, site.key("mgr"), since="2024-03-01", until="2024-03-31", role=site.role)
    await expect(page.locator("#content")).to_be_visible()
    await expect(page.locator("#period")).to_have_text(
        f"Period 2024-02-29 16:00 UTC → 2024-03-31 16:00 UTC (end exclusive) · regions: {site.region}"
    )
    expected_tiles = {
        "open_total": "4",
        "open_breached": "2",  # o1, o3
        "breach_rate": "40.0 %",  # created in March: o1, o2, r1, r2, r3; breached: o1, r3
        "resolution_p50": "4.0 h",
        "resolution_p90": "8.8 h",
        "created": "5",
        "resolved": "3",
    }
    for name, text in expected_tiles.items():
        await expect(kpi(page, name)).to_have_text(text)
    await expect(page.locator("#error")).to_be_hidden()

    row = f'tr[data-region="{site.region}"]'
    await expect(page.locator("#open-by-status thead th")).to_have_text(
        ["Region", "new", "assigned", "in progress", "all"]
    )
    await expect(page.locator(f"#open-by-status {row} td")).to_have_text(["1", "1", "2", "4"])
    await expect(page.locator(f"#open-by-priority {row} td")).to_have_text(["0", "2", "1", "1", "4"])
    await expect(page.locator("#open-by-type thead th")).to_have_text(["Region", "equipment repair", "general", "all"])
    await expect(page.locator(f"#open-by-type {row} td")).to_have_text(["1", "3", "4"])
    await expect(page.locator(f"#open-by-escalation {row} td")).to_have_text(["2", "1", "1", "0", "4"])
    await expect(page.locator("#open-by-status tr.total")).to_have_count(0)  # one region: no total row

    # Workload, busiest first: w2 1/1, w1 3/4, w3 0/5, w4 0/0 (no capacity, no load)
    people = page.locator("#workload tbody tr")
    await expect(people).to_have_count(4)
    ids = [await r.get_attribute("data-person") for r in await people.all()]
    assert ids == [site.pid(s) for s in ("w2", "w1", "w3", "w4")]
    await expect(people.locator("td.load")).to_have_text(["1 / 1", "3 / 4", "0 / 5", "0 / 0"])
    await expect(people.locator(".pct")).to_have_text(["100 %", "75 %", "0 %", "—"])
    await expect(people.locator("td.breached")).to_have_text(["1", "1", "0", "0"])
    await expect(people.locator("td.team")).to_have_text(
        [f"beta-{site.suffix}", f"alpha-{site.suffix}", f"alpha-{site.suffix}", "—"]
    )
    width = await people.nth(1).locator(".fill").evaluate("e => e.style.width")
    assert width == "75%"
    # the API's text is text: the would-be tags are shown, never parsed
    await expect(people.nth(0).locator(".name")).to_have_text(XSS)
    assert await page.locator("main img, main b").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await expect(page.locator("#teams tbody tr td:first-child")).to_have_text(
        [f"beta-{site.suffix}", f"alpha-{site.suffix}", "(no team)"]
    )

    # The region list is filled from the overview; choosing it reloads the same figures.
    await expect(page.locator("#region option")).to_have_text(
        ["all my regions", f"Dashboard test {site.suffix} ({site.region})"]
    )
    async with page.expect_response(lambda r: f"reports/overview?region={site.region}" in r.url) as answer:
        await page.select_option("#region", site.region)
    assert (await answer.value).status == 200  # answered before the next ticket is added
    await expect(kpi(page, "open_total")).to_have_text("4")

    # Auto-refresh: a new breached ticket shows up once 60 s have passed, with no click.
    await site.add_ticket(T("o5", "new", breached=True, escalation="supervisor", assignee="w3"))
    await expect(kpi(page, "open_total")).to_have_text("4")
    await page.clock.run_for(61_000)
    await expect(kpi(page, "open_total")).to_have_text("5")
    await expect(kpi(page, "open_breached")).to_have_text("3")
    await expect(people.locator("td.load")).to_have_text(["1 / 1", "3 / 4", "1 / 5", "0 / 0"])

    # Unticked, it stays put.
    await page.uncheck("#auto")
    await site.add_ticket(T("o6", "new"))
    await page.clock.run_for(61_000)
    await page.wait_for_timeout(300)
    await expect(kpi(page, "open_total")).to_have_text("5")
    await page.click("#refresh")
    await expect(kpi(page, "open_total")).to_have_text("6")

    # A hidden tab is not refreshed; shown again, it catches up at once.
    await page.check("#auto")
    await page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})")
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url) if "/reports/" in req.url else None)
    await site.add_ticket(T("o7", "new"))
    await page.clock.run_for(61_000)
    await page.clock.run_for(61_000)
    assert asked == []
    await page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    await expect(kpi(page, "open_total")).to_have_text("7")
    assert len(asked) == 3  # overview, workload and csat, once

    # The key (and the filters) live in sessionStorage: a reload shows the figures again.
    assert await page.evaluate("sessionStorage.getItem('ticketflow.dashboard.apiKey')") == site.key("mgr")
    await page.reload()
    await expect(kpi(page, "open_total")).to_have_text("7")
    await expect(page.locator("#api-key")).to_have_value(site.key("mgr"))


async def test_errors_are_shown_with_status_and_detail(page: Any, site: Site):
    expect = _expect()
    await page.goto(f"{site.base}/dashboard")
    error = page.locator("#error")

    await _load(page, site.key("eng"))  # an engineer does not read reports
    await expect(error).to_be_visible()
    await expect(page.locator("#error-title")).to_have_text("403 Forbidden: this key may not read these reports")
    await expect(page.locator("#error-details li").first).to_have_text(
        f"actor '{site.pid('eng')}' may not read reports: they need one of the roles "
        "admin, director, general_manager, manager, supervisor"
    )
    await expect(page.locator("#content")).to_be_hidden()

    await _load(page, "no-such-key")
    await expect(page.locator("#error-title")).to_have_text(
        "401 Unauthorized: the API key is missing, unknown or revoked"
    )
    await expect(page.locator("#error-details li").first).to_have_text("invalid or expired credentials")

    # A period that ends before it starts: the API's 422, field and message.
    await _load(page, site.key("mgr"), since="2024-04-02", until="2024-03-01")
    await expect(page.locator("#error-title")).to_have_text("422 Invalid request")
    await expect(page.locator("#error-details li").first).to_have_text(
        "query.since: since (2024-04-01T16:00:00+00:00) must be before until (2024-03-01T16:00:00+00:00)"
    )
    await expect(page.locator("#content")).to_be_hidden()

    # Fixed, the figures come back and the error goes away.
    await page.fill("#since", "2024-03-01")
    await page.click("#refresh")
    await expect(error).to_be_hidden()
    await expect(kpi(page, "open_total")).to_have_text("4")


PRESET_TYPES = [
    "complaint",
    "discount_approval",
    "ecommerce_return",
    "equipment_repair",
    "general",
    "installation",
    "trial_class",
]


async def test_nothing_scrolls_sideways_at_1400_px(browser: Any, site: Site):
    """Open tickets of every preset type: the "by type" card (a column per type) fits its card,
    and no card nor the page scrolls sideways on a 1400 × 900 screen. The workload without a
    role lists only the people tickets go to."""
    for n, ticket_type in enumerate(PRESET_TYPES):
        if ticket_type not in ("equipment_repair", "general"):  # those two are open already
            await site.add_ticket(T(f"t{n}", "new", ticket_type=ticket_type))
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    try:
        page = await context.new_page()
        await page.goto(f"{site.base}/dashboard")
        await _load(page, site.key("mgr"))
        await _expect()(page.locator("#open-by-type thead th")).to_have_count(len(PRESET_TYPES) + 2)
        overflowing = await page.evaluate(
            """() => [...document.querySelectorAll("figure, table, section, main")]
                .filter((e) => e.scrollWidth > e.clientWidth + 1)
                .map((e) => `${e.tagName}#${e.id || e.querySelector("table")?.id || ""}: `
                            + `${e.scrollWidth} > ${e.clientWidth}`)"""
        )
        assert overflowing == []
        page_width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert page_width[0] <= page_width[1], page_width

        # With no role asked for, the workload lists the people tickets go to: not the manager, nor
        # the demo's gateways, HR, legal or template designer (docs/reports.md, "Who is listed").
        listed = {await r.get_attribute("data-person") for r in await page.locator("#workload tbody tr").all()}
        assert {site.pid(s) for s in ("eng", "w1", "w2", "w3", "w4")} <= listed
        assert listed.isdisjoint({site.pid("mgr"), "gateway-qr", "gateway-erp", "hr-tang", "legal-wu", "tmpl-admin"})
    finally:
        await context.close()
