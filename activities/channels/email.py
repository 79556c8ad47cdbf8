"""Email over SMTP (aiosmtplib): plain text, UTF-8, one recipient per message.

The Message-ID is derived from the outbox row (``<delivery_id@domain>``), so a message
re-sent after a crash carries the same id and mail systems / readers can drop the copy.
"""

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from activities.channels import DeliveryError, OutboundMessage
from models.settings import Settings

SMTP_TIMEOUT_S = 30.0


def message_id(delivery_id: str, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "ticketflow"
    return f"<{delivery_id}@{domain}>"


class EmailChannel:
    def __init__(self, settings: Settings, timeout_s: float = SMTP_TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    def build(self, m: OutboundMessage) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.smtp_from
        msg["To"] = m.recipient
        msg["Subject"] = m.subject
        msg["Message-ID"] = message_id(m.delivery_id, self.settings.smtp_from)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Ticketflow-Delivery"] = m.delivery_id
        msg["X-Ticketflow-Ticket"] = m.ticket_id
        msg["X-Ticketflow-Event"] = m.event
        msg.set_content(m.body, charset="utf-8")
        return msg

    async def send(self, m: OutboundMessage) -> None:
        s = self.settings
        implicit_tls = s.smtp_port == 465 and not s.smtp_starttls
        try:
            refused, _ = await aiosmtplib.send(
                self.build(m),
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password or None,
                use_tls=implicit_tls,
                start_tls=s.smtp_starttls,  # False: never upgrade (aiosmtplib would otherwise auto-upgrade)
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            final = all(500 <= r.code < 600 for r in exc.recipients)
            raise DeliveryError(f"SMTP refused {m.recipient}: {exc}", permanent=final) from exc
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            # 5xx about this recipient or this content is final; 4xx means "try again later".
            raise DeliveryError(f"SMTP {exc.code}: {exc.message}", permanent=500 <= exc.code < 600) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connection, authentication, sender refused, timeouts: server or configuration
            # trouble that an operator can fix, so retried (bounded by the outbox's max attempts).
            raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}") from exc
        if refused:
            raise DeliveryError(f"SMTP refused {m.recipient}: {refused}", permanent=True)
