"""What the tracking page shows, in plain words (English and Chinese): the status, a timeline
built from the ticket's events, the engineer's name, and what the customer may do now.

Only customer-facing events become lines (``LINES``): received, someone handling it (their
display name only), work started, a question put to the customer and their answer, photos,
resolution, confirmation, closing. Comments, dispatch explanations, SLA, approvals, prices,
staff ids and every field an approval or a role hides stay out: the page never shows an event's
raw data, and the form values it shows are those ``domain.forms.visible_values`` leaves to a
customer, of plain kinds only (no contact details, places or files: a link can be forwarded).
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel.ext.asyncio.session import AsyncSession

import store.customers
import store.people
import store.regions
import store.tickets
from api.services import tracking
from domain.forms import visible_values
from domain.lifecycle import TERMINAL
from models.tables import TicketEventRow
from models.template import FieldType, TemplateSpec
from models.ticket import TicketState

LANGUAGES = ("en", "zh")
EVENTS_READ = 300  # the latest events the timeline is built from
CUSTOMER_ROLES = ["customer"]
SATISFACTION = store.tickets.SATISFACTION_FIELD  # the customer's own rating: not a detail of the request
SHOWN_TYPES = {FieldType.TEXT, FieldType.ENUM, FieldType.MULTI_ENUM, FieldType.NUMBER, FieldType.DATE}
# Actions after which a task has a (new) person on it, and where the event names them.
HANDLING = {"assign", "claim", "dispatched", "reassigned", "offer_expired", "task_opened", "delegate", "released"}
DONE_MESSAGES = ("confirmed", "replied", "photo", "signature", "rated")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your service request",
        "request": "Request",
        "status": "Status",
        "status.new": "We have received your request",
        "status.assigned": "Someone is on it",
        "status.in_progress": "Work is in progress",
        "status.confirm": "The work is done: please confirm",
        "status.info": "We need a little more information from you",
        "status.resolved": "Resolved",
        "status.closed": "Closed",
        "status.cancelled": "Cancelled",
        "engineer": "Handled by",
        "arrival": "Expected arrival",
        "timeline": "What has happened",
        "line.created": "Request received",
        "line.handling": "{name} is handling your request",
        "line.start": "Work started",
        "line.question": "We asked you: {text}",
        "line.answer": "You answered: {text}",
        "line.photo": "A photo was added",
        "line.signature": "You signed",
        "line.waiting": "The work is done and waits for your confirmation",
        "line.confirmed": "You confirmed the work",
        "line.resolved": "Resolved",
        "line.reopen": "Reopened",
        "line.close": "Closed",
        "line.cancel": "Cancelled",
        "line.check_in": "The engineer arrived",
        "line.check_out": "The engineer finished on site",
        "now": "What you can do now",
        "confirm.title": "Is everything working again?",
        "confirm.button": "Yes, confirm the work",
        "rating": "How satisfied are you? (optional)",
        "rating.none": "no rating",
        "reply.title": "Our question",
        "reply.label": "Your answer",
        "reply.button": "Send answer",
        "photo.title": "Add a photo",
        "photo.label": "Photo (JPEG, PNG or WebP, at most {mb} MB)",
        "photo.button": "Upload photo",
        "photo.too_large": "This photo is larger than {mb} MB: choose a smaller one.",
        "sign.title": "Sign",
        "sign.hint": "Sign with your finger or mouse in the box.",
        "sign.clear": "Clear",
        "sign.button": "Send signature",
        "survey.title": "Rate our service",
        "survey.rating": "Your rating: 1 (very unhappy) to 5 (very happy)",
        "survey.comment": "Anything you want to tell us? (optional)",
        "survey.button": "Send rating",
        "answer.yes": "Yes",
        "answer.no": "No",
        "done.confirmed": "Thank you: you confirmed the work.",
        "done.replied": "Thank you: your answer was sent.",
        "done.photo": "Thank you: your photo was added.",
        "done.signature": "Thank you: your signature was added.",
        "done.rated": "Thank you for your rating.",
        "nothing": "Nothing is needed from you right now. Come back to this page to see how it goes.",
        "details": "Your request",
        "ref": "Reference",
        "language": "中文",
        "gone.title": "Link not valid",
        "gone.text": "This link is not valid. Please ask us for a new one.",
        "error": "That did not work",
    },
    "zh": {
        "title": "您的服务工单",
        "request": "工单",
        "status": "状态",
        "status.new": "我们已收到您的请求",
        "status.assigned": "已安排专人处理",
        "status.in_progress": "正在处理中",
        "status.confirm": "工作已完成，请您确认",
        "status.info": "我们需要您补充一些信息",
        "status.resolved": "已解决",
        "status.closed": "已关闭",
        "status.cancelled": "已取消",
        "engineer": "处理人",
        "arrival": "预计到达",
        "timeline": "处理进度",
        "line.created": "已收到您的请求",
        "line.handling": "{name} 正在处理您的请求",
        "line.start": "开始处理",
        "line.question": "我们问您：{text}",
        "line.answer": "您的回答：{text}",
        "line.photo": "已添加一张照片",
        "line.signature": "您已签名",
        "line.waiting": "工作已完成，等待您确认",
        "line.confirmed": "您已确认完成",
        "line.resolved": "已解决",
        "line.reopen": "已重新打开",
        "line.close": "已关闭",
        "line.cancel": "已取消",
        "line.check_in": "工程师已到达",
        "line.check_out": "工程师已完成现场工作",
        "now": "您现在可以",
        "confirm.title": "一切恢复正常了吗？",
        "confirm.button": "是的，确认完成",
        "rating": "您的满意度（可选）",
        "rating.none": "不评分",
        "reply.title": "我们的问题",
        "reply.label": "您的回答",
        "reply.button": "发送回答",
        "photo.title": "添加照片",
        "photo.label": "照片（JPEG、PNG 或 WebP，最大 {mb} MB）",
        "photo.button": "上传照片",
        "photo.too_large": "照片超过 {mb} MB，请选择较小的照片。",
        "sign.title": "签名",
        "sign.hint": "请用手指或鼠标在框内签名。",
        "sign.clear": "清除",
        "sign.button": "提交签名",
        "survey.title": "评价我们的服务",
        "survey.rating": "您的评分：1（很不满意）到 5（非常满意）",
        "survey.comment": "还有什么想告诉我们的吗？（可选）",
        "survey.button": "提交评价",
        "answer.yes": "是",
        "answer.no": "否",
        "done.confirmed": "谢谢，您已确认完成。",
        "done.replied": "谢谢，您的回答已发送。",
        "done.photo": "谢谢，照片已添加。",
        "done.signature": "谢谢，签名已添加。",
        "done.rated": "感谢您的评价。",
        "nothing": "目前无需您操作。您可随时回到本页查看进度。",
        "details": "您的请求",
        "ref": "工单号",
        "language": "English",
        "gone.title": "链接无效",
        "gone.text": "此链接无效，请联系我们获取新链接。",
        "error": "操作未成功",
    },
}


def language(asked: str | None, accept_language: str | None, customer_language: str | None = None) -> str:
    """``?lang=`` if it is one we have, else the first of the browser's languages we have (by
    their q weights), else the customer's recorded language, else English."""
    if asked in LANGUAGES:
        return asked
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            weighted.append((-q, i, primary))
    if weighted:
        return min(weighted)[2]
    return customer_language if customer_language in LANGUAGES else "en"


@dataclass
class Line:
    at: str
    text: str
    photo: str | None = None  # a file name of this ticket, served under the page


@dataclass
class PageView:
    lang: str
    t: dict[str, str]
    ticket_id: str
    title: str
    status: str  # the key of its words in ``TEXTS``
    engineer: str | None
    arrival: str | None
    lines: list[Line]
    details: list[tuple[str, str]]
    can_confirm: bool = False
    can_rate_with_confirm: bool = False
    question: str | None = None
    can_add_files: bool = False
    survey: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _file_in(text: str | None, ticket_id: str) -> str | None:
    """The name of one of this ticket's stored files that an event's text points at, if any."""
    m = re.search(
        rf"/tickets/{re.escape(ticket_id)}/attachments/([A-Za-z0-9_-]{{16,64}}\.(?:jpg|png|webp))", text or ""
    )
    return m.group(1) if m else None


def _status(state: TicketState, spec: TemplateSpec) -> str:
    if state.status.value in ("resolved", "closed", "cancelled"):
        return f"status.{state.status.value}"
    if tracking.awaits(state, spec, tracking.CONFIRMED):
        return "status.confirm"
    if tracking.open_question(state) is not None:
        return "status.info"
    return f"status.{state.status.value}"


def _person_of(row: TicketEventRow, state: TicketState) -> str | None:
    """Who a task now rests with after ``row``, if the event says (tasks only, not approvals)."""
    data = row.data or {}
    node = state.nodes.get(str(data.get("node", "")))
    if node is not None and node.type != "task":
        return None
    person = data.get("assignee") or data.get("to")
    return person if isinstance(person, str) else None


def _lines(
    rows: list[TicketEventRow],
    state: TicketState,
    spec: TemplateSpec,
    t: dict[str, str],
    zone: ZoneInfo,
    names: dict[str, str],
) -> list[Line]:
    out: list[Line] = []
    shown_person: str | None = None
    for row in rows:
        data, at = row.data or {}, _when(row.at, zone)
        action = row.action
        if action == "created":
            out.append(Line(at, t["line.created"]))
        elif action in HANDLING:
            person = _person_of(row, state)
            if person and person != shown_person and person in names:
                shown_person = person
                out.append(Line(at, t["line.handling"].format(name=names[person])))
        elif action in ("start", "resolved", "reopen", "close", "cancel", "check_in", "check_out"):
            out.append(Line(at, t[f"line.{action}"]))
        elif action == "request_info":
            out.append(Line(at, t["line.question"].format(text=str(data.get("question", "")))))
        elif action == f"event:{tracking.REPLY}":
            out.append(Line(at, t["line.answer"].format(text=str(data.get("text") or ""))))
        elif action in (f"event:{tracking.PHOTO}", f"event:{tracking.SIGNATURE}"):
            text = str(data.get("text") or "")
            signed = action == f"event:{tracking.SIGNATURE}"
            out.append(Line(at, t["line.signature" if signed else "line.photo"], _file_in(text, state.ticket_id)))
        elif action == "waiting" and data.get("signal") == tracking.CONFIRMED:
            out.append(Line(at, t["line.waiting"]))
        elif action == f"event:{tracking.CONFIRMED}":
            out.append(Line(at, t["line.confirmed"]))
    return out


def _details(spec: TemplateSpec, state: TicketState) -> list[tuple[str, str]]:
    shown = visible_values(spec, state.fields, CUSTOMER_ROLES)
    out = []
    for f in spec.fields:
        value = shown.get(f.name)
        if f.type not in SHOWN_TYPES or f.visible_to or f.name == SATISFACTION or value in (None, "", []):
            continue
        text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        out.append((f.label or f.name, text))
    return out


ETA_FIELD = "eta"


def _arrival(spec: TemplateSpec, state: TicketState, zone: ZoneInfo) -> str | None:
    """The template's ``eta`` datetime field (the engineer's expected arrival, set by their
    ``on_the_way`` event: the same field the customer's message quotes), when set and not hidden."""
    f = spec.field(ETA_FIELD)
    value = visible_values(spec, state.fields, CUSTOMER_ROLES).get(ETA_FIELD)
    if (
        f is None
        or f.type != FieldType.DATETIME
        or not isinstance(value, str)
        or state.status.value in ("resolved", "closed", "cancelled")
    ):
        return None
    try:
        return _when(datetime.fromisoformat(value), zone)
    except ValueError:
        return None


async def build(
    session: AsyncSession, v: "tracking.Visit", asked_lang: str | None, accept_language: str | None
) -> PageView:
    ticket, state = v.ticket, v.state
    customer = await store.customers.get(session, ticket.customer_id) if ticket.customer_id else None
    lang = language(asked_lang, accept_language, getattr(customer, "language", None))
    t = TEXTS[lang]
    spec = await tracking.spec_of(session, ticket)
    region = await store.regions.get(session, ticket.region)
    zone = _zone(region.timezone if region is not None else None)
    rows = list(reversed(await store.tickets.latest_events(session, ticket.id, EVENTS_READ)))
    people = {p for r in rows if (p := _person_of(r, state))} | ({state.assignee} if state.assignee else set())
    names = {pid: person.name for pid, person in (await store.people.by_ids(session, sorted(people))).items()}
    final = state.status.value in ("resolved", "closed", "cancelled")
    question = tracking.open_question(state)
    view = PageView(
        lang=lang,
        t=t,
        ticket_id=ticket.id,
        title=state.title,
        status=_status(state, spec),
        engineer=names.get(state.assignee) if state.assignee and not final else None,
        arrival=_arrival(spec, state, zone),
        lines=list(reversed(_lines(rows, state, spec, t, zone, names))),
        details=_details(spec, state),
    )
    view.survey = await tracking.survey_pending(session, ticket.id)
    if ticket.status not in TERMINAL:
        view.can_confirm = tracking.awaits(state, spec, tracking.CONFIRMED)
        view.can_rate_with_confirm = view.can_confirm and tracking.rating_field(spec)
        view.question = question
        view.can_add_files = True
    return view
