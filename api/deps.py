"""Request dependencies as ``Annotated`` aliases: ``DbSession``, ``CurrentActor``,
``CurrentCredential``, ``TemporalClient``.

Identity comes only from a secret (``api/services/identity.py``): ``X-API-Key: <key>`` or
``Authorization: Bearer <OIDC token>``, exactly one of them. A header that is present but
empty is refused, never skipped.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.errors import Forbidden, Unauthenticated
from api.services import audit, identity
from domain.roles import is_machine
from models.db import Database
from models.settings import Settings
from models.ticket import ActorRef


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _database(request: Request) -> Database:
    return request.app.state.db


def _temporal(request: Request) -> Client:
    return request.app.state.temporal


async def _session(db: Annotated[Database, Depends(_database)]) -> AsyncIterator[AsyncSession]:
    async with db.session() as session:
        yield session


AppSettings = Annotated[Settings, Depends(_settings)]
DbSession = Annotated[AsyncSession, Depends(_session)]
TemporalClient = Annotated[Client, Depends(_temporal)]

# Declared for OpenAPI (security schemes); the headers themselves are read below, so that a
# header sent empty is told apart from one not sent.
_api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key of the calling person.")
_bearer_scheme = HTTPBearer(auto_error=False, description="An OpenID Connect access token (JWT), where configured.")


@dataclass(frozen=True)
class Authenticated:
    actor: ActorRef
    credential: identity.Credential


async def _authenticate(
    request: Request,
    session: DbSession,
    _key: Annotated[str | None, Depends(_api_key_scheme)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Authenticated:
    key, authorization = request.headers.get("x-api-key"), request.headers.get("authorization")
    if key is not None and authorization is not None:
        raise Unauthenticated("send one credential: X-API-Key or Authorization, not both")
    if key is not None:
        row, credential = await identity.by_api_key(session, key)
    elif authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated(identity.REFUSED)
        row, credential = await identity.by_token(session, getattr(request.app.state, "oidc", None), token.strip())
    else:
        raise Unauthenticated(identity.MISSING)
    request.state.credential = credential
    audit.use_credential(row.id, credential.id)
    actor = identity.actor_ref(row)
    return Authenticated(actor=actor, credential=credential)


async def _current_actor(auth: Annotated[Authenticated, Depends(_authenticate)]) -> ActorRef:
    return auth.actor


async def _current_credential(auth: Annotated[Authenticated, Depends(_authenticate)]) -> identity.Credential:
    return auth.credential


CurrentActor = Annotated[ActorRef, Depends(_current_actor)]


async def _staff_actor(actor: CurrentActor) -> ActorRef:
    if is_machine(actor.roles):
        raise Forbidden(f"{actor.id!r} is a channel account: it creates tickets and sends events only")
    return actor


# A person, not a channel gateway's account: stock, prices, statements and reports are staff's.
StaffActor = Annotated[ActorRef, Depends(_staff_actor)]
CurrentCredential = Annotated[identity.Credential, Depends(_current_credential)]
