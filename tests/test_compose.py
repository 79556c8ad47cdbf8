"""docker-compose.yml is valid and wired as docs/deploy.md says.

Only ``docker-compose config`` runs here (no Docker engine needed): it validates the file,
interpolates ``${VAR:-default}`` and prints the resolved YAML. Skipped without docker-compose,
except under CI=true, where a missing docker-compose is a failure.
"""

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = {
    "postgresql",
    "temporal",
    "temporal-ui",
    "temporal-admin-tools",
    "migrate",
    "api",
    "worker",
    "prometheus",
    "grafana",
}
SEARCH_ATTRIBUTES = [
    "TicketStatus",
    "TicketRegion",
    "TicketPriority",
    "TicketType",
    "TicketAssignee",
    "TicketSlaBreached",
    "TicketEscalation",
]


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is not on PATH (required when CI=true)")
        pytest.skip("docker-compose is not on PATH")
    return exe


SIGNING_KEY = "a-deployment-signing-key-of-32-chars-or-more"


@lru_cache
def _run_config(exe: str, signing_key: str | None = SIGNING_KEY) -> subprocess.CompletedProcess:
    # docker-compose 1.29 has no `config --format json`; its YAML output is parsed instead.
    env = {k: v for k, v in os.environ.items() if k not in ("COMPOSE_FILE", "TICKETFLOW_ACTION_SIGNING_KEY")}
    if signing_key is not None:
        env["TICKETFLOW_ACTION_SIGNING_KEY"] = signing_key
    return subprocess.run(
        [exe, "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )


def _config() -> dict:
    result = _run_config(_docker_compose())
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict) -> str:
    parts = [service.get("entrypoint") or [], service.get("command") or []]
    return " ".join(p if isinstance(p, str) else " ".join(map(str, p)) for p in parts)


def test_compose_config_is_valid():
    result = _run_config(_docker_compose())
    assert result.returncode == 0, result.stderr


def test_compose_has_all_services():
    services = _config()["services"]
    assert SERVICES <= set(services), f"missing: {SERVICES - set(services)}"


@pytest.mark.parametrize("name", ["api", "worker", "migrate"])
def test_app_services_are_configured_for_postgres_and_temporal(name):
    env = _env(_config()["services"][name])
    assert env.get("TICKETFLOW_DATABASE_URL", "").startswith("postgresql+psycopg://")
    assert env.get("TICKETFLOW_TEMPORAL_ADDRESS") == "temporal:7233"


def test_api_and_worker_wait_for_migrations_and_search_attributes():
    services = _config()["services"]
    for name in ("api", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["temporal-admin-tools"]["condition"] == "service_completed_successfully"


def test_admin_tools_registers_every_search_attribute():
    from models.search_attributes import ALL

    assert [key.name for key in ALL] == SEARCH_ATTRIBUTES  # keep this test in step with the code
    command = _command(_config()["services"]["temporal-admin-tools"])
    assert "search-attribute create" in command
    for name in SEARCH_ATTRIBUTES:
        assert name in command, f"{name} is not registered by temporal-admin-tools"


def test_worker_shutdown_fits_in_stop_grace_period():
    worker = _config()["services"]["worker"]
    grace = float(_env(worker)["TICKETFLOW_WORKER_SHUTDOWN_GRACE_S"])
    stop = worker["stop_grace_period"]
    assert stop.endswith("s") and float(stop[:-1]) > grace


def test_a_deployment_without_a_signing_key_is_refused():
    result = _run_config(_docker_compose(), signing_key=None)
    assert result.returncode != 0 and "TICKETFLOW_ACTION_SIGNING_KEY" in result.stderr


@pytest.mark.parametrize("name", ["api", "worker", "migrate"])
def test_app_services_run_in_production_with_the_shared_signing_key(name):
    env = _env(_config()["services"][name])
    assert env["TICKETFLOW_ENVIRONMENT"] == "production"
    assert env["TICKETFLOW_ACTION_SIGNING_KEY"] == SIGNING_KEY
    assert not any("ACTOR_HEADER" in k for k in env)


def test_the_temporal_ui_is_read_only_and_on_localhost_only():
    ui = _config()["services"]["temporal-ui"]
    assert _env(ui)["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
    for port in ui["ports"]:
        published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
        assert str(published).startswith("127.0.0.1:"), port
    assert "ports" not in _config()["services"]["temporal"]  # the frontend is not published


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_prometheus_and_grafana_are_on_localhost_only(name):
    for port in _config()["services"][name]["ports"]:
        published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
        assert str(published).startswith("127.0.0.1:"), port


def test_workers_serve_metrics_where_prometheus_scrapes_them():
    services = _config()["services"]
    env = _env(services["worker"])
    assert "ports" not in services["worker"]  # scraped inside the network, never published
    assert env["TICKETFLOW_METRICS_HOST"] == "0.0.0.0"
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    ports = {
        c["port"] for job in scrape["scrape_configs"] for c in job.get("dns_sd_configs", []) if c["names"] == ["worker"]
    }
    assert ports == {int(env["TICKETFLOW_METRICS_PORT"]), int(env["TICKETFLOW_TEMPORAL_METRICS_PORT"])}
    assert _env(services["api"])["TICKETFLOW_TRACING"] == "off"  # traces are off unless asked for
