"""The customer app: its backend posts each message a signed-in user sends, as JSON.

Body: ``message_id`` (the delivery id), ``user_id`` (the app's id of the user, vouched for by
the app), ``name``, ``text``, ``photo_url``, ``intent`` (``new``, ``answer``, ``confirm``,
``reject``: the app's buttons say it; omitted, the text and the customer's state decide),
``rating`` (1-5, with a confirmation), ``serial`` or ``qr_code`` (the asset a new report is
about) and ``fault``. A ``serial`` names one of the user's own machines only (the dispatcher
turns it into that machine's QR code; anyone else's is a 422 on ``serial``): a serial can be
read off any plate, the QR code proves more.
"""

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from api.channels.base import DELIVERY_ID, MAX_TEXT, MAX_URL, Adapter, InboundMessage, Intent


class AppMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    message_id: str = Field(min_length=1, max_length=128, pattern=DELIVERY_ID)
    user_id: str = Field(min_length=1, max_length=128)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    text: str = Field(default="", max_length=MAX_TEXT)
    photo_url: HttpUrl | None = Field(default=None, max_length=MAX_URL)
    intent: Intent | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    serial: str | None = Field(default=None, min_length=1, max_length=64)
    qr_code: str | None = Field(default=None, min_length=1, max_length=64)
    fault: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _says_something(self) -> "AppMessage":
        if not self.text and self.photo_url is None and self.intent not in (Intent.CONFIRM, Intent.REJECT):
            raise ValueError("a message needs text, a photo_url or a confirm/reject intent")
        if self.serial and self.qr_code:
            raise ValueError("name the asset by serial or by qr_code, not both")
        return self


class AppAdapter(Adapter):
    name = "app"
    kind = "app"

    def parse(self, body: bytes, headers: Mapping[str, str]) -> InboundMessage:
        m = AppMessage.model_validate_json(body)
        photo = str(m.photo_url) if m.photo_url is not None else None
        named_asset = bool(m.serial or m.qr_code)
        return InboundMessage(
            delivery_id=m.message_id,
            sender_kind="app_user",
            sender_value=m.user_id,
            sender_field="user_id",
            sender_verified=True,
            sender_name=m.name,
            text=m.text,
            photo_url=photo,
            intent=Intent.NEW if named_asset and m.intent is None else m.intent,
            rating=m.rating,
            serial=m.serial,
            qr_code=m.qr_code,
            fields={k: v for k, v in {"fault": m.fault, "photo": photo}.items() if v},
        )
