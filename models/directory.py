"""Payloads of the directory activities (who has a role, who manages whom)."""

from pydantic import BaseModel, Field


class PeopleQuery(BaseModel):
    role: str | None = None
    group: str | None = None
    manager_of: str | None = None  # an actor id: answer that actor's manager
    region: str | None = None  # only people working in this region


class PeopleResult(BaseModel):
    ids: list[str] = Field(default_factory=list)
