"""Demo customers for ``make run``: SLA tiers, 240 customers (people and companies) in the three
demo regions with their contact identities, 300-odd assets with warranties, 80 service
contracts, 400 orders from the ERP and the shop, and exchange rates.

Pure data, generated deterministically (``random.Random(11)``, dates relative to the fixed
``REFERENCE_DATE``): the same ids, phones, serials and QR codes on every run, so loading again
(``store/demo_customers.py``) inserts nothing. Never loaded in production.

The named fixtures at the top are what the README walkthrough and the tests rely on: the
walkthrough customer (a gold member in east with three referrals), their in-warranty compressor
``CMP-000001`` 19.6 km from eng-li's home with a gold labour contract ``SC-DEMO-0001``, a
south company billed in HKD and an east company's machine nothing covers any more.
"""

import base64
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo

from models.customer_tables import (
    Asset,
    Customer,
    CustomerIdentity,
    CustomerOrder,
    ExchangeRateRow,
    ServiceContract,
    SlaTier,
)
from models.demo import CENTRES, _scatter

SEED = 11
REFERENCE_DATE = date(2026, 12, 1)  # "today" of the generated dates (install dates, contract periods)
CUSTOMERS = 240
CONTRACTS = 80
ORDERS = 400
SERIAL_PATTERN = r"[A-Z]{2,4}-[0-9]{3,8}"  # templates/equipment_repair.yaml's device_id
_CHINA = ZoneInfo("Asia/Shanghai")

SLA_TIERS = [
    SlaTier(code="gold", name="Gold: response 1 h, resolution 8 h", response_minutes=60, resolution_minutes=480),
    SlaTier(code="silver", name="Silver: response 4 h, resolution 24 h", response_minutes=240, resolution_minutes=1440),
    SlaTier(
        code="standard", name="Standard: response 8 h, resolution 72 h", response_minutes=480, resolution_minutes=4320
    ),
]


def _at(day: date, hour: int = 10) -> datetime:
    """``hour`` o'clock China time on ``day``, in UTC."""
    return datetime.combine(day, time(hour), _CHINA).astimezone(UTC)


def _years_later(day: date, years: int) -> date:
    """The last day of a ``years``-long period starting on ``day`` (inclusive end)."""
    try:
        end = day.replace(year=day.year + years)
    except ValueError:  # 29 February
        end = day.replace(year=day.year + years, day=28)
    return end - timedelta(days=1)


def qr_code(serial: str) -> str:
    """The code printed in an asset's QR label: looks random, 20 base32 characters. Demo QR codes
    are derived from the serial and so are public knowledge, like the demo API keys; real assets
    get random codes."""
    return base64.b32encode(hashlib.sha256(f"ticketflow-demo-qr:{serial}".encode()).digest()).decode()[:20]


# --- named fixtures (README walkthrough, tests) ---

WALKTHROUGH_PHONE = "+8613800138000"
WALKTHROUGH_OPENID = "oDemo-walkthrough"
# 19.6 km due east of eng-li's home (31.2071, 121.4452 in models/demo.py): travel bills 10 km.
WALKTHROUGH_SITE = (31.2069, 121.6513)
WALKTHROUGH_CUSTOMER = Customer(
    id="cus_demo0001",
    kind="person",
    name="王建国",
    region="east",
    member_level="gold",
    referral_code="WANG8000",
    consent={"sms": True, "wechat": True},
    notes="Runs a small machining workshop in Pudong.",
    created_at=_at(date(2023, 3, 15)),
    updated_at=_at(date(2023, 3, 15)),
)
WALKTHROUGH_ASSET = Asset(
    id="ast_demo0001",
    customer_id=WALKTHROUGH_CUSTOMER.id,
    region="east",
    serial="CMP-000001",
    model="Screw air compressor SC-37 (37 kW)",
    qr_code=qr_code("CMP-000001"),
    site_address="上海市浦东新区唐镇唐安路588号 王记精工车间",
    lat=WALKTHROUGH_SITE[0],
    lon=WALKTHROUGH_SITE[1],
    installed_on=date(2026, 7, 1),
    warranty_end=date(2029, 6, 30),
    warranty_covers="parts",
    created_at=_at(date(2026, 7, 1)),
)
WALKTHROUGH_CONTRACT = ServiceContract(
    id="ctr_demo0001",
    number="SC-DEMO-0001",
    customer_id=WALKTHROUGH_CUSTOMER.id,
    asset_id=WALKTHROUGH_ASSET.id,
    covers_labour=True,
    covers_parts=False,
    sla_tier="gold",
    valid_from=date(2026, 7, 1),
    valid_to=date(2029, 6, 30),
    created_at=_at(date(2026, 6, 20)),
)
WALKTHROUGH_REFERRALS = 3  # customers referred by the walkthrough customer

# A south company billed in HKD: its cold room is out of warranty, a silver contract covers it all.
SOUTH_COMPANY = Customer(
    id="cus_demo0002",
    kind="company",
    name="深圳南方冷链物流有限公司",
    region="south",
    referral_code="NFLL2022",
    consent={"sms": True, "wechat": False, "email": True},
    billing_currency="HKD",
    created_at=_at(date(2022, 11, 2)),
    updated_at=_at(date(2022, 11, 2)),
)
SOUTH_PHONE = "+8613900139000"
SOUTH_ASSET = Asset(
    id="ast_demo0002",
    customer_id=SOUTH_COMPANY.id,
    region="south",
    serial="CR-000002",
    model="Cold-room condensing unit CU-10 (10 HP)",
    qr_code=qr_code("CR-000002"),
    site_address="深圳市宝安区福永街道凤塘大道66号 南方冷链3号冷库",
    lat=22.6742,
    lon=113.8425,
    installed_on=date(2022, 12, 15),
    warranty_end=date(2023, 12, 14),
    warranty_covers="labour_and_parts",
    created_at=_at(date(2022, 12, 15)),
)
SOUTH_CONTRACT = ServiceContract(
    id="ctr_demo0002",
    number="SC-DEMO-0002",
    customer_id=SOUTH_COMPANY.id,
    asset_id=None,
    covers_labour=True,
    covers_parts=True,
    sla_tier="silver",
    valid_from=date(2026, 1, 1),
    valid_to=date(2028, 12, 31),
    created_at=_at(date(2025, 12, 18)),
)

# An east company whose air handler is out of warranty and whose contract has expired: nothing covers it.
EAST_COMPANY = Customer(
    id="cus_demo0003",
    kind="company",
    name="华东精密制造有限公司",
    region="east",
    member_level="silver",
    referral_code="HDJM2023",
    consent={"sms": True, "wechat": True, "email": True},
    created_at=_at(date(2023, 1, 9)),
    updated_at=_at(date(2023, 1, 9)),
)
EAST_PHONE = "+8613700137000"
UNCOVERED_ASSET = Asset(
    id="ast_demo0003",
    customer_id=EAST_COMPANY.id,
    region="east",
    serial="AHU-000003",
    model="Air handling unit AH-20 (20,000 m³/h)",
    qr_code=qr_code("AHU-000003"),
    site_address="上海市闵行区莘庄工业区春中路368号 华东精密2号厂房",
    lat=31.0952,
    lon=121.3724,
    installed_on=date(2023, 4, 10),
    warranty_end=date(2024, 4, 9),
    warranty_covers="labour_and_parts",
    created_at=_at(date(2023, 4, 10)),
)
EXPIRED_CONTRACT = ServiceContract(
    id="ctr_demo0003",
    number="SC-DEMO-0003",
    customer_id=EAST_COMPANY.id,
    asset_id=None,
    covers_labour=True,
    covers_parts=True,
    sla_tier="silver",
    valid_from=date(2024, 4, 10),
    valid_to=date(2025, 4, 9),
    created_at=_at(date(2024, 4, 1)),
)
_FIXTURE_IDENTITIES = [
    (WALKTHROUGH_CUSTOMER, "phone", WALKTHROUGH_PHONE),
    (WALKTHROUGH_CUSTOMER, "wechat_openid", WALKTHROUGH_OPENID),
    (WALKTHROUGH_CUSTOMER, "wechat_unionid", "oDemo-walkthrough-union"),
    (SOUTH_COMPANY, "phone", SOUTH_PHONE),
    (SOUTH_COMPANY, "email", "service@nanfang-lenglian.example.com"),
    (EAST_COMPANY, "phone", EAST_PHONE),
    (EAST_COMPANY, "email", "facilities@huadong-jingmi.example.com"),
]

# --- word lists ---

_SURNAMES = [
    tuple(p.split(":"))
    for p in (
        "王:wang 李:li 张:zhang 刘:liu 陈:chen 杨:yang 黄:huang 赵:zhao 吴:wu 周:zhou 徐:xu 孙:sun 马:ma 朱:zhu "
        "胡:hu 郭:guo 何:he 高:gao 林:lin 罗:luo 郑:zheng 梁:liang 谢:xie 宋:song 唐:tang 韩:han 冯:feng 邓:deng "
        "曹:cao 彭:peng 曾:zeng 肖:xiao 田:tian 董:dong 潘:pan 袁:yuan 蔡:cai 蒋:jiang 余:yu 杜:du 叶:ye 程:cheng "
        "魏:wei 苏:su 丁:ding 沈:shen"
    ).split()
]
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉萍红鹏辉建国志文斌宁浩宇欣怡思雨佳博晨晓俊婷雪丹亮海林峰云凯琳慧"
)
_CITY = {"east": "上海", "south": "深圳", "north": "北京"}
_COMPANY_CORES = [
    tuple(p.split(":"))
    for p in (
        "恒通:hengtong 华盛:huasheng 永信:yongxin 宏达:hongda 瑞丰:ruifeng 鼎新:dingxin 联创:lianchuang "
        "天成:tiancheng 博远:boyuan 金泰:jintai 启明:qiming 安捷:anjie 嘉禾:jiahe 远航:yuanhang 盛源:shengyuan"
    ).split()
]
_INDUSTRIES = [
    tuple(p.split(":"))
    for p in (
        "精密制造:jingmi 冷链物流:lenglian 电子科技:dianzi 机械设备:jixie 食品:shipin 医药:yiyao "
        "塑胶制品:sujiao 汽车零部件:qipei 数据科技:shuju 印刷包装:baozhuang 酒店管理:jiudian 物业管理:wuye"
    ).split()
]
# district: roads (addresses are plausible, not geocoded: coordinates scatter ≤ 30 km around the centre)
_STREETS = {
    "east": {
        "浦东新区": "张江路 金科路 川沙路 康桥路",
        "闵行区": "虹梅南路 春中路 莘松路",
        "嘉定区": "曹安公路 嘉松北路 叶城路",
        "松江区": "沪松公路 九新公路 荣乐东路",
        "宝山区": "江场三路 友谊路 蕰川路",
        "徐汇区": "漕宝路 桂平路 宜山路",
    },
    "south": {
        "南山区": "科技园南路 深南大道 留仙大道",
        "宝安区": "宝安大道 福永大道 松白路",
        "龙岗区": "龙岗大道 布吉路 坂雪岗大道",
        "龙华区": "民治大道 梅龙大道 观澜大道",
        "福田区": "车公庙泰然九路 彩田路 福华路",
    },
    "north": {
        "朝阳区": "建国路 酒仙桥路 望京街",
        "海淀区": "中关村大街 上地信息路 西三旗路",
        "大兴区": "荣华中路 科创十三街 黄村西大街",
        "通州区": "新华大街 玉桥中路",
        "顺义区": "天竺空港工业区裕民大街 府前街",
    },
}
_HOME_ESTATES = "阳光花园 锦绣苑 翠湖园 金色家园 丽都小区 东方明珠苑 世纪新城 滨江花园".split()
# serial prefix, models, price range in CNY (whole yuan)
_INDUSTRIAL = [
    ("CMP", ["Screw air compressor SC-37 (37 kW)", "Screw air compressor SC-55 (55 kW)"], (60_000, 180_000)),
    (
        "CHL",
        ["Water-cooled screw chiller WC-300 (300 RT)", "Air-cooled scroll chiller AC-120 (120 RT)"],
        (300_000, 1_200_000),
    ),
    ("AHU", ["Air handling unit AH-20 (20,000 m³/h)", "Rooftop packaged unit RT-12 (12 RT)"], (80_000, 250_000)),
    ("CNC", ["CNC spindle SP-12K (12,000 rpm)", "Vertical machining centre VMC-850"], (20_000, 450_000)),
    ("GEN", ["Diesel generator set DG-200 (200 kVA)"], (120_000, 260_000)),
    ("UPS", ["Online UPS UP-60 (60 kVA)"], (40_000, 90_000)),
    ("CR", ["Cold-room condensing unit CU-10 (10 HP)"], (25_000, 60_000)),
]
_HOME = [
    ("AC", ["Split air conditioner KF-35 (1.5 HP)", "Ceiling cassette air conditioner KT-72 (3 HP)"], (2_500, 9_000)),
    ("HP", ["Air-source heat pump water heater HW-200"], (6_000, 15_000)),
    ("WP", ["Under-sink water purifier RO-600"], (1_500, 4_000)),
    ("CMP", ["Workshop piston compressor PC-3 (2.2 kW)"], (1_800, 3_500)),
]
_ERP_EXTRAS = [
    ("Spare parts: compressor air filter kit", (300, 2_500)),
    ("Annual preventive maintenance package", (8_000, 60_000)),
    ("Refrigerant R410A, 10 kg", (900, 1_800)),
    ("Spindle bearing set", (2_000, 12_000)),
    ("Control board replacement", (1_500, 9_000)),
]
_SHOP_EXTRAS = [
    ("Filter cartridge set", (80, 600)),
    ("Remote controller", (60, 200)),
    ("Extended warranty, 1 year", (199, 899)),
    ("Deep cleaning service voucher", (150, 400)),
]
_MOBILE_PREFIXES = (
    "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 173 175 176 177 178 "
    "180 181 182 183 185 186 187 188 189 191 199"
).split()
_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_OPAQUE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
# Approximate rates to turn CNY prices into the few customers' billing currencies.
_CNY_PER = {"USD": Decimal("7.12"), "HKD": Decimal("0.915")}
# Mid rates (1 unit = x CNY) on the first of each month; the loader's exchange_rate rows.
_MID_RATES = {
    date(2026, 9, 1): {"USD": "7.1250", "HKD": "0.9158"},
    date(2026, 10, 1): {"USD": "7.1180", "HKD": "0.9149"},
    date(2026, 11, 1): {"USD": "7.1342", "HKD": "0.9170"},
    date(2026, 12, 1): {"USD": "7.1045", "HKD": "0.9133"},
}


@dataclass(frozen=True)
class DemoCustomers:
    """Every demo row, in insertion order per table."""

    tiers: list[SlaTier]
    customers: list[Customer]
    identities: list[CustomerIdentity]
    assets: list[Asset]
    contracts: list[ServiceContract]
    orders: list[CustomerOrder]
    rates: list[ExchangeRateRow]


class _Gen:
    """One generation run: the random stream and every unique value already taken."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.taken: set[str] = {c.referral_code for c in (WALKTHROUGH_CUSTOMER, SOUTH_COMPANY, EAST_COMPANY)}
        self.taken |= {c.name for c in (WALKTHROUGH_CUSTOMER, SOUTH_COMPANY, EAST_COMPANY)}
        self.taken |= {value for _, _, value in _FIXTURE_IDENTITIES}
        self.taken |= {a.serial for a in (WALKTHROUGH_ASSET, SOUTH_ASSET, UNCOVERED_ASSET)}

    def unique(self, make: Callable[[], str]) -> str:
        value = make()
        while value in self.taken:
            value = make()
        self.taken.add(value)
        return value

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def day_between(self, first: date, last: date) -> date:
        return first + timedelta(days=self.rng.randint(0, max(0, (last - first).days)))

    def cents(self, low: int, high: int) -> Decimal:
        """A price between ``low`` and ``high`` whole units, to the cent."""
        return Decimal(self.rng.randint(low * 100, high * 100)) / 100

    def address(self, region: str) -> str:
        district = self.rng.choice(sorted(_STREETS[region]))
        road = self.rng.choice(_STREETS[region][district].split())
        return f"{_CITY[region]}市{district}{road}{self.rng.randint(1, 1500)}号"


def _identity(customer: Customer, kind: str, value: str, verified: bool = True) -> CustomerIdentity:
    return CustomerIdentity(
        customer_id=customer.id, kind=kind, value=value, verified=verified, created_at=customer.created_at
    )


# Which region the n-th generated customer is in: 2/5 east, 2/5 south, 1/5 north.
_REGION_CYCLE = ("east", "south", "east", "north", "south")
_FIRST_SIGNUP, _LAST_SIGNUP = date(2022, 9, 1), date(2026, 10, 15)


def _person(g: _Gen, n: int, region: str, created: datetime) -> tuple[Customer, list[CustomerIdentity]]:
    rng = g.rng
    surname, pinyin = rng.choice(_SURNAMES)
    name = g.unique(lambda: surname + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2)))))
    level = rng.choices([None, "silver", "gold", "platinum"], weights=(50, 28, 15, 7))[0]
    r = rng.random()
    consent = {} if r < 0.08 else {"sms": True, "wechat": r >= 0.2}
    phone = g.unique(lambda: f"+86{rng.choice(_MOBILE_PREFIXES)}{rng.randint(0, 99_999_999):08d}")
    ids = [("phone", phone, rng.random() < 0.9)]  # kind, value, verified
    if rng.random() < 0.4:
        domain = rng.choice(("example.com", "example.net", "example.org"))
        ids.append(("email", g.unique(lambda: f"{pinyin}.{rng.randint(1, 9999)}@{domain}"), rng.random() < 0.6))
        consent["email"] = rng.random() < 0.5
    if rng.random() < 0.65:
        ids.append(("wechat_openid", g.unique(lambda: "o" + g.chars(_OPAQUE_ALPHABET, 27)), True))
        if rng.random() < 0.5:
            ids.append(("wechat_unionid", g.unique(lambda: "o" + g.chars(_OPAQUE_ALPHABET, 27)), True))
    if rng.random() < 0.25:
        ids.append(("app_user", g.unique(lambda: f"u{rng.randint(10**7, 10**8 - 1)}"), True))
    customer = Customer(
        id=f"cus_demo{n:04d}",
        kind="person",
        name=name,
        region=region,
        member_level=level,
        referral_code=g.unique(lambda: g.chars(_CODE_ALPHABET, 8)),
        consent=consent,
        billing_currency="HKD" if region == "south" and rng.random() < 0.04 else None,
        created_at=created,
        updated_at=created,
    )
    return customer, [_identity(customer, kind, value, verified) for kind, value, verified in ids]


def _company(g: _Gen, n: int, region: str, created: datetime) -> tuple[Customer, list[CustomerIdentity]]:
    rng = g.rng
    while True:
        core, industry = rng.choice(_COMPANY_CORES), rng.choice(_INDUSTRIES)
        name = f"{_CITY[region]}{core[0]}{industry[0]}有限公司"
        if name not in g.taken:
            g.taken.add(name)
            break
    foreign = rng.random() < 0.15
    customer = Customer(
        id=f"cus_demo{n:04d}",
        kind="company",
        name=name,
        region=region,
        member_level=rng.choices([None, "silver", "gold"], weights=(60, 25, 15))[0],
        referral_code=g.unique(lambda: g.chars(_CODE_ALPHABET, 8)),
        consent={"sms": True, "wechat": False, "email": True},
        billing_currency=("HKD" if region == "south" else "USD") if foreign else None,
        language="en" if foreign and region != "south" else "zh",
        notes="Key account." if rng.random() < 0.3 else "",
        created_at=created,
        updated_at=created,
    )
    phone = g.unique(lambda: f"+86{rng.choice(_MOBILE_PREFIXES)}{rng.randint(0, 99_999_999):08d}")
    email = g.unique(lambda: f"service@{core[1]}-{industry[1]}-{n}.example.com")
    return customer, [_identity(customer, "phone", phone), _identity(customer, "email", email)]


def _asset(
    g: _Gen, n: int, customer: Customer, family: tuple[str, list[str], tuple[int, int]], site: tuple[str, float, float]
) -> Asset:
    rng = g.rng
    prefix, models, _ = family
    serial = g.unique(lambda: f"{prefix}-{rng.randint(1_000, 999_999):06d}")
    first = max(customer.created_at.date(), REFERENCE_DATE - timedelta(days=4 * 365) + timedelta(days=1))
    installed = g.day_between(first, REFERENCE_DATE - timedelta(days=7))
    years = rng.choices((1, 2, 3), weights=(4, 4, 2))[0]
    return Asset(
        id=f"ast_demo{n:04d}",
        customer_id=customer.id,
        region=customer.region,
        serial=serial,
        model=rng.choice(models),
        qr_code=qr_code(serial),
        site_address=site[0],
        lat=site[1],
        lon=site[2],
        installed_on=installed,
        warranty_end=_years_later(installed, years),
        warranty_covers=rng.choices(("labour_and_parts", "parts", "labour"), weights=(80, 15, 5))[0],
        created_at=_at(installed, 16),
    )


def _sites(g: _Gen, customer: Customer) -> list[tuple[str, float, float]]:
    """Where a customer's assets stand: a company's one or two plants, a person's home."""
    rng = g.rng
    if customer.kind == "company":
        short = customer.name.removeprefix(_CITY[customer.region])[:2]
        return [
            (f"{g.address(customer.region)} {short}{k}号厂房", *_scatter(rng, CENTRES[customer.region], 28.0))
            for k in range(1, rng.choice((1, 1, 2)) + 1)
        ]
    estate = rng.choice(_HOME_ESTATES)
    home = f"{g.address(customer.region)} {estate}{rng.randint(1, 30)}栋{rng.randint(101, 2804)}室"
    return [(home, *_scatter(rng, CENTRES[customer.region], 28.0))]


def _contract(
    g: _Gen, n: int, customer: Customer, asset: Asset | None, start: date, years: int, tier: str | None
) -> ServiceContract:
    covers = g.rng.choices(("both", "labour", "parts"), weights=(55, 35, 10))[0]
    return ServiceContract(
        id=f"ctr_demo{n:04d}",
        number=f"SC-DEMO-{n:04d}",
        customer_id=customer.id,
        asset_id=asset.id if asset is not None else None,
        covers_labour=covers != "parts",
        covers_parts=covers != "labour",
        sla_tier=tier,
        valid_from=start,
        valid_to=_years_later(start, years),
        created_at=_at(start - timedelta(days=g.rng.randint(3, 20))),
    )


def _contracts(g: _Gen, customers: list[Customer], assets: list[Asset]) -> list[ServiceContract]:
    """Every generated company gets a contract for all its assets (half of them after an expired
    one); per-asset contracts for people's devices make up the rest."""
    rng, out = g.rng, [WALKTHROUGH_CONTRACT, SOUTH_CONTRACT, EXPIRED_CONTRACT]
    for c in customers[3:]:
        if c.kind != "company":
            continue
        tier = rng.choices(("gold", "silver", "standard"), weights=(30, 50, 20))[0]
        start = g.day_between(REFERENCE_DATE - timedelta(days=2 * 365), REFERENCE_DATE - timedelta(days=30))
        if rng.random() < 0.5:
            out.append(_contract(g, len(out) + 1, c, None, _years_later(start, -1) + timedelta(days=1), 1, tier))
        out.append(_contract(g, len(out) + 1, c, None, start, rng.choice((1, 2, 3)), tier))
    people = {c.id: c for c in customers[3:] if c.kind == "person"}
    for a in rng.sample([a for a in assets if a.customer_id in people], CONTRACTS - len(out)):
        assert a.installed_on is not None
        start = g.day_between(a.installed_on, REFERENCE_DATE - timedelta(days=10))
        level = rng.choices(("standard", "silver", None), weights=(60, 30, 10))[0]
        out.append(_contract(g, len(out) + 1, people[a.customer_id], a, start, rng.choice((1, 2)), level))
    return out


def _in_currency(g: _Gen, customer: Customer, low: int, high: int) -> tuple[Decimal, str]:
    """A price drawn in CNY, in the customer's billing currency."""
    cny = g.cents(low, high)
    currency = customer.billing_currency or "CNY"
    amount = cny if currency == "CNY" else (cny / _CNY_PER[currency]).quantize(Decimal("0.01"))
    return amount, currency


def _order(
    g: _Gen, customer: Customer, placed: datetime, summary: str, price: tuple[int, int], asset: Asset | None
) -> CustomerOrder:
    rng, recent = g.rng, placed.date() > REFERENCE_DATE - timedelta(days=30)
    amount, currency = _in_currency(g, customer, *price)
    if customer.kind == "company" or (asset is not None and asset.serial.split("-")[0] in _ERP_PREFIXES):
        source = "erp"
        ref = g.unique(lambda: f"SO{placed:%Y%m}-{rng.randint(1, 99_999):05d}")
        status = rng.choice(("confirmed", "shipped")) if recent else rng.choice(("delivered", "invoiced", "closed"))
        data = {"plant": {"east": "SH01", "south": "SZ01", "north": "BJ01"}[customer.region]}
    else:
        source = "ecommerce"
        ref = g.unique(lambda: f"{placed:%y%m%d}{rng.randint(0, 99_999_999):08d}")
        status = (
            rng.choice(("paid", "shipped"))
            if recent
            else rng.choice(("completed",) * 6 + ("refunded", "return_requested"))
        )
        data = {"shop": rng.choice(("tmall", "jd", "official-store"))}
    return CustomerOrder(
        customer_id=customer.id,
        source=source,
        external_ref=ref,
        placed_at=placed,
        status=status,
        amount=amount,
        currency=currency,
        summary=summary,
        asset_id=asset.id if asset is not None else None,
        data=data,
    )


_ERP_PREFIXES = {prefix for prefix, _, _ in _INDUSTRIAL}
_PRICES = {(prefix, model): price for prefix, models, price in [*_INDUSTRIAL, *_HOME] for model in models}


def _orders(g: _Gen, customers: list[Customer], assets: list[Asset]) -> list[CustomerOrder]:
    """The purchase of about 60 % of the assets (a few days before installation), then spare
    parts, consumables and service packages up to ``ORDERS``."""
    rng, by_id, out = g.rng, {c.id: c for c in customers}, []
    for a in assets:
        if rng.random() < 0.6 and a.installed_on is not None:
            placed = _at(a.installed_on - timedelta(days=rng.randint(3, 20)), rng.randint(9, 21))
            price = _PRICES[(a.serial.split("-")[0], a.model)]
            out.append(_order(g, by_id[a.customer_id], placed, f"Purchase: {a.model}", price, a))
    while len(out) < ORDERS:
        c = rng.choice(customers)
        summary, price = rng.choice(_ERP_EXTRAS if c.kind == "company" else _SHOP_EXTRAS)
        placed = _at(g.day_between(c.created_at.date(), REFERENCE_DATE - timedelta(days=1)), rng.randint(8, 22))
        out.append(_order(g, c, placed, summary, price, None))
    return out


def _rates() -> list[ExchangeRateRow]:
    """Both directions of CNY/USD and CNY/HKD on the first of each month (source ``demo``)."""
    out = []
    for day, mids in _MID_RATES.items():
        as_of = datetime.combine(day, time(), UTC)
        for currency, mid in mids.items():
            rate = Decimal(mid)
            inverse = (1 / rate).quantize(Decimal("0.000001"))
            out.append(ExchangeRateRow(base=currency, quote="CNY", rate=rate, as_of=as_of, source="demo"))
            out.append(ExchangeRateRow(base="CNY", quote=currency, rate=inverse, as_of=as_of, source="demo"))
    return out


def build(seed: int = SEED) -> DemoCustomers:
    """Generate every demo row (pure: the same ``seed`` gives the same rows)."""
    g = _Gen(seed)
    rng = g.rng
    customers = [WALKTHROUGH_CUSTOMER, SOUTH_COMPANY, EAST_COMPANY]
    identities = [_identity(c, kind, value) for c, kind, value in _FIXTURE_IDENTITIES]
    assets = [WALKTHROUGH_ASSET, SOUTH_ASSET, UNCOVERED_ASSET]
    signup_days = (_LAST_SIGNUP - _FIRST_SIGNUP).days
    for n in range(len(customers) + 1, CUSTOMERS + 1):
        region = _REGION_CYCLE[n % len(_REGION_CYCLE)]
        created = _at(_FIRST_SIGNUP + timedelta(days=signup_days * n // CUSTOMERS), rng.randint(8, 22))
        customer, ids = (_company if n % 8 == 0 else _person)(g, n, region, created)
        customers.append(customer)
        identities += ids
        sites = _sites(g, customer)
        if customer.kind == "company":
            count, families = rng.randint(3, 8), _INDUSTRIAL
            weights = [1] * len(_INDUSTRIAL)
        else:
            count, families = rng.choices((0, 1, 2), weights=(2, 6, 2))[0], _HOME
            weights = [50, 20, 18, 12]
        for _ in range(count):
            family = rng.choices(families, weights=weights)[0]
            assets.append(_asset(g, len(assets) + 1, customer, family, rng.choice(sites)))
    _refer(g, customers)
    return DemoCustomers(
        tiers=SLA_TIERS,
        customers=customers,
        identities=identities,
        assets=assets,
        contracts=_contracts(g, customers, assets),
        orders=_orders(g, customers, assets),
        rates=_rates(),
    )


def _refer(g: _Gen, customers: list[Customer]) -> None:
    """Referrals point at an earlier customer of the same region (so they never form a cycle):
    the first three east people who signed up after the walkthrough customer are theirs, and
    about a fifth of the other people were referred by someone else."""
    mine = [
        c
        for c in customers[3:]
        if c.kind == "person" and c.region == "east" and c.created_at > WALKTHROUGH_CUSTOMER.created_at
    ][:WALKTHROUGH_REFERRALS]
    for c in mine:
        c.referred_by = WALKTHROUGH_CUSTOMER.id
    taken = {c.id for c in mine}
    for i, c in enumerate(customers):
        if i < 10 or c.kind != "person" or c.id in taken or g.rng.random() >= 0.2:
            continue
        earlier = [p for p in customers[3:i] if p.kind == "person" and p.region == c.region]
        if earlier:
            c.referred_by = g.rng.choice(earlier).id


@cache
def demo_customers() -> DemoCustomers:
    """The demo rows (generated once per process)."""
    return build(SEED)
