"""Satisfaction survey shapes: the ``SurveyWorkflow``'s input, state and Update input, its
activities' payloads, and the HTTP views (docs/surveys.md). What a template declares
(``SurveySpec``, its questions) is ``models/survey_spec.py``.

Plain Pydantic v2 models — the only survey shapes that travel through Temporal. The table is
``models/survey_tables.py``. ``answer_problems`` is the one check of answers against the declared
questions: the API runs it for a prompt 422, the workflow's validator runs it again for itself.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from models.survey_spec import IDENT, MAX_COMMENT, MAX_QUESTIONS, QuestionKind, SurveyQuestion, SurveySpec, SurveyTiming
from models.ticket import ActorInput

# The Update's name, and the name the API signs an answer under (``domain/signing.py``): not a
# ticket action's, so a signature for one can never pass as the other.
ANSWER_UPDATE = "answer"
SIGNED_AS = "survey.answer"
# Who answers: a channel gateway or an agent speaking for the customer (the HTTP endpoint), or
# the customer on the tracking page (the actor the API builds for them: ``customer_actor_id``).
ANSWERING_ROLES = frozenset({"channel", "agent"})
CUSTOMER_ROLE = "customer"
VIA = r"^[a-z][a-z0-9_.:-]{0,63}$"


def workflow_id(ticket_id: str) -> str:
    """One survey per ticket: starting it again joins (or is refused by) the first."""
    return f"survey-{ticket_id}"


def customer_actor_id(ticket_id: str, customer_id: str | None) -> str:
    """The id the API gives the customer answering on the tracking page (role ``customer``)."""
    return f"customer:{customer_id}" if customer_id else f"customer:ticket:{ticket_id}"


def follow_up_key(ticket_id: str) -> str:
    """The business key of the supervisor's follow-up ticket (``intake.open_ticket``)."""
    return f"survey-follow-up:{ticket_id}"


# --- the workflow ---


class SurveyInput(SurveyTiming):
    """Input of ``SurveyWorkflow`` (id ``survey-<ticket_id>``): the ticket it asks about and when."""

    ticket_id: str = Field(min_length=1, max_length=32)
    region: str = Field(min_length=1, max_length=32)
    ticket_type: str = Field(min_length=1, max_length=64)
    title: str = Field(default="", max_length=200)  # the ticket's title, for the message
    customer_id: str | None = Field(default=None, max_length=32)
    assignee: str | None = Field(default=None, max_length=64)  # the engineer who did the work
    team: str | None = Field(default=None, max_length=64)  # None: the engineer's team, looked up
    channel: str = Field(default="agent", max_length=32)  # where the ticket came from
    language: str | None = Field(default=None, max_length=8)  # None: the customer's, else zh
    link: str | None = Field(default=None, max_length=500)  # the tracking page, when there is one

    @classmethod
    def of(cls, spec: SurveySpec, **ticket: Any) -> "SurveyInput":
        """The input for a ticket whose template declares ``spec``."""
        return cls(**spec.model_dump(exclude={"after"}), **ticket)


class SurveyStatus(StrEnum):
    SENT = "sent"  # waiting for the answer
    ANSWERED = "answered"
    EXPIRED = "expired"  # no answer in time; later ones are refused


Rating = Annotated[StrictInt, Field(ge=1, le=5)]
AnswerValue = StrictInt | StrictBool | Annotated[StrictStr, Field(max_length=MAX_COMMENT)]
Answers = Annotated[dict[Annotated[str, Field(pattern=IDENT)], AnswerValue], Field(max_length=MAX_QUESTIONS)]


class SurveyAnswerInput(ActorInput):
    """The ``answer`` Update: signed by the API (``SIGNED_AS``) like a ticket action."""

    rating: Rating
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)
    answers: Answers = Field(default_factory=dict)
    via: str = Field(pattern=VIA)  # tracking, channel:<account>, agent:<person>


class SurveyState(BaseModel):
    """The survey as its workflow holds it (also the workflow's result and the Update's reply)."""

    ticket_id: str
    status: SurveyStatus = SurveyStatus.SENT
    sent_at: datetime | None = None
    reminded_at: datetime | None = None
    expires_at: datetime | None = None
    delivery: str = ""  # "notified: sms, email" or "not_sent: <why>"
    rating: int | None = None
    comment: str | None = None
    answers: dict[str, Any] = Field(default_factory=dict)
    answered_at: datetime | None = None
    answered_via: str | None = None
    answered_by: str | None = None
    follow_up_ticket: str | None = None


# --- activity payloads ---


class SendSurvey(BaseModel):
    input: SurveyInput
    sent_at: datetime
    expires_at: datetime


class SurveySent(BaseModel):
    recipients: list[str]  # the customer's addresses on consented channels the outbox reaches
    delivery: str
    language: str
    team: str | None
    invite: str  # the invitation's text, in the customer's language
    reminder: str  # the reminder's


class SurveyDelivery(BaseModel):
    ticket_id: str
    delivery: str


class SurveyMark(BaseModel):
    """Reminded, or expired, at ``at`` (each written once)."""

    ticket_id: str
    at: datetime


class RecordAnswer(BaseModel):
    ticket_id: str
    rating: int
    comment: str | None
    answers: dict[str, Any]
    at: datetime
    via: str
    by: str
    update_id: str  # the Temporal update id (the request's id and body): a repeat is recognised by it


class LinkFollowUp(BaseModel):
    ticket_id: str
    follow_up_ticket: str


# --- answers against the questions ---


def answer_problems(questions: list[SurveyQuestion], answers: dict[str, Any]) -> list[tuple[str, str]]:
    """(question id, why) for each answer to an undeclared question or of the wrong kind."""
    declared = {q.id: q for q in questions}
    out = []
    for key, value in answers.items():
        q = declared.get(key)
        if q is None:
            out.append((key, f"no question {key!r} in this survey ({', '.join(declared) or 'none declared'})"))
        elif q.kind == QuestionKind.RATING and not (type(value) is int and 1 <= value <= 5):
            out.append((key, "answer with a whole number from 1 to 5"))
        elif q.kind == QuestionKind.YES_NO and type(value) is not bool:
            out.append((key, "answer with true or false"))
        elif q.kind == QuestionKind.CHOICE and value not in (q.options or []):
            out.append((key, f"answer with one of {', '.join(q.options or [])}"))
        elif q.kind == QuestionKind.TEXT and not (type(value) is str and len(value) <= MAX_COMMENT):
            out.append((key, f"answer with text of at most {MAX_COMMENT} characters"))
    return out


# --- HTTP ---


class SurveyAnswerBody(BaseModel):
    """``POST /tickets/{id}/survey/answer``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    rating: Rating = Field(description="1 (very unhappy) to 5 (very happy); a whole number")
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)
    answers: Answers = Field(default_factory=dict, description="Question id → answer, for the survey's questions")


class SurveyView(BaseModel):
    """What the customer may see of their survey (the tracking page): no staff data."""

    ticket_id: str
    status: SurveyStatus
    questions: list[SurveyQuestion]
    expires_at: datetime
    rating: int | None
    comment: str | None
    answers: dict[str, Any]
    answered_at: datetime | None


class SurveyOut(SurveyView):
    """``GET /tickets/{id}/survey``: the survey as staff of the ticket's region see it."""

    sent_at: datetime
    reminded_at: datetime | None
    delivery: str = Field(description='How the customer was asked: "notified: sms, email" or "not_sent: <why>"')
    answered_via: str | None
    engineer: str | None
    team: str | None
    follow_up_ticket: str | None = Field(description="The supervisor's call-back ticket a low rating opened")
