"""SQLModel table of satisfaction surveys (queried by ``store/surveys.py``). Never sent in a
Temporal payload (the payloads are in ``models/surveys.py``)."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.tables import UTC_DATETIME

SURVEY_STATUSES = ("sent", "answered", "expired")


class Survey(SQLModel, table=True):
    """One survey per ticket (``ticket_id`` unique), written by its ``SurveyWorkflow``'s activities.
    Where, what and who it is about (region, ticket type, engineer, team) are copied in when it is
    sent, so the CSAT report groups answers without looking anywhere else."""

    __tablename__ = "survey"
    __table_args__ = (
        sa.CheckConstraint("status IN ('sent', 'answered', 'expired')", name="ck_survey_status"),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="ck_survey_rating"),
        sa.Index("ix_survey_region_answered", "region", "answered_at"),  # the CSAT report's period
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=32, foreign_key="ticket.id", unique=True)
    region: str = Field(max_length=32)
    ticket_type: str = Field(max_length=64)
    customer_id: str | None = Field(default=None, max_length=32)
    engineer: str | None = Field(default=None, max_length=64)
    team: str | None = Field(default=None, max_length=64)
    channel: str = Field(max_length=32)
    language: str = Field(max_length=8)
    questions: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    # How the customer was asked: "notified: sms, email", or "not_sent: no consented channel".
    delivery: str = Field(default="", max_length=200)
    sent_at: datetime = Field(sa_type=UTC_DATETIME)
    reminded_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    expires_at: datetime = Field(sa_type=UTC_DATETIME)
    status: str = Field(default="sent", max_length=16)
    rating: int | None = None
    answers: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    comment: str | None = Field(default=None, sa_type=sa.Text)
    answered_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    answered_via: str | None = Field(default=None, max_length=64)  # tracking, channel:<id>, agent:<id>
    answered_by: str | None = Field(default=None, max_length=64)
    # The answer's Temporal update id: the same request again (after the workflow ended) is told
    # apart from a second answer.
    answer_update_id: str | None = Field(default=None, max_length=200)
    follow_up_ticket: str | None = Field(default=None, max_length=32)
