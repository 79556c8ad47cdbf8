"""``python -m api.demo``: load the demo data and publish every preset template in templates/.

Idempotent: a preset whose content did not change publishes no new version. Refused when
``TICKETFLOW_ENVIRONMENT=production``: the demo keys (``demo-<id>``) are public knowledge.
There, ``python -m api.demo --revoke-demo-keys`` revokes any that still work (the API will
not start in production while one does).
"""

import argparse
import asyncio
import sys
from pathlib import Path

import store.channels
import store.demo
import store.demo_customers
from api.services import audit, channel_registry, identity, integrations, templates
from api.services.message_templates import load_message_templates
from models import demo
from models.channels import ChannelPut
from models.db import Database
from models.settings import Settings, get_settings
from models.ticket import ActorRef

PRESETS = Path(__file__).resolve().parent.parent / "templates"
DEMO_SOURCES = [p.stem for p in sorted((PRESETS / "mappings").glob("*.yaml"))]
DESIGNER = ActorRef(id="tmpl-admin", roles=["process_admin"], regions=["*"])
ADMIN = ActorRef(id="admin", roles=["admin"], regions=["*"])
LOADER = "demo-loader"  # the credential the audit log names for what this script changes


async def publish_presets(db: Database, folder: Path = PRESETS) -> list[tuple[str, int, bool]]:
    published = []
    with audit.acting_as(DESIGNER.id, LOADER):
        async with db.session() as session:
            for path in sorted(folder.glob("*.yaml")):
                version, new = await templates.publish(session, DESIGNER, templates.parse_yaml(path.read_text()))
                published.append((version.key, version.version, new))
    return published


# Demo channels and business-system sources, with secrets as public as the demo keys (the README
# walkthrough signs with them): code → (settings, secret).
DEMO_CHANNELS = {
    "qr-demo": {"kind": "qr_form", "name": "QR sticker form (demo)", "default_ticket_type": "equipment_repair"},
    "wechat-demo": {"kind": "wechat", "name": "WeChat official account (demo)", "default_ticket_type": "general"},
    "app-demo": {"kind": "app", "name": "Customer app (demo)"},
}


def demo_secret(code: str) -> str:
    """The demo secret of a demo channel or source (public knowledge: never in production)."""
    return f"demo-secret-{code}-public-knowledge"


async def load_channels(db: Database) -> list[tuple[str, bool]]:
    """Register the demo channels that are not registered yet (their settings otherwise stay)."""
    loaded = []
    with audit.acting_as(ADMIN.id, LOADER):
        async with db.session() as session:
            for code, settings in DEMO_CHANNELS.items():
                if await store.channels.get(session, code) is not None:
                    loaded.append((code, False))
                    continue
                body = ChannelPut(actor_id="gateway-qr", default_region="east", **settings)
                await channel_registry.put_channel(session, ADMIN, code, body, secret=demo_secret(code))
                loaded.append((code, True))
    return loaded


async def load_all(db: Database) -> list[tuple[str, int, bool]]:
    await store.demo.load_people(db)
    await store.demo.load_inventory(db)
    await store.demo.load_pricing(db)
    await store.demo_customers.load_customers(db)  # customers, assets, contracts, orders, rates
    published = await publish_presets(db)
    await load_message_templates(db)  # customer message texts (templates/messages/*.yaml)
    await load_channels(db)
    sources = await integrations.load_presets(db, secrets={code: demo_secret(code) for code in DEMO_SOURCES})
    print(f"demo channels: {', '.join(DEMO_CHANNELS)}; business sources: {', '.join(s[0] for s in sources)}")
    return published


async def revoke_demo_keys(db: Database) -> list[str]:
    """Revoke every demo key that still works; the ids of the people who held one."""
    async with db.session() as session:
        keys = await identity.revoke_demo_keys(session)
        for key in keys:
            audit.record(
                session,
                "system",
                "api_key.revoke",
                "person",
                key.actor_id,
                {"key_id": key.id, "label": key.label},
                {"reason": "demo key"},
            )
        await session.commit()
    return sorted({k.actor_id for k in keys})


async def _main(settings: Settings, revoke: bool) -> None:
    db = Database(settings.database_url, settings.db_statement_timeout_ms)
    try:
        if revoke:
            with audit.acting_as("system", LOADER):
                holders = await revoke_demo_keys(db)
            print(f"revoked the demo keys of {len(holders)} people" + (f": {', '.join(holders)}" if holders else ""))
            return
        published = await load_all(db)
    finally:
        await db.dispose()
    print(f"demo data: {len(demo.REGIONS)} regions, {len(demo.ACTORS)} actors")
    for key, version, new in published:
        print(f"  template {key} v{version}" + (" (published)" if new else ""))


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--revoke-demo-keys", action="store_true", help="revoke every demo-<id> key that still works (any environment)"
    )
    args = parser.parse_args(argv)
    settings = settings or get_settings()
    if settings.environment == "production" and not args.revoke_demo_keys:
        print(
            "refusing to load demo data in production (TICKETFLOW_ENVIRONMENT=production): its API keys "
            "(demo-<person id>) are public",
            file=sys.stderr,
        )
        return 2
    asyncio.run(_main(settings, args.revoke_demo_keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
