"""Surveys over HTTP against the real app and a real worker (``stack``: dev server, database):
staff read a ticket's survey, an agent or a channel gateway answers it for the customer, the
tracking page's functions answer it as the customer; who may not (other region: 404; an
engineer, a manager, the engineer who did the work: 403; a channel account reading: 403), bad
answers (422 naming the field), a second answer and an expired survey (409). A low rating opens
a real follow-up ticket through ``intake.open_ticket``. Then ``/reports/csat`` over surveys
seeded in regions of the test's own: exact figures per region, team, engineer and ticket type,
the period, and its scope.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml
from sqlmodel import col, select
from temporalio.client import Client

from api.app import create_app
from api.errors import Conflict, ProblemList
from api.services import surveys as service
from models.db import Database
from models.settings import Settings
from models.survey_spec import QuestionKind, SurveyQuestion
from models.survey_tables import Survey
from models.surveys import SurveyInput, workflow_id
from models.tables import Actor, ApiKey, Region, Ticket
from tests.conftest import Stack
from workflows.survey import SurveyWorkflow

QUESTIONS = [
    SurveyQuestion(id="on_time", text="Did the engineer arrive on time?", kind=QuestionKind.YES_NO),
    SurveyQuestion(id="again", text="Would you call us again?", kind=QuestionKind.CHOICE, options=["yes", "no"]),
    SurveyQuestion(id="skill", text="How skilled was the engineer?", kind=QuestionKind.RATING),
]


async def surveyed(stack: Stack, assignee: str = "eng-li", **timing: Any) -> str:
    """A ticket in east (raised by agent-wang) with its survey sent; its id."""
    r = await stack.create()
    assert r.status_code == 201, r.text
    ticket_id = r.json()["ticket_id"]
    inp = SurveyInput(
        ticket_id=ticket_id, region="east", ticket_type="general", title="Compressor #3 overheating",
        assignee=assignee, questions=QUESTIONS, **timing,
    )  # fmt: skip
    handle = await stack.client.start_workflow(
        SurveyWorkflow.run, inp, id=workflow_id(ticket_id), task_queue=stack.settings.task_queue
    )
    await until(stack, ticket_id, lambda s: s is not None)
    # The row is written by the sending activity; the workflow takes answers once it has that
    # activity's result (before, an answer is a 503 "answer again in a moment").
    deadline = time.monotonic() + 20
    while not (await handle.query(SurveyWorkflow.get_state)).delivery and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return ticket_id


async def survey(stack: Stack, ticket_id: str, actor: str = "sup-zhou") -> httpx.Response:
    return await stack.http.get(f"/tickets/{ticket_id}/survey", headers=stack.as_actor(actor))


async def until(stack: Stack, ticket_id: str, check: Any, timeout: float = 20.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while True:
        r = await survey(stack, ticket_id, "admin")
        body = r.json() if r.status_code == 200 else None
        if check(body) or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def answer(
    stack: Stack, ticket_id: str, actor: str = "agent-wang", key: str | None = None, **body: Any
) -> httpx.Response:
    headers = stack.as_actor(actor) | ({"Idempotency-Key": key} if key else {})
    payload = {"rating": 4, **body}
    return await stack.http.post(f"/tickets/{ticket_id}/survey/answer", json=payload, headers=headers)


async def satisfaction(db: Database, ticket_id: str) -> int | None:
    async with db.session() as s:
        row = await s.get(Ticket, ticket_id, populate_existing=True)
        assert row is not None
        return row.satisfaction


# --- answering ---


async def test_an_agent_answers_for_the_customer_once_and_staff_of_the_region_read_it(stack, db):
    ticket_id = await surveyed(stack)
    before = (await survey(stack, ticket_id)).json()
    assert (before["status"], before["rating"], before["engineer"], before["team"]) == (
        "sent",
        None,
        "eng-li",
        "field-service",
    )
    assert before["delivery"] == "not_sent: no customer on the ticket"  # the tracking page can still answer
    assert [q["id"] for q in before["questions"]] == ["on_time", "again", "skill"]

    body = {"rating": 4, "comment": "Quick and tidy", "answers": {"on_time": True, "again": "yes", "skill": 5}}
    r = await answer(stack, ticket_id, key="call-1", **body)
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["rating"], done["comment"]) == ("answered", 4, "Quick and tidy")
    assert done["answers"] == body["answers"] and done["answered_via"] == "agent:agent-wang"
    read = (await survey(stack, ticket_id, "mgr-sun")).json()
    assert (read["status"], read["rating"], read["comment"]) == ("answered", 4, "Quick and tidy")
    assert await satisfaction(db, ticket_id) == 4

    again = await answer(stack, ticket_id, key="call-1", **body)  # the same request: its first outcome
    assert again.status_code == 200 and again.json()["answered_at"] == done["answered_at"]
    second = await answer(stack, ticket_id, "gateway-qr", rating=1)  # another answer: one per ticket
    assert second.status_code == 409 and second.json()["code"] == "survey_answered"
    reused = await answer(stack, ticket_id, key="call-1", rating=2)  # the key with another body
    assert reused.status_code == 409
    assert (await survey(stack, ticket_id)).json()["rating"] == 4 and await satisfaction(db, ticket_id) == 4


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"rating": 6}, ["body", "rating"]),
        ({"rating": 0}, ["body", "rating"]),
        ({"rating": "5"}, ["body", "rating"]),
        ({"rating": 4.5}, ["body", "rating"]),
        ({"rating": True}, ["body", "rating"]),
        ({"rating": None}, ["body", "rating"]),
        ({"rating": 4, "comment": "x" * 2001}, ["body", "comment"]),
        ({"rating": 4, "answers": {"colour": "blue"}}, ["body", "answers", "colour"]),
        ({"rating": 4, "answers": {"again": "perhaps"}}, ["body", "answers", "again"]),
        ({"rating": 4, "answers": {"skill": 9}}, ["body", "answers", "skill"]),
        ({"rating": 4, "answers": {"on_time": "yes"}}, ["body", "answers", "on_time"]),
        ({"rating": 4, "answers": {"Bad Key": 1}}, ["body", "answers", "Bad Key", "[key]"]),
        ({"rating": 4, "answers": {f"q{i}": 1 for i in range(11)}}, ["body", "answers"]),
        ({"rating": 4, "answers": {"again": "y" * 2001}}, ["body", "answers", "again"]),
        ({"rating": 4, "by": "customer"}, ["body", "by"]),
    ],
)
async def test_a_bad_answer_is_a_422_naming_the_field_and_changes_nothing(stack, body, loc):
    ticket_id = await surveyed(stack)
    r = await stack.http.post(f"/tickets/{ticket_id}/survey/answer", json=body, headers=stack.as_actor("agent-wang"))
    assert r.status_code == 422, r.text
    assert any(p["loc"][: len(loc)] == loc for p in r.json()["detail"]), r.json()
    assert (await survey(stack, ticket_id)).json()["status"] == "sent"


async def test_who_may_read_and_answer(stack):
    ticket_id = await surveyed(stack, assignee="agent-wang")  # an agent did this one's work
    for actor in ("agent-chen", "mgr-luo"):  # south: not theirs to see
        assert (await survey(stack, ticket_id, actor)).status_code == 404
        assert (await answer(stack, ticket_id, actor)).status_code == 404
    assert (await survey(stack, ticket_id, "gateway-qr")).status_code == 403  # staff read surveys
    for actor in ("eng-li", "eng-zhao", "mgr-sun", "sup-zhou", "admin"):  # they do not speak for the customer
        r = await answer(stack, ticket_id, actor)
        assert r.status_code == 403, (actor, r.text)
    r = await answer(stack, ticket_id, "agent-wang")  # did the work: does not rate it
    assert r.status_code == 403 and "did the work" in r.json()["detail"]
    r = await stack.http.post(f"/tickets/{ticket_id}/survey/answer", json={"rating": 5})
    assert r.status_code == 401
    assert (await survey(stack, ticket_id)).json()["status"] == "sent"

    r = await answer(stack, ticket_id, "gateway-qr", rating=5, comment="via the bot")  # a channel speaks for them
    assert r.status_code == 200, r.text
    assert (r.json()["answered_via"], r.json()["rating"]) == ("channel:gateway-qr", 5)

    no_survey = (await stack.create()).json()["ticket_id"]
    assert (await survey(stack, no_survey)).status_code == 404
    assert (await answer(stack, no_survey)).status_code == 404
    assert (await survey(stack, "TNOSUCHTICKET")).status_code == 404
    assert (await stack.http.get("/tickets/bad%20id/survey", headers=stack.as_actor("admin"))).status_code == 422


async def test_an_expired_survey_takes_no_answer(stack, db):
    ticket_id = await surveyed(stack, reminder_after=timedelta(seconds=1), expires_after=timedelta(seconds=2))
    expired = await until(stack, ticket_id, lambda s: s and s["status"] == "expired", timeout=30)
    assert expired is not None and expired["status"] == "expired" and expired["reminded_at"] is not None
    r = await answer(stack, ticket_id, rating=5)
    assert r.status_code == 409 and r.json()["code"] == "survey_expired"
    assert await satisfaction(db, ticket_id) is None


async def test_the_tracking_page_answers_as_the_customer(stack, db):
    ticket_id = await surveyed(stack)
    async with db.session() as session:
        view = await service.pending(session, ticket_id)
        assert view is not None and view.status == "sent"
        assert set(view.model_dump()) == {
            "ticket_id",
            "status",
            "questions",
            "expires_at",
            "rating",
            "comment",
            "answers",
            "answered_at",
        }  # nothing of the staff's: no engineer, team, delivery or follow-up
        with pytest.raises(ProblemList) as bad:
            await service.answer(session, stack.client, stack.settings, ticket_id, 6, None, None, "tracking")
        assert bad.value.problems[0]["loc"] == ["body", "rating"]
        with pytest.raises(ProblemList) as bad:
            await service.answer(session, stack.client, stack.settings, ticket_id, 3, None, {"x": 1}, "tracking")
        assert bad.value.problems[0]["loc"] == ["body", "answers", "x"]

        done = await service.answer(
            session, stack.client, stack.settings, ticket_id, 5, "Thank you", {"on_time": True}, "tracking"
        )
        assert (done.status, done.rating, done.comment, done.answers) == ("answered", 5, "Thank you", {"on_time": True})
        assert await service.pending(session, ticket_id) is None
        with pytest.raises(Conflict):
            await service.answer(session, stack.client, stack.settings, ticket_id, 1, None, None, "tracking")
    staff = (await survey(stack, ticket_id)).json()
    assert staff["answered_via"] == "tracking" and await satisfaction(db, ticket_id) == 5


async def test_a_low_rating_opens_a_call_back_ticket_for_the_supervisors(stack):
    ticket_id = await surveyed(stack)
    r = await answer(stack, ticket_id, rating=1, comment="Still broken", answers={"again": "no"})
    assert r.status_code == 200, r.text
    linked = await until(stack, ticket_id, lambda s: s and s["follow_up_ticket"], timeout=30)
    assert linked is not None and linked["follow_up_ticket"]
    follow_up = await stack.until(linked["follow_up_ticket"], lambda t: t.get("active"), actor="sup-zhou")
    assert (follow_up["ticket_type"], follow_up["region"], follow_up["channel"]) == (
        "satisfaction_follow_up",
        "east",
        "system",
    )
    assert follow_up["fields"]["source_ticket"] == ticket_id and follow_up["fields"]["rating"] in (1, "1")
    assert follow_up["fields"]["comment"] == "Still broken"
    assert follow_up["active"] == ["call_back"] and follow_up["nodes"]["call_back"]["candidates"] == "role:supervisor"
    clocks = follow_up["sla"]["clocks"]
    assert (clocks["response"]["target"], clocks["resolution"]["target"]) == ("PT1H", "PT4H")
    # The survey of the same ticket opens it once, whatever happens again.
    assert (await survey(stack, ticket_id)).json()["follow_up_ticket"] == linked["follow_up_ticket"]


async def test_the_follow_up_preset_passes_the_template_api(stack):
    spec = yaml.safe_load((Path(__file__).parents[2] / "templates" / "satisfaction_follow_up.yaml").read_text())
    r = await stack.http.post("/templates/validate", json=spec, headers=stack.as_actor("tmpl-admin"))
    assert r.status_code == 200, r.text
    r = await stack.create(ticket_type="satisfaction_follow_up", channel="agent")  # no API channel raises it
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "channel"]


# --- /reports/csat ---

NO_TEMPORAL = cast(Client, object())  # reports never talk to Temporal
SINCE, UNTIL = "2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z"
B = datetime(2024, 3, 10, tzinfo=UTC)


@dataclass
class S:
    key: str
    region: str  # "E" or "S"
    rating: int | None  # None: not answered
    engineer: str | None = "w1"
    team: str | None = "alpha"
    ticket_type: str = "general"
    answered_at: datetime = B
    status: str = "answered"


SURVEYS = [
    # region E, in the period: ratings 5 5 4 3 2 1 (w1 alpha: 5 5 2; w2 alpha: 4 1; w3 beta: 3)
    S("e1", "E", 5),
    S("e2", "E", 5, ticket_type="equipment_repair"),
    S("e3", "E", 2),
    S("e4", "E", 4, "w2", ticket_type="equipment_repair"),
    S("e5", "E", 1, "w2"),
    S("e6", "E", 3, "w3", "beta"),
    S("e7", "E", 4, None, None),  # no engineer on the ticket
    # region E, around the period, and unanswered: never counted
    S("eb", "E", 1, answered_at=datetime(2024, 2, 29, 23, 59, tzinfo=UTC)),
    S("ea", "E", 1, answered_at=datetime(2024, 4, 1, tzinfo=UTC)),
    S("ex", "E", None, status="expired"),
    S("es", "E", None, status="sent"),
    # region S
    S("s1", "S", 5, "w4", "beta"),
    S("s2", "S", 2, "w4", "beta"),
]


class Csat:
    def __init__(self, http: httpx.AsyncClient, suffix: str) -> None:
        self.http, self.suffix = http, suffix
        self.E, self.S = f"ce-{suffix}", f"cs-{suffix}"

    def region(self, short: str) -> str:
        return {"E": self.E, "S": self.S}[short]

    def pid(self, short: str) -> str:
        return f"csat-{self.suffix}-{short}"

    def team(self, short: str | None) -> str | None:
        return None if short is None else f"{short}-{self.suffix}"

    async def get(self, actor: str, **params: Any) -> httpx.Response:
        params = {"since": SINCE, "until": UNTIL, **params}
        params = {k: v for k, v in params.items() if v is not None}
        return await self.http.get("/reports/csat", params=params, headers={"X-API-Key": f"key-{self.pid(actor)}"})

    async def report(self, actor: str = "boss", **params: Any) -> dict[str, Any]:
        r = await self.get(actor, **params)
        assert r.status_code == 200, r.text
        return r.json()


PEOPLE = {  # short name: roles, regions
    "boss": (["general_manager"], ["E", "S"]),
    "mgr-e": (["manager"], ["E"]),
    "sup-e": (["supervisor"], ["E"]),
    "eng-e": (["engineer"], ["E"]),
    "agent-e": (["agent"], ["E"]),
    "gw-e": (["channel"], ["E"]),
    "w1": (["engineer"], ["E"]),
    "w2": (["engineer"], ["E"]),
    "w3": (["engineer"], ["E"]),
    "w4": (["engineer"], ["S"]),
}


@pytest.fixture
async def csat(db: Database, database_url: str) -> AsyncIterator[Csat]:
    suffix = uuid.uuid4().hex[:6]
    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as h:
        c = Csat(h, suffix)
        async with db.session() as session:
            session.add(Region(code=c.E, name=f"CSAT east {suffix}"))
            session.add(Region(code=c.S, name=f"CSAT south {suffix}"))
            for short, (roles, regions) in PEOPLE.items():
                pid = c.pid(short)
                session.add(Actor(id=pid, name=f"Person {short}", roles=roles, regions=[c.region(r) for r in regions]))
                session.add(ApiKey.for_secret(pid, f"key-{pid}", created_by="test"))
            await session.flush()
            for s in SURVEYS:
                tid = f"C{suffix}{s.key}"
                session.add(Ticket(
                    id=tid, ticket_type=s.ticket_type, region=c.region(s.region), priority="normal", status="closed",
                    title=f"csat {s.key}", channel="qr", created_by="gateway-qr", created_at=B - timedelta(days=20),
                    updated_at=B, satisfaction=s.rating, snapshot={},
                ))  # fmt: skip
                await session.flush()
                session.add(Survey(
                    ticket_id=tid, region=c.region(s.region), ticket_type=s.ticket_type,
                    engineer=c.pid(s.engineer) if s.engineer else None, team=c.team(s.team), channel="qr",
                    language="zh", delivery="notified: sms", sent_at=B - timedelta(days=1),
                    expires_at=B + timedelta(days=2), status=s.status, rating=s.rating,
                    answered_at=s.answered_at if s.rating is not None else None,
                ))  # fmt: skip
            await session.commit()
        yield c
    async with db.session() as session:
        for actor in (await session.exec(select(Actor).where(col(Actor.id).like(f"csat-{suffix}-%")))).all():
            actor.active = False
            session.add(actor)
        await session.commit()


def figures(*ratings: int) -> dict[str, Any]:
    n = len(ratings)
    return {
        "answered": n,
        "average": round(sum(ratings) / n, 2),
        "csat": sum(r >= 4 for r in ratings) / n,
        "dissatisfied": sum(r <= 2 for r in ratings) / n,
    }


def groups(report: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {g["key"]: {k: g[k] for k in ("answered", "average", "csat", "dissatisfied")} for g in report["groups"]}


async def test_csat_per_region_team_engineer_and_ticket_type(csat):
    by_region = await csat.report(group_by="region")
    assert by_region["regions"] == [csat.E, csat.S]
    assert groups(by_region) == {csat.E: figures(5, 5, 2, 4, 1, 3, 4), csat.S: figures(5, 2)}
    assert [g["name"] for g in by_region["groups"]] == [f"CSAT east {csat.suffix}", f"CSAT south {csat.suffix}"]
    assert by_region["total"] == figures(5, 5, 2, 4, 1, 3, 4, 5, 2)
    assert by_region["total"]["average"] == 3.44 and by_region["total"]["csat"] == 5 / 9

    assert groups(await csat.report(group_by="team")) == {
        csat.team("alpha"): figures(5, 5, 2, 4, 1),
        csat.team("beta"): figures(3, 5, 2),
        None: figures(4),
    }
    by_engineer = await csat.report(group_by="engineer")
    assert groups(by_engineer) == {
        csat.pid("w1"): figures(5, 5, 2),
        csat.pid("w2"): figures(4, 1),
        csat.pid("w3"): figures(3),
        csat.pid("w4"): figures(5, 2),
        None: figures(4),
    }
    assert by_engineer["groups"][0]["name"] == "Person w1" and by_engineer["groups"][-1]["name"] is None
    assert groups(await csat.report(group_by="ticket_type")) == {
        "equipment_repair": figures(5, 4),
        "general": figures(5, 2, 1, 3, 4, 5, 2),
    }
    # from/to name the same period as since/until
    aliased = await csat.report(since=None, until=None, **{"from": SINCE, "to": UNTIL})
    assert aliased["total"] == by_region["total"]
    # a period with nothing answered
    empty = await csat.report(since="2023-01-01T00:00:00Z", until="2023-02-01T00:00:00Z")
    assert empty["groups"] == [] and empty["total"] == {
        "answered": 0,
        "average": None,
        "csat": None,
        "dissatisfied": None,
    }


async def test_csat_is_scoped_to_the_callers_regions(csat):
    mine = await csat.report("mgr-e", group_by="engineer")
    assert mine["regions"] == [csat.E] and csat.pid("w4") not in groups(mine)  # south's engineer is not shown
    assert mine["total"] == figures(5, 5, 2, 4, 1, 3, 4)
    assert (await csat.report("sup-e", region=csat.E))["total"]["answered"] == 7
    r = await csat.get("mgr-e", region=csat.S)
    assert r.status_code == 403
    r = await csat.get("mgr-e", region="no-such-region")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "region"]
    for actor in ("eng-e", "agent-e", "gw-e"):  # not report readers; a channel account reads no reports
        assert (await csat.get(actor)).status_code == 403
    assert (await csat.get("boss", group_by="customer")).status_code == 422
    r = await csat.get("boss", **{"from": SINCE})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "from"]
    r = await csat.get("boss", since="2024-03-01T00:00:00")  # no UTC offset
    assert r.status_code == 422
    r = await csat.get("boss", since=UNTIL, until=SINCE)
    assert r.status_code == 422
