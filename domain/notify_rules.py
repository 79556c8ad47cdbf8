"""Notification routing: event × urgency × amount → channels and recipients. Pure, no I/O.

The rules are three tables, read top to bottom:

``URGENCY_CHANNELS`` — what every actor recipient gets at an urgency:

| urgency  | channels               |
|----------|------------------------|
| low      | inbox                  |
| normal   | inbox                  |
| high     | inbox, email, im       |
| critical | inbox, email, sms      |

``EVENT_CHANNELS`` — added on top for some events, whatever the urgency:

| event            | adds         |
|------------------|--------------|
| assigned         | email        |
| approval_needed  | email        |
| breach           | email, sms   |
| escalation       | email, sms   |
| low_stock        | email        |
| reminder, resolved, any other event | nothing |

``AMOUNT_RULES`` — when ``amount > threshold`` (strictly above), copy by email:

| copy     | events           |
|----------|------------------|
| finance  | every event      |
| legal    | approval_needed, contract (approvals and contracts) |

Explicit addresses among the recipients (an email address, a phone number) always get
their own channel: the caller asked for them by name. An actor without an email address
or phone skips that channel (reported, not an error); IM goes to the actor's IM user or,
without one, to the actor id (the provider maps it). SMS and IM are skipped when no
webhook is configured.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from models.notifications import Channel, NotifyEvent, Urgency

URGENCY_CHANNELS: Mapping[Urgency, frozenset[Channel]] = {
    Urgency.LOW: frozenset({Channel.INBOX}),
    Urgency.NORMAL: frozenset({Channel.INBOX}),
    Urgency.HIGH: frozenset({Channel.INBOX, Channel.EMAIL, Channel.IM}),
    Urgency.CRITICAL: frozenset({Channel.INBOX, Channel.EMAIL, Channel.SMS}),
}

EVENT_CHANNELS: Mapping[str, frozenset[Channel]] = {
    NotifyEvent.ASSIGNED: frozenset({Channel.EMAIL}),
    NotifyEvent.APPROVAL_NEEDED: frozenset({Channel.EMAIL}),
    NotifyEvent.BREACH: frozenset({Channel.EMAIL, Channel.SMS}),
    NotifyEvent.ESCALATION: frozenset({Channel.EMAIL, Channel.SMS}),
    NotifyEvent.LOW_STOCK: frozenset({Channel.EMAIL}),
}


@dataclass(frozen=True)
class AmountRule:
    """Copy ``group`` (a settings list of addresses) by email when the amount is above the threshold."""

    group: str  # "finance" → settings.finance_cc, "legal" → settings.legal_cc
    events: frozenset[str] | None = None  # None: every event


AMOUNT_RULES: Sequence[AmountRule] = (
    AmountRule("finance"),
    AmountRule("legal", frozenset({NotifyEvent.APPROVAL_NEEDED.value, "contract"})),
)

# Channel order in every answer (stable outbox order, stable test output).
CHANNEL_ORDER = (Channel.INBOX, Channel.EMAIL, Channel.IM, Channel.SMS)


@dataclass(frozen=True)
class Route:
    channels: tuple[Channel, ...]  # for actor recipients, in CHANNEL_ORDER
    cc_groups: tuple[str, ...]  # amount rules that apply, e.g. ("finance", "legal")


def route(event: str, urgency: Urgency, amount: Decimal | None, threshold: Decimal) -> Route:
    chosen = URGENCY_CHANNELS[urgency] | EVENT_CHANNELS.get(event, frozenset())
    over = amount is not None and amount > threshold
    groups = tuple(r.group for r in AMOUNT_RULES if over and (r.events is None or event in r.events))
    return Route(tuple(c for c in CHANNEL_ORDER if c in chosen), groups)


# --- recipients ---


@dataclass(frozen=True)
class Recipients:
    """The caller's recipient strings, sorted by kind (see ``parse_recipients``)."""

    actor_ids: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()


def _is_phone(s: str) -> bool:
    digits = s.replace(" ", "").replace("-", "")
    return digits.startswith("+") and digits[1:].isdigit() and len(digits) >= 7


def parse_recipients(raw: Iterable[str]) -> Recipients:
    """``eng-li`` / ``actor:eng-li``, ``role:x``, ``group:x``, ``a@b`` / ``mailto:a@b``,
    ``+86…`` / ``tel:…``. Duplicates collapse, first occurrence order is kept."""
    kinds: dict[str, dict[str, None]] = {k: {} for k in ("actor", "role", "group", "email", "phone")}
    for item in raw:
        s = item.strip()
        if not s:
            continue
        prefix, sep, rest = s.partition(":")
        if sep and prefix in ("actor", "role", "group"):
            kinds[prefix][rest.strip()] = None
        elif sep and prefix == "mailto":
            kinds["email"][rest.strip()] = None
        elif sep and prefix == "tel":
            kinds["phone"][rest.replace(" ", "").replace("-", "")] = None
        elif "@" in s:
            kinds["email"][s] = None
        elif _is_phone(s):
            kinds["phone"][s.replace(" ", "").replace("-", "")] = None
        else:
            kinds["actor"][s] = None
    return Recipients(
        actor_ids=tuple(kinds["actor"]),
        roles=tuple(kinds["role"]),
        groups=tuple(kinds["group"]),
        emails=tuple(kinds["email"]),
        phones=tuple(kinds["phone"]),
    )


@dataclass(frozen=True)
class Contact:
    """An actor and where it is reached (email / phone / IM user may be missing)."""

    actor_id: str
    email: str | None = None
    phone: str | None = None
    im_user: str | None = None


@dataclass(frozen=True)
class Delivery:
    channel: Channel
    recipient: str  # the address on that channel (actor id for the inbox)
    actor_id: str | None = None
    reason: str = ""  # "to", "cc finance", …


@dataclass(frozen=True)
class Skipped:
    channel: Channel
    recipient: str
    actor_id: str | None
    why: str


@dataclass(frozen=True)
class Plan:
    deliveries: tuple[Delivery, ...]
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)


def _address(channel: Channel, c: Contact) -> str | None:
    if channel is Channel.INBOX:
        return c.actor_id
    if channel is Channel.EMAIL:
        return c.email
    if channel is Channel.SMS:
        return c.phone
    return c.im_user or c.actor_id  # IM


def plan(
    r: Route,
    actors: Sequence[Contact],
    recipients: Recipients,
    cc: Mapping[str, Sequence[str]],
    webhook_enabled: bool,
) -> Plan:
    """Every (channel, recipient) to deliver, each once, in a stable order."""
    out: dict[tuple[Channel, str], Delivery] = {}
    skipped: list[Skipped] = []

    def add(d: Delivery) -> None:
        if d.channel in (Channel.SMS, Channel.IM) and not webhook_enabled:
            skipped.append(Skipped(d.channel, d.recipient, d.actor_id, "no webhook configured"))
            return
        key = (d.channel, d.recipient.lower() if d.channel is Channel.EMAIL else d.recipient)
        out.setdefault(key, d)

    for c in actors:
        for ch in r.channels:
            address = _address(ch, c)
            if address:
                add(Delivery(ch, address, c.actor_id, "to"))
            else:
                skipped.append(Skipped(ch, c.actor_id, c.actor_id, f"actor has no {ch.value} address"))
    for e in recipients.emails:
        add(Delivery(Channel.EMAIL, e, None, "to"))
    for p in recipients.phones:
        add(Delivery(Channel.SMS, p, None, "to"))
    for group in r.cc_groups:
        for e in cc.get(group, ()):
            add(Delivery(Channel.EMAIL, e, None, f"cc {group}"))
    return Plan(tuple(out.values()), tuple(skipped))
