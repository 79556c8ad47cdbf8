"""Child tickets a ``spawn`` node opens (docs/linked-tickets.md): the payloads of the
``children.prepare``, ``children.status`` and ``children.cancel`` activities.

A child's id is ``domain.ids.ticket_id_for_key(child_key(...))``: the same parent, node, child
and visit of the node always name the same child, so a retried activity, a replayed workflow
task or a continue-as-new never opens a second one.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.common import Priority, TicketStatus

MAX_CHILDREN = 20  # a spawn node opens at most this many (models.template.SpawnNode)


def child_key(parent_id: str, node_id: str, index: int, visit: int) -> str:
    """The business key of the ``index``-th child of ``node_id`` on the parent's ``visit``-th
    pass through it (a reopened parent that walks the node again opens new children)."""
    return f"child:{parent_id}:{node_id}:{index}:{visit}"


class PrepareChild(BaseModel):
    """Input of ``children.prepare``: everything intake needs for the child, from the parent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1, max_length=200)  # child_key(...)
    parent_id: str = Field(min_length=1, max_length=32)
    node: str = Field(min_length=1, max_length=64)  # the spawn node
    ticket_type: str = Field(min_length=1, max_length=64)
    region: str = Field(min_length=1, max_length=32)
    priority: Priority
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    fields: dict[str, Any] = Field(default_factory=dict)  # the child's form values, evaluated by the parent
    customer_id: str | None = None  # the parent's customer: the child works for them too
    reporter: str | None = None


class ChildIds(BaseModel):
    """Input of ``children.status``: the children whose status the parent asks for."""

    ids: list[str] = Field(max_length=200)


class ChildStatuses(BaseModel):
    """Output of ``children.status``: each known child's status as the read model has it (a child
    whose workflow ended without closing, e.g. terminated by an operator, reads as cancelled)."""

    statuses: dict[str, TicketStatus] = Field(default_factory=dict)


class CancelChildren(BaseModel):
    """Input of ``children.cancel``: cancel these children of ``parent_id`` (those still open)."""

    parent_id: str
    ids: list[str] = Field(max_length=200)
    reason: str = Field(min_length=1, max_length=2_000)


class CancelledChildren(BaseModel):
    """Output of ``children.cancel``: the children it cancelled, and those it found ended already
    (with their status) — a child may have closed since the parent last heard of it."""

    cancelled: list[str] = Field(default_factory=list)
    ended: dict[str, TicketStatus] = Field(default_factory=dict)
