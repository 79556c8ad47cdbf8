"""What a template declares about its satisfaction survey: the ``survey:`` block (``SurveySpec``)
and its questions (docs/surveys.md).

Apart from ``models/surveys.py`` (the workflow's shapes) because ``models/template.py`` imports
it: this module imports nothing of the ticket's, so the template can hold ``survey: SurveySpec``
without an import cycle (``models/ticket.py`` imports ``models/template.py``).
"""

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

IDENT = r"^[a-z][a-z0-9_]{0,63}$"
MAX_COMMENT = 2_000
MAX_QUESTIONS = 10


class QuestionKind(StrEnum):
    RATING = "rating"  # a whole number 1..5
    CHOICE = "choice"  # one of ``options``
    YES_NO = "yes_no"  # true / false
    TEXT = "text"  # free text, at most 2,000 characters


class SurveyQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=IDENT)
    text: str = Field(min_length=1, max_length=300)
    kind: QuestionKind = QuestionKind.RATING
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, min_length=2, max_length=10
    )

    @model_validator(mode="after")
    def _options_for_choices(self) -> "SurveyQuestion":
        if (self.kind == QuestionKind.CHOICE) != (self.options is not None):
            raise ValueError("a choice question has options; no other kind has")
        return self


class FollowUpSla(BaseModel):
    """Targets of the supervisor's call-back after a low rating."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    response: timedelta = timedelta(hours=1)
    resolution: timedelta = timedelta(hours=4)


class SurveyTiming(BaseModel):
    """When to remind and expire, what to ask, what counts as low: a template's ``survey:`` block and
    the workflow's input share it."""

    model_config = ConfigDict(extra="forbid")

    questions: list[SurveyQuestion] = Field(default_factory=list, max_length=MAX_QUESTIONS)
    reminder_after: timedelta = timedelta(days=1)
    expires_after: timedelta = timedelta(days=3)
    low_rating: int = Field(default=2, ge=1, le=4)  # a rating at or below it opens the follow-up
    follow_up_sla: FollowUpSla = Field(default_factory=FollowUpSla)

    @model_validator(mode="after")
    def _sound(self) -> "SurveyTiming":
        if not timedelta(0) < self.reminder_after < self.expires_after <= timedelta(days=90):
            raise ValueError("0 < reminder_after < expires_after <= 90 days")
        ids = [q.id for q in self.questions]
        if len(ids) != len(set(ids)):
            raise ValueError("question ids must be unique")
        return self


class SurveySpec(SurveyTiming):
    """A template's ``survey:`` block: sent when the ticket is resolved (or closed)."""

    after: Literal["resolved", "closed"] = "resolved"
