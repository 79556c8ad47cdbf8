"""Who may grant which role: the one table (``docs/people.md``), and which accounts are machines.

A role is granted or taken away by changing a person's ``roles``; the same table applies both
ways. ``admin`` may grant every role but the reserved ones; ``hr`` only the ordinary roles of
the front line. Every other role — the privileged ones below and any role not listed at all
(a custom approver role of a template, say) — is an admin's to give. Nobody changes their own
roles or regions (``api/services/people.py``).
"""

from collections.abc import Iterable

ADMIN = "admin"
HR = "hr"
# Roles that decide, approve, see money or people, or speak for customers: admin only.
PRIVILEGED = frozenset(
    {
        "admin",
        "hr",
        "finance",
        "general_manager",
        "director",
        "manager",
        "supervisor",
        "process_admin",
        "legal",
        "channel",  # a machine account that speaks for customers (the customer_confirmed of a ticket)
    }
)
# The front line: hr hires and moves people between these.
ORDINARY = frozenset({"agent", "engineer", "warehouse", "logistics", "sales", "qc"})
# Never held by a person (the workflow's own actor).
RESERVED = frozenset({"system"})
# Roles whose people take no tickets: they direct, approve, pay, advise, hire, design templates or
# speak for customers. Every other role takes tickets: the front line above, supervisors (tasks,
# backups, approvals) and any custom role a template gives tasks to. The workload report lists
# someone whose every role is one of these only while they hold open work (docs/reports.md).
DESK = frozenset(
    {"admin", "process_admin", "hr", "legal", "finance", "general_manager", "manager", "director", "channel"}
)
# Roles of machine accounts (channel gateways): they act on tickets, never read the roster.
MACHINE = frozenset({"channel"})

# granter role → the roles it may give or take (None: every role but the reserved ones)
GRANTS: dict[str, frozenset[str] | None] = {ADMIN: None, HR: ORDINARY}


def may_grant(granter_roles: Iterable[str], role: str) -> bool:
    if role in RESERVED:
        return False
    for granter in granter_roles:
        allowed = GRANTS.get(granter, frozenset())
        if allowed is None or role in allowed:
            return True
    return False


def refused_grants(granter_roles: Iterable[str], before: Iterable[str], after: Iterable[str]) -> list[str]:
    """The roles added or removed between ``before`` and ``after`` that the granter may not change."""
    granter, old, new = list(granter_roles), set(before), set(after)
    return sorted(r for r in old ^ new if not may_grant(granter, r))


# Roles that lead people: a manager link (which routes "manager of" approvals) may point only at
# someone holding one, unless an admin sets it.
MANAGING = frozenset({"supervisor", "manager", "director", "general_manager"})


def may_set_manager(granter_roles: Iterable[str], manager_roles: Iterable[str]) -> bool:
    """Whether a caller with ``granter_roles`` may make someone with ``manager_roles`` a manager."""
    return ADMIN in set(granter_roles) or bool(MANAGING & set(manager_roles))


def takes_tickets(roles: Iterable[str]) -> bool:
    """Whether someone with ``roles`` is one of the people tickets go to (a role outside ``DESK``)."""
    return bool(set(roles) - DESK - RESERVED)


def is_machine(roles: Iterable[str]) -> bool:
    """An account whose every role is a machine role."""
    held = set(roles)
    return bool(held) and held <= MACHINE
