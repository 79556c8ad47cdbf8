"""/console: the agents', engineers', approvers' and finance's pages (plain HTML, CSS and JS
over the JSON API, no build step; signed in with an API key like /dashboard).

The page and its assets are public: they hold no data. Everything the page shows or does goes
through the JSON API with the key the user typed, so who may see or do what stays with the API
(docs/console.md). Staff photos and signatures go up through ``POST /tickets/{id}/attachments``
(api/routers/tracking.py, beside the staff download).
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from api.errors import NotFound

STATIC = Path(__file__).resolve().parent.parent / "static" / "console"
# The only files served besides index.html: a fixed list, so no path ever reaches the disk.
ASSETS = {
    "console.css": "text/css; charset=utf-8",
    # in the order the page loads them: texts, shared pieces, a ticket's page, its actions, the rest
    "console-texts.js": "text/javascript; charset=utf-8",
    "console-core.js": "text/javascript; charset=utf-8",
    "console-ticket.js": "text/javascript; charset=utf-8",
    "console-actions.js": "text/javascript; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
HEADERS = {
    # Scripts, styles and requests from this origin only: nothing inline, nothing third-party. Photos
    # are fetched with the key and shown from blob: URLs (an <img> cannot send the key itself).
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
    # The field page asks for the device's position (check-in); nothing else.
    "Permissions-Policy": "geolocation=(self), camera=(self), microphone=()",
}

router = APIRouter(tags=["console"])


@router.get("/console", response_class=HTMLResponse, summary="The console (HTML page over the JSON API)")
async def console() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/console/{asset}", include_in_schema=False)
async def console_asset(asset: str) -> FileResponse:
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise NotFound(f"no console file {asset!r}")
    return FileResponse(STATIC / asset, media_type=media_type, headers=HEADERS)
