"""The adapter protocol: what every inbound channel module provides.

An adapter turns the raw request a channel posts (already signature-checked by the router)
into one normalised ``InboundMessage``, and may answer a handshake the channel's platform
makes before it sends anything (WeChat's echo). It does no I/O and decides nothing about
tickets: ``api/services/channels.py`` does that from the message and the customer's state.
docs/channels.md shows how to add one.
"""

import re
import unicodedata
from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT = 5_000  # characters of one message's text
MAX_URL = 2_000
DELIVERY_ID = r"^[\x21-\x7e]+$"  # printable ASCII, no spaces: 1-128 of them


class Intent(StrEnum):
    """What the customer means, when the channel (a button, the app) or the text says so."""

    NEW = "new"  # report something new: always a new ticket
    ANSWER = "answer"  # answer the question put to them
    CONFIRM = "confirm"  # the work is done to their satisfaction
    REJECT = "reject"  # it is not


class InboundMessage(BaseModel):
    """One customer message, whatever channel it came through."""

    model_config = ConfigDict(frozen=True)

    delivery_id: str = Field(min_length=1, max_length=128, pattern=DELIVERY_ID)
    sender_kind: str  # an identity kind of domain/identities.py (normalised by the service)
    sender_value: str = Field(min_length=1, max_length=200)
    sender_field: str = "sender"  # where the identity was in the request (a 422 names it)
    sender_verified: bool = False  # the platform vouches for the identity (an openid), not typed in
    sender_name: str | None = Field(default=None, max_length=200)
    text: str = Field(default="", max_length=MAX_TEXT)
    photo_url: str | None = Field(default=None, max_length=MAX_URL)
    intent: Intent | None = None
    rating: int | None = Field(default=None, ge=1, le=5)  # with a confirmation
    qr_code: str | None = Field(default=None, max_length=64)  # the asset it is about
    serial: str | None = Field(default=None, max_length=64)
    # Form values the message offers a new ticket (fault, contact_phone…): the service keeps
    # those the ticket's template has.
    fields: dict[str, str] = Field(default_factory=dict)


class Adapter:
    """Subclass it, set ``name`` and ``kind``, implement ``parse`` (and ``handshake`` if the
    platform makes one), and register an instance in ``api/channels/__init__.py``."""

    name: ClassVar[str]
    kind: ClassVar[str]  # the channel kind it serves by default (models/channel_tables.py)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> InboundMessage:
        """The message, or ``pydantic.ValidationError`` (a 422 naming the field)."""
        raise NotImplementedError

    def handshake(self, params: Mapping[str, str], secrets: list[str], now: float) -> str | None:
        """The body to answer the platform's verification ``GET``, or None: refused (401).
        Adapters of platforms without one keep this default."""
        return None


_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
# Whole replies that confirm or reject (after case folding and without punctuation or spaces).
CONFIRM_WORDS = frozenset(
    {"confirm", "confirmed", "yes", "y", "ok", "okay", "fixed", "确认", "是的", "好的", "满意", "已修好"}
)
REJECT_WORDS = frozenset(
    {"reject", "no", "n", "notfixed", "notok", "不满意", "否", "不是", "没修好", "未修好", "拒绝", "不确认"}
)
# Leading words that are enough when more follows ("no, it still rattles", "不满意，还在响").
REJECT_LEADS = ("no", "not", "不满意", "不确认", "没修好", "未修好", "拒绝", "还是坏", "还没好")
CONFIRM_LEADS = ("yes", "confirm", "确认", "满意", "已修好")


def intent_of(text: str) -> Intent | None:
    """Confirm or reject, when a short reply plainly says so; None otherwise (an answer)."""
    folded = unicodedata.normalize("NFKC", text).casefold().strip()
    if not folded or len(folded) > 200:
        return None
    bare = _PUNCT.sub("", folded)
    if bare in CONFIRM_WORDS:
        return Intent.CONFIRM
    if bare in REJECT_WORDS:
        return Intent.REJECT
    first = re.split(r"[\s,.!?;:，。！？；：、]+", folded, maxsplit=1)[0]
    if first in REJECT_LEADS or folded.startswith(tuple(w for w in REJECT_LEADS if not w.isascii())):
        return Intent.REJECT
    if first in CONFIRM_LEADS or folded.startswith(tuple(w for w in CONFIRM_LEADS if not w.isascii())):
        return Intent.CONFIRM
    return None
