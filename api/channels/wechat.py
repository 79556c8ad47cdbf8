"""WeChat official account (公众号) style: the platform verifies the endpoint with a signed echo
``GET``, then posts each message a follower sends as JSON (WeChat's own field names).

- Handshake: ``GET ?signature=&timestamp=&nonce=&echostr=`` — ``signature`` is
  ``sha1(''.join(sorted([token, timestamp, nonce])))`` in hex, the token being the channel's
  secret (the previous one too during a rotation); the answer is ``echostr`` as plain text.
- Messages: ``MsgType`` ``text`` (``Content``), ``image`` (``PicUrl``) or ``event`` (a menu
  button, ``Event: CLICK`` with ``EventKey`` ``confirm``, ``reject`` or ``new``). The sender is
  the follower's openid (``FromUserName``), vouched for by the platform. The delivery id is
  ``MsgId``; an event has none, so ``FromUserName:CreateTime`` (WeChat's advice for events).
"""

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from api.channels.base import MAX_TEXT, MAX_URL, Adapter, InboundMessage, Intent
from domain.inbound_auth import DEFAULT_WINDOW_S, parse_timestamp

BUTTONS = {"confirm": Intent.CONFIRM, "reject": Intent.REJECT, "new": Intent.NEW}
MAX_ECHO = 128


class WeChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)  # the platform sends more than we read

    to_user: str = Field(alias="ToUserName", min_length=1, max_length=64)
    from_user: str = Field(alias="FromUserName", min_length=1, max_length=128)
    create_time: int = Field(alias="CreateTime", ge=0, le=2**40)
    msg_type: Literal["text", "image", "event"] = Field(alias="MsgType")
    msg_id: int | str | None = Field(default=None, alias="MsgId")
    content: str | None = Field(default=None, alias="Content", max_length=MAX_TEXT)
    pic_url: HttpUrl | None = Field(default=None, alias="PicUrl", max_length=MAX_URL)
    event: str | None = Field(default=None, alias="Event", max_length=32)
    event_key: str | None = Field(default=None, alias="EventKey", max_length=64)

    @model_validator(mode="after")
    def _complete(self) -> "WeChatMessage":
        if self.msg_type == "text" and not (self.content or "").strip():
            raise ValueError("a text message needs Content")
        if self.msg_type == "image" and self.pic_url is None:
            raise ValueError("an image message needs PicUrl")
        if self.msg_type == "event" and (self.event != "CLICK" or (self.event_key or "").lower() not in BUTTONS):
            raise ValueError(f"only CLICK events with EventKey {', '.join(BUTTONS)} are taken")
        if self.msg_type != "event" and self.msg_id in (None, ""):
            raise ValueError("a message needs MsgId")
        return self


class WeChatAdapter(Adapter):
    name = "wechat"
    kind = "wechat"

    def parse(self, body: bytes, headers: Mapping[str, str]) -> InboundMessage:
        m = WeChatMessage.model_validate_json(body)
        delivery = str(m.msg_id) if m.msg_type != "event" else f"{m.from_user}:{m.create_time}"
        return InboundMessage(
            delivery_id=delivery,
            sender_kind="wechat_openid",
            sender_value=m.from_user,
            sender_field="FromUserName",
            sender_verified=True,
            text=(m.content or "").strip(),
            photo_url=str(m.pic_url) if m.pic_url is not None else None,
            intent=BUTTONS[(m.event_key or "").lower()] if m.msg_type == "event" else None,
        )

    def handshake(self, params: Mapping[str, str], secrets: list[str], now: float) -> str | None:
        signature, timestamp = params.get("signature", ""), params.get("timestamp", "")
        nonce, echo = params.get("nonce", ""), params.get("echostr", "")
        sent = parse_timestamp(timestamp)  # ASCII digits only: "²" passes isdigit, not int
        if not (signature and sent is not None and nonce and len(nonce) <= 64):
            return None
        if (
            not echo
            or len(echo) > MAX_ECHO
            or not echo.isascii()
            or not echo.replace("-", "").replace("_", "").isalnum()
        ):
            return None
        if abs(now - sent) > DEFAULT_WINDOW_S:
            return None
        matched = False
        for token in secrets:
            expected = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
            matched |= hmac.compare_digest(expected.encode(), signature.lower().encode())
        return echo if matched else None
