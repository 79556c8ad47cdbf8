"""What every request passes through before a route: the rate limit, size and shape limits on
the input, and security headers on every response.

Installed by ``api/app.py`` (``install``). Pure ASGI middleware, so streamed responses pass
unchanged. In order, a request is refused with:

- **429** when its credential (a hash of ``X-API-Key`` or ``Authorization``; the client address
  without one) has spent its token bucket (``rate_limit_per_minute``, ``rate_limit_burst``);
- **422** when the path or the query string holds a NUL character (``%00``);
- **413** when its body is larger than ``max_body_bytes`` (by ``Content-Length`` at once, else
  counted while it streams in; reading stops at the limit);
- **422** when the body holds a NUL byte, or a JSON body nests deeper than ``MAX_JSON_DEPTH`` or
  has a NUL character in a key or a string (``"\\u0000"``), naming where.

The bucket lives in this process: each API replica counts on its own, so N replicas let a
credential through up to N times the rate.

Every answer, refusals included, is counted for Prometheus (``HttpMetrics``: by method, route
template, ticket action and status class, with its latency), and ``GET /metrics`` serves the
counts (``MetricsEndpoint``, behind the rate limit; with ``metrics_token`` set it needs
``Authorization: Bearer <token>``). docs/operations.md lists the metrics.
"""

import hashlib
import hmac
import json
import math
import re
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.bounds import MAX_DEPTH, find_nul, shown
from models import metrics
from models.settings import Settings

# The API answers JSON: nothing in it may be framed, sniffed or cached by a shared cache.
# JSON gets a deny-all Content-Security-Policy; pages (the dashboard) set their own.
SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
}
JSON_CSP = b"default-src 'none'; frame-ancestors 'none'"
HSTS = b"max-age=31536000; includeSubDomains"

MAX_JSON_DEPTH = MAX_DEPTH
# Buckets kept at most (least recently used dropped first): memory stays bounded whatever
# credentials arrive.
MAX_BUCKETS = 50_000
# Not rate limited: a load balancer's probe must not be refused because anonymous clients behind
# the same address spent their bucket.
UNLIMITED_PATHS = frozenset({"/health"})


class SecurityHeaders:
    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app, self.hsts = app, hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower(): value for name, value in headers}
                extra = dict(SECURITY_HEADERS)
                if b"json" in present.get(b"content-type", b""):
                    extra[b"content-security-policy"] = JSON_CSP
                if b"cache-control" not in present:
                    extra[b"cache-control"] = b"no-store"
                if self.hsts:
                    extra[b"strict-transport-security"] = HSTS
                headers += [(k, v) for k, v in extra.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


# --- rate limit ----------------------------------------------------------------------------


def clock() -> float:
    """The rate limit's clock (seconds, monotonic); tests put a hand-moved one in its place."""
    return time.monotonic()


class TokenBuckets:
    """One token bucket per key: ``burst`` tokens at most, refilled at ``per_minute / 60`` a
    second; a request takes one."""

    def __init__(self, per_minute: int, burst: int, max_keys: int = MAX_BUCKETS) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may pass, else the seconds until it would."""
        now = clock() if now is None else now
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


def credential_key(scope: Scope) -> str:
    """Whose bucket a request takes from: a hash of its credential, else its client address."""
    for name, value in scope.get("headers", []):
        if name in (b"x-api-key", b"authorization") and value:
            return "c:" + hashlib.sha256(value).hexdigest()
    client = scope.get("client")
    return f"a:{client[0] if client else '?'}"


# --- body and JSON checks ------------------------------------------------------------------

# A JSON string token, or one structural character (linear: the alternatives never overlap).
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:,]', re.DOTALL)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class Refused(Exception):
    """A request answered at the edge (``status``, FastAPI's 422 list or a problem body)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _invalid(loc: list[str | int], msg: str, type_: str) -> Refused:
    return Refused(422, {"detail": [{"loc": loc, "msg": msg, "type": type_}]})


def _too_large(limit: int) -> Refused:
    return Refused(413, {"detail": f"the request body is larger than {limit} bytes", "code": "too_large"})


def _too_deep(body: bytes) -> bool:
    """Whether arrays and objects nest deeper than ``MAX_JSON_DEPTH`` (strings skipped), without
    parsing."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False  # too few brackets to nest too deep, wherever they are
    depth = 0
    for byte in _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def _path_at_depth(body: bytes, limit: int) -> list[str | int]:
    """Where a JSON text first nests deeper than ``limit``: keys and indexes to that point."""
    frames: list[list[Any]] = []  # [is_object, key or index, last string seen]
    for m in _JSON_TOKEN.finditer(body):
        token = m.group()
        if token in (b"{", b"["):
            if len(frames) >= limit:
                break
            frames.append([token == b"{", None if token == b"{" else 0, None])
        elif token in (b"}", b"]"):
            if frames:
                frames.pop()
        elif not frames:
            continue
        elif token == b":":
            frames[-1][1] = frames[-1][2]
        elif token == b",":
            if not frames[-1][0]:
                frames[-1][1] += 1
        else:
            frames[-1][2] = _decoded(token)
    return [f[1] if f[1] is not None else "" for f in frames]


def _decoded(token: bytes) -> str:
    try:
        return json.loads(token)
    except ValueError:
        return token.decode(errors="replace")[1:-1]


def check_json(body: bytes) -> None:
    """Refuse a JSON body nested too deep or with a NUL character; leave malformed JSON to the
    route (FastAPI's own 422)."""
    if _too_deep(body):
        where = _path_at_depth(body, MAX_JSON_DEPTH)
        raise _invalid(["body", *where], f"JSON nests deeper than {MAX_JSON_DEPTH} levels", "json_too_deep")
    if b"\\u0000" not in body:  # a NUL can only come from its escape (a raw one is refused before)
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return
    if (found := find_nul(parsed)) is not None:
        path, in_key = found
        what = "a key" if in_key else "a string"
        raise _invalid(["body", *path], f"NUL characters (\\u0000) are not allowed in {what}", "nul_character")


def check_target(scope: Scope) -> None:
    if "\x00" in scope.get("path", ""):
        raise _invalid(["path"], "NUL characters are not allowed in the path", "nul_character")
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                raise _invalid(["query", shown(name)], "NUL characters are not allowed in the query", "nul_character")


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


UPLOAD_PATHS = re.compile(r"/t/[A-Za-z0-9_-]{1,64}/(?:photo|signature)")
UPLOAD_OVERHEAD = 64 * 1024  # the multipart framing and the form's small fields


def _is_multipart(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bool(value.split(b";")[0].strip().lower() == b"multipart/form-data")
    return False


class EdgeLimits:
    """Rate limit, then the target, then the body: a refused request never reaches a route."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        # A file upload (a photo, a signature) to a tracking page: its own size limit, and binary
        # content (NUL bytes and all); the route checks the file's type and its text fields.
        self.max_upload = settings.attachment_max_bytes + UPLOAD_OVERHEAD
        self.buckets = (
            TokenBuckets(settings.rate_limit_per_minute, settings.rate_limit_burst)
            if settings.rate_limit_per_minute > 0
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._rate_limit(scope)
            check_target(scope)
            body = await self._read_body(scope, receive)
        except Refused as refused:
            await _answer(send, refused)
            return
        await self.app(scope, _replay(body, receive), send)

    def _rate_limit(self, scope: Scope) -> None:
        if self.buckets is None or scope.get("path") in UNLIMITED_PATHS:
            return
        wait = self.buckets.take(credential_key(scope))
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Refused(
                429,
                {"detail": f"too many requests: retry in {seconds} s", "code": "rate_limited"},
                {"Retry-After": str(seconds)},
            )

    async def _read_body(self, scope: Scope, receive: Receive) -> list[Message]:
        """The request's body messages, at most ``max_body_bytes`` read (a tracking page's file
        upload: at most the attachment limit)."""
        upload = UPLOAD_PATHS.fullmatch(scope.get("path", "")) is not None and _is_multipart(scope)
        limit = self.max_upload if upload else self.max_body
        length = _content_length(scope)
        if length is not None and length > limit:
            raise _too_large(limit)
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client left: the app sees it too
            size += len(message.get("body", b""))
            if size > limit:
                raise _too_large(limit)
            if not message.get("more_body", False):
                break
        if size and not upload:
            body = b"".join(m.get("body", b"") for m in messages)
            if b"\x00" in body:
                raise _invalid(["body"], "NUL bytes are not allowed in a request body", "nul_character")
            if _is_json(scope):
                check_json(body)
        return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


async def _answer(send: Send, refused: Refused) -> None:
    body = json.dumps(refused.body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in refused.headers.items()]
    if refused.status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- metrics ----------------------------------------------------------------------------------

METRICS_PATH = "/metrics"
ACTION_ROUTE = "/tickets/{ticket_id}/actions/"
# Any other method is counted as "other": a label never takes a value a client made up.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OUTCOMES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def route_labels(scope: Scope) -> tuple[str, str]:
    """The route template a request matched and its ticket action ("" for other routes); never the
    raw path (ids would make a series each): "unmatched" when no route took it (a 404, a
    refusal at the edge)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return (METRICS_PATH if scope.get("path") == METRICS_PATH else "unmatched"), ""
    if path.startswith(ACTION_ROUTE):
        return path, path[len(ACTION_ROUTE) :]
    return path, ""


class HttpMetrics:
    """Counts every answer and times it (until the app is done with the request), by method,
    route template, action and status class (``models.metrics.HTTP_*``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception with no answer: the server error middleware answers 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            method = scope.get("method", "")
            method = method if method in METHODS else "other"
            route, action = route_labels(scope)
            outcome = OUTCOMES.get(status // 100, "other")
            metrics.HTTP_REQUESTS.labels(method, route, action, outcome).inc()
            metrics.HTTP_LATENCY.labels(method, route, action).observe(time.perf_counter() - started)


class MetricsEndpoint:
    """``GET /metrics``: the API's Prometheus metrics (counts and latencies by route template,
    no ids, no ticket data). With ``metrics_token`` a scrape must send it as a bearer token."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        token = settings.metrics_token
        self.expected = b"Bearer " + token.get_secret_value().encode() if token is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != METRICS_PATH:
            await self.app(scope, receive, send)
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await _answer(
                send,
                Refused(405, {"detail": "method not allowed", "code": "method_not_allowed"}, {"Allow": "GET, HEAD"}),
            )
            return
        if self.expected is not None and not self._authorized(scope):
            refused = Refused(
                401,
                {
                    "detail": "a metrics scrape needs the metrics token (Authorization: Bearer …)",
                    "code": "unauthorized",
                },
                {"WWW-Authenticate": "Bearer"},
            )
            await _answer(send, refused)
            return
        body = generate_latest(metrics.API)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})

    def _authorized(self, scope: Scope) -> bool:
        assert self.expected is not None
        given = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
        return hmac.compare_digest(given, self.expected)


def install(app: ASGIApp, settings: Settings) -> None:
    # Added last is outermost: the headers go on every answer, the limits' refusals included;
    # every answer is counted; /metrics is served behind the rate limit.
    if settings.api_metrics:
        app.add_middleware(MetricsEndpoint, settings=settings)  # type: ignore[attr-defined]
    app.add_middleware(EdgeLimits, settings=settings)  # type: ignore[attr-defined]
    app.add_middleware(HttpMetrics)  # type: ignore[attr-defined]
    app.add_middleware(SecurityHeaders, hsts=settings.hsts)  # type: ignore[attr-defined]
