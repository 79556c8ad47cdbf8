"""Dispatch scoring: hard constraints, then weighted normalised objectives, then a strategy.

Pure (no I/O, no clock: the caller passes the decision time) and vectorised with numpy.
``CandidatePool.build(roster)`` turns the roster into column arrays once per roster change;
``decide(pool, request)`` is masks + a weighted sum + ``argpartition`` for the top N, and
only those N become Pydantic objects. ``docs/dispatch-and-sla.md`` describes the rules.

Hard constraints (each counted in ``rejections`` when it removes someone): region, team,
role, required skills (minimum levels), tier (a ``require`` rule), availability (roster
flag, out-of-office at ``at``, working hours of the candidate's calendar at ``at``),
capacity (``load < capacity``), excluded, ``max_distance_km``.

Objectives, each normalised to [0, 1] with 1 the best, weighted by ``w / Σ|w|`` so the
score is in [-1, 1] and the contributions add up to it:

- ``distance``  ``1 / (1 + km / distance_scale_km)``; unknown home or no ticket location: 0
- ``load``      ``1 - load / capacity``
- ``skill``     mean level of the required skills / 5 (0 when none are required)
- ``seniority`` ``seniority / 5``
- ``tier``      1 when the candidate meets the applicable tier rule
- a feature     min–max over the whole pool (missing: 0); a negative weight prefers low values

Ties go to the smaller candidate id, so a decision never depends on the roster's order.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from domain.calendar import is_working_time
from domain.geo import EARTH_RADIUS_KM
from models.calendar import BusinessCalendar
from models.dispatch import (
    BUILTIN_CRITERIA,
    DISTANCE,
    LOAD,
    MAX_LEVEL,
    REJECTION_REASONS,
    SENIORITY,
    SKILL,
    TIER,
    Candidate,
    DispatchDecision,
    DispatchOutcome,
    DispatchRequest,
    ScoredCandidate,
    Strategy,
    TierRule,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _codes(values: Iterable[str]) -> dict[str, int]:
    return {v: i for i, v in enumerate(sorted(set(values)))}


@dataclass(frozen=True, eq=False)
class CandidatePool:
    """The roster as column arrays, sorted by candidate id. Build once, decide many times."""

    candidates: tuple[Candidate, ...]
    ids: np.ndarray  # str, sorted
    index: Mapping[str, int]
    region: np.ndarray  # int32 codes of region_codes
    region_codes: Mapping[str, int]
    team: np.ndarray
    team_codes: Mapping[str, int]
    roles: np.ndarray  # bool (n, roles)
    role_codes: Mapping[str, int]
    skills: np.ndarray  # int8 (n, skills), 0 = does not have it
    skill_codes: Mapping[str, int]
    lat: np.ndarray  # radians, NaN without a home
    lon: np.ndarray
    cos_lat: np.ndarray
    capacity: np.ndarray  # int64
    load: np.ndarray  # int64
    available: np.ndarray  # bool
    seniority: np.ndarray  # int64
    features: np.ndarray  # float64 (n, features) min–max normalised, missing = 0
    feature_codes: Mapping[str, int]
    ooo_owner: np.ndarray  # out-of-office periods, flattened: owner row, [start, end) in µs
    ooo_start: np.ndarray
    ooo_end: np.ndarray
    calendar: np.ndarray  # int32 index into calendars, -1 = none
    calendars: tuple[BusinessCalendar, ...]

    @property
    def size(self) -> int:
        return len(self.candidates)

    @classmethod
    def build(
        cls, roster: Iterable[Candidate], calendars: Mapping[str, BusinessCalendar] | None = None
    ) -> "CandidatePool":
        """Column arrays for a roster; ``calendars`` are the working-hour calendars that
        ``Candidate.calendar`` names (checked at ``DispatchRequest.at``)."""
        people = tuple(sorted(roster, key=lambda c: c.id))
        n = len(people)
        index = {c.id: i for i, c in enumerate(people)}
        if len(index) != n:
            dupes = sorted(cid for cid, count in Counter(c.id for c in people).items() if count > 1)
            raise ValueError(f"duplicate candidate ids: {dupes}")
        calendars = dict(calendars or {})
        cal_names = sorted(calendars)
        cal_codes = {k: i for i, k in enumerate(cal_names)}
        unknown = sorted({c.calendar for c in people if c.calendar and c.calendar not in cal_codes})
        if unknown:
            raise ValueError(f"candidates name unknown calendars: {unknown}")

        region_codes = _codes(c.region for c in people)
        team_codes = _codes(c.team for c in people)
        role_codes = _codes(r for c in people for r in c.roles)
        skill_codes = _codes(s for c in people for s in c.skills)
        feature_codes = _codes(f for c in people for f in c.features)

        roles = np.zeros((n, len(role_codes)), dtype=bool)
        skills = np.zeros((n, len(skill_codes)), dtype=np.int8)
        raw = np.full((n, len(feature_codes)), np.nan)
        lat = np.full(n, np.nan)
        lon = np.full(n, np.nan)
        owners: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        for i, c in enumerate(people):
            for r in c.roles:
                roles[i, role_codes[r]] = True
            for s, level in c.skills.items():
                skills[i, skill_codes[s]] = level
            for f, value in c.features.items():
                raw[i, feature_codes[f]] = value
            if c.home is not None:
                lat[i], lon[i] = c.home.lat, c.home.lon
            for p in c.out_of_office:
                owners.append(i)
                starts.append(_us(p.start))
                ends.append(_us(p.end))

        features = np.zeros_like(raw)
        if n:
            present = ~np.isnan(raw)
            lo = np.where(present.any(axis=0), np.nanmin(np.where(present, raw, np.inf), axis=0), 0.0)
            hi = np.where(present.any(axis=0), np.nanmax(np.where(present, raw, -np.inf), axis=0), 0.0)
            span = hi - lo
            scaled = np.where(span > 0, (raw - lo) / np.where(span > 0, span, 1.0), 1.0)
            features = np.where(present, scaled, 0.0)

        lat_r, lon_r = np.radians(lat), np.radians(lon)
        return cls(
            candidates=people,
            ids=_frozen(np.array([c.id for c in people], dtype=str)),
            index=index,
            region=_frozen(np.array([region_codes[c.region] for c in people], dtype=np.int32)),
            region_codes=region_codes,
            team=_frozen(np.array([team_codes[c.team] for c in people], dtype=np.int32)),
            team_codes=team_codes,
            roles=_frozen(roles),
            role_codes=role_codes,
            skills=_frozen(skills),
            skill_codes=skill_codes,
            lat=_frozen(lat_r),
            lon=_frozen(lon_r),
            cos_lat=_frozen(np.cos(lat_r)),
            capacity=_frozen(np.array([c.capacity for c in people], dtype=np.int64)),
            load=_frozen(np.array([c.load for c in people], dtype=np.int64)),
            available=_frozen(np.array([c.available for c in people], dtype=bool)),
            seniority=_frozen(np.array([c.seniority for c in people], dtype=np.int64)),
            features=_frozen(np.ascontiguousarray(features)),
            feature_codes=feature_codes,
            ooo_owner=_frozen(np.array(owners, dtype=np.int64)),
            ooo_start=_frozen(np.array(starts, dtype=np.int64)),
            ooo_end=_frozen(np.array(ends, dtype=np.int64)),
            calendar=_frozen(np.array([cal_codes[c.calendar] if c.calendar else -1 for c in people], dtype=np.int32)),
            calendars=tuple(calendars[k] for k in cal_names),
        )

    def with_state(
        self, loads: Mapping[str, int] | None = None, available: Mapping[str, bool] | None = None
    ) -> "CandidatePool":
        """A pool sharing everything but the given loads / availability flags (ids unknown
        to the pool are ignored) — cheaper than a rebuild after each assignment."""
        changes: dict[str, np.ndarray] = {}
        for field, values, dtype in (("load", loads, np.int64), ("available", available, bool)):
            if values:
                column = getattr(self, field).copy()
                for cid, value in values.items():
                    i = self.index.get(cid)
                    if i is not None:
                        column[i] = value
                changes[field] = _frozen(column.astype(dtype))
        return replace(self, **changes) if changes else self  # type: ignore[arg-type]


# -- the decision -----------------------------------------------------------------------


def _distances_km(pool: CandidatePool, req: DispatchRequest, idx: np.ndarray) -> np.ndarray:
    """Haversine distance from the homes of rows ``idx`` to the ticket (NaN without a home)."""
    assert req.location is not None
    lat0, lon0 = np.radians(req.location.lat), np.radians(req.location.lon)
    lat, lon, cos_lat = pool.lat[idx], pool.lon[idx], pool.cos_lat[idx]
    a = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat0) * cos_lat * np.sin((lon - lon0) / 2) ** 2
    distances: np.ndarray = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))
    return distances


def _tier_rule(req: DispatchRequest) -> TierRule | None:
    if req.customer_tier is None:
        return None
    return next((r for r in req.tier_rules if r.tier == req.customer_tier), None)


def _meets_tier(pool: CandidatePool, rule: TierRule) -> np.ndarray:
    meets = np.zeros(pool.size, dtype=bool)
    if rule.min_seniority is not None:
        meets |= pool.seniority >= rule.min_seniority
    known = [pool.role_codes[r] for r in rule.roles if r in pool.role_codes]
    if known:
        meets |= pool.roles[:, known].any(axis=1)
    return meets


def _available_at(pool: CandidatePool, req: DispatchRequest) -> np.ndarray:
    ok = pool.available.copy()
    if req.at is None:
        return ok
    t = _us(req.at)
    if pool.ooo_owner.size:
        away = (pool.ooo_start <= t) & (t < pool.ooo_end)
        ok[pool.ooo_owner[away]] = False
    if pool.calendars:
        open_now = np.array([True] + [is_working_time(c, req.at) for c in pool.calendars])
        ok &= open_now[pool.calendar + 1]
    return ok


@dataclass(frozen=True)
class _Weights:
    builtin: dict[str, float]  # normalised weight per built-in criterion used
    feature_vector: np.ndarray  # normalised weight per pool feature column
    features: dict[str, float]  # normalised weight per feature name (incl. unknown ones)


def _weights(pool: CandidatePool, req: DispatchRequest, rule: TierRule | None) -> _Weights:
    raw = dict(req.weights)
    if rule is not None and rule.mode == "prefer":
        raw.setdefault(TIER, rule.weight)
    raw = {k: float(v) for k, v in raw.items() if v != 0}
    total = sum(abs(v) for v in raw.values()) or 1.0
    builtin = {k: raw[k] / total for k in BUILTIN_CRITERIA if k in raw}
    features = {k: v / total for k, v in raw.items() if k not in BUILTIN_CRITERIA}
    vector = np.zeros(len(pool.feature_codes))
    for k, w in features.items():
        if k in pool.feature_codes:
            vector[pool.feature_codes[k]] = w
    return _Weights(builtin, vector, features)


@dataclass
class _Context:
    """Everything a decision computes once and the explanations reuse."""

    pool: CandidatePool
    req: DispatchRequest
    rule: TierRule | None
    weights: _Weights
    meets_tier: np.ndarray | None
    skill_cols: list[int]
    distance: np.ndarray | None = None  # km per row, NaN where not (yet) computed or no home

    def __post_init__(self) -> None:
        if self.req.location is not None:
            self.distance = np.full(self.pool.size, np.nan)

    def measure(self, idx: np.ndarray) -> None:
        """Compute distances for rows ``idx`` (only the rows a decision looks at)."""
        if self.distance is not None and idx.size:
            self.distance[idx] = _distances_km(self.pool, self.req, idx)

    def values(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Normalised built-in criteria (1 = best) for the rows ``idx``."""
        pool, out = self.pool, {}
        w = self.weights.builtin
        if DISTANCE in w:
            if self.distance is None:
                out[DISTANCE] = np.zeros(idx.size)
            else:
                d = self.distance[idx]
                out[DISTANCE] = np.where(np.isnan(d), 0.0, 1.0 / (1.0 + d / self.req.distance_scale_km))
        if LOAD in w:
            cap = pool.capacity[idx]
            out[LOAD] = 1.0 - np.minimum(pool.load[idx] / np.maximum(cap, 1), 1.0)
        if SKILL in w:
            if self.skill_cols:
                levels = pool.skills[idx][:, self.skill_cols].sum(axis=1, dtype=np.int64)
                out[SKILL] = levels / (MAX_LEVEL * len(self.skill_cols))
            else:
                out[SKILL] = np.zeros(idx.size)
        if SENIORITY in w:
            out[SENIORITY] = pool.seniority[idx] / MAX_LEVEL
        if TIER in w:
            out[TIER] = np.zeros(idx.size) if self.meets_tier is None else self.meets_tier[idx].astype(np.float64)
        return out

    def scores(self, idx: np.ndarray) -> np.ndarray:
        """Total scores of rows ``idx``: feature matrix × weights plus the built-ins.

        ``einsum`` rather than ``@``: no BLAS threads, whose hand-offs cost milliseconds of
        tail latency on a busy 2-core machine."""
        total: np.ndarray = np.einsum("ij,j->i", self.pool.features[idx], self.weights.feature_vector)
        for name, v in self.values(idx).items():
            total += self.weights.builtin[name] * v
        return total

    def scored(self, idx: np.ndarray) -> list[ScoredCandidate]:
        """Pydantic rows, with per-criterion contributions, for the few rows ``idx`` (ranked)."""
        pool = self.pool
        builtin = {k: (self.weights.builtin[k] * v).tolist() for k, v in self.values(idx).items()}
        features = {
            k: (w * pool.features[idx, pool.feature_codes[k]]).tolist() if k in pool.feature_codes else None
            for k, w in self.weights.features.items()
        }
        out = []
        for j, i in enumerate(idx.tolist()):
            c = pool.candidates[i]
            contributions = {k: v[j] for k, v in builtin.items()}
            contributions |= {k: (0.0 if v is None else v[j]) for k, v in features.items()}
            km = None if self.distance is None else float(self.distance[i])
            d = None if km is None or np.isnan(km) else round(km, 3)
            out.append(
                ScoredCandidate(
                    id=c.id,
                    name=c.name,
                    rank=j + 1,
                    score=sum(contributions.values()),
                    contributions=contributions,
                    distance_km=d,
                    load=int(pool.load[i]),
                    capacity=int(pool.capacity[i]),
                    seniority=int(pool.seniority[i]),
                    skill_levels={s: c.skills.get(s, 0) for s in self.req.required_skills},
                )
            )
        return out


def _smallest(key: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest keys, ties by position (= candidate id), in order."""
    if k < key.size:
        part = np.argpartition(key, k - 1)[:k]
        cand = np.flatnonzero(key <= key[part].max())
    else:
        cand = np.arange(key.size)
    return cand[np.lexsort((cand, key[cand]))][:k]


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def decide(pool: CandidatePool, req: DispatchRequest) -> DispatchDecision:
    """Who gets the ticket (or who is offered it), and why."""
    n = pool.size
    rule = _tier_rule(req)
    meets_tier = _meets_tier(pool, rule) if rule is not None else None

    checks: dict[str, np.ndarray] = {}
    code = pool.region_codes.get(req.region)
    checks["region"] = pool.region == code if code is not None else np.zeros(n, dtype=bool)
    if req.teams:
        known = [pool.team_codes[t] for t in req.teams if t in pool.team_codes]
        checks["team"] = np.isin(pool.team, known)
    if req.roles:
        known = [pool.role_codes[r] for r in req.roles if r in pool.role_codes]
        checks["role"] = np.asarray(pool.roles[:, known].any(axis=1)) if known else np.zeros(n, dtype=bool)
    skill_cols: list[int] = []
    if req.required_skills:
        ok = np.ones(n, dtype=bool)
        for skill, level in req.required_skills.items():
            col = pool.skill_codes.get(skill)
            if col is None:
                ok[:] = False
            else:
                skill_cols.append(col)
                ok &= pool.skills[:, col] >= level
        checks["skills"] = ok
        if len(skill_cols) < len(req.required_skills):
            skill_cols = []
    if rule is not None and rule.mode == "require" and meets_tier is not None:
        checks["tier"] = meets_tier
    available = _available_at(pool, req)
    checks["availability"] = available
    checks["capacity"] = pool.load < pool.capacity
    not_excluded = np.ones(n, dtype=bool)
    not_excluded[[pool.index[x] for x in req.excluded if x in pool.index]] = False
    checks["excluded"] = not_excluded
    ctx = _Context(pool, req, rule, _weights(pool, req, rule), meets_tier, skill_cols)
    if req.max_distance_km is not None:
        if ctx.distance is None:
            checks["distance"] = np.zeros(n, dtype=bool)
        else:
            ctx.measure(np.arange(n))  # every row: the count of rejections is per constraint
            checks["distance"] = ctx.distance <= req.max_distance_km

    qualified = np.ones(n, dtype=bool)
    for ok in checks.values():
        qualified &= ok
    rejections = {r: n - int(np.count_nonzero(checks[r])) for r in REJECTION_REASONS if r in checks}
    rejections = {r: c for r, c in rejections.items() if c}
    base: dict[str, Any] = {
        "ticket_id": req.ticket_id,
        "strategy": req.strategy,
        "considered": n,
        "rejections": rejections,
        "decided_at": req.at,
    }
    q = np.flatnonzero(qualified)
    if q.size == 0:
        return _no_one_qualified(ctx, base, available, not_excluded)

    k = min(req.top_n, q.size)
    if req.max_distance_km is None:
        ctx.measure(q)
    scores = ctx.scores(q)
    if req.strategy is Strategy.LEAST_LOADED:
        # |score| <= 1, so 4 × load dominates: fewest open tickets first, then best score
        top = q[_smallest(pool.load[q] * 4.0 - scores, k)]
    elif req.strategy is Strategy.ROUND_ROBIN:
        start = 0
        if req.round_robin_cursor is not None:
            start = int(np.searchsorted(pool.ids, req.round_robin_cursor, side="right"))
        split = int(np.searchsorted(q, start))
        top = np.concatenate([q[split : split + k], q[: max(0, k - (q.size - split))]])
    else:
        top = q[_smallest(-scores, k)]

    ranked = ctx.scored(top)
    nearest = None
    if ctx.distance is not None:
        dq = ctx.distance[q]
        if not np.isnan(dq).all():
            nearest = float(np.nanmin(dq))
    runner_up = ranked[1] if len(ranked) > 1 else None
    summary = f"{q.size} of {n} qualified"
    if req.strategy is Strategy.GRAB_POOL:
        best = ranked[0]
        offers = ", ".join(f"{_who(s)} {s.score:.2f}" for s in ranked)
        text = (
            f"offered to {len(ranked)} of {q.size} qualified ({offers}); if nobody claims, "
            f"{_who(best)}: {_reasons(ctx, best, nearest)}"
        )
        return DispatchDecision(
            **base,
            outcome=DispatchOutcome.OFFERED,
            offers=[s.id for s in ranked],
            fallback_id=best.id,
            ranked=ranked,
            qualified=int(q.size),
            explanation=text,
        )

    chosen = ranked[0]
    if req.strategy is Strategy.ROUND_ROBIN:
        after = f" after {req.round_robin_cursor}" if req.round_robin_cursor else ""
        lead, tail = f"next in rotation{after}, ", summary
    elif req.strategy is Strategy.LEAST_LOADED:
        lead, tail = "least loaded qualified, ", summary
    else:
        lead = ""
        vs = f" vs {_who(runner_up)} {runner_up.score:.2f}" if runner_up else ""
        tail = f"score {chosen.score:.2f}{vs}; {summary}"
    text = f"{_who(chosen)}: {lead}{_reasons(ctx, chosen, nearest)} — {tail}"
    return DispatchDecision(
        **base,
        outcome=DispatchOutcome.ASSIGNED,
        chosen_id=chosen.id,
        chosen=chosen,
        ranked=ranked,
        qualified=int(q.size),
        round_robin_cursor=chosen.id,
        explanation=text,
    )


def _who(s: ScoredCandidate) -> str:
    return s.name or s.id


def _reasons(ctx: _Context, s: ScoredCandidate, nearest: float | None) -> str:
    parts = []
    if s.distance_km is not None:
        if nearest is not None and s.distance_km <= round(nearest, 3):
            parts.append(f"nearest qualified ({s.distance_km:.1f} km)")
        else:
            parts.append(f"{s.distance_km:.1f} km away")
    parts.append(f"load {s.load}/{s.capacity}")
    has = {k: v for k, v in s.skill_levels.items() if v}
    if has:
        levels = ", ".join(f"{k} L{v}" for k, v in has.items())
        parts.append(f"skill {levels}" if len(has) == 1 else f"skills {levels}")
    missing = [k for k, v in s.skill_levels.items() if not v]  # only a backup lacks one
    if missing:
        parts.append(f"no {', '.join(missing)} skill")
    rule = ctx.rule
    if rule is not None and ctx.meets_tier is not None and ctx.meets_tier[ctx.pool.index[s.id]]:
        c = ctx.pool.candidates[ctx.pool.index[s.id]]
        role = next((r for r in rule.roles if r in c.roles), None)
        parts.append(f"{role} for {rule.tier}" if role else f"seniority L{s.seniority} for {rule.tier}")
    return ", ".join(parts)


def _first_of(
    ctx: _Context, ids: list[str], available: np.ndarray, not_excluded: np.ndarray
) -> tuple[int, ScoredCandidate | None, list[str]]:
    """The first of ``ids`` in the roster, not excluded and available: (its position, it scored,
    why those before it were skipped); position -1 and None when there is nobody."""
    skipped: list[str] = []
    for position, cid in enumerate(ids):
        i = ctx.pool.index.get(cid)
        if i is None:
            skipped.append(f"{cid}: not in roster")
        elif not not_excluded[i]:
            skipped.append(f"{cid}: excluded")
        elif not available[i]:
            skipped.append(f"{cid}: unavailable")
        else:
            ctx.measure(np.array([i]))
            return position, ctx.scored(np.array([i]))[0], skipped
    return -1, None, skipped


def _picked(ctx: _Context, chosen: ScoredCandidate, role: str, skipped: list[str]) -> str:
    over = " (over capacity)" if chosen.load >= chosen.capacity else ""
    tried = f" (skipped {'; '.join(skipped)})" if skipped else ""
    return f"{_who(chosen)}: {role}{tried}, {_reasons(ctx, chosen, None)}{over}"


def _no_one_qualified(
    ctx: _Context, base: dict[str, Any], available: np.ndarray, not_excluded: np.ndarray
) -> DispatchDecision:
    counts = ", ".join(f"{r} {c}" for r, c in base["rejections"].items()) or "no candidates"
    nobody = f"nobody qualified among {base['considered']} ({counts})"
    position, chosen, skipped = _first_of(ctx, ctx.req.backups, available, not_excluded)
    if chosen is not None:
        return DispatchDecision(
            **base,
            outcome=DispatchOutcome.BACKUP,
            chosen_id=chosen.id,
            chosen=chosen,
            ranked=[chosen],
            round_robin_cursor=None,
            explanation=f"{_picked(ctx, chosen, f'{_ordinal(position + 1)} backup', skipped)} — {nobody}",
        )
    tried = f"; no backup available ({'; '.join(skipped)})" if skipped else ""
    return DispatchDecision(**base, outcome=DispatchOutcome.NONE, explanation=f"{nobody}{tried}")


def first_available(pool: CandidatePool, req: DispatchRequest, ids: list[str]) -> DispatchDecision:
    """A named assignee and their ordered backups: the first of ``ids`` who is available at
    ``req.at`` (roster flag, out-of-office, working hours) and not excluded. Capacity is not a
    hard limit here: a person named by the template is asked even when busy, and told so."""
    ctx = _Context(pool, req, None, _weights(pool, req, None), None, [])
    not_excluded = np.ones(pool.size, dtype=bool)
    not_excluded[[pool.index[x] for x in req.excluded if x in pool.index]] = False
    position, chosen, skipped = _first_of(ctx, ids, _available_at(pool, req), not_excluded)
    base: dict[str, Any] = {
        "ticket_id": req.ticket_id,
        "strategy": req.strategy,
        "considered": len(ids),
        "decided_at": req.at,
        "rejections": {"availability": len(skipped)} if skipped else {},
    }
    if chosen is None:
        why = "; ".join(skipped)
        return DispatchDecision(
            **base,
            outcome=DispatchOutcome.NONE,
            explanation=f"nobody available among the named assignee and backups ({why})",
        )
    role = "named assignee" if position == 0 else f"{_ordinal(position)} backup"
    return DispatchDecision(
        **base,
        outcome=DispatchOutcome.ASSIGNED if position == 0 else DispatchOutcome.BACKUP,
        chosen_id=chosen.id,
        chosen=chosen,
        ranked=[chosen],
        qualified=1,
        explanation=_picked(ctx, chosen, role, skipped),
    )
