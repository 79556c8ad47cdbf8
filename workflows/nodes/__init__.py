"""Node interpreters: one module per node type, each ``async def run(wf: Run, node, branch) -> next node id``.

They are deterministic workflow code (called from TicketWorkflow), never I/O.
"""

from workflows.nodes import action, approval, gateway, notify, parallel, settle, spawn, stock, task, wait

END = "$end"

HANDLERS = {
    "task": task.run,
    "approval": approval.run,
    "parallel": parallel.run,
    "gateway": gateway.run,
    "wait": wait.run,
    "notify": notify.run,
    "action": action.run,
    "settle": settle.run,
    "reserve_parts": stock.reserve_parts,
    "consume_parts": stock.consume_parts,
    "spawn": spawn.run,
}
