"""/health: is the API up, can its database take a write now, and can it reach Temporal?

Each check is bounded (about a second for the database, three for Temporal): a locked SQLite
file or a PostgreSQL that does not answer makes health 503 at once, not after a request timeout.
"""

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from api.deps import TemporalClient
from models.db import Database
from models.schemas import HealthOut

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(request: Request, client: TemporalClient, response: Response) -> HealthOut:
    checks = {"api": "ok"}
    db: Database = request.app.state.db
    try:
        await db.check_writable()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"error: {exc.__class__.__name__}"  # no driver text: /health is public
    try:
        ok = await client.service_client.check_health(timeout=timedelta(seconds=3))
        checks["temporal"] = "ok" if ok else "not serving"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["temporal"] = f"error: {exc.__class__.__name__}"
    healthy = all(v == "ok" for v in checks.values())
    if not healthy:
        response.status_code = 503
    return HealthOut(status="ok" if healthy else "degraded", checks=checks)
