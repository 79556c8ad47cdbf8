"""``notify``: tell people something happened (through the notify.send activity and its outbox)."""

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.template import NotifyNode
    from models.ticket import SYSTEM, NodeStatus
    from workflows.protocol import Run


def recipients(wf: Run, wanted: list[str]) -> list[str]:
    out: list[str] = []
    for r in wanted:
        if r == "requester":
            out.append(wf.state.created_by)
        elif r == "assignee":
            out += [a for n in wf.state.active if (a := wf.state.nodes[n].assignee)]
            if wf.state.assignee:
                out.append(wf.state.assignee)
        else:
            out.append(r)
    return list(dict.fromkeys(o for o in out if o))


async def run(wf: Run, node: NotifyNode, branch: str | None) -> str:
    state, _ = wf.open_node(node, branch, NodeStatus.WAITING)
    to = recipients(wf, node.recipients)
    await send(wf, node.id, node.event, node.urgency, to)
    wf.close_node(state, "sent")
    await wf.record("notified", SYSTEM, {"node": node.id, "event": node.event, "to": to})
    return node.next


def message(wf: Run, key: str, event: str, urgency: str, to: list[str], text: str | None = None) -> dict[str, Any]:
    """A ``notify.send`` input, as of now (the ticket's status and amount at this moment)."""
    s = wf.state
    amount = s.fields.get("amount")
    return {
        "dedup_key": f"{s.ticket_id}:{key}:{event}",
        "event": event,
        "urgency": urgency,
        "ticket": {
            "id": s.ticket_id,
            "title": s.title,
            "region": s.region,
            "priority": s.priority.value,
            "status": s.status.value,
        },
        "recipients": to,
        "text": text,
        **({"amount": str(amount["amount"]), "currency": amount.get("currency")} if isinstance(amount, dict) else {}),
    }


async def deliver(payload: dict[str, Any]) -> None:
    await workflow.execute_activity(
        "notify.send",
        payload,
        start_to_close_timeout=timedelta(minutes=2),
        summary=f"notify {payload['event']} → {', '.join(payload['recipients'])}",
    )


async def send(wf: Run, node_id: str, event: str, urgency: str, to: list[str], text: str | None = None) -> None:
    """Send now and wait for it (the notify node, SLA milestones)."""
    await deliver(message(wf, f"{node_id}:{len(wf.state.path)}", event, urgency, to, text))
