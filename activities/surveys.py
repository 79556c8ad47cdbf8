"""The satisfaction survey's side effects (``workflows/survey.py`` orchestrates them).

``survey.send`` writes the survey's row and finds where the customer may be asked: the channels
they consented to that the notification outbox reaches (``sms`` to a phone identity, ``email`` to
an email identity). The workflow then asks them through ``notify.send`` with those addresses, or
— nobody to reach — records ``not_sent: no consented channel`` and still waits for the answer
through the tracking page. The other activities record what happened (the delivery's outcome,
the reminder, the answer with the ticket's ``satisfaction``, the expiry, the follow-up ticket);
each is idempotent by the ticket id (``store/surveys.py``).
"""

from zoneinfo import ZoneInfo

from temporalio import activity

from activities.resources import database
from models.customer_tables import Customer
from models.surveys import LinkFollowUp, RecordAnswer, SendSurvey, SurveyDelivery, SurveyMark, SurveySent
from store import customers, people, regions, surveys

# Consent channel → the identity kind the outbox reaches it by, and how notify.send names it.
REACHABLE = {"sms": ("phone", "tel:"), "email": ("email", "mailto:")}
NO_CHANNEL = "not_sent: no consented channel"
NO_CUSTOMER = "not_sent: no customer on the ticket"

# Message texts per language (zh is the fallback). {ticket}, {title}, {until} are filled in.
TEXTS = {
    "zh": (
        "您的工单 {ticket}「{title}」已处理完毕。请为本次服务打分（1–5 分）并留下您的意见，{until} 前有效。",
        "提醒：您还没有为工单 {ticket}「{title}」的服务打分，问卷将于 {until} 关闭。",
    ),
    "en": (
        "Your ticket {ticket} ({title}) is done. How did we do? Rate the service from 1 to 5 and tell us "
        "more, until {until}.",
        "A reminder: you have not rated ticket {ticket} ({title}) yet. The survey closes on {until}.",
    ),
}


def texts(language: str, ticket_id: str, title: str, until: str) -> tuple[str, str]:
    """The invitation and the reminder in ``language`` (``en-GB`` → en; unknown → zh)."""
    invite, reminder = TEXTS.get(language.split("-")[0].lower(), TEXTS["zh"])
    values = {"ticket": ticket_id, "title": title or ticket_id, "until": until}
    return invite.format(**values), reminder.format(**values)


def _addresses(customer: Customer, identities: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(channels, addresses): every consented channel the outbox reaches, with each identity of it."""
    channels, addresses = [], []
    for channel, (kind, prefix) in REACHABLE.items():
        if not customer.consent.get(channel):
            continue
        found = [prefix + value for k, value in identities if k == kind]
        if found:
            channels.append(channel)
            addresses += found
    return channels, addresses


@activity.defn(name="survey.send")
async def send(req: SendSurvey) -> SurveySent:
    """Write the survey's row (once) and answer whom to ask, in which language, with which texts."""
    inp = req.input
    async with database().session() as session:
        customer = await customers.get(session, inp.customer_id) if inp.customer_id else None
        identities = await customers.identities_of(session, [customer.id]) if customer is not None else []
        engineer = await people.get(session, inp.assignee) if inp.assignee and inp.team is None else None
        region = await regions.get(session, inp.region)
    team = inp.team if inp.team is not None else (engineer.team if engineer is not None else None)
    language = inp.language or (customer.language if customer is not None else "zh")
    channels, recipients = _addresses(customer, [(i.kind, i.value) for i in identities]) if customer else ([], [])
    if customer is None:
        delivery = NO_CUSTOMER
    elif not recipients:
        delivery = NO_CHANNEL
    else:
        delivery = f"notifying: {', '.join(channels)}"
    row = await surveys.insert_sent(
        database(),
        {
            "ticket_id": inp.ticket_id,
            "region": inp.region,
            "ticket_type": inp.ticket_type,
            "customer_id": inp.customer_id,  # as the workflow knows it (the tracking page answers as it)
            "engineer": inp.assignee,
            "team": team,
            "channel": inp.channel,
            "language": language,
            "questions": [q.model_dump(mode="json", exclude_none=True) for q in inp.questions],
            "delivery": delivery,
            "sent_at": req.sent_at,
            "expires_at": req.expires_at,
            "status": surveys.SENT,
            "answers": {},
        },
    )
    zone = ZoneInfo(region.timezone) if region is not None else ZoneInfo("UTC")
    until = req.expires_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    invite, reminder = texts(language, inp.ticket_id, inp.title, until)
    return SurveySent(
        recipients=recipients, delivery=row.delivery, language=language, team=team, invite=invite, reminder=reminder
    )


@activity.defn(name="survey.delivered")
async def delivered(req: SurveyDelivery) -> None:
    """How asking the customer went (``notified: sms`` or ``not_sent: …``)."""
    await surveys.set_delivery(database(), req.ticket_id, req.delivery[:200])


@activity.defn(name="survey.remind")
async def remind(req: SurveyMark) -> None:
    await surveys.mark_reminded(database(), req.ticket_id, req.at)


@activity.defn(name="survey.record_answer")
async def record_answer(req: RecordAnswer) -> None:
    """The answer on the survey and the rating on the ticket (``ticket.satisfaction``)."""
    await surveys.record_answer(
        database(),
        req.ticket_id,
        rating=req.rating,
        comment=req.comment,
        answers=req.answers,
        at=req.at,
        via=req.via,
        by=req.by,
        update_id=req.update_id,
    )


@activity.defn(name="survey.expire")
async def expire(req: SurveyMark) -> None:
    await surveys.mark_expired(database(), req.ticket_id)


@activity.defn(name="survey.link_follow_up")
async def link_follow_up(req: LinkFollowUp) -> None:
    await surveys.link_follow_up(database(), req.ticket_id, req.follow_up_ticket)
