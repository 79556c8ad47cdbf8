"""The customer's tracking page in a real browser: Playwright driving Debian's chromium against the
real app (uvicorn on a free port, in this test's event loop) with the ``stack``'s worker on the dev
server, on a phone (390 × 844, touch) and on a desktop. Tickets are built through the API.

Skipped without chromium or Playwright, except under CI=true, where either missing is a failure
(``.ci/run`` installs Debian's chromium; Playwright comes with the ``test`` extra).
"""

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from temporalio.common import WorkflowIDReusePolicy

from api.app import create_app
from models.db import Database
from models.tracking_tables import TrackingToken
from tests.api.test_tracking import JPEG, PNG, events, issue, new_template, new_ticket, token_of
from tests.e2e.helpers import free_port
from tests.e2e.test_dashboard_browser import _playwright

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 3}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}


@dataclass
class Site:
    base: str
    stack: Any
    db: Database

    async def ticket(self) -> str:
        key = await new_template(self.stack.http, self.stack.as_actor)
        return await new_ticket(self.stack, key)

    async def link(self, tid: str) -> str:
        r = await issue(self.stack.http, tid, self.stack.as_actor("agent-wang"))
        assert r.status_code == 201, r.text
        return f"{self.base}/t/{token_of(r.json()['url'])}"

    async def act(self, tid: str, action: str, actor: str = "eng-li", **body: Any) -> None:
        r = await self.stack.act(tid, action, actor=actor, **body)
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async_api, exe = _playwright()
    async with async_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=exe, headless=True)
        yield chromium
        await chromium.close()


@pytest.fixture
async def site(stack, db: Database, tmp_path, monkeypatch) -> AsyncIterator[Site]:
    """The stack's app settings and worker, served over HTTP for the browser."""
    settings = stack.settings.model_copy(update={"attachments_dir": str(tmp_path / "attachments")})
    app = create_app(settings, client=stack.client)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, task.exception() if task.done() else "uvicorn did not start in 10 s"
    try:
        yield Site(base=f"http://127.0.0.1:{port}", stack=stack, db=db)
    finally:
        server.should_exit = True
        await task


async def _page(browser: Any, device: dict[str, Any], locale: str = "en-GB") -> tuple[Any, Any, list[str]]:
    context = await browser.new_context(**device, locale=locale, timezone_id="Asia/Shanghai")
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    return context, page, problems


def _expect() -> Any:
    from playwright.async_api import expect

    return expect


async def _fits(page: Any) -> None:
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths


async def _sign(page: Any) -> None:
    pad = page.locator("#sign-pad")
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    x, y = box["x"] + 20, box["y"] + box["height"] / 2
    await page.mouse.move(x, y)
    await page.mouse.down()
    for step in range(1, 12):
        await page.mouse.move(x + step * 25, y + (15 if step % 2 else -15))
    await page.mouse.up()


async def test_on_a_phone_a_customer_answers_adds_a_photo_signs_and_confirms(browser: Any, site: Site, tmp_path):
    expect = _expect()
    tid = await site.ticket()
    url = await site.link(tid)
    await site.act(tid, "request_info", question="Which valve is leaking?")
    await site.stack.until(tid, lambda t: t["nodes"]["work"]["awaiting_info"])

    context, page, problems = await _page(browser, PHONE)
    try:
        await page.goto(url)
        await expect(page).to_have_title(f"Your service request · {tid}")
        await expect(page.locator("#status")).to_have_text("We need a little more information from you")
        await expect(page.locator("#engineer")).to_contain_text("Li Wei")
        await expect(page.locator("#question")).to_have_text("Which valve is leaking?")
        await _fits(page)

        await page.fill("#reply-text", "The left one, by the door")
        await page.click("#reply-send")
        await expect(page.locator("#done")).to_have_text("Thank you: your answer was sent.")
        await expect(page.locator("#timeline li").first).to_contain_text("You answered: The left one, by the door")
        await expect(page.locator("#reply-form")).to_have_count(0)

        too_big = {"name": "huge.png", "mimeType": "image/png", "buffer": PNG + b"\x00" * (5 * 1024 * 1024)}
        await page.set_input_files("#photo-file", too_big)
        await page.click("#photo-send")
        await expect(page.locator("#photo-error")).to_have_text("This photo is larger than 5 MB: choose a smaller one.")
        photo = tmp_path / "leak.png"
        photo.write_bytes(PNG)
        await page.set_input_files("#photo-file", str(photo))
        await page.click("#photo-send")
        await expect(page.locator("#done")).to_have_text("Thank you: your photo was added.")
        image = page.locator("#timeline img").first
        await expect(image).to_be_visible()
        assert await image.evaluate("img => img.complete && img.naturalWidth") == 1  # the stored image, decoded

        await expect(page.locator("#sign-form")).to_be_visible()  # the script shows the pad
        await expect(page.locator("#sign-send")).to_be_disabled()
        await _sign(page)
        await page.click("#sign-send")
        await expect(page.locator("#done")).to_have_text("Thank you: your signature was added.")
        await expect(page.locator("#timeline li").first).to_contain_text("You signed")
        signature = (await events(site.db, tid, "event:customer_signature"))[-1]
        assert signature.actor_id == "tracking"
        name = signature.data["text"].rsplit("/", 1)[1]
        stored = (tmp_path / "attachments" / "tickets" / tid / name).read_bytes()
        assert stored.startswith(PNG[:8]) and len(stored) > 500  # a drawn PNG, not an empty one

        # the engineer finishes: the page asks for the confirmation
        await site.act(tid, "start")
        await site.act(tid, "complete")
        await site.stack.until(tid, lambda t: "confirm" in t["active"])
        await page.reload()
        await expect(page.locator("#status")).to_have_text("The work is done: please confirm")
        await page.check("#confirm-rating-4")
        await page.click("#confirm-send")
        await expect(page.locator("#done")).to_have_text("Thank you: you confirmed the work.")
        t = await site.stack.until(tid, lambda t: t["status"] == "resolved", actor="admin")
        assert t["status"] == "resolved" and t["fields"]["satisfaction"] in (4, "4")
        await page.reload()
        await expect(page.locator("#status")).to_have_text("Resolved")
        await expect(page.locator("#confirm-form")).to_have_count(0)
        await _fits(page)
        await page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    finally:
        await context.close()
    assert not problems, problems


async def test_on_a_desktop_a_customer_confirms_in_chinese_and_rates_the_service(browser: Any, site: Site):
    from models.surveys import SurveyInput, workflow_id
    from store import surveys as survey_rows
    from workflows.survey import SurveyWorkflow

    expect = _expect()
    tid = await site.ticket()
    url = await site.link(tid)
    await site.act(tid, "start")
    await site.act(tid, "complete")
    await site.stack.until(tid, lambda t: "confirm" in t["active"])

    context, page, problems = await _page(browser, DESKTOP, locale="zh-CN")
    try:
        await page.goto(url)  # the browser's language picks Chinese
        await expect(page.locator("#status")).to_have_text("工作已完成，请您确认")
        await page.click("#confirm-send")  # no rating with it
        await expect(page.locator("#done")).to_have_text("谢谢，您已确认完成。")
        await site.stack.until(tid, lambda t: t["status"] == "resolved", actor="admin")

        # The ticket's survey (started here as the ticket workflow starts it on resolution).
        ticket = (await site.stack.get(tid, "admin")).json()
        survey = SurveyInput(
            ticket_id=tid, region="east", ticket_type=ticket["ticket_type"], title=ticket["title"], assignee="eng-li"
        )
        await site.stack.client.start_workflow(
            SurveyWorkflow.run,
            survey,
            id=workflow_id(tid),
            task_queue=site.stack.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        for _ in range(200):
            async with site.db.session() as s:
                if await survey_rows.get(s, tid) is not None:
                    break
            await asyncio.sleep(0.05)
        await page.reload()
        await expect(page.locator("#survey-form")).to_be_visible()
        await page.check("#survey-rating-5")
        await page.fill("#survey-comment", "修得很快，谢谢！")
        await page.click("#survey-send")
        await expect(page.locator("#done")).to_have_text("感谢您的评价。")
        await expect(page.locator("#survey-form")).to_have_count(0)
        async with site.db.session() as s:
            row = await survey_rows.get(s, tid, fresh=True)
        assert row is not None and (row.status, row.rating, row.comment) == ("answered", 5, "修得很快，谢谢！")
        await page.click("#switch-lang")
        await expect(page.locator("#status")).to_have_text("Resolved")
        await _fits(page)
    finally:
        await context.close()
    assert not problems, problems


async def test_another_tickets_token_an_expired_and_a_revoked_token_are_refused(browser: Any, site: Site):
    expect = _expect()
    tid, other = await site.ticket(), await site.ticket()
    url, other_url = await site.link(tid), await site.link(other)
    async with httpx.AsyncClient() as http:  # a photo on the first ticket
        page_html = (await http.get(url)).text
        nonce = re.search(r'name="nonce" value="([^"]+)"', page_html).group(1)  # type: ignore[union-attr]
        r = await http.post(f"{url}/photo", data={"nonce": nonce}, files={"photo": ("p.png", PNG, "image/png")})
        assert r.status_code == 303, r.text
    name = (await events(site.db, tid, "event:customer_photo"))[0].data["text"].rsplit("/", 1)[1]

    context, page, problems = await _page(browser, DESKTOP)
    try:
        answer = await page.goto(f"{url}/files/{name}")
        assert answer.status == 200 and await answer.body() == PNG
        answer = await page.goto(f"{other_url}/files/{name}")  # the other ticket's token: not its file
        assert answer.status == 404
        await expect(page.locator("#gone h1")).to_have_text("Link not valid")

        # the other ticket's page holds nothing of the first
        await page.goto(other_url)
        await expect(page.locator("#ticket-id")).to_have_text(other)
        assert tid not in await page.content()

        # its nonce does not act on the first ticket's page
        foreign = await page.locator('#photo-form input[name="nonce"]').get_attribute("value")
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{url}/photo", data={"nonce": foreign}, files={"photo": ("q.png", JPEG, "image/jpeg")})
        assert r.status_code == 403
        assert len(await events(site.db, tid, "event:customer_photo")) == 1

        # expired, then revoked: the same page, no details
        expired_url, revoked_url = await site.link(tid), await site.link(tid)
        async with site.db.session() as s:
            rows = {
                r.token_hash: r for r in [await s.get(TrackingToken, i) for i in await _ids(site, tid)] if r is not None
            }
            row = rows[TrackingToken.hash(expired_url.rsplit("/", 1)[1])]
            row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
            s.add(row)
            await s.commit()
            revoked_id = rows[TrackingToken.hash(revoked_url.rsplit("/", 1)[1])].id
        r = await site.stack.http.delete(
            f"/tickets/{tid}/tracking-links/{revoked_id}", headers=site.stack.as_actor("agent-wang")
        )
        assert r.status_code == 200
        for refused in (expired_url, revoked_url, f"{revoked_url}/files/{name}"):
            answer = await page.goto(refused)
            assert answer.status == 404, refused
            await expect(page.locator("#gone p")).to_have_text("This link is not valid. Please ask us for a new one.")
            assert tid not in await page.content()
        await page.goto(url)  # the first link still works
        await expect(page.locator("#ticket-id")).to_have_text(tid)
    finally:
        await context.close()
    assert not problems, problems


async def _ids(site: Site, tid: str) -> list[str]:
    r = await site.stack.http.get(f"/tickets/{tid}/tracking-links", headers=site.stack.as_actor("agent-wang"))
    return [i["id"] for i in r.json()["items"]]
