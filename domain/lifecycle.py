"""The ticket lifecycle as a transition table: which action is allowed in which status.

    new ──claim/assign──▶ assigned ──start──▶ in_progress ──resolve──▶ resolved ──close──▶ closed
     │                      │  ▲ assign          │  ▲ assign            │
     └──────cancel──────────┴──┴─────────────────┘  └──────reopen───────┘
                         ▼
                     cancelled

``comment`` is allowed in every open status and changes nothing but the count.
"""

from models.ticket import Action, TicketStatus

S, A = TicketStatus, Action

TRANSITIONS: dict[TicketStatus, dict[Action, TicketStatus]] = {
    S.NEW: {A.CLAIM: S.ASSIGNED, A.ASSIGN: S.ASSIGNED, A.CANCEL: S.CANCELLED, A.COMMENT: S.NEW},
    S.ASSIGNED: {
        A.ASSIGN: S.ASSIGNED,
        A.START: S.IN_PROGRESS,
        A.CANCEL: S.CANCELLED,
        A.COMMENT: S.ASSIGNED,
    },
    S.IN_PROGRESS: {
        A.ASSIGN: S.IN_PROGRESS,
        A.RESOLVE: S.RESOLVED,
        A.CANCEL: S.CANCELLED,
        A.COMMENT: S.IN_PROGRESS,
    },
    S.RESOLVED: {A.CLOSE: S.CLOSED, A.REOPEN: S.IN_PROGRESS, A.COMMENT: S.RESOLVED},
    S.CLOSED: {},
    S.CANCELLED: {},
}

TERMINAL = frozenset({S.CLOSED, S.CANCELLED})


def allowed_actions(status: TicketStatus) -> list[Action]:
    """Actions allowed in ``status``, in a stable order (the enum's)."""
    allowed = TRANSITIONS[status]
    return [a for a in Action if a in allowed]


def next_status(status: TicketStatus, action: Action) -> TicketStatus | None:
    """The status after ``action``, or None when the action is not allowed in ``status``."""
    return TRANSITIONS[status].get(action)
