"""The QR web form: a customer scans the sticker on a machine, the page it opens posts what they
typed. Every submission reports something new (a new ticket about that asset).

Body (JSON): ``submission_id`` (the form's own id for this submission, unique: the delivery
id), ``qr_code`` (from the sticker), ``phone`` (typed in, so not verified), ``fault``, ``text``,
``photo_url``, ``name``. The ticket's form gets ``fault``, ``contact_phone`` and ``photo``
where its template has those fields.
"""

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from api.channels.base import DELIVERY_ID, MAX_TEXT, MAX_URL, Adapter, InboundMessage, Intent


class QrSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    submission_id: str = Field(min_length=1, max_length=128, pattern=DELIVERY_ID)
    qr_code: str = Field(min_length=1, max_length=64)
    phone: str = Field(min_length=1, max_length=40)
    fault: str | None = Field(default=None, min_length=1, max_length=64)
    text: str = Field(default="", max_length=MAX_TEXT)
    photo_url: HttpUrl | None = Field(default=None, max_length=MAX_URL)
    name: str | None = Field(default=None, min_length=1, max_length=200)


class QrFormAdapter(Adapter):
    name = "qr_form"
    kind = "qr_form"

    def parse(self, body: bytes, headers: Mapping[str, str]) -> InboundMessage:
        s = QrSubmission.model_validate_json(body)
        photo = str(s.photo_url) if s.photo_url is not None else None
        fields = {"fault": s.fault, "contact_phone": s.phone, "photo": photo}
        return InboundMessage(
            delivery_id=s.submission_id,
            sender_kind="phone",
            sender_value=s.phone,
            sender_field="phone",
            sender_name=s.name,
            text=s.text,
            photo_url=photo,
            intent=Intent.NEW,
            qr_code=s.qr_code,
            fields={k: v for k, v in fields.items() if v},
        )
