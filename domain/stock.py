"""Pure stock rules: which warehouse serves a ticket, how a reservation is split, when stock is
low, what a ticket still holds and how its usage splits, and what each operation answers.

No I/O: the inventory activities read the candidates, call ``plan_reservation``, then apply
the plan with conditional UPDATEs (and plan again for whatever a concurrent taker got first);
their answers are rebuilt from the ticket's ledger entries, so a retry answers the same.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from domain.geo import haversine_km
from models.inventory import (
    Allocation,
    ConsumeInput,
    ConsumeResult,
    MovementKind,
    NodeStockQuantity,
    ReleaseInput,
    ReleaseResult,
    ReservationStatus,
    ReserveInput,
    ReserveResult,
    Shortage,
    StockQuantity,
)


@dataclass(frozen=True)
class Site:
    """A warehouse as the planner sees it."""

    code: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Need:
    """One requested line: ``line`` is its index in the request."""

    line: int
    sku: str
    quantity: int


@dataclass(frozen=True)
class Pick:
    line: int
    sku: str
    warehouse: str
    quantity: int


@dataclass(frozen=True)
class Short:
    """What a line lacks: ``missing`` of ``requested`` could not be reserved under the rule."""

    line: int
    sku: str
    requested: int
    missing: int


def rank_sites(sites: Sequence[Site], location: tuple[float, float] | None) -> list[str]:
    """Warehouse codes nearest first (great-circle distance); ties, and no location, by code."""
    if location is None:
        return sorted(s.code for s in sites)
    lat, lon = location
    return [s.code for s in sorted(sites, key=lambda s: (haversine_km(lat, lon, s.lat, s.lon), s.code))]


def plan_reservation(
    needs: Sequence[Need],
    available: Mapping[tuple[str, str], int],
    ranked: Sequence[str],
    allow_partial: bool,
) -> tuple[list[Pick], list[Short]]:
    """Choose warehouses for each line from ``available[(warehouse, sku)]``, nearest first.

    - ``allow_partial``: a line takes what the nearest warehouse has, then the next nearest,
      and so on; what no warehouse has is a shortage. Picks are returned even with shortages.
    - otherwise all-or-nothing: each line comes whole from the nearest warehouse that has all of
      it; if any line cannot, there are no picks at all and the shortages say why
      (``missing`` = requested minus the most any single warehouse could give).

    Lines are served in order; a SKU asked for twice draws on the same availability.
    """
    left = dict(available)
    picks: list[Pick] = []
    shorts: list[Short] = []
    for need in needs:
        if allow_partial:
            wanted = need.quantity
            for code in ranked:
                if wanted == 0:
                    break
                take = min(wanted, left.get((code, need.sku), 0))
                if take > 0:
                    picks.append(Pick(need.line, need.sku, code, take))
                    left[(code, need.sku)] -= take
                    wanted -= take
            if wanted:
                shorts.append(Short(need.line, need.sku, need.quantity, wanted))
            continue
        source = next((c for c in ranked if left.get((c, need.sku), 0) >= need.quantity), None)
        if source is None:
            best = max((left.get((c, need.sku), 0) for c in ranked), default=0)
            shorts.append(Short(need.line, need.sku, need.quantity, need.quantity - best))
            continue
        picks.append(Pick(need.line, need.sku, source, need.quantity))
        left[(source, need.sku)] -= need.quantity
    if shorts and not allow_partial:
        return [], shorts
    return picks, shorts


def is_low(available: int, reorder_point: int) -> bool:
    """Low stock: availability (on hand minus reserved) strictly below the reorder point."""
    return available < reorder_point


def reorder_suggestion(available: int, reorder_point: int, reorder_qty: int) -> int:
    """Order up to ``reorder_point + reorder_qty`` (an (s, S) policy); at least one unit."""
    return max(1, reorder_point + reorder_qty - max(available, 0))


# --- a ticket's ledger: what is still reserved, how usage splits, what each operation answers ---


@dataclass(frozen=True)
class Entry:
    """One of a ticket's ledger rows (reservation, consumption or release of one allocation:
    ``node_id``, ``line``, ``allocation``), with the part's reorder settings."""

    kind: str
    node_id: str
    line: int
    allocation: int
    warehouse: str
    sku: str
    quantity: int
    reorder_point: int = 0
    reorder_qty: int = 0

    def with_quantity(self, kind: str, quantity: int) -> "Entry":
        return Entry(
            kind,
            self.node_id,
            self.line,
            self.allocation,
            self.warehouse,
            self.sku,
            quantity,
            self.reorder_point,
            self.reorder_qty,
        )


def outstanding(entries: Iterable[Entry]) -> list[Entry]:
    """What each allocation still holds (reserved minus consumed minus released), as reservation
    entries in (node, line, allocation) order; allocations with nothing left are left out."""
    reserved: dict[tuple[str, int, int], Entry] = {}
    settled: dict[tuple[str, int, int], int] = defaultdict(int)
    for e in entries:
        key = (e.node_id, e.line, e.allocation)
        if e.kind == MovementKind.RESERVATION:
            reserved[key] = e
        elif e.kind in (MovementKind.CONSUMPTION, MovementKind.RELEASE):
            settled[key] += e.quantity
    return [
        reserved[k].with_quantity(MovementKind.RESERVATION, reserved[k].quantity - settled[k])
        for k in sorted(reserved)
        if reserved[k].quantity > settled[k]
    ]


def split_usage(
    held: Sequence[Entry], used: Mapping[str, int]
) -> tuple[list[tuple[Entry, int, int]], dict[str, tuple[int, int]]]:
    """Spread the quantities used per SKU over the allocations still held, first allocations
    (the nearest warehouses) first: [(allocation, consumed, released)]. The second value names the
    SKUs used beyond what is held: {sku: (used, held)} — then nothing may move."""
    holding: dict[str, int] = defaultdict(int)
    for a in held:
        holding[a.sku] += a.quantity
    over = {sku: (q, holding[sku]) for sku, q in sorted(used.items()) if q > holding[sku]}
    left = dict(used)
    split = []
    for a in held:
        consumed = min(left.get(a.sku, 0), a.quantity)
        left[a.sku] = left.get(a.sku, 0) - consumed
        split.append((a, consumed, a.quantity - consumed))
    return split, over


def reserve_result(inp: ReserveInput, entries: Iterable[Entry]) -> ReserveResult:
    """A reservation's answer from its ledger entries: a retry rebuilds exactly the same one."""
    rows = sorted((e for e in entries if e.kind == MovementKind.RESERVATION), key=lambda e: (e.line, e.allocation))
    allocations = [Allocation(line=e.line, sku=e.sku, warehouse=e.warehouse, quantity=e.quantity) for e in rows]
    got: dict[int, int] = defaultdict(int)
    for a in allocations:
        got[a.line] += a.quantity
    shortages = [
        Shortage(line=i, sku=line.sku, requested=line.quantity, missing=line.quantity - got[i])
        for i, line in enumerate(inp.lines)
        if got[i] < line.quantity
    ]
    if not shortages:
        status = ReservationStatus.RESERVED
    elif allocations:
        status = ReservationStatus.PARTIAL
    else:
        status = ReservationStatus.INSUFFICIENT
    return ReserveResult(
        ticket_id=inp.ticket_id, node_id=inp.node_id, status=status, allocations=allocations, shortages=shortages
    )


def insufficient(inp: ReserveInput, shorts: Iterable[Short]) -> ReserveResult:
    return ReserveResult(
        ticket_id=inp.ticket_id,
        node_id=inp.node_id,
        status=ReservationStatus.INSUFFICIENT,
        shortages=[Shortage(line=s.line, sku=s.sku, requested=s.requested, missing=s.missing) for s in shorts],
    )


def _totals(entries: Iterable[Entry], kind: MovementKind) -> list[StockQuantity]:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for e in entries:
        if e.kind == kind:
            sums[(e.sku, e.warehouse)] += e.quantity
    return [StockQuantity(sku=s, warehouse=w, quantity=q) for (s, w), q in sorted(sums.items())]


def consume_result(inp: ConsumeInput, entries: Iterable[Entry]) -> ConsumeResult:
    entries = list(entries)
    return ConsumeResult(
        ticket_id=inp.ticket_id,
        node_id=inp.node_id,
        consumed=_totals(entries, MovementKind.CONSUMPTION),
        released=_totals(entries, MovementKind.RELEASE),
    )


def release_result(inp: ReleaseInput, entries: Iterable[Entry]) -> ReleaseResult:
    sums: dict[tuple[str, str, str], int] = defaultdict(int)
    for e in entries:
        if e.kind == MovementKind.RELEASE:
            sums[(e.node_id, e.sku, e.warehouse)] += e.quantity
    return ReleaseResult(
        ticket_id=inp.ticket_id,
        node_id=inp.node_id,
        released=[
            NodeStockQuantity(node_id=n, sku=s, warehouse=w, quantity=q) for (n, s, w), q in sorted(sums.items())
        ],
    )
