"""Dispatch scoring: constraints, objectives, strategies, explanations — and a pure-Python
reference implementation that the vectorised one must agree with on random rosters."""

import math
import random
import time
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.calendar import is_working_time
from domain.dispatch import CandidatePool, decide
from domain.geo import haversine_km
from models.calendar import BusinessCalendar
from models.dispatch import (
    BUILTIN_CRITERIA,
    DEFAULT_WEIGHTS,
    MAX_LEVEL,
    REJECTION_REASONS,
    Candidate,
    DispatchDecision,
    DispatchOutcome,
    DispatchRequest,
    GeoPoint,
    Period,
    Strategy,
    TierRule,
)

SH = ZoneInfo("Asia/Shanghai")
PEOPLES_SQUARE = GeoPoint(lat=31.2304, lon=121.4737)
LUJIAZUI = GeoPoint(lat=31.2397, lon=121.4998)
MINHANG = GeoPoint(lat=31.1129, lon=121.3817)
SONGJIANG = GeoPoint(lat=31.0320, lon=121.2270)
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=SH)


def engineer(id: str, **kw) -> Candidate:
    fields = {"region": "east", "roles": ["engineer"], "capacity": 5, "load": 0, "seniority": 2} | kw
    return Candidate(id=id, **fields)


def shanghai_roster() -> list[Candidate]:
    return [
        engineer("eng-li", name="Li Wei", skills={"compressor": 4}, home=LUJIAZUI, load=2, seniority=3),
        engineer("eng-zhao", name="Zhao Lei", skills={"compressor": 4}, home=MINHANG, load=1, seniority=3),
        engineer("eng-song", name="Song Jia", skills={"compressor": 5}, home=SONGJIANG, load=2, seniority=3),
        # lives at People's Square but only L2 on compressors
        engineer("eng-wang", name="Wang Fang", skills={"compressor": 2, "hvac": 5}, home=PEOPLES_SQUARE),
        # qualified in the south region only
        engineer("eng-huang", name="Huang Min", region="south", skills={"compressor": 5}, home=PEOPLES_SQUARE),
    ]


def repair(**kw) -> DispatchRequest:
    fields = {"region": "east", "required_skills": {"compressor": 3}, "location": PEOPLES_SQUARE, "at": MONDAY_10}
    return DispatchRequest(**(fields | kw))


def run(roster, calendars=None, **kw) -> DispatchDecision:
    return decide(CandidatePool.build(roster, calendars), repair(**kw))


# -- the cases --------------------------------------------------------------------


def test_picks_the_nearest_qualified_available_engineer_and_says_why():
    d = run(shanghai_roster())
    assert d.outcome is DispatchOutcome.ASSIGNED and d.chosen_id == "eng-li"
    assert d.chosen.distance_km == pytest.approx(haversine_km(31.2304, 121.4737, 31.2397, 121.4998), abs=1e-3)
    assert 2.6 < d.chosen.distance_km < 2.7
    assert d.explanation.startswith("Li Wei: nearest qualified (2.7 km), load 2/5, skill compressor L4 — score ")
    assert d.explanation.endswith("; 3 of 5 qualified")
    assert [s.id for s in d.ranked] == ["eng-li", "eng-zhao", "eng-song"]
    assert d.rejections == {"region": 1, "skills": 1}
    assert (d.considered, d.qualified) == (5, 3)
    # the why: contributions per criterion that add up to the score, best first
    assert [s.score for s in d.ranked] == sorted((s.score for s in d.ranked), reverse=True)
    for s in d.ranked:
        assert set(s.contributions) == set(DEFAULT_WEIGHTS)
        assert sum(s.contributions.values()) == pytest.approx(s.score)
    assert d.chosen.contributions["distance"] > d.ranked[1].contributions["distance"]


def test_respects_capacity():
    roster = shanghai_roster()
    roster[0] = roster[0].model_copy(update={"load": 5})  # Li Wei is full
    d = run(roster)
    assert d.chosen_id == "eng-zhao"
    assert d.rejections["capacity"] == 1
    assert "eng-li" not in [s.id for s in d.ranked]


def test_respects_minimum_skill_levels():
    assert run(shanghai_roster(), required_skills={"compressor": 5}).chosen_id == "eng-song"
    d = run(shanghai_roster(), required_skills={"compressor": 3, "hvac": 1})
    assert d.outcome is DispatchOutcome.NONE and d.rejections["skills"] == 5
    d = run(shanghai_roster(), required_skills={"hvac": 4})
    assert d.chosen_id == "eng-wang"
    assert "nearest qualified (0.0 km)" in d.explanation and "skill hvac L5" in d.explanation


def test_respects_out_of_office_and_availability():
    roster = shanghai_roster()
    roster[0] = roster[0].model_copy(
        update={"out_of_office": [Period(start=MONDAY_10 - timedelta(days=1), end=MONDAY_10 + timedelta(days=2))]}
    )
    d = run(roster)
    assert d.chosen_id == "eng-zhao" and d.rejections["availability"] == 1
    # the same absence is over by Thursday
    assert run(roster, at=MONDAY_10 + timedelta(days=3)).chosen_id == "eng-li"
    # the roster's own flag
    roster = shanghai_roster()
    roster[0] = roster[0].model_copy(update={"available": False})
    assert run(roster).chosen_id == "eng-zhao"


def test_working_hours_from_the_candidates_calendar():
    office = BusinessCalendar.weekly("Asia/Shanghai", "09:00-18:00", holiday_country="CN")
    roster = [c.model_copy(update={"calendar": "office"}) for c in shanghai_roster()]
    roster[2] = roster[2].model_copy(update={"calendar": None})  # Song Jia has no calendar: always on
    calendars = {"office": office}
    assert run(roster, calendars).chosen_id == "eng-li"
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=SH)
    d = run(roster, calendars, at=saturday)
    assert d.chosen_id == "eng-song" and d.rejections["availability"] == 4
    national_day = datetime(2026, 10, 5, 10, 0, tzinfo=SH)  # a Monday off
    assert run(roster, calendars, at=national_day).chosen_id == "eng-song"
    with pytest.raises(ValueError, match="unknown calendars"):
        CandidatePool.build(roster)


def test_respects_region():
    d = run(shanghai_roster(), region="south")
    assert d.chosen_id == "eng-huang" and d.rejections["region"] == 4
    d = run(shanghai_roster(), region="north")
    assert d.outcome is DispatchOutcome.NONE and d.rejections["region"] == 5


def test_vip_goes_to_senior_staff_or_a_supervisor():
    roster = shanghai_roster() + [
        engineer(
            "sup-zhou",
            name="Zhou Yan",
            roles=["engineer", "supervisor"],
            skills={"compressor": 3},
            home=SONGJIANG,
            seniority=3,
        ),
        engineer("eng-gao", name="Gao Jun", skills={"compressor": 4}, home=MINHANG, seniority=4, load=1),
    ]
    d = run(roster, customer_tier="vip")  # default rule: seniority ≥ 4 or supervisor, required
    assert d.chosen_id == "eng-gao"
    assert "seniority L4 for vip" in d.explanation
    assert {s.id for s in d.ranked} == {"eng-gao", "sup-zhou"} and d.rejections["tier"] == 5
    supervisors_only = [TierRule(tier="vip", roles=["supervisor"])]
    d = run(roster, customer_tier="vip", tier_rules=supervisors_only)
    assert d.chosen_id == "sup-zhou" and "supervisor for vip" in d.explanation
    # an ordinary customer: the nearest again
    assert run(roster, customer_tier="standard").chosen_id == "eng-li"


def test_vip_preference_instead_of_requirement_is_configurable():
    roster = shanghai_roster() + [
        engineer("eng-gao", name="Gao Jun", skills={"compressor": 4}, home=SONGJIANG, seniority=5),
    ]
    prefer = [TierRule(tier="vip", min_seniority=4, mode="prefer", weight=1.0)]
    d = run(roster, customer_tier="vip", tier_rules=prefer)
    assert d.chosen_id == "eng-gao" and "tier" not in d.rejections
    assert d.ranked[1].id == "eng-li"  # the others still rank, just lower
    assert d.chosen.contributions["tier"] > 0 and d.ranked[1].contributions["tier"] == 0
    weak = [TierRule(tier="vip", min_seniority=4, mode="prefer", weight=0.01)]
    assert run(roster, customer_tier="vip", tier_rules=weak).chosen_id == "eng-li"


def test_round_robin_rotates_through_the_qualified():
    roster = shanghai_roster()
    cursor, seen = None, []
    for _ in range(7):
        d = run(roster, strategy=Strategy.ROUND_ROBIN, round_robin_cursor=cursor)
        seen.append(d.chosen_id)
        cursor = d.round_robin_cursor
    assert seen == ["eng-li", "eng-song", "eng-zhao"] * 2 + ["eng-li"]
    after_song = run(roster, strategy="round_robin", round_robin_cursor="eng-song")
    assert "next in rotation after eng-song" in after_song.explanation
    # a cursor that left the roster still points between ids
    assert run(roster, strategy="round_robin", round_robin_cursor="eng-m").chosen_id == "eng-song"
    d = run(roster, strategy="round_robin", round_robin_cursor="eng-song", top_n=3)
    assert [s.id for s in d.ranked] == ["eng-zhao", "eng-li", "eng-song"]


def test_least_loaded_picks_the_least_loaded_qualified():
    roster = shanghai_roster()
    d = run(roster, strategy=Strategy.LEAST_LOADED)
    # Zhao carries 1; Li and Song carry 2 each, and Li scores better
    assert d.chosen_id == "eng-zhao"
    assert [s.id for s in d.ranked] == ["eng-zhao", "eng-li", "eng-song"]
    assert d.explanation.startswith("Zhao Lei: least loaded qualified, ")
    roster[2] = roster[2].model_copy(update={"load": 0})
    assert run(roster, strategy=Strategy.LEAST_LOADED).chosen_id == "eng-song"


def test_grab_pool_offers_the_top_n_with_a_best_score_fallback():
    d = run(shanghai_roster(), strategy=Strategy.GRAB_POOL, top_n=2)
    assert d.outcome is DispatchOutcome.OFFERED and d.chosen_id is None
    assert d.offers == ["eng-li", "eng-zhao"] and d.fallback_id == "eng-li"
    assert d.explanation.startswith("offered to 2 of 3 qualified (Li Wei ")
    assert "if nobody claims, Li Wei: nearest qualified" in d.explanation
    best = run(shanghai_roster())
    assert d.fallback_id == best.chosen_id
    assert run(shanghai_roster(), strategy=Strategy.GRAB_POOL, top_n=10).offers == [s.id for s in best.ranked]


def test_declined_engineers_are_excluded():
    d = run(shanghai_roster(), excluded=["eng-li"])
    assert d.chosen_id == "eng-zhao" and d.rejections["excluded"] == 1


def test_backups_apply_when_nobody_qualifies():
    roster = shanghai_roster()
    roster[3] = roster[3].model_copy(update={"available": False})
    d = run(roster, required_skills={"boiler": 1}, backups=["eng-gone", "eng-wang", "eng-huang", "eng-song"])
    assert d.outcome is DispatchOutcome.BACKUP and d.chosen_id == "eng-huang"
    assert d.explanation.startswith(
        "Huang Min: 3rd backup (skipped eng-gone: not in roster; eng-wang: unavailable), "
        "0.0 km away, load 0/5, no boiler skill — "
    )
    assert d.explanation.endswith("nobody qualified among 5 (region 1, skills 5, availability 1)")
    d = run(roster, required_skills={"boiler": 1}, backups=["eng-li"], excluded=["eng-li"])
    assert d.outcome is DispatchOutcome.NONE and d.chosen_id is None
    assert "no backup available (eng-li: excluded)" in d.explanation
    # backups are a fallback: they never override a qualified candidate
    assert run(roster, backups=["eng-song"]).chosen_id == "eng-li"


def test_no_candidates_gives_clear_reason_counts():
    d = decide(CandidatePool.build([]), repair())
    assert d.outcome is DispatchOutcome.NONE and d.rejections == {} and d.considered == 0
    assert d.explanation == "nobody qualified among 0 (no candidates)"
    roster = shanghai_roster()
    roster[1] = roster[1].model_copy(update={"load": 9})
    d = run(roster, required_skills={"compressor": 4}, max_distance_km=10, excluded=["eng-li"])
    assert d.outcome is DispatchOutcome.NONE
    assert d.rejections == {"region": 1, "skills": 1, "capacity": 1, "excluded": 1, "distance": 2}
    assert d.explanation == "nobody qualified among 5 (region 1, skills 1, capacity 1, excluded 1, distance 2)"


def test_extra_criteria_and_negative_weights():
    roster = [
        engineer("a", skills={"x": 3}, features={"rating": 4.9, "cost": 300}),
        engineer("b", skills={"x": 3}, features={"rating": 4.1, "cost": 120}),
        engineer("c", skills={"x": 3}),  # no features: worst on both
    ]
    pool = CandidatePool.build(roster)
    ask = dict(region="east", required_skills={"x": 1})
    assert decide(pool, DispatchRequest(**ask, weights={"rating": 1})).chosen_id == "a"
    d = decide(pool, DispatchRequest(**ask, weights={"cost": -1, "rating": 0.1}))
    assert d.chosen_id == "b"
    assert d.chosen.contributions == pytest.approx({"cost": -0.0, "rating": 0.0})
    assert d.ranked[-1].id == "a" and d.ranked[-1].contributions["cost"] == pytest.approx(-1 / 1.1)
    # an unknown criterion counts in the normalisation but scores nobody
    d = decide(pool, DispatchRequest(**ask, weights={"rating": 1, "no-such": 1}))
    assert d.chosen_id == "a" and d.chosen.score == pytest.approx(0.5)


def test_with_state_updates_loads_without_a_rebuild():
    pool = CandidatePool.build(shanghai_roster())
    busier = pool.with_state(loads={"eng-li": 5, "nobody": 1})
    assert decide(pool, repair()).chosen_id == "eng-li"
    assert decide(busier, repair()).chosen_id == "eng-zhao"
    assert busier.skills is pool.skills and pool.load[pool.index["eng-li"]] == 2
    assert decide(pool.with_state(available={"eng-li": False}), repair()).chosen_id == "eng-zhao"


def test_roster_order_does_not_matter_and_decisions_round_trip_as_json():
    roster = shanghai_roster()
    want = run(roster, strategy="grab_pool")
    for seed in range(5):
        random.Random(seed).shuffle(roster)
        assert run(roster, strategy="grab_pool") == want
    assert DispatchDecision.model_validate_json(want.model_dump_json()) == want
    with pytest.raises(ValueError, match="duplicate"):
        CandidatePool.build(roster + roster[:1])


def test_a_decision_over_10000_candidates_is_fast():
    rng = random.Random(7)
    roster = [random_candidate(rng, f"e{i:05d}", features=15) for i in range(10_000)]
    pool = CandidatePool.build(roster)
    requests = [random_request(rng, roster) for _ in range(50)]
    decide(pool, requests[0])
    took = []
    for r in requests:
        began = time.perf_counter()
        decide(pool, r)
        took.append(time.perf_counter() - began)
    assert sorted(took)[len(took) // 2] < 0.02  # ~1 ms here; bench/dispatch.py has the real figures


# -- the reference implementation ---------------------------------------------------------


def reference(roster: list[Candidate], req: DispatchRequest, calendars=None) -> dict:
    """The same rules as domain/dispatch.py, one candidate at a time, no numpy."""
    people = sorted(roster, key=lambda c: c.id)
    rule = next((r for r in req.tier_rules if r.tier == req.customer_tier), None) if req.customer_tier else None

    def meets(c: Candidate) -> bool:
        senior = rule.min_seniority is not None and c.seniority >= rule.min_seniority
        return senior or any(r in c.roles for r in rule.roles)

    def available(c: Candidate) -> bool:
        if not c.available:
            return False
        if req.at is not None:
            if any(p.start <= req.at < p.end for p in c.out_of_office):
                return False
            if c.calendar and not is_working_time(calendars[c.calendar], req.at):
                return False
        return True

    def distance(c: Candidate) -> float | None:
        if req.location is None or c.home is None:
            return None
        return haversine_km(req.location.lat, req.location.lon, c.home.lat, c.home.lon)

    fails: Counter[str] = Counter()
    ok_avail, ok_excl, qualified = {}, {}, []
    for c in people:
        failed = []
        if c.region != req.region:
            failed.append("region")
        if req.teams and c.team not in req.teams:
            failed.append("team")
        if req.roles and not any(r in c.roles for r in req.roles):
            failed.append("role")
        if any(c.skills.get(s, 0) < lvl for s, lvl in req.required_skills.items()):
            failed.append("skills")
        if rule is not None and rule.mode == "require" and not meets(c):
            failed.append("tier")
        ok_avail[c.id] = available(c)
        if not ok_avail[c.id]:
            failed.append("availability")
        if c.load >= c.capacity:
            failed.append("capacity")
        ok_excl[c.id] = c.id not in req.excluded
        if not ok_excl[c.id]:
            failed.append("excluded")
        if req.max_distance_km is not None:
            d = distance(c)
            if d is None or d > req.max_distance_km:
                failed.append("distance")
        fails.update(failed)
        if not failed:
            qualified.append(c)

    weights = dict(req.weights)
    if rule is not None and rule.mode == "prefer":
        weights.setdefault("tier", rule.weight)
    weights = {k: v for k, v in weights.items() if v != 0}
    total = sum(abs(v) for v in weights.values()) or 1.0
    lo, hi = {}, {}
    for c in people:
        for f, v in c.features.items():
            lo[f], hi[f] = min(lo.get(f, v), v), max(hi.get(f, v), v)
    known_skills = {s for c in people for s in c.skills}

    def score(c: Candidate) -> float:
        s = 0.0
        for k, w in weights.items():
            if k == "distance":
                d = distance(c)
                v = 0.0 if d is None else 1 / (1 + d / req.distance_scale_km)
            elif k == "load":
                v = 1 - min(c.load / max(c.capacity, 1), 1)
            elif k == "skill":
                need = req.required_skills
                if need and all(s in known_skills for s in need):
                    v = sum(c.skills.get(s, 0) for s in need) / (MAX_LEVEL * len(need))
                else:
                    v = 0.0
            elif k == "seniority":
                v = c.seniority / MAX_LEVEL
            elif k == "tier":
                v = float(rule is not None and meets(c))
            elif k in c.features:
                v = (c.features[k] - lo[k]) / (hi[k] - lo[k]) if hi[k] > lo[k] else 1.0
            else:
                v = 0.0
            s += w / total * v
        return s

    scores = {c.id: score(c) for c in qualified}
    if req.strategy == Strategy.LEAST_LOADED:
        order = sorted(qualified, key=lambda c: (c.load, -scores[c.id], c.id))
    elif req.strategy == Strategy.ROUND_ROBIN:
        cur = req.round_robin_cursor
        after = [c for c in qualified if cur is None or c.id > cur]
        order = after + [c for c in qualified if c not in after]
    else:
        order = sorted(qualified, key=lambda c: (-scores[c.id], c.id))
    backup = None
    if not qualified:
        backup = next((b for b in req.backups if ok_avail.get(b) and ok_excl.get(b)), None)
    return {
        "rejections": {r: fails[r] for r in REJECTION_REASONS if fails[r]},
        "qualified": len(qualified),
        "ranked": [(c.id, scores[c.id], c.load) for c in order[: req.top_n]],
        "backup": backup,
    }


def assert_agrees(got: DispatchDecision, want: dict, strategy: Strategy) -> None:
    assert got.rejections == want["rejections"]
    assert got.qualified == want["qualified"]
    if not want["ranked"]:
        assert got.outcome is (DispatchOutcome.BACKUP if want["backup"] else DispatchOutcome.NONE)
        assert got.chosen_id == want["backup"]
        return
    assert len(got.ranked) == len(want["ranked"])
    for g, (wid, wscore, wload) in zip(got.ranked, want["ranked"], strict=True):
        assert (g.id, g.load) == (wid, wload)
        assert math.isclose(g.score, wscore, abs_tol=1e-9), (g, wid, wscore)
    if strategy is Strategy.GRAB_POOL:
        assert got.offers == [s.id for s in got.ranked] and got.fallback_id == got.ranked[0].id
    else:
        assert got.chosen_id == got.ranked[0].id


REGIONS, TEAMS = ["east", "south", "west"], ["alpha", "beta", "gamma"]
ROLES = ["engineer", "agent", "supervisor"]
SKILLS = ["compressor", "hvac", "boiler", "electrical", "plumbing", "it"]
BASE = datetime(2026, 11, 30, 0, 0, tzinfo=SH)


def near_shanghai(rng: random.Random, spread: float) -> GeoPoint:
    return GeoPoint(lat=31.2 + rng.gauss(0, spread), lon=121.45 + rng.gauss(0, spread))


def random_candidate(rng: random.Random, id: str, features: int = 5, calendars=()) -> Candidate:
    ooo = []
    if rng.random() < 0.2:
        start = BASE + timedelta(hours=rng.randint(-48, 120))
        ooo.append(Period(start=start, end=start + timedelta(hours=rng.randint(1, 72))))
    return Candidate(
        id=id,
        name=f"Engineer {id}",
        region=rng.choice(REGIONS),
        team=rng.choice(TEAMS),
        roles=rng.sample(ROLES, rng.randint(1, 2)),
        skills={s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(0, 4))},
        home=None if rng.random() < 0.1 else near_shanghai(rng, 0.15),
        capacity=rng.randint(0, 6),
        load=rng.randint(0, 7),
        available=rng.random() < 0.9,
        out_of_office=ooo,
        calendar=rng.choice([None, *calendars]) if calendars else None,
        seniority=rng.randint(1, 5),
        features={f"f{j}": rng.gauss(0, 10) for j in range(features) if rng.random() < 0.8},
    )


def random_request(rng: random.Random, roster: list[Candidate], features: int = 5) -> DispatchRequest:
    weights = {k: rng.choice([0, 0.1, 0.3, 1.0]) for k in ("distance", "load", "skill", "seniority")}
    weights |= {f"f{j}": rng.uniform(-1, 1) for j in rng.sample(range(features), rng.randint(0, features))}
    tier = rng.choice([None, None, "vip", "gold"])
    rules = [
        TierRule(
            tier="vip",
            min_seniority=rng.randint(2, 5),
            roles=["supervisor"],
            mode=rng.choice(["require", "prefer"]),
            weight=rng.uniform(0, 1),
        ),
        TierRule(tier="gold", roles=["supervisor", "agent"], mode="prefer"),
    ]
    ids = [c.id for c in roster]
    return DispatchRequest(
        region=rng.choice(REGIONS + ["north"] * (rng.random() < 0.05)),
        required_skills={s: rng.randint(1, 4) for s in rng.sample(SKILLS, rng.choice([0, 1, 1, 2]))},
        roles=rng.sample(ROLES, rng.randint(1, 2)) if rng.random() < 0.3 else [],
        teams=rng.sample(TEAMS, 2) if rng.random() < 0.2 else [],
        location=None if rng.random() < 0.2 else near_shanghai(rng, 0.1),
        max_distance_km=rng.choice([None, None, None, 15.0]),
        customer_tier=tier,
        tier_rules=rules,
        strategy=rng.choice(list(Strategy)),
        weights=weights,
        top_n=rng.randint(1, 8),
        excluded=rng.sample(ids, min(len(ids), rng.randint(0, 5))),
        backups=rng.sample(ids, min(len(ids), rng.randint(0, 3))) + ["ghost"] * (rng.random() < 0.2),
        round_robin_cursor=rng.choice([None, *ids[:20], "e"]),
        at=rng.choice([None, BASE + timedelta(minutes=rng.randint(-3000, 8000))]),
    )


def test_vectorised_decisions_agree_with_the_reference_on_random_rosters():
    calendars = {
        "office": BusinessCalendar.weekly("Asia/Shanghai", ["09:00-12:00", "13:00-18:00"], holiday_country="CN"),
        "always": BusinessCalendar.always_open("Asia/Shanghai"),
    }
    compared = Counter()
    for seed in range(60):
        rng = random.Random(seed)
        size = rng.randint(0, 250)
        roster = [random_candidate(rng, f"e{i:04d}", calendars=sorted(calendars)) for i in range(size)]
        pool = CandidatePool.build(roster, calendars)
        for _ in range(8):
            req = random_request(rng, roster)
            got = decide(pool, req)
            assert_agrees(got, reference(roster, req, calendars), req.strategy)
            compared[got.outcome] += 1
    # the random cases cover every outcome
    assert set(compared) == set(DispatchOutcome), compared


def test_builtin_criteria_names_are_stable():
    assert BUILTIN_CRITERIA == ("distance", "load", "skill", "seniority", "tier")
    assert sum(DEFAULT_WEIGHTS.values()) == pytest.approx(1.0)
