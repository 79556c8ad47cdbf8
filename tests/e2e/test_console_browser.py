"""The console in a real browser: Playwright driving Debian's chromium against the real app
(uvicorn on a free port, in this test's event loop) with the ``stack``'s worker on the dev server.

An agent creates a ticket (a form error corrected on the way), an engineer on a phone claims,
starts, checks in with a photo, checks out with the customer's signature and completes it (a
form error corrected on the way), a manager approves a discount, finance reads the statement;
people without the role see no button for what they may not do, and the API refuses it anyway.

Each test works in a region of its own with its own people, so nobody else's work shows.
Skipped without chromium or Playwright, except under CI=true (``test_dashboard_browser._playwright``).
"""

import asyncio
import base64
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import store.people
from models.calendar import BusinessCalendar
from models.db import Database
from models.tables import Actor, ApiKey, Region
from tests.api.test_tracking import PNG
from tests.e2e.test_tracking_browser import DESKTOP, PHONE, _expect, _fits, _page, browser, site  # noqa: F401

SITE = {"lat": 31.2304, "lon": 121.4737, "address": "1 Century Avenue"}


def template(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "name": f"Console repair {key}",
        "default_priority": "high",
        "fields": [
            {
                "name": "device_id", "label": "Device ID", "type": "text", "required": True,
                "pattern": "[A-Z]{2,4}-[0-9]{3,8}",
            },
            {"name": "site", "label": "Site", "type": "location"},
            {"name": "diagnosis", "label": "Diagnosis", "type": "long_text", "editable_by": ["engineer"]},
            {
                "name": "repair_cost", "label": "Repair cost", "type": "money", "currency": "CNY",
                "visible_to": ["finance", "supervisor", "manager"], "editable_by": ["engineer", "finance"],
            },
        ],
        "start": "work",
        "nodes": [
            {
                "id": "work", "type": "task", "name": "Repair on site", "assignee": {"role": "engineer"},
                "on_site": {"site_field": "site", "radius_m": 1000, "outside": "flag"},
                "form": ["diagnosis", "repair_cost"], "required": ["diagnosis", "repair_cost"],
                "sla": {"response": "PT2H", "resolution": "PT8H"}, "next": "settle",
            },
            {"id": "settle", "type": "settle", "quoted": {"REPAIR-COST": "repair_cost"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
        "events": [],
    }  # fmt: skip


@dataclass
class Cast:
    """A region of this test's own (24x7, the demo's east prices) and its people, keys ``key-<id>``."""

    site: Any
    region: str
    ticket_type: str
    suffix: str

    def id(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def key(self, name: str) -> str:
        return f"key-{self.id(name)}"

    def headers(self, name: str) -> dict[str, str]:
        return {"X-API-Key": self.key(name)}

    @property
    def http(self) -> httpx.AsyncClient:
        return self.site.stack.http

    async def create(self, name: str = "agent", **body: Any) -> str:
        payload = {"ticket_type": self.ticket_type, "region": self.region, "title": "Pump leaks", **body}
        r = await self.http.post("/tickets", json=payload, headers=self.headers(name))
        assert r.status_code == 201, r.text
        return r.json()["ticket_id"]

    async def act(self, tid: str, action: str, name: str, **body: Any) -> httpx.Response:
        return await self.http.post(f"/tickets/{tid}/actions/{action}", json=body or None, headers=self.headers(name))

    async def until(self, tid: str, check, name: str = "agent") -> dict[str, Any]:
        for _ in range(400):
            t = (await self.http.get(f"/tickets/{tid}", headers=self.headers(name))).json()
            if check(t):
                return t
            await asyncio.sleep(0.05)
        raise AssertionError(f"{tid} never got there: {t}")


PEOPLE = {  # name → roles (a manager for the agent's discounts)
    "mgr": ["manager"],
    "agent": ["agent"],
    "eng": ["engineer"],
    "eng2": ["engineer"],
    "fin": ["finance"],
}


@pytest.fixture
async def cast(site, db: Database) -> AsyncIterator[Cast]:  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    region = f"c{suffix}"
    async with db.session() as s:
        cal = BusinessCalendar.always_open("Asia/Shanghai").model_dump(mode="json")
        s.add(Region(code=region, name=f"Console {suffix}", timezone="Asia/Shanghai", calendar=cal))
        for name, roles in PEOPLE.items():
            pid = f"{name}-{suffix}"
            manager = f"mgr-{suffix}" if name == "agent" else None
            s.add(Actor(id=pid, name=f"{name.title()} {suffix}", roles=roles, regions=[region], manager_id=manager))
        await s.flush()
        for name in PEOPLE:
            s.add(ApiKey.for_secret(f"{name}-{suffix}", f"key-{name}-{suffix}", created_by="test"))
        await store.people.bump_roster_revision(s)
        await s.commit()
    http, admin = site.stack.http, site.stack.as_actor("admin")
    rules = (await http.get("/pricing/east", headers=admin)).json()["rules"]
    r = await http.put(f"/pricing/{region}", json={**rules, "region": region}, headers=admin)
    assert r.status_code == 201, r.text
    key = f"console_{suffix}"
    r = await http.post("/templates", json=template(key), headers=site.stack.as_actor("tmpl-admin"))
    assert r.status_code == 201, r.text
    yield Cast(site=site, region=region, ticket_type=key, suffix=suffix)


async def sign_in(page: Any, base: str, key: str, view: str = "") -> None:
    expect = _expect()
    await page.goto(f"{base}/console{view}")
    await page.fill("#api-key", key)
    await page.press("#api-key", "Enter")  # the keyboard signs in
    await expect(page.locator("#whoami")).to_be_visible()


UNLABELLED = """[...document.querySelectorAll("input, select, textarea")]
  .filter((e) => e.offsetParent !== null && !e.labels.length && !e.getAttribute("aria-label"))
  .map((e) => e.id || e.name)"""


async def draw(page: Any, selector: str) -> None:
    pad = page.locator(selector)
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    x, y = box["x"] + 20, box["y"] + box["height"] / 2
    await page.mouse.move(x, y)
    await page.mouse.down()
    for step in range(1, 12):
        await page.mouse.move(x + step * 20, y + (15 if step % 2 else -15))
    await page.mouse.up()


async def test_agent_creates_engineer_completes_manager_approves_finance_reads(browser: Any, cast: Cast, tmp_path):  # noqa: F811
    expect = _expect()
    base = cast.site.base

    # --- an agent at a desk creates the ticket; the device id is refused, then corrected ---
    context, page, problems = await _page(browser, DESKTOP)
    try:
        await sign_in(page, base, cast.key("agent"), "#new")
        await expect(page.locator("#whoami")).to_contain_text(cast.id("agent"))
        await page.select_option("#new-type", cast.ticket_type)
        await page.fill("#new-title", "Pump in hall 2 leaks")
        await expect(page.locator("#new-f-device_id")).to_be_visible()
        assert await page.evaluate(UNLABELLED) == []  # every control has its label
        await page.fill("#new-f-device_id", "PUMP-7")
        await page.fill("#new-f-site-lat", str(SITE["lat"]))
        await page.fill("#new-f-site-lon", str(SITE["lon"]))
        await page.fill("#new-f-site-address", SITE["address"])
        await page.click("#new-submit")
        error = page.locator("#err-new-f-device_id")
        await expect(error).to_contain_text("does not match")
        await expect(page.locator("#new-f-device_id")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#new-f-device_id")).to_be_focused()
        await page.fill("#new-f-device_id", "PUMP-777")
        await page.click("#new-submit")
        await expect(page.locator("#new-result")).to_contain_text("Created")
        href = await page.locator("#new-open").get_attribute("href")
        tid = href.rsplit("/", 1)[1]
        await expect(error).to_be_hidden()
    finally:
        await context.close()
    assert not problems, problems

    # --- the engineer on a phone, at the site ---
    phone = {
        **PHONE,
        "geolocation": {"latitude": SITE["lat"], "longitude": SITE["lon"]},
        "permissions": ["geolocation"],
    }
    context, page, problems = await _page(browser, phone)
    try:
        await sign_in(page, base, cast.key("eng"))
        card = page.locator(f'#work-list li[data-ticket="{tid}"]')
        await expect(card).to_contain_text("You may claim it")
        await expect(card.locator(".left")).to_contain_text(re.compile(r"\d+ h( \d+ min)? left"))
        await _fits(page)
        await page.screenshot(path=str(tmp_path / "work-phone.png"))
        await card.get_by_role("button", name="Claim").click()
        await expect(page.locator("#ticket-status")).to_have_text("Assigned")
        await page.click("#action-start")
        await expect(page.locator("#ticket-status")).to_have_text("In progress")

        await page.click("#nav-field")  # today's jobs: the address and a map link
        job = page.locator(f'#field-list li[data-ticket="{tid}"]')
        await expect(job).to_contain_text(SITE["address"])
        map_link = job.get_by_role("link", name="Map", exact=True)
        assert "uri.amap.com/marker?position=121.4737,31.2304" in (await map_link.get_attribute("href") or "")
        assert await job.get_by_role("link", name="Maps app").get_attribute("href") == "geo:31.2304,121.4737"
        await job.get_by_role("link", name="Open ticket").click()

        await page.click("#action-check_in")
        await expect(page.locator("#a-check_in-lat")).to_contain_text("31.2304")
        photo = tmp_path / "before.png"
        photo.write_bytes(PNG)
        await page.set_input_files("#a-check_in-photos", str(photo))
        await page.click("#a-check_in-submit")
        await expect(page.locator("#ticket-timeline")).to_contain_text("checked in on site")
        await expect(page.locator("#ticket-files img").first).to_be_visible()

        await page.click("#action-check_out")
        await draw(page, "#a-check_out-signature")
        assert await page.evaluate(UNLABELLED) == []
        await page.click("#a-check_out-submit")
        await expect(page.locator("#ticket-timeline")).to_contain_text("checked out")

        await page.click("#action-complete")
        await page.fill("#a-complete-f-repair_cost", "120.00")
        await page.click("#a-complete-submit")  # no diagnosis: refused, said beside the field
        await expect(page.locator("#err-a-complete-f-diagnosis")).to_be_visible()
        await expect(page.locator("#a-complete-f-diagnosis")).to_have_attribute("aria-invalid", "true")
        await page.fill("#a-complete-f-diagnosis", "Worn seal replaced")
        await page.click("#a-complete-submit")
        await expect(page.locator("#ticket-status")).to_have_text("Resolved", timeout=15_000)
        await expect(page.locator("#ticket-fields [data-field=repair_cost]")).to_have_count(0)  # finance's
        await expect(page.locator("#statement-split")).to_have_count(0)
        await _fits(page)
        await page.screenshot(path=str(tmp_path / "engineer-phone.png"), full_page=True)
    finally:
        await context.close()
    assert not problems, problems
    t = await cast.until(tid, lambda t: t["status"] == "resolved", "eng")
    visit = t["nodes"]["work"]["visits"][0]
    assert visit["signature"] and visit["photos_before"] and visit["distance_m"] == 0.0

    # --- the agent asks for a discount; the manager approves it ---
    discount = await cast.create(
        ticket_type="discount_approval",
        title="Discount for ACME",
        fields={"customer": "ACME", "amount": {"amount": "5000", "currency": "CNY"}, "justification": "Loyal customer"},
    )
    await cast.until(discount, lambda t: t["nodes"].get("approve", {}).get("approvers") == [cast.id("mgr")])
    context, page, problems = await _page(browser, DESKTOP)
    try:
        await sign_in(page, base, cast.key("mgr"))
        card = page.locator(f'#work-list li[data-ticket="{discount}"]')
        await expect(card).to_contain_text("Waiting for your vote")
        await card.get_by_role("link", name="Open ticket").click()
        await page.click("#action-approve")
        await page.fill("#a-approve-reason", "Within budget")
        await page.click("#a-approve-submit")
        await expect(page.locator("#ticket-status")).to_have_text("Resolved", timeout=15_000)
        await expect(page.locator("#ticket-timeline")).to_contain_text(f"{cast.id('mgr')} approved")
    finally:
        await context.close()
    assert not problems, problems

    # --- finance reads the statement, with the revenue split and the cost field ---
    context, page, problems = await _page(browser, DESKTOP)
    try:
        await sign_in(page, base, cast.key("fin"), f"#ticket/{tid}")
        await expect(page.locator("#statement-total")).to_contain_text("CNY")
        await expect(page.locator("#statement")).to_contain_text("Repair (quoted)")
        await expect(page.locator("#statement-split li").first).to_be_visible()
        await expect(page.locator("#ticket-fields [data-field=repair_cost]")).to_have_text("120.00 CNY")
        await page.screenshot(path=str(tmp_path / "finance-desktop.png"), full_page=True)
    finally:
        await context.close()
    assert not problems, problems


async def test_no_button_for_what_a_role_may_not_do_and_the_api_refuses_it(browser: Any, cast: Cast):  # noqa: F811
    expect = _expect()
    tid = await cast.create(fields={"device_id": "PUMP-778", "site": SITE})
    assert (await cast.act(tid, "claim", "eng")).status_code == 200
    discount = await cast.create(
        ticket_type="discount_approval",
        title="Discount",
        fields={"customer": "ACME", "amount": {"amount": "100", "currency": "CNY"}, "justification": "x"},
    )
    await cast.until(discount, lambda t: bool(t["nodes"].get("approve", {}).get("approvers")))

    context, page, problems = await _page(browser, DESKTOP, locale="zh-CN")
    try:  # another engineer, in Chinese: may comment, not start someone else's task
        await sign_in(page, cast.site.base, cast.key("eng2"), f"#ticket/{tid}")
        await expect(page.locator("#nav-work")).to_have_text("我的工作")
        assert await page.evaluate("document.documentElement.lang") == "zh-CN"
        await expect(page.locator("#action-comment")).to_have_text("评论")
        for action in ("start", "complete", "check_in", "claim"):
            await expect(page.locator(f"#action-{action}")).to_have_count(0)
        await page.click("#switch-lang")
        await expect(page.locator("#action-comment")).to_have_text("Comment")
        # live: the page follows the ticket while the engineer who holds it starts it elsewhere
        await expect(page.locator("#ticket-status")).to_have_text("Assigned")
        assert (await cast.act(tid, "start", "eng")).status_code == 200
        await expect(page.locator("#ticket-status")).to_have_text("In progress", timeout=10_000)
        await page.click("#action-comment")  # the keyboard reaches the form
        await expect(page.locator("#a-comment-text")).to_be_focused()
        await page.keyboard.type("I can help tomorrow")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(page.locator("#ticket-timeline")).to_contain_text("I can help tomorrow")

        # the agent sees their own discount request without approve or reject
        await page.click("#signout")
        await sign_in(page, cast.site.base, cast.key("agent"), f"#ticket/{discount}")
        await expect(page.locator("#ticket-status")).to_be_visible()
        await expect(page.locator("#action-comment")).to_be_visible()
        for action in ("approve", "reject"):
            await expect(page.locator(f"#action-{action}")).to_have_count(0)

        # a demo ticket with a customer and their machine: the customer 360 and the asset
        r = await cast.site.stack.create(
            "agent-wang",
            title="Compressor overheating",
            customer={"phone": "+86 138 0013 8000"},
            asset={"qr_code": "DMT6SW7G6276YTAMLVQ6"},
        )
        assert r.status_code == 201, r.text
        await page.click("#signout")
        await sign_in(page, cast.site.base, "demo-agent-wang", f"#ticket/{r.json()['ticket_id']}")
        await expect(page.locator("#customer-name")).to_be_visible()
        await expect(page.locator("#ticket-customer li.now")).to_contain_text("serial")
    finally:
        await context.close()
    assert not problems, problems

    # … and the API refuses them anyway
    r = await cast.act(tid, "complete", "eng2", fields={"diagnosis": "not mine"})
    assert r.status_code == 403, r.text
    r = await cast.act(tid, "check_in", "eng2", lat=SITE["lat"], lon=SITE["lon"])
    assert r.status_code == 403, r.text
    r = await cast.act(discount, "approve", "agent", reason="me")
    assert r.status_code == 403, r.text
    r = await cast.act(discount, "approve", "eng", reason="not mine")
    assert r.status_code == 403, r.text

    # attachments: images only, staff of the ticket's region only
    png = {"content_type": "image/png", "data": base64.b64encode(PNG).decode()}
    r = await cast.http.post(f"/tickets/{tid}/attachments", json=png, headers=cast.headers("eng"))
    assert r.status_code == 201 and r.json()["url"].endswith(f"/tickets/{tid}/attachments/{r.json()['name']}")
    r = await cast.http.get(r.json()["url"], headers=cast.headers("eng2"))
    assert r.status_code == 200 and r.content == PNG
    svg = {"content_type": "image/png", "data": base64.b64encode(b"<svg/>").decode()}
    r = await cast.http.post(f"/tickets/{tid}/attachments", json=svg, headers=cast.headers("eng"))
    assert r.status_code == 415, r.text
    r = await cast.http.post(f"/tickets/{tid}/attachments", json=png, headers=cast.site.stack.as_actor("eng-li"))
    assert r.status_code == 404, r.text  # another region's engineer
    r = await cast.http.post(
        f"/tickets/{tid}/attachments", json={**png, "data": "not base64!"}, headers=cast.headers("eng")
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "data"], r.text
    r = await cast.http.post(f"/tickets/{tid}/attachments", json=png, headers=cast.site.stack.as_actor("gateway-qr"))
    assert r.status_code == 403, r.text  # a channel account
    huge = {"content_type": "image/png", "data": "A" * 1_500_000}
    r = await cast.http.post(f"/tickets/{tid}/attachments", json=huge, headers=cast.headers("eng"))
    assert r.status_code == 413, r.text
    assert (await cast.act(discount, "cancel", "agent", reason="not needed")).status_code == 200
    r = await cast.http.post(f"/tickets/{discount}/attachments", json=png, headers=cast.headers("agent"))
    assert r.status_code == 409, r.text
