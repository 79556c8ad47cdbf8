"""The one configuration class. Every value comes from a ``TICKETFLOW_*`` environment variable."""

import hashlib
import importlib.metadata
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Below this length a secret (signing key, webhook secret) is refused in production.
MIN_SECRET_LENGTH = 32

# The packages a worker runs (pyproject.toml's [tool.setuptools] packages): their source is its build.
_BUILD_PACKAGES = ("activities", "api", "domain", "models", "store", "workers", "workflows")


@lru_cache
def default_build_id() -> str:
    """``<package version>-<12 hex digits>``: the version alone names every build of a release
    alike, so the digits are a SHA-256 over the path and text of each ``.py`` file of the
    packages — the same for every replica of one image or checkout, different after any edit,
    and without git (an image has no ``.git``)."""
    try:
        version = importlib.metadata.version("ticketflow")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in _BUILD_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{version}-{digest.hexdigest()[:12]}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKETFLOW_", env_file=".env", extra="ignore")

    # "production" refuses weak or missing secrets and demo credentials at start-up;
    # "development" (``make run``) generates what is missing under ``data_dir``.
    environment: Literal["development", "production"] = "development"
    data_dir: str = ".data"

    # Application database: SQLite file by default, PostgreSQL in production
    # (``postgresql+psycopg://user:pass@host:5432/db``).
    database_url: str = "sqlite:///.data/ticketflow.db"
    # Longest a single SQL statement may run (PostgreSQL statement_timeout; SQLite busy wait).
    db_statement_timeout_ms: int = 5_000

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "tickets"
    # How long the API and the worker keep retrying to reach Temporal at start-up.
    temporal_connect_timeout_s: float = 60.0
    temporal_ui_url: str = "http://localhost:8233"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Seconds an action (Temporal Update) may take before the API answers 504. An action the
    # workflow has not accepted by then is refused by the workflow itself (it never applies late).
    action_timeout_s: float = 30.0

    # --- identity ---
    # Actions reach the workflow signed with this key (HMAC-SHA256), so the workflow can tell an
    # actor the API vouched for from one typed into the Temporal UI. Shared by API and workers.
    # Development: generated once into ``<data_dir>/action-signing.key`` when unset.
    action_signing_key: SecretStr | None = None
    action_signing_key_id: str = "k1"
    # Earlier keys still accepted for in-flight requests during a rotation: {key id: key}.
    action_signing_previous_keys: dict[str, SecretStr] = {}
    # OpenID Connect bearer tokens (JWT) beside API keys: all three set to turn it on.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    # Only asymmetric algorithms: "none" and HS* are always refused (no key confusion).
    oidc_algorithms: list[str] = ["RS256", "ES256"]
    # The token claim whose value is the person's id in Ticketflow (roles and regions come from
    # that person's record, never from the token).
    oidc_actor_claim: str = "sub"
    oidc_leeway_s: int = 30
    # API keys: lifetime when the issuer names none, and the longest allowed.
    api_key_default_ttl_days: int = 90
    api_key_max_ttl_days: int = 366

    # --- limits at the edge ---
    max_body_bytes: int = 1_000_000
    # Requests per minute per credential (API key or token; per client address without one);
    # 0 turns the limit off. ``rate_limit_burst`` requests may come at once.
    rate_limit_per_minute: int = 1_200
    rate_limit_burst: int = 200
    # Send Strict-Transport-Security (only behind HTTPS).
    hsts: bool = False

    # Worker: time in-flight activities get to finish on SIGINT/SIGTERM.
    worker_shutdown_grace_s: float = 30.0

    # --- Worker Versioning (docs/upgrading.md) ---
    # Off by default: an unversioned worker takes every task of its queue at once, so ``make run``
    # and the tests work on a fresh dev server with nothing to set. On, a worker is one version
    # (deployment name + build id) of a Worker Deployment and gets tasks only once that version is
    # made current (``python -m workers.versioning set-current``), so a release can run the new
    # build beside the old one and move tickets over (auto-upgrade) or drain the old (pinned).
    worker_versioning: bool = False
    # No "." (Temporal writes a version as "<deployment>.<build id>").
    deployment_name: str = Field(default="ticketflow", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
    # This build's id: deploys set TICKETFLOW_BUILD_ID (an image tag, a release number; required
    # in production with versioning). Default: the package version and a hash of the source the
    # worker runs (no git needed), so a changed workflow is never mistaken for the old build.
    build_id: str = Field(default_factory=default_build_id, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")
    # Development only: the worker makes its own version current once it polls (a lone
    # ``make run`` with versioning on); a release does that as its own step instead.
    worker_versioning_set_current: bool = False

    # Notifications: email over SMTP, SMS/IM through an HMAC-signed HTTP webhook.
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "ticketflow@localhost"
    webhook_url: str | None = None
    # Required with webhook_url (at least MIN_SECRET_LENGTH characters): no default secret.
    webhook_secret: SecretStr | None = None
    webhook_timeout_s: float = 10.0
    # Copy finance and legal on notifications about amounts above this threshold.
    notify_amount_threshold: str = "100000"
    finance_cc: list[str] = ["finance@localhost"]
    legal_cc: list[str] = ["legal@localhost"]

    # Customer tracking pages (docs/tracking.md): links expire after this many days; the address
    # customers reach the API at (links are built on it; None: the address a request came to).
    tracking_ttl_days: int = Field(default=30, ge=1, le=366)
    public_base_url: str | None = None
    # Attachments (photos, signatures): a local directory (default: <data_dir>/attachments) or an
    # S3-compatible bucket (docs/tracking.md); the largest file taken.
    attachments_backend: Literal["local", "s3"] = "local"
    attachments_dir: str | None = None
    attachment_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024)
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None  # None: AWS; else e.g. http://minio:9000
    s3_region: str | None = None
    s3_access_key_id: str | None = None  # None: boto3's own chain (AWS_* variables, an instance role…)
    s3_secret_access_key: SecretStr | None = None
    s3_url_ttl_s: int = 300  # how long a presigned GET URL works

    log_level: str = "INFO"

    # --- metrics and traces (docs/operations.md) ---
    # The API serves Prometheus metrics at /metrics (requests, latencies, outcomes by route and
    # action: counts only, never ids or ticket data); with ``metrics_token`` set a scrape needs
    # ``Authorization: Bearer <token>`` (else 401).
    api_metrics: bool = True
    metrics_token: SecretStr | None = None
    # The worker's business counters (tickets, SLA, dispatch, notifications, stock) and process
    # metrics: served on ``metrics_host:metrics_port`` (/metrics) when the port is set; the Temporal
    # SDK's own metrics (task latencies, slots, failures) on ``temporal_metrics_port`` when set.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    temporal_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Traces (OpenTelemetry): off by default. "otlp" exports to the collector the standard
    # OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT name (HTTP/protobuf;
    # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER are read too);
    # "console" prints spans (development).
    tracing: Literal["off", "otlp", "console"] = "off"

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        """``TICKETFLOW_METRICS_TOKEN=`` (docker-compose's empty default) means no token."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _secrets_present(self) -> "Settings":
        if self.webhook_url and (
            self.webhook_secret is None or len(self.webhook_secret.get_secret_value()) < MIN_SECRET_LENGTH
        ):
            raise ValueError(
                f"TICKETFLOW_WEBHOOK_SECRET of at least {MIN_SECRET_LENGTH} characters is required "
                "with TICKETFLOW_WEBHOOK_URL"
            )
        if self.metrics_port is not None and self.metrics_port == self.temporal_metrics_port:
            raise ValueError("TICKETFLOW_METRICS_PORT and TICKETFLOW_TEMPORAL_METRICS_PORT must differ")
        if self.metrics_token is not None and len(self.metrics_token.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"TICKETFLOW_METRICS_TOKEN must have at least {MIN_SECRET_LENGTH} characters")
        if self.worker_versioning_set_current and not self.worker_versioning:
            raise ValueError("TICKETFLOW_WORKER_VERSIONING_SET_CURRENT needs TICKETFLOW_WORKER_VERSIONING=true")
        if self.environment == "production" and self.worker_versioning:
            if self.worker_versioning_set_current:
                raise ValueError(
                    "TICKETFLOW_WORKER_VERSIONING_SET_CURRENT is for development: in production a release "
                    "makes a build current as its own step (docs/upgrading.md)"
                )
            if "build_id" not in self.model_fields_set:
                raise ValueError(
                    "TICKETFLOW_BUILD_ID is required in production with TICKETFLOW_WORKER_VERSIONING: the "
                    "release names the build it makes current (docs/upgrading.md)"
                )
        if self.environment == "production":
            key = self.action_signing_key
            if key is None or len(key.get_secret_value()) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"TICKETFLOW_ACTION_SIGNING_KEY of at least {MIN_SECRET_LENGTH} characters is "
                    "required in production"
                )
        return self

    def signing_keys(self) -> tuple[str, dict[str, bytes]]:
        """The key id actions are signed with now, and every key id accepted → key bytes.
        In development an unset key is generated once into ``<data_dir>/action-signing.key``
        (the API and the worker of ``make run`` share it)."""
        key = self.action_signing_key.get_secret_value() if self.action_signing_key else None
        if key is None:
            path = Path(self.data_dir) / "action-signing.key"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:  # another process wrote it first
                    pass
                else:
                    with os.fdopen(fd, "w") as out:
                        out.write(secrets.token_urlsafe(48))
            key = path.read_text().strip()
        keys = {kid: k.get_secret_value().encode() for kid, k in self.action_signing_previous_keys.items()}
        keys[self.action_signing_key_id] = key.encode()
        return self.action_signing_key_id, keys


@lru_cache
def get_settings() -> Settings:
    return Settings()
