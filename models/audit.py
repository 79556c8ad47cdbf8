"""The audit log's HTTP shapes (``GET /audit``); the table is ``AuditLog`` in ``models/tables.py``."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor_id: str = Field(description="who made the change")
    credential: str | None = Field(
        description='the API key id it was made with, "oidc" for a bearer token, or what ran it outside the API '
        '(e.g. "demo-loader")'
    )
    action: str = Field(
        examples=["person.update"],
        description="person.create, person.update, person.deactivate, "
        "role.grant, role.revoke, api_key.issue, api_key.revoke, template.publish, price_rules.publish",
    )
    target_type: str = Field(examples=["person"], description="person, template, price_rules")
    target_id: str
    before: dict[str, Any] | None = Field(description="the changed values before (null: created)")
    after: dict[str, Any] | None = Field(description="the changed values after")


class AuditPage(BaseModel):
    items: list[AuditEntry] = Field(description="newest first")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")
