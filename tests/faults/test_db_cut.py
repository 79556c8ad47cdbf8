"""The database connection cut mid-transaction: retries, no partial write, the read model catches up.

A worker (``python -m workers``) reaches PostgreSQL only through ``PgProxy``
(tests/faults/proxy.py), which drops every open connection at once and refuses new ones for a
second. Each cut is armed on a statement and happens when a connection inside a transaction
has just run it — its writes made, the commit not sent — so it lands in the middle of the
transaction named below. The statement armed is the transaction's *last* write: whatever the
transaction wrote before it (the ticket row, the stock level) would be left behind, alone, if
the writes were not one transaction. While new connections are refused, the test reads what is
committed (directly, not through the proxy): nothing of the cut transaction may be there.

- ``test_cuts_mid_transaction_leave_nothing_half_written``: one ``FLOW`` ticket, three cuts.
  (1) The projection of a ``claim``, cut after its events' insert (the ticket row was upserted
  first): as of the cut, the ticket row is at the seq of the last committed event, not ahead of
  it; the update still answers (the projection, a local activity, is retried after the
  refusal). (2) The consumption, cut after its ledger rows' insert (``stock_level`` was updated
  first), and (3) the settlement, cut after the statement's INSERT — both inside the task's
  ``complete``: as of each cut the stock level is still the reservation's and the ledger has no
  consumption, and there is no statement; the activities fail, Temporal retries them, the
  ticket resolves. In the end: the read model holds exactly the workflow's events (seq 1..n,
  no gap, no duplicate; the ticket row at the workflow's seq and status); the ledger holds one
  reservation, one consumption and one release and the level agrees with it; one statement with
  its lines and totals; one purchase request; each cut dropped a connection inside a
  transaction; the worker lived through all of it and stops cleanly.
"""

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import col, select

from models.db import Database
from models.inventory_tables import StockMovement
from models.settlement_tables import StatementRow
from models.tables import PurchaseRequest, Ticket, TicketEventRow
from models.ticket import ClaimInput, CompleteInput, StartInput, TicketStatus
from tests.faults.conftest import (
    ENG,
    FLOW_EVENTS,
    PART,
    POSTGRES_ONLY,
    FaultRig,
    Stock,
    read_model_caught_up,
    with_host,
    within,
)
from tests.faults.proxy import PgProxy
from workflows.ticket import TicketWorkflow

pytestmark = POSTGRES_ONLY
REFUSE_S = 1.0  # after each cut, new connections are refused this long


@dataclass
class Committed:
    """What the database holds for a ticket, read on a connection of its own."""

    row_seq: int
    event_seqs: list[int]
    level: tuple[int, int]
    moves: list[tuple[str, int]]
    statements: int


async def committed(db: Database, ticket_id: str, stock: Stock) -> Committed:
    async with db.session() as s:
        row = await s.get(Ticket, ticket_id, populate_existing=True)
        seqs = await s.exec(select(TicketEventRow.seq).where(TicketEventRow.ticket_id == ticket_id))
        moves = await s.exec(
            select(StockMovement.kind, StockMovement.quantity)
            .where(StockMovement.ticket_id == ticket_id)
            .order_by(col(StockMovement.id))
        )
        statements = await s.exec(
            select(func.count()).select_from(StatementRow).where(StatementRow.ticket_id == ticket_id)
        )
        found = Committed(row.seq if row else 0, sorted(seqs), (0, 0), [(k, q) for k, q in moves], statements.one())
    found.level = await stock.level()
    return found


async def test_cuts_mid_transaction_leave_nothing_half_written(rig: FaultRig, stock: Stock) -> None:
    async with PgProxy() as proxy:
        worker = rig.worker(database_url=with_host(rig.database_url, "127.0.0.1", proxy.port))
        h = await rig.open_ticket("database cut", site=stock.site, part_sku=PART, part_quantity="3")
        before = await rig.until(h, lambda s: "work" in s.active, "the task")
        tid = before.ticket_id
        await read_model_caught_up(rig.db, h)

        def look() -> Awaitable[Committed]:  # run by the proxy right after a cut, before any retry
            return committed(rig.db, tid, stock)

        # (1) The claim's projection: the ticket row upserted, its events inserted, not committed.
        projection = proxy.cut_after(b"INSERT INTO ticket_event", REFUSE_S, look)
        claim = h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG, node="work"))
        claimed = await within(claim, 20, "the claim")
        assert claimed.nodes["work"].assignee == "eng-li"
        assert projection.done(), "the claim was projected without passing the armed statement"
        seen = projection.result().seen
        assert seen.event_seqs == list(range(1, before.seq + 1))  # the claim's event is not there…
        assert seen.row_seq == before.seq  # …and the ticket row did not move without it

        # (2) the consumption and (3) the settlement, both cut inside their transactions.
        consumption = proxy.cut_after(b"INSERT INTO stock_movement", REFUSE_S, look)
        settlement = proxy.cut_after(b"INSERT INTO statement", REFUSE_S, look)
        await within(h.execute_update(TicketWorkflow.start, StartInput(actor=ENG, node="work")), 20, "start")
        complete = asyncio.ensure_future(
            h.execute_update(TicketWorkflow.complete, CompleteInput(actor=ENG, node="work", fields={"used": "2"}))
        )
        seen = (await within(consumption, 20, "the cut in the consumption")).seen
        assert seen.moves == [("reservation", 3)] and seen.level == (stock.received, 3)  # neither level nor ledger
        seen = (await within(settlement, 20, "the cut in the settlement")).seen
        assert seen.statements == 0
        state = await within(complete, 30, "complete (consume, settle, restock, end)")
        assert state.status == TicketStatus.RESOLVED, state
        assert [c.in_transaction >= 1 for c in proxy.cuts] == [True, True, True], proxy.cuts
        assert proxy.refused >= 1  # retries met the refusal, and went on after it

        events = await read_model_caught_up(rig.db, h)
        assert [e.action for e in events] == FLOW_EVENTS
        end = await committed(rig.db, tid, stock)
        assert end.moves == [("reservation", 3), ("consumption", 2), ("release", 1)]
        assert end.level == (stock.received - 2, 0)  # the level moved with its ledger rows, once
        async with rig.db.session() as s:
            statements = list(await s.exec(select(StatementRow).where(StatementRow.ticket_id == tid)))
            requests = list(await s.exec(select(PurchaseRequest).where(PurchaseRequest.ticket_id == tid)))
        assert len(statements) == 1
        st = statements[0]
        assert {ln["code"] for ln in st.statement["lines"]} >= {"INSPECT", PART}
        assert Decimal(st.statement["totals"]["total"]) == st.total > 0
        assert [(r.sku, r.quantity) for r in requests] == [(PART, 3)]

        assert worker.alive(), worker.log_text()
        assert await worker.stop() == 0, worker.log_text()
