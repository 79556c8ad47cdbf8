"""Alembic environment: the URL comes from settings (or ``-x url=…``), run synchronously."""

from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import models.channel_tables  # noqa: F401  (inbound channels, their deliveries)
import models.customer_message_tables  # noqa: F401  (customer messages: outbox, templates)
import models.customer_tables  # noqa: F401  (customers, assets, contracts, orders, rates)
import models.integration_tables  # noqa: F401  (business-system sources, mappings, events)
import models.inventory_tables  # noqa: F401
import models.link_tables  # noqa: F401  (links between tickets: duplicate of, related to, caused by)
import models.notifications_tables  # noqa: F401  (notification outbox, inbox, contact)
import models.schedule_tables  # noqa: F401  (maintenance plans and follow-ups: Temporal Schedules)
import models.settlement_tables  # noqa: F401  (price_rules, statement)
import models.subscription_tables  # noqa: F401  (webhook subscriptions and their deliveries)
import models.survey_tables  # noqa: F401  (satisfaction surveys)
import models.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
import models.tracking_tables  # noqa: F401  (customers' tracking links)
from models.db import sync_url
from models.settings import get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url")
    url = sync_url(url or get_settings().database_url)
    u = make_url(url)
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
