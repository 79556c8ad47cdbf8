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

import store.demo
import store.demo_customers
from api.services import audit, identity, templates
from models import demo
from models.db import Database
from models.settings import Settings, get_settings
from models.ticket import ActorRef

PRESETS = Path(__file__).resolve().parent.parent / "templates"
DESIGNER = ActorRef(id="tmpl-admin", roles=["process_admin"], regions=["*"])
LOADER = "demo-loader"  # the credential the audit log names for what this script changes


async def publish_presets(db: Database, folder: Path = PRESETS) -> list[tuple[str, int, bool]]:
    published = []
    with audit.acting_as(DESIGNER.id, LOADER):
        async with db.session() as session:
            for path in sorted(folder.glob("*.yaml")):
                version, new = await templates.publish(session, DESIGNER, templates.parse_yaml(path.read_text()))
                published.append((version.key, version.version, new))
    return published


async def load_all(db: Database) -> list[tuple[str, int, bool]]:
    await store.demo.load_people(db)
    await store.demo.load_inventory(db)
    await store.demo.load_pricing(db)
    await store.demo_customers.load_customers(db)  # customers, assets, contracts, orders, rates
    return await publish_presets(db)


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
