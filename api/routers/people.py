"""/people and /teams: the roster and each person's dispatch profile (skills, home, capacity,
working hours, absences), scoped by the caller's regions, and each person's API keys. Writes
need ``admin`` or ``hr``; people are deactivated, never deleted. ``docs/people.md`` describes
the fields and who may do what."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from api.deps import AppSettings, CurrentActor, CurrentCredential, DbSession, TemporalClient
from api.services import api_keys as key_service
from api.services import people as service
from models.people import (
    Absence,
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyOut,
    PersonCreate,
    PersonFields,
    PersonOut,
    PersonPage,
    PersonPatch,
    Released,
    TeamOut,
)
from models.schemas import Problem

router = APIRouter(tags=["people"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    404: {"model": Problem, "description": "No such person in the caller's regions"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {
        "model": Problem,
        "description": "Not admin or hr, the person works outside the caller's regions, a "
        "role the caller may not give or take, or the caller's own roles, regions or manager",
    },
    409: {"model": Problem, "description": "The caller would deactivate themselves"},
    **ERRORS,
}
MACHINE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "A machine account (channel gateway): it reads no roster"},
}
PersonId = Annotated[str, Path(description="The person's (actor's) id", max_length=64)]


@router.get(
    "/people",
    response_model=PersonPage,
    summary="People of the caller's regions",
    responses={
        403: {
            "model": Problem,
            "description": "A region outside the caller's scope, or a machine account (channel gateway)",
        },
        **ERRORS,
    },
)
async def list_people(
    session: DbSession,
    actor: CurrentActor,
    region: Annotated[str | None, Query(description="Works in this region (people of every region included)")] = None,
    role: str | None = None,
    team: Annotated[str | None, Query(description="Primary team")] = None,
    skill: Annotated[str | None, Query(description="Has this skill (any level)")] = None,
    active: Annotated[bool | None, Query(description="Omitted: active and deactivated people")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> PersonPage:
    f = service.PeopleFilter(region, role, team, skill, active)
    return await service.list_people(session, actor, f, limit, cursor)


@router.post(
    "/people",
    response_model=PersonOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a person",
    responses={**WRITE_ERRORS, 409: {"model": Problem, "description": "The id is taken"}},
)
async def create_person(body: PersonCreate, session: DbSession, actor: CurrentActor) -> PersonOut:
    return await service.create_person(session, actor, body)


@router.get(
    "/people/{person_id}",
    response_model=PersonOut,
    responses={**MACHINE_ERRORS, **ERRORS},
    summary="One person: the whole profile and their open-ticket load",
)
async def get_person(person_id: PersonId, session: DbSession, actor: CurrentActor) -> PersonOut:
    return await service.get_person(session, actor, person_id)


@router.put(
    "/people/{person_id}",
    response_model=PersonOut,
    responses=WRITE_ERRORS,
    summary="Replace a person (fields left out take their defaults)",
)
async def replace_person(person_id: PersonId, body: PersonFields, session: DbSession, actor: CurrentActor) -> PersonOut:
    return await service.replace_person(session, actor, person_id, body)


@router.patch(
    "/people/{person_id}", response_model=PersonOut, responses=WRITE_ERRORS, summary="Change some fields of a person"
)
async def patch_person(person_id: PersonId, body: PersonPatch, session: DbSession, actor: CurrentActor) -> PersonOut:
    return await service.patch_person(session, actor, person_id, body)


@router.delete(
    "/people/{person_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Deactivate a person (never a hard delete); their open work is given again",
    responses={
        202: {"model": Released, "description": "Deactivated; the open tickets they held are taking the work back"},
        503: {"model": Problem, "description": "Deactivated, but releasing their work did not start: repeat"},
        **WRITE_ERRORS,
    },
)
async def deactivate_person(
    person_id: PersonId, session: DbSession, actor: CurrentActor, client: TemporalClient, settings: AppSettings
) -> Response:
    released = await service.deactivate_person(session, actor, person_id, client, settings.task_queue)
    if released is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return JSONResponse(released.model_dump(), status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/people/{person_id}/out-of-office",
    response_model=PersonOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add an absence (the person themselves, admin or hr)",
    responses={
        200: {"model": PersonOut, "description": "The same absence was already there"},
        403: {"model": Problem, "description": "Neither the person nor admin/hr of their regions"},
        409: {"model": Problem, "description": "Overlaps an absence already there"},
        **ERRORS,
    },
)
async def add_absence(
    person_id: PersonId, body: Absence, response: Response, session: DbSession, actor: CurrentActor
) -> PersonOut:
    person, new = await service.add_absence(session, actor, person_id, body)
    if not new:
        response.status_code = status.HTTP_200_OK
    return person


@router.delete(
    "/people/{person_id}/out-of-office",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove the absence starting at ?start=",
    responses={403: {"model": Problem, "description": "Neither the person nor admin/hr of their regions"}, **ERRORS},
)
async def remove_absence(
    person_id: PersonId,
    start: Annotated[AwareDatetime, Query(description="The absence's start, ISO 8601 with a UTC offset")],
    session: DbSession,
    actor: CurrentActor,
) -> Response:
    await service.remove_absence(session, actor, person_id, start)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


KEY_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "Neither the person nor admin/hr of their regions (issuing: nor admin)"},
    **ERRORS,
}
KeyId = Annotated[str, Path(description='The key\'s public id ("key_…")', max_length=40)]


@router.post(
    "/people/{person_id}/api-keys",
    response_model=ApiKeyIssued,
    status_code=status.HTTP_201_CREATED,
    summary="Issue an API key (the person or an admin); the secret is shown this once",
    responses={
        409: {"model": Problem, "description": "The person is deactivated, or holds too many keys"},
        **KEY_ERRORS,
    },
)
async def issue_api_key(
    person_id: PersonId,
    session: DbSession,
    actor: CurrentActor,
    credential: CurrentCredential,
    settings: AppSettings,
    body: ApiKeyCreate | None = None,
) -> ApiKeyIssued:
    """Earlier keys keep working: rotate by issuing the next key, then revoking the old one. A key
    a person issues themselves with a key never outlives the key it was issued with."""
    return await key_service.issue(session, actor, person_id, body or ApiKeyCreate(), settings, credential)


@router.get(
    "/people/{person_id}/api-keys",
    response_model=list[ApiKeyOut],
    responses=KEY_ERRORS,
    summary="The person's API keys, newest first (never the secret)",
)
async def list_api_keys(
    person_id: PersonId, session: DbSession, actor: CurrentActor, credential: CurrentCredential
) -> list[ApiKeyOut]:
    return await key_service.list_keys(session, actor, credential, person_id)


@router.delete(
    "/people/{person_id}/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one API key (the person, admin or hr)",
    responses={409: {"model": Problem, "description": "The request is made with this very key"}, **KEY_ERRORS},
)
async def revoke_api_key(
    person_id: PersonId, key_id: KeyId, session: DbSession, actor: CurrentActor, credential: CurrentCredential
) -> Response:
    await key_service.revoke(session, actor, credential, person_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/teams",
    response_model=list[TeamOut],
    responses={**MACHINE_ERRORS, **ERRORS},
    summary="Teams and groups: active members per region, whom they report to",
)
async def list_teams(session: DbSession, actor: CurrentActor) -> list[TeamOut]:
    return await service.list_teams(session, actor)
