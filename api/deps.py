"""Request dependencies as ``Annotated`` aliases: ``DbSession``, ``CurrentActor``, ``TemporalClient``."""

import hashlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.errors import Unauthenticated
from models.db import Database
from models.settings import Settings
from models.tables import Actor
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


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def _current_actor(
    session: DbSession,
    settings: AppSettings,
    x_api_key: Annotated[str | None, Header(description="API key of the calling actor.")] = None,
    x_actor: Annotated[
        str | None, Header(description="Actor id; accepted when TICKETFLOW_ALLOW_ACTOR_HEADER is true.")
    ] = None,
) -> ActorRef:
    actor: Actor | None = None
    if x_api_key:
        actor = (await session.exec(select(Actor).where(Actor.api_key_hash == hash_api_key(x_api_key)))).first()
        if actor is None:
            raise Unauthenticated("unknown API key")
    elif x_actor and settings.allow_actor_header:
        actor = await session.get(Actor, x_actor)
        if actor is None:
            raise Unauthenticated(f"unknown actor {x_actor!r}")
    else:
        raise Unauthenticated("send X-API-Key (or X-Actor where allowed) to say who is acting")
    if not actor.active:
        raise Unauthenticated(f"actor {actor.id!r} is deactivated")
    return ActorRef(id=actor.id, name=actor.name, roles=list(actor.roles), regions=list(actor.regions))


CurrentActor = Annotated[ActorRef, Depends(_current_actor)]
