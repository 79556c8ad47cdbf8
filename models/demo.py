"""Demo reference data for ``make run``: two regions and the people of every preset's roles.

Loaded (idempotently) by ``python -m api.demo`` together with the preset templates.
Every demo actor's API key is ``demo-<actor id>``.
"""

import hashlib

from models.db import Database
from models.calendar import BusinessCalendar
from models.tables import Actor, Region

_CN_WEEK = BusinessCalendar.weekly("Asia/Shanghai", ["09:00-12:00", "13:00-18:00"], "mon-fri", holiday_country="CN")
REGIONS = [
    Region(code="east", name="East China (Shanghai)", timezone="Asia/Shanghai", calendar=_CN_WEEK.model_dump(mode="json")),
    Region(
        code="south",
        name="South China (Shenzhen)",
        timezone="Asia/Shanghai",
        calendar=BusinessCalendar.weekly("Asia/Shanghai", "08:30-20:30", "mon-sat", holiday_country="CN").model_dump(
            mode="json"
        ),
    ),
]

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
]


def demo_api_key(actor_id: str) -> str:
    return f"demo-{actor_id}"


ACTORS = [
    Actor(
        id=i,
        name=n,
        roles=r,
        regions=g,
        manager_id=m,
        api_key_hash=hashlib.sha256(demo_api_key(i).encode()).hexdigest(),
    )
    for i, n, r, g, m in _ACTORS
]


async def load(db: Database) -> None:
    """Regions and actors (the templates are published by ``python -m api.demo``)."""
    async with db.session() as session:
        for row in [*REGIONS, *ACTORS]:
            await session.merge(row.model_copy())
        await session.commit()
