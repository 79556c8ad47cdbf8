"""The in-app inbox: one ``notification_inbox`` row per actor and notification.

The row carries the outbox row's ``dedup_key`` (unique) and is inserted
``ON CONFLICT DO NOTHING``, so this channel is exactly-once even if the process dies
between writing the row and marking the outbox row sent.
"""

from datetime import UTC, datetime

from activities.channels import DeliveryError, OutboundMessage
from models.db import Database
from store import notifications


class InboxChannel:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def send(self, m: OutboundMessage) -> None:
        if not m.actor_id:
            raise DeliveryError("the inbox needs an actor id", permanent=True)
        ticket = m.data.get("ticket") or {}
        await notifications.deliver_to_inbox(
            self.db,
            {
                "dedup_key": m.dedup_key,
                "actor_id": m.actor_id,
                "ticket_id": m.ticket_id,
                "region": ticket.get("region", ""),
                "event": m.event,
                "title": m.subject,
                "body": m.body,
                "link": ticket.get("link"),
                "created_at": datetime.now(UTC),
            },
        )
