"""What node interpreters, SLA clocks and assignment may call on a ticket's run (``TicketRun``).

They receive the run typed as ``Run``: its state and template, the change log, notifications,
the walk and its strands — nothing else, and nothing private.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.calendar import BusinessCalendar
    from models.template import TemplateSpec
    from models.ticket import ActorRef, NodeState, NodeStatus, TicketSignal, TicketState


class Run(Protocol):
    state: TicketState
    spec: TemplateSpec
    signals: list[TicketSignal]  # events taken by this run, in order (waits look for theirs)
    firing: int  # SLA milestones or departures being handled: no continue-as-new meanwhile
    sla_from_intake: bool  # patch release-2026-12-05 (workflows/run.py)
    stale_reminders_skipped: bool  # the same patch

    @property
    def calendar(self) -> BusinessCalendar: ...

    async def record(self, action: str, actor: ActorRef, data: dict[str, Any], **fields: Any) -> TicketState:
        """Apply a change and return once the read model has it."""
        ...

    def tell(self, event: str, urgency: str, to: list[str], text: str | None = None) -> None:
        """Queue a notification (sent in the background)."""
        ...

    def open_node(self, node: Any, branch: str | None, status: NodeStatus, **fields: Any) -> tuple[NodeState, bool]: ...

    def close_node(self, node: NodeState, outcome: str | None) -> None: ...

    async def wait(
        self, predicate: Callable[[], bool], timeout: timedelta | None = None, summary: str | None = None
    ) -> None:
        """Wait for people, timers or events, as a settled walk."""
        ...

    async def idle(self, awaitable: Awaitable[Any]) -> Any:
        """Await sub-walks (parallel branches) without counting as a running step."""
        ...

    def add_strands(self, n: int) -> None:
        """Parallel branches start (n > 0) or end (n < 0) running."""
        ...

    async def walk(
        self, node_id: str, stop_at: str | None = None, frame: str | None = None, branch: str | None = None
    ) -> str: ...

    def values(self) -> dict[str, Any]: ...

    def holds(self, expression: str) -> bool: ...

    def evaluate(self, expression: str) -> Any: ...

    def start_clocks(self, keys: list[str]) -> None: ...
