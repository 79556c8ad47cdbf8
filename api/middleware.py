"""What every request passes through before a route: security headers on every response.

Installed by ``api/app.py`` (``install``). Pure ASGI middleware, so streamed responses pass
unchanged."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def install(app: ASGIApp, settings: Settings) -> None:
    app.add_middleware(SecurityHeaders, hsts=settings.hsts)  # type: ignore[attr-defined]
