"""``python -m api.demo``: load the demo data and publish every preset template in templates/.

Idempotent: a preset whose content did not change publishes no new version.
"""

import asyncio
from pathlib import Path

from api.services import templates
from models import demo
from models.demo_pricing import load_demo_pricing
from models.inventory import load_demo_inventory
from models.db import Database
from models.settings import get_settings
from models.ticket import ActorRef

PRESETS = Path(__file__).resolve().parent.parent / "templates"
DESIGNER = ActorRef(id="tmpl-admin", roles=["process_admin"], regions=["*"])


async def publish_presets(db: Database, folder: Path = PRESETS) -> list[tuple[str, int, bool]]:
    published = []
    async with db.session() as session:
        for path in sorted(folder.glob("*.yaml")):
            version, new = await templates.publish(session, DESIGNER, templates.parse_yaml(path.read_text()))
            published.append((version.key, version.version, new))
    return published


async def load_all(db: Database) -> list[tuple[str, int, bool]]:
    await demo.load(db)
    await load_demo_inventory(db)
    await load_demo_pricing(db)
    return await publish_presets(db)


async def _main() -> None:
    db = Database(get_settings().database_url)
    published = await load_all(db)
    await db.dispose()
    print(f"demo data: {len(demo.REGIONS)} regions, {len(demo.ACTORS)} actors")
    for key, version, new in published:
        print(f"  template {key} v{version}" + (" (published)" if new else ""))


if __name__ == "__main__":
    asyncio.run(_main())
