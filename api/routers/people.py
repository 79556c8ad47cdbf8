"""/people and /teams: the roster and each person's dispatch profile (skills, home, capacity,
working hours, absences), scoped by the caller's regions. Writes need ``admin`` or ``hr``;
people are deactivated, never deleted. ``docs/people.md`` describes the fields."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from api.deps import AppSettings, CurrentActor, DbSession, TemporalClient
from api.services import people as service
from models.people import (
    Absence,
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
    403: {"model": Problem, "description": "Not admin or hr, or the person works outside the caller's regions"},
    409: {"model": Problem, "description": "The caller would deactivate themselves"},
    **ERRORS,
}
PersonId = Annotated[str, Path(description="The person's (actor's) id", max_length=64)]


@router.get("/people", response_model=PersonPage, summary="People of the caller's regions",
            responses={403: {"model": Problem, "description": "region outside the caller's scope"}, **ERRORS})
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


@router.post("/people", response_model=PersonOut, status_code=status.HTTP_201_CREATED, summary="Add a person",
             responses={**WRITE_ERRORS, 409: {"model": Problem, "description": "The id is taken"}})
async def create_person(body: PersonCreate, session: DbSession, actor: CurrentActor) -> PersonOut:
    return await service.create_person(session, actor, body)


@router.get("/people/{person_id}", response_model=PersonOut, responses=ERRORS,
            summary="One person: the whole profile and their open-ticket load")
async def get_person(person_id: PersonId, session: DbSession, actor: CurrentActor) -> PersonOut:
    return await service.get_person(session, actor, person_id)


@router.put("/people/{person_id}", response_model=PersonOut, responses=WRITE_ERRORS,
            summary="Replace a person (fields left out take their defaults)")
async def replace_person(person_id: PersonId, body: PersonFields, session: DbSession, actor: CurrentActor) -> PersonOut:
    return await service.replace_person(session, actor, person_id, body)


@router.patch("/people/{person_id}", response_model=PersonOut, responses=WRITE_ERRORS,
              summary="Change some fields of a person")
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


@router.post(
    "/people/{person_id}/api-key",
    response_model=ApiKeyOut,
    status_code=status.HTTP_201_CREATED,
    summary="Issue (or rotate) the person's API key; shown once",
    responses={
        403: {"model": Problem, "description": "Neither the person nor admin/hr of their regions"},
        409: {"model": Problem, "description": "The person is deactivated"},
        **ERRORS,
    },
)
async def issue_api_key(person_id: PersonId, session: DbSession, actor: CurrentActor) -> ApiKeyOut:
    return await service.issue_api_key(session, actor, person_id)


@router.delete(
    "/people/{person_id}/api-key",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the person's API key",
    responses={403: {"model": Problem, "description": "Neither the person nor admin/hr of their regions"}, **ERRORS},
)
async def revoke_api_key(person_id: PersonId, session: DbSession, actor: CurrentActor) -> Response:
    await service.revoke_api_key(session, actor, person_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/teams", response_model=list[TeamOut], responses=ERRORS,
            summary="Teams and groups: active members per region, whom they report to")
async def list_teams(session: DbSession, actor: CurrentActor) -> list[TeamOut]:
    return await service.list_teams(session, actor)
