"""/templates: publish immutable versions, read any version, import/export YAML, dry-run validation."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from fastapi.responses import PlainTextResponse

from api.bounds import VersionPath, VersionQuery
from api.deps import CurrentActor, DbSession
from api.services import templates as service
from models.schemas import Problem
from models.template import TemplateSpec, TemplateVersion

router = APIRouter(prefix="/templates", tags=["templates"])

ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}}
YAML_BODY = Body(media_type="application/yaml", description="A template in YAML (see templates/*.yaml)")


@router.post("", response_model=TemplateVersion, status_code=201, responses={200: {"model": TemplateVersion}, **ERRORS})
async def publish(spec: TemplateSpec, response: Response, session: DbSession, actor: CurrentActor) -> TemplateVersion:
    """Validate and publish as the next version (200 with the latest when nothing changed)."""
    version, new = await service.publish(session, actor, spec)
    if not new:
        response.status_code = status.HTTP_200_OK
    return version


@router.post("/import", response_model=TemplateVersion, status_code=201, responses=ERRORS)
async def import_yaml(
    response: Response, session: DbSession, actor: CurrentActor, text: Annotated[str, YAML_BODY]
) -> TemplateVersion:
    version, new = await service.publish(session, actor, service.parse_yaml(text))
    if not new:
        response.status_code = status.HTTP_200_OK
    return version


@router.post("/validate", responses=ERRORS)
async def validate(spec: TemplateSpec, actor: CurrentActor) -> dict[str, list]:
    """Check a template without publishing it: 200 when sound, else 422 listing every problem."""
    service._raise_problems(service.check(spec))
    return {"problems": []}


@router.get("")
async def list_templates(session: DbSession, actor: CurrentActor) -> list[dict[str, Any]]:
    return await service.list_latest(session)


@router.get("/{key}", response_model=TemplateVersion, responses=ERRORS)
async def get_latest(key: str, session: DbSession, actor: CurrentActor) -> TemplateVersion:
    return await service.get_version(session, key)


@router.get("/{key}/versions", responses=ERRORS)
async def list_versions(key: str, session: DbSession, actor: CurrentActor) -> list[dict[str, Any]]:
    return await service.list_versions(session, key)


@router.get("/{key}/versions/{version}", response_model=TemplateVersion, responses=ERRORS)
async def get_version(key: str, version: VersionPath, session: DbSession, actor: CurrentActor) -> TemplateVersion:
    return await service.get_version(session, key, version)


@router.get("/{key}/export", response_class=PlainTextResponse, responses=ERRORS)
async def export_yaml(
    key: str, session: DbSession, actor: CurrentActor, version: VersionQuery = None
) -> PlainTextResponse:
    text = service.export_yaml(await service.get_version(session, key, version))
    return PlainTextResponse(text, media_type="application/yaml")
