"""Shapes of customer messages (docs/customer-messages.md): the kinds and channels, the render
context a template sees, the settings of the channels and the delivery loop, and the HTTP
bodies of ``/message-templates``.

The settings are read from ``TICKETFLOW_CUSTOMER_*`` environment variables by their own
pydantic-settings class until they join ``models.settings.Settings``.
"""

import re
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.settings import MIN_SECRET_LENGTH


class MessageKind(StrEnum):
    ACCEPTED = "accepted"  # someone holds the ticket now
    ON_THE_WAY = "on_the_way"  # the engineer set out (name, expected arrival)
    INFO_NEEDED = "info_needed"  # a question for the customer
    RESOLVED = "resolved"
    CLOSED = "closed"


class CustomerChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    WECHAT = "wechat"  # a WeChat-style template message
    WEBHOOK = "webhook"  # the customer app's (or business system's) endpoint


class MessageStatus(StrEnum):
    PENDING = "pending"  # to send (maybe held for quiet hours, maybe backing off)
    SENT = "sent"
    FAILED = "failed"  # given up: a permanent refusal, too many attempts, or a text that did not render
    SKIPPED = "skipped"  # never to be sent: no consent, no address, no template, an old event


NO_CHANNEL = "none"  # the channel of a row skipped because the customer can be reached nowhere

# The consent flag (models.customer_tables.Customer.consent) and the identity kind each channel needs.
CONSENT_KEY = {
    CustomerChannel.SMS: "sms",
    CustomerChannel.EMAIL: "email",
    CustomerChannel.WECHAT: "wechat",
    CustomerChannel.WEBHOOK: "app",
}
IDENTITY_KIND = {
    CustomerChannel.SMS: "phone",
    CustomerChannel.EMAIL: "email",
    CustomerChannel.WECHAT: "wechat_openid",
    CustomerChannel.WEBHOOK: "app_user",
}
# The ticket's channel (models.schemas.Channel) → the customer channel answering it goes back on.
ORIGIN = {"bot": CustomerChannel.WECHAT, "app": CustomerChannel.WEBHOOK, "qr": CustomerChannel.SMS}
# After the ticket's own channel, the order channels are tried in.
PREFERENCE = (CustomerChannel.WECHAT, CustomerChannel.SMS, CustomerChannel.EMAIL, CustomerChannel.WEBHOOK)
# Quiet hours hold these (they ring a phone); email waits in the mailbox and goes at once.
QUIET_CHANNELS = frozenset({CustomerChannel.SMS, CustomerChannel.WECHAT, CustomerChannel.WEBHOOK})
# Time-critical: sent during quiet hours too (the engineer is about to ring the bell); earlier
# held messages of the same ticket go out just before it, so the customer reads them in order.
QUIET_EXEMPT = frozenset({MessageKind.ON_THE_WAY})

DEFAULT_LANGUAGE = "zh"
ANY = "*"  # a template for any ticket type / any channel

# --- what a template sees ---


class TicketView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    status: str
    type: str


class PersonView(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = ""


class RenderContext(BaseModel):
    """Everything a message template may name. Nothing else is in reach: no staff phone
    numbers, no internal notes, no description. Absent values are empty strings, so
    ``{% if eta %}`` reads naturally and an unguarded one prints nothing."""

    model_config = ConfigDict(frozen=True)

    kind: str
    ticket: TicketView
    customer: PersonView
    engineer: PersonView = PersonView()
    eta: str = ""  # expected arrival, in the ticket region's local time ("2026-12-11 15:30")
    question: str = ""
    tracking_url: str = ""


# --- settings ---


class QuietHours(BaseModel):
    """Local ``start``–``end``; crossing midnight when ``end`` <= ``start`` (21:00–08:00)."""

    model_config = ConfigDict(frozen=True)

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> "QuietHours | None":
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
        if m is None:
            raise ValueError(f"quiet hours {text!r}: expected HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
            raise ValueError(f"quiet hours {text!r}: not a time of day")
        start, end = time(h1 % 24, m1), time(h2 % 24, m2)  # 24:00 is midnight
        return None if start == end else cls(start=start, end=end)


class CustomerMessageSettings(BaseSettings):
    """``TICKETFLOW_CUSTOMER_*``: the customer channels and the delivery loop. A channel without
    its URL is off (email: ``customer_email``, through the SMTP settings of notifications)."""

    model_config = SettingsConfigDict(env_prefix="TICKETFLOW_", env_file=".env", extra="ignore")

    customer_sms_url: str | None = None  # the HTTP SMS gateway
    customer_sms_secret: SecretStr | None = None
    customer_wechat_url: str | None = None  # the WeChat-style template message endpoint
    customer_wechat_secret: SecretStr | None = None
    # kind → the platform's template id; a kind without one uses "default", else the kind itself
    customer_wechat_template_ids: dict[str, str] = {}
    customer_webhook_url: str | None = None  # the customer app's / business system's endpoint
    customer_webhook_secret: SecretStr | None = None
    customer_email: bool = True
    customer_http_timeout_s: float = 10.0
    # region → "HH:MM-HH:MM" local quiet hours ("*": every other region; "" : none)
    customer_quiet_hours: dict[str, str] = {"*": "21:00-08:00"}
    # "preferred": one channel per message (the ticket's own, else the first in PREFERENCE);
    # "all": every channel the customer consented to and can be reached on.
    customer_message_fanout: Literal["preferred", "all"] = "preferred"
    # Events older than this are not told (a read-model rebuild replays old events): skipped.
    customer_message_max_age_s: int = 86_400
    customer_message_poll_s: float = 2.0
    customer_message_concurrency: int = Field(default=4, ge=1, le=64)  # sends at once, per channel
    customer_message_max_attempts: int = Field(default=10, ge=1)
    customer_message_backoff_s: float = 10.0  # first retry; doubles up to the cap
    customer_message_backoff_max_s: float = 1_800.0
    customer_message_lease_s: float = 120.0  # longer than any single send

    @field_validator("customer_quiet_hours")
    @classmethod
    def _quiet(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            if text:
                QuietHours.parse(text)
        return value

    @model_validator(mode="after")
    def _secrets(self) -> "CustomerMessageSettings":
        for name in ("sms", "wechat", "webhook"):
            url, secret = getattr(self, f"customer_{name}_url"), getattr(self, f"customer_{name}_secret")
            if url and (secret is None or len(secret.get_secret_value()) < MIN_SECRET_LENGTH):
                raise ValueError(
                    f"TICKETFLOW_CUSTOMER_{name.upper()}_SECRET of at least {MIN_SECRET_LENGTH} characters "
                    f"is required with TICKETFLOW_CUSTOMER_{name.upper()}_URL"
                )
        return self

    def enabled(self) -> frozenset[CustomerChannel]:
        on = {CustomerChannel.EMAIL} if self.customer_email else set()
        urls = {
            CustomerChannel.SMS: self.customer_sms_url,
            CustomerChannel.WECHAT: self.customer_wechat_url,
            CustomerChannel.WEBHOOK: self.customer_webhook_url,
        }
        return frozenset(on | {c for c, url in urls.items() if url})

    def quiet_hours(self, region: str) -> QuietHours | None:
        text = self.customer_quiet_hours.get(region, self.customer_quiet_hours.get(ANY, ""))
        return QuietHours.parse(text) if text else None


# --- HTTP: /message-templates ---

TemplateChannel = Literal["*", "sms", "email", "wechat", "webhook"]
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,4})?$"
TICKET_TYPE_PATTERN = r"^(\*|[a-z][a-z0-9_]{0,63})$"
MAX_SUBJECT = 500
MAX_BODY = 5_000

TicketTypePath = Annotated[str, StringConstraints(pattern=TICKET_TYPE_PATTERN)]
LanguagePath = Annotated[str, StringConstraints(pattern=LANGUAGE_PATTERN, max_length=8)]


class MessageTemplatePut(BaseModel):
    """The words of one message: Jinja2 (sandboxed) over ``RenderContext``'s names."""

    model_config = ConfigDict(extra="forbid")

    channel: TemplateChannel = Field(default="*", description='A channel of its own, or "*" for any')
    subject: str = Field(default="", max_length=MAX_SUBJECT, description="One line (email subject, WeChat title)")
    body: str = Field(min_length=1, max_length=MAX_BODY)


class MessageTemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ticket_type: str
    kind: MessageKind
    language: str
    channel: str
    subject: str
    body: str
    version: int
    updated_by: str
    updated_at: datetime
