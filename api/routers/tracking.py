"""Tracking links and the customer's tracking page.

- ``/tickets/{id}/tracking-links`` (JSON, with an API key): issue, list, revoke links;
  ``/tickets/{id}/attachments/{name}``: a file a customer added, for staff;
  ``POST /tickets/{id}/attachments``: staff add a photo or signature (the console's field page:
  base64 in JSON, within the API's body limit — the edge refuses binary bodies outside the
  tracking page's upload paths — the page scales photos down first).
- ``/t/<token>`` (HTML, the token is the only credential): the page, its forms (confirm, answer,
  photo, signature, rating) and the ticket's files. Server-rendered with Jinja2 (autoescaped), a
  stylesheet and a script from ``api/static/tracking`` (no build step); every form posts a nonce
  bound to the link, every answer is ``no-store``. An unknown, expired or revoked token, or a
  file of another ticket, is the same 404 page.
"""

import base64
import binascii
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Body, File, Form, Request, Response, UploadFile, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from api import storage as attachments
from api.deps import AppSettings, CurrentActor, DbSession, StaffActor, TemporalClient
from api.errors import Conflict, DomainError, FieldInvalid, NotFound
from api.services import tracking as service
from api.services import tracking_page
from models.schemas import Problem
from models.tracking_http import TrackingLinkCreate, TrackingLinkIssued, TrackingLinkList, TrackingLinkOut

HERE = Path(__file__).resolve().parent.parent
STATIC = HERE / "static" / "tracking"
ASSETS = {"tracking.css": "text/css; charset=utf-8", "tracking.js": "text/javascript; charset=utf-8"}
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates_html"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
PAGE_HEADERS = {
    # Our own script and style only; forms post to this page only; images from here only.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the address: never sent onwards
    "X-Robots-Tag": "noindex, nofollow",
}
FILE_HEADERS = {
    # An image only; a browser showing it alone styles its own viewer inline (harmless, sandboxed).
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
}
TicketId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
LinkId = Annotated[str, PathParam(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    404: {"model": Problem, "description": "No such ticket (or link) in the caller's scope"},
}
# Localised words for the refusals a customer can meet (else the service's own words).
REFUSALS = {
    "stale_page": {
        "en": "This page has expired: it was reloaded, please try again.",
        "zh": "页面已过期，已为您刷新，请重试。",
    },
    "nothing_to_confirm": {"en": "There is nothing to confirm now.", "zh": "目前没有需要确认的内容。"},
    "nothing_to_answer": {"en": "No question is waiting for an answer.", "zh": "目前没有待回答的问题。"},
    "nothing_to_rate": {"en": "There is no rating to give now.", "zh": "目前没有需要评价的内容。"},
    "ticket_final": {"en": "This request is already closed.", "zh": "此工单已关闭。"},
    "too_large": {"en": "The file is too large.", "zh": "文件太大。"},
    "unsupported_media_type": {
        "en": "Only JPEG, PNG and WebP images are accepted.",
        "zh": "仅支持 JPEG、PNG 和 WebP 图片。",
    },
}

router = APIRouter(tags=["tracking"])


# --- links (staff and the raising channel account) ---


def _base_url(request: Request) -> str:
    return request.app.state.settings.public_base_url or str(request.base_url)


@router.post(
    "/tickets/{ticket_id}/tracking-links",
    response_model=TrackingLinkIssued,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    summary="Issue a tracking link for the customer (the URL is shown in this reply only)",
)
async def issue_link(
    ticket_id: TicketId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    body: Annotated[TrackingLinkCreate | None, Body()] = None,
) -> TrackingLinkIssued:
    ttl = body.ttl_days if body is not None else None
    return await service.issue(session, actor, ticket_id, ttl, _base_url(request))


@router.get("/tickets/{ticket_id}/tracking-links", response_model=TrackingLinkList, responses=ERRORS)
async def list_links(ticket_id: TicketId, session: DbSession, actor: CurrentActor) -> TrackingLinkList:
    """The ticket's links, newest first: ids, expiry, revocation — never a token."""
    return TrackingLinkList(items=await service.list_links(session, actor, ticket_id))


@router.delete("/tickets/{ticket_id}/tracking-links/{link_id}", response_model=TrackingLinkOut, responses=ERRORS)
async def revoke_link(ticket_id: TicketId, link_id: LinkId, session: DbSession, actor: CurrentActor) -> TrackingLinkOut:
    """Revoke a link: its page is a 404 from now on."""
    return await service.revoke(session, actor, ticket_id, link_id)


def _storage(request: Request) -> attachments.Storage:
    """The app's attachment storage, made on first use from the configuration."""
    found: attachments.Storage | None = getattr(request.app.state, "attachment_storage", None)
    if found is None:
        settings = request.app.state.settings
        found = attachments.from_settings(settings)
        request.app.state.attachment_storage = found
    return found


async def _file(request: Request, ticket_id: str, name: str) -> Response:
    key = service.file_prefix(ticket_id) + name
    found = await _storage(request).get(key) if attachments.valid_key(key) else None
    if found is None:
        raise NotFound("no such file")
    headers = {**FILE_HEADERS, "Content-Disposition": f'inline; filename="{name}"'}
    return Response(found.data, media_type=found.content_type, headers=headers)


@router.get(
    "/tickets/{ticket_id}/attachments/{name}",
    responses={**ERRORS, 200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}},
    response_class=Response,
    summary="A photo or signature the customer added on the tracking page",
)
async def staff_file(
    ticket_id: TicketId,
    name: Annotated[str, PathParam(max_length=80)],
    request: Request,
    session: DbSession,
    actor: CurrentActor,
) -> Response:
    await service.staff_ticket(session, actor, ticket_id)
    return await _file(request, ticket_id, name)


class AttachmentIn(BaseModel):
    content_type: str = Field(max_length=40, examples=["image/jpeg"], description="JPEG, PNG or WebP")
    data: str = Field(min_length=1, max_length=1_400_000, description="The image, base64 (standard alphabet)")


class AttachmentOut(BaseModel):
    name: str
    url: str
    content_type: str
    bytes: int


@router.post(
    "/tickets/{ticket_id}/attachments",
    response_model=AttachmentOut,
    status_code=201,
    tags=["tickets"],
    summary="Add a photo or a signature (JPEG, PNG or WebP) for a check-in, check-out or form",
    responses={
        401: {"model": Problem, "description": "No or unknown credentials"},
        403: {"model": Problem, "description": "A channel account"},
        404: {"model": Problem, "description": "No such ticket in the caller's regions"},
        409: {"model": Problem, "description": "The ticket is closed or cancelled"},
        413: {"model": Problem, "description": "Larger than the attachment limit (5 MB by default)"},
        415: {"model": Problem, "description": "Not a JPEG, PNG or WebP image"},
    },
)
async def add_attachment(
    ticket_id: TicketId, body: AttachmentIn, request: Request, session: DbSession, actor: StaffActor
) -> AttachmentOut:
    """Stored under the ticket (by content: the same image twice is one file); the answer's
    ``url`` is what ``check_in``/``check_out`` take as a photo or signature, and where staff of
    the ticket's region read it back (``GET /tickets/{id}/attachments/{name}``)."""
    row = await service.staff_ticket(session, actor, ticket_id)
    if row.status in ("closed", "cancelled"):
        raise Conflict(f"ticket {ticket_id} is {row.status}: it takes no more attachments")
    try:
        data = base64.b64decode(body.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FieldInvalid("data", "not base64", "invalid_base64") from exc
    store = _storage(request)
    key = await store.put(data, body.content_type, prefix=service.file_prefix(ticket_id))
    name = key.rsplit("/", 1)[1]
    base = request.app.state.settings.public_base_url or str(request.base_url)
    return AttachmentOut(
        name=name,
        url=service.staff_file_url(base, ticket_id, name),
        content_type=attachments.type_of(key),
        bytes=len(data),
    )


# --- the page ---


def _render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def _gone(request: Request) -> HTMLResponse:
    lang = tracking_page.language(request.query_params.get("lang"), request.headers.get("accept-language"))
    return _render("tracking_gone.html", 404, t=tracking_page.TEXTS[lang], lang=lang)


def _page_path(request: Request, token: str) -> str:
    return f"{request.scope.get('root_path', '')}/t/{token}"


async def _page(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    v: service.Visit,
    token: str,
    lang: str | None,
    done: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    view = await tracking_page.build(session, v, lang, request.headers.get("accept-language"))
    storage = _storage(request)
    return _render(
        "tracking.html",
        status_code,
        v=view,
        t=view.t,
        page=_page_path(request, token),
        nonce=service.nonce_for(settings, v.link),
        done=view.t.get(f"done.{done}") if done in tracking_page.DONE_MESSAGES else None,
        error=error,
        max_bytes=storage.max_bytes,
        max_mb=f"{storage.max_bytes / (1024 * 1024):g}"
        if storage.max_bytes >= 1024 * 1024
        else f"{storage.max_bytes / (1024 * 1024):.2f}",
        other_lang="zh" if view.lang == "en" else "en",
    )


@router.get("/t/{token}", response_class=HTMLResponse, include_in_schema=False)
async def page(
    token: str,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    lang: str | None = None,
    done: str | None = None,
) -> HTMLResponse:
    try:
        v = await service.visit(session, token)
    except NotFound:
        return _gone(request)
    return await _page(request, session, settings, v, token, lang, done=done)


async def _attempt(
    request: Request, session: DbSession, settings: AppSettings, token: str, lang: str, done: str, act: Any
) -> Response:
    """Run one of the page's actions: then back to the page (303, so a reload posts nothing), or
    the page again with what went wrong."""
    try:
        v = await service.visit(session, token)
    except NotFound:
        return _gone(request)
    try:
        await act(v)
    except NotFound:
        return _gone(request)
    except DomainError as exc:
        await session.rollback()
        v = await service.visit(session, token)
        words = REFUSALS.get(str(exc.body().get("code") or exc.code), {}).get(lang if lang in ("en", "zh") else "en")
        return await _page(
            request, session, settings, v, token, lang, error=words or exc.detail, status_code=exc.status_code
        )
    query = urlencode({"lang": lang, "done": done} if lang in tracking_page.LANGUAGES else {"done": done})
    return RedirectResponse(f"{_page_path(request, token)}?{query}", status_code=303, headers=PAGE_HEADERS)


def _rating(raw: str) -> int | None:
    if not raw:
        return None
    if raw not in ("1", "2", "3", "4", "5"):
        raise FieldInvalid("rating", "a rating is a whole number from 1 to 5", "bad_rating")
    return int(raw)


Nonce = Annotated[str, Form(max_length=200)]
Lang = Annotated[str, Form(max_length=8)]


@router.post("/t/{token}/confirm", include_in_schema=False)
async def post_confirm(
    token: str,
    request: Request,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    nonce: Nonce = "",
    lang: Lang = "",
    rating: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    async def act(v: service.Visit) -> None:
        await service.confirm(session, client, settings, v, nonce, _rating(rating))

    return await _attempt(request, session, settings, token, lang, "confirmed", act)


@router.post("/t/{token}/reply", include_in_schema=False)
async def post_reply(
    token: str,
    request: Request,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    nonce: Nonce = "",
    lang: Lang = "",
    text: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    async def act(v: service.Visit) -> None:
        await service.reply(session, client, settings, v, nonce, text)

    return await _attempt(request, session, settings, token, lang, "replied", act)


async def _upload(
    request: Request,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    token: str,
    nonce: str,
    lang: str,
    upload: UploadFile | None,
    signature: bool,
) -> Response:
    store = _storage(request)

    async def act(v: service.Visit) -> None:
        service.check_nonce(settings, v.link, nonce)
        data = await upload.read(store.max_bytes + 1) if upload is not None else b""
        declared = upload.content_type if upload is not None else None
        await service.add_file(
            session, client, settings, store, v, nonce, data, declared, _base_url(request), signature=signature
        )

    return await _attempt(request, session, settings, token, lang, "signature" if signature else "photo", act)


@router.post("/t/{token}/photo", include_in_schema=False)
async def post_photo(
    token: str,
    request: Request,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    nonce: Nonce = "",
    lang: Lang = "",
    photo: Annotated[UploadFile | None, File()] = None,
) -> Response:
    return await _upload(request, session, client, settings, token, nonce, lang, photo, signature=False)


@router.post("/t/{token}/signature", include_in_schema=False)
async def post_signature(
    token: str,
    request: Request,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    nonce: Nonce = "",
    lang: Lang = "",
    signature: Annotated[UploadFile | None, File()] = None,
) -> Response:
    return await _upload(request, session, client, settings, token, nonce, lang, signature, signature=True)


MAX_SURVEY_ANSWERS = 50  # question fields read from one form at most


@router.post("/t/{token}/survey", include_in_schema=False)
async def post_survey(
    token: str,
    request: Request,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    nonce: Nonce = "",
    lang: Lang = "",
    rating: Annotated[str, Form(max_length=8)] = "",
    comment: Annotated[str, Form(max_length=2_000)] = "",
) -> Response:
    form = await request.form()
    answers = {
        k.removeprefix("q."): str(value)[:2_000]
        for k, value in list(form.multi_items())[: MAX_SURVEY_ANSWERS + 4]
        if k.startswith("q.") and isinstance(value, str)
    }

    async def act(v: service.Visit) -> None:
        await service.answer_survey(session, client, settings, v, nonce, _rating(rating), comment, answers)

    return await _attempt(request, session, settings, token, lang, "rated", act)


@router.get("/t/{token}/files/{name}", include_in_schema=False)
async def page_file(token: str, name: str, request: Request, session: DbSession) -> Response:
    """A file of this link's ticket only: the name is looked up under the ticket's own prefix."""
    try:
        v = await service.visit(session, token)
        return await _file(request, v.ticket.id, name)
    except NotFound:
        return _gone(request)


@router.get("/tracking/{asset}", include_in_schema=False)
async def tracking_asset(asset: str) -> FileResponse:
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise NotFound(f"no tracking page file {asset!r}")
    return FileResponse(STATIC / asset, media_type=media_type, headers={"Cache-Control": "no-cache"})
