"""Typed search attributes: the one place they are declared.

``make run`` registers them on the dev server (see ``workers/devserver.py``);
docker-compose registers them on a real cluster.
"""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

TICKET_STATUS = SearchAttributeKey.for_keyword("TicketStatus")
TICKET_REGION = SearchAttributeKey.for_keyword("TicketRegion")
TICKET_PRIORITY = SearchAttributeKey.for_keyword("TicketPriority")
TICKET_TYPE = SearchAttributeKey.for_keyword("TicketType")
TICKET_ASSIGNEE = SearchAttributeKey.for_keyword("TicketAssignee")
# SLA: "true" once a target is missed; the escalation level reached ("supervisor", "manager", "director").
TICKET_SLA_BREACHED = SearchAttributeKey.for_keyword("TicketSlaBreached")
TICKET_ESCALATION = SearchAttributeKey.for_keyword("TicketEscalation")

ALL = [
    TICKET_STATUS,
    TICKET_REGION,
    TICKET_PRIORITY,
    TICKET_TYPE,
    TICKET_ASSIGNEE,
    TICKET_SLA_BREACHED,
    TICKET_ESCALATION,
]


def at_start(status: str, region: str, priority: str, ticket_type: str) -> TypedSearchAttributes:
    """What a ticket's workflow starts with (the API, an intake activity, a parent ticket); the
    workflow upserts the rest as it goes."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(TICKET_STATUS, status),
            SearchAttributePair(TICKET_REGION, region),
            SearchAttributePair(TICKET_PRIORITY, priority),
            SearchAttributePair(TICKET_TYPE, ticket_type),
        ]
    )


def cli_flags() -> list[str]:
    """``--search-attribute Name=Keyword`` flags for ``temporal server start-dev``."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
