"""Demo reference data for ``make run``: three regions, the people of every preset's roles,
and a roster of field engineers with dispatch profiles (skills, home, capacity, hours, absences).

Loaded (idempotently) by ``python -m api.demo`` (``store/demo.py``) together with the preset
templates, never in production. Every demo actor's API key is ``demo-<actor id>``; it never expires, and loading
the demo again makes it work again (as it resets the demo people). The roster is generated deterministically
(``random.Random(7)``): the same ids, homes and skills on every run.
"""

import hashlib
import math
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.calendar import BusinessCalendar
from models.people import SKILLS, TEAMS, PersonFields
from models.tables import Actor, ApiKey, Region

_CN_WEEK = BusinessCalendar.weekly("Asia/Shanghai", ["09:00-12:00", "13:00-18:00"], "mon-fri", holiday_country="CN")
_SOUTH_WEEK = BusinessCalendar.weekly("Asia/Shanghai", "08:30-20:30", "mon-sat", holiday_country="CN")
CALENDARS = {"east": _CN_WEEK, "south": _SOUTH_WEEK, "north": _CN_WEEK}
REGIONS = [
    Region(code=code, name=name, timezone="Asia/Shanghai", calendar=CALENDARS[code].model_dump(mode="json"))
    for code, name in (
        ("east", "East China (Shanghai)"),
        ("south", "South China (Shenzhen)"),
        ("north", "North China (Beijing)"),
    )
]
# City centres the engineers' homes are scattered around (lat, lon).
CENTRES = {"east": (31.2304, 121.4737), "south": (22.5431, 114.0579), "north": (39.9042, 116.4074)}

# id, name, roles, regions, manager
_ACTORS = [
    ("admin", "Ops Admin", ["admin"], ["*"], None),
    ("gm-zheng", "Zheng Hao (general manager)", ["general_manager"], ["*"], None),
    ("mgr-sun", "Sun Li (manager, east)", ["manager"], ["east"], "gm-zheng"),
    ("mgr-luo", "Luo Yan (manager, south)", ["manager"], ["south"], "gm-zheng"),
    ("sup-zhou", "Zhou Qiang (supervisor, east)", ["supervisor"], ["east"], "mgr-sun"),
    ("agent-wang", "Wang Fang (agent, east)", ["agent"], ["east"], "mgr-sun"),
    ("agent-chen", "Chen Jie (agent, south)", ["agent"], ["south"], "mgr-luo"),
    ("eng-li", "Li Wei (engineer, east)", ["engineer"], ["east"], "sup-zhou"),
    ("eng-zhao", "Zhao Lei (engineer, east)", ["engineer"], ["east"], "sup-zhou"),
    ("eng-huang", "Huang Min (engineer, south)", ["engineer"], ["south"], "mgr-luo"),
    ("fin-qian", "Qian Yu (finance)", ["finance"], ["*"], "gm-zheng"),
    ("legal-wu", "Wu Jing (legal)", ["legal"], ["*"], "gm-zheng"),
    ("qc-ma", "Ma Tao (quality check, east)", ["qc"], ["east"], "mgr-sun"),
    ("wh-xu", "Xu Bo (warehouse, east)", ["warehouse"], ["east"], "mgr-sun"),
    ("lg-he", "He Ping (logistics, east)", ["logistics"], ["east"], "mgr-sun"),
    ("sales-gao", "Gao Min (sales, east)", ["sales"], ["east"], "mgr-sun"),
    ("tmpl-admin", "Process designer", ["process_admin"], ["*"], None),
    ("gateway-qr", "QR / bot / web channel gateway", ["channel"], ["*"], None),
    ("gateway-erp", "ERP and e-commerce event gateway", ["channel"], ["*"], None),
    ("mgr-feng", "Feng Rui (manager, north)", ["manager"], ["north"], "gm-zheng"),
    ("sup-lin", "Lin Tao (supervisor, south)", ["supervisor"], ["south"], "mgr-luo"),
    ("sup-guo", "Guo Jun (supervisor, north)", ["supervisor"], ["north"], "mgr-feng"),
    ("hr-tang", "Tang Li (HR)", ["hr"], ["*"], "gm-zheng"),
]
SUPERVISORS = {"east": "sup-zhou", "south": "sup-lin", "north": "sup-guo"}

# Dispatch profiles of the named people (the generated engineers get theirs below).
_PROFILES: dict[str, dict[str, Any]] = {
    "eng-li": {
        "team": "field-service",
        "skills": {"equipment_repair": 4, "installation": 3, "electrical": 3},
        "home_lat": 31.2071,
        "home_lon": 121.4452,
        "capacity": 8,
        "seniority": 3,
        "features": {"rating": 4.5},
    },
    "eng-zhao": {
        "team": "field-service",
        "skills": {"equipment_repair": 3, "hvac": 4, "refrigeration": 3},
        "home_lat": 31.2718,
        "home_lon": 121.5226,
        "capacity": 6,
        "seniority": 2,
        "features": {"rating": 4.2},
    },
    "eng-huang": {
        "team": "field-service",
        "skills": {"equipment_repair": 4, "installation": 4, "network": 2},
        "home_lat": 22.5512,
        "home_lon": 114.0967,
        "capacity": 8,
        "seniority": 4,
        "features": {"rating": 4.7},
    },
}


def demo_api_key(actor_id: str) -> str:
    return f"demo-{actor_id}"


# --- the generated engineer roster ---

ENGINEERS_PER_REGION = 22
_SURNAMES = [
    "Zhang",
    "Wang",
    "Liu",
    "Chen",
    "Yang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Lin",
    "Luo",
    "Gao",
    "Liang",
    "Zheng",
    "Xie",
    "Song",
    "Tang",
    "Han",
    "Feng",
    "Deng",
    "Cao",
]
_GIVEN = [
    "Wei",
    "Fang",
    "Min",
    "Jing",
    "Lei",
    "Jun",
    "Yang",
    "Yong",
    "Yan",
    "Jie",
    "Tao",
    "Ming",
    "Chao",
    "Xiu",
    "Xia",
    "Ping",
    "Gang",
    "Hui",
    "Bin",
    "Peng",
    "Hua",
    "Dan",
    "Hong",
    "Long",
    "Qiang",
    "Ning",
    "Rui",
    "Kai",
]
_SENIORITY_WEIGHTS = (20, 32, 30, 12, 6)  # levels 1..5: a few seniors
_KM_PER_DEG = 111.32


def _scatter(rng: random.Random, centre: tuple[float, float], radius_km: float = 30.0) -> tuple[float, float]:
    """A point uniformly within ``radius_km`` of ``centre``."""
    distance, bearing = radius_km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    lat = centre[0] + distance * math.cos(bearing) / _KM_PER_DEG
    lon = centre[1] + distance * math.sin(bearing) / (_KM_PER_DEG * math.cos(math.radians(centre[0])))
    return round(lat, 4), round(lon, 4)


def _engineer(rng: random.Random, taken: set[str], region: str, i: int, k: int) -> tuple[str, str, dict[str, Any]]:
    """The i-th (1-based) engineer of a region, k-th overall: id, name, profile."""
    team = TEAMS[(0, 0, 1, 2)[i % 4]]  # half field service, a quarter each installation and HVAC
    seniority = rng.choices(range(1, 6), weights=_SENIORITY_WEIGHTS)[0]
    wanted = []
    if i % 6 != 5:  # 19 of 22 per region
        wanted.append("equipment_repair")
    if team == "installation" or i % 2 == 0:
        wanted.append("installation")
    if team == "hvac":
        wanted.append("hvac")
    others = [s for s in SKILLS if s not in wanted]
    rng.shuffle(others)
    count = max(len(wanted), rng.randint(2, 4))
    skills = {s: min(5, max(1, seniority + rng.choice((-1, 0, 0, 1)))) for s in [*wanted, *others][:count]}
    lat, lon = _scatter(rng, CENTRES[region])
    profile: dict[str, Any] = {
        "team": team,
        "groups": ["on-call"] if i % 5 == 0 else [],
        "skills": skills,
        "home_lat": lat,
        "home_lon": lon,
        "capacity": rng.randint(3, 8),
        "seniority": seniority,
        "features": {"rating": round(rng.uniform(3.0, 5.0), 1)},
    }
    if i % 3 == 1:  # about a third work their region's hours; the others are available at any time
        profile["working_hours"] = CALENDARS[region].model_dump(mode="json")
    if i in (4, 15):  # a few absences, fixed dates (Dec 2026, spring/summer 2027)
        year, month = (2026, 12) if i == 4 else (2027, 3 + k % 6)
        start = datetime(year, month, 1 + (k * 7) % 25, tzinfo=ZoneInfo("Asia/Shanghai"))
        end = start + timedelta(days=3 + k % 8)
        profile["out_of_office"] = [{"start": start.isoformat(), "end": end.isoformat()}]
    name = f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}"
    while name in taken:
        name = f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}"
    taken.add(name)
    return f"eng-{region[0]}{i:02d}", f"{name} (engineer, {region})", profile


def _roster() -> list[tuple[str, str, list[str], list[str], str | None, dict[str, Any]]]:
    rng, taken = random.Random(7), {"Li Wei", "Zhao Lei", "Huang Min"}
    out = []
    for r, region in enumerate(("east", "south", "north")):
        for i in range(1, ENGINEERS_PER_REGION + 1):
            eid, name, profile = _engineer(rng, taken, region, i, r * ENGINEERS_PER_REGION + i)
            out.append((eid, name, ["engineer"], [region], SUPERVISORS[region], profile))
    return out


def _actor(
    actor_id: str, name: str, roles: list[str], regions: list[str], manager: str | None, profile: dict[str, Any]
) -> Actor:
    """An actor whose profile went through the same validation as ``POST /people``."""
    fields = PersonFields.model_validate(
        {"name": name, "roles": roles, "regions": regions, "manager_id": manager, **profile}
    )
    return Actor(id=actor_id, **fields.columns())


def demo_key_id(actor_id: str) -> str:
    """The public id of a demo key: the same on every load."""
    return f"key_demo{hashlib.sha256(actor_id.encode()).hexdigest()[:16]}"


def demo_keys(now: datetime) -> list[dict[str, Any]]:
    """The ``api_key`` rows of every demo person's ``demo-<id>`` key."""
    return [
        {
            "id": demo_key_id(a.id),
            "actor_id": a.id,
            "key_hash": ApiKey.hash(demo_api_key(a.id)),
            "label": "demo data",
            "created_at": now,
            "created_by": "demo-loader",
            "expires_at": None,
            "revoked_at": None,
        }
        for a in ACTORS
    ]


ACTORS = [
    *(_actor(i, n, r, g, m, _PROFILES.get(i, {})) for i, n, r, g, m in _ACTORS),
    *(_actor(*row) for row in _roster()),
]
