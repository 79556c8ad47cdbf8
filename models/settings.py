"""The one configuration class. Every value comes from a ``TICKETFLOW_*`` environment variable."""

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKETFLOW_", env_file=".env", extra="ignore")

    # Application database: SQLite file by default, PostgreSQL in production
    # (``postgresql+psycopg://user:pass@host:5432/db``).
    database_url: str = "sqlite:///.data/ticketflow.db"

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "tickets"
    # How long the API and the worker keep retrying to reach Temporal at start-up.
    temporal_connect_timeout_s: float = 60.0
    temporal_ui_url: str = "http://localhost:8233"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Accept ``X-Actor: <actor id>`` without an API key (development and trusted gateways).
    allow_actor_header: bool = True
    # Seconds an action (Temporal Update) may take before the API answers 504.
    action_timeout_s: float = 30.0

    # Worker: time in-flight activities get to finish on SIGINT/SIGTERM.
    worker_shutdown_grace_s: float = 30.0

    # Notifications: email over SMTP, SMS/IM through an HMAC-signed HTTP webhook.
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "ticketflow@localhost"
    webhook_url: str | None = None
    webhook_secret: str = "change-me"
    webhook_timeout_s: float = 10.0
    # Copy finance and legal on notifications about amounts above this threshold.
    notify_amount_threshold: str = "100000"
    finance_cc: list[str] = ["finance@localhost"]
    legal_cc: list[str] = ["legal@localhost"]

    log_level: str = "INFO"


@lru_cache
def get_settings() -> Settings:
    return Settings()
