"""WeChat-style template messages: a signed JSON POST of ``{touser, template_id, url, data}``
to a configurable endpoint (the official account's relay).

The body follows the platform's template message shape: ``data`` maps the template's keys to
``{"value": …}`` — ``first`` (the subject), ``keyword1`` the ticket, ``keyword2`` its status,
``keyword3`` the engineer, ``keyword4`` the expected arrival, ``remark`` the body — and
``client_msg_id`` is the delivery id, which the platform uses to drop a repeat. An answer with
a JSON ``errcode`` other than 0 is a failure: the follower unsubscribed, a wrong openid or
template id are permanent; a busy platform, a quota or an expired access token are retried.
"""

from typing import Any

import httpx

from activities.channels import DeliveryError, OutboundMessage
from activities.channels.sms import post_signed

# errcode → permanent? (anything not listed is retried)
PERMANENT_ERRCODES = frozenset({40003, 40036, 40037, 43004, 43101, 47003})


class WechatTemplateChannel:
    def __init__(
        self, url: str, secret: str, timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url, self.secret, self.timeout_s, self.transport = url, secret, timeout_s, transport

    @staticmethod
    def payload(m: OutboundMessage) -> dict[str, Any]:
        ticket = m.data.get("ticket") or {}
        values = {
            "first": m.subject,
            "keyword1": f"{ticket.get('id', m.ticket_id)} {ticket.get('title', '')}".strip(),
            "keyword2": ticket.get("status", ""),
            "keyword3": m.data.get("engineer") or "",
            "keyword4": m.data.get("eta") or "",
            "remark": m.body,
        }
        payload: dict[str, Any] = {
            "touser": m.recipient,
            "template_id": m.data.get("template_id") or m.event,
            "client_msg_id": m.delivery_id,
            "data": {k: {"value": v} for k, v in values.items()},
        }
        if m.data.get("tracking_url"):
            payload["url"] = m.data["tracking_url"]
        return payload

    async def send(self, m: OutboundMessage) -> None:
        resp = await post_signed(
            self.url,
            self.secret,
            self.payload(m),
            m.delivery_id,
            timeout_s=self.timeout_s,
            transport=self.transport,
            what="WeChat endpoint",
        )
        try:
            answer = resp.json()
        except ValueError:
            return  # a 2xx without JSON: the relay took it
        code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
        if code not in (0, None):
            raise DeliveryError(
                f"WeChat errcode {code}: {str(answer.get('errmsg', ''))[:200]}", permanent=code in PERMANENT_ERRCODES
            )
