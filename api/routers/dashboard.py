"""/dashboard: the managers' page over ``/reports`` (plain HTML, CSS and JS, no build step).

The page and its two assets are public: they hold no data. The page asks for an API key and
calls ``/reports/overview`` and ``/reports/workload`` with it, so who sees which figures stays
with the reports' own rules (``docs/reports.md``).
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from api.errors import NotFound

STATIC = Path(__file__).resolve().parent.parent / "static" / "dashboard"
# The only files served besides index.html: a fixed list, so no path ever reaches the disk.
ASSETS = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
HEADERS = {
    # Scripts, styles and requests from this origin only: nothing inline, nothing third-party.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", response_class=HTMLResponse, summary="The managers' dashboard (HTML page over /reports)")
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/dashboard/{asset}", include_in_schema=False)
async def dashboard_asset(asset: str) -> FileResponse:
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise NotFound(f"no dashboard file {asset!r}")
    return FileResponse(STATIC / asset, media_type=media_type, headers=HEADERS)


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The browser's tab icon (an SVG, which browsers take at this address too)."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml", headers=HEADERS)
