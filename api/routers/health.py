"""/health: is the API up, and can it reach its database and Temporal?"""

from datetime import timedelta

from fastapi import APIRouter, Response
from sqlalchemy import text

from api.deps import DbSession, TemporalClient
from models.schemas import HealthOut

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(session: DbSession, client: TemporalClient, response: Response) -> HealthOut:
    checks = {"api": "ok"}
    try:
        await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        ok = await client.service_client.check_health(timeout=timedelta(seconds=3))
        checks["temporal"] = "ok" if ok else "not serving"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["temporal"] = f"error: {exc.__class__.__name__}"
    healthy = all(v == "ok" for v in checks.values())
    if not healthy:
        response.status_code = 503
    return HealthOut(status="ok" if healthy else "degraded", checks=checks)
