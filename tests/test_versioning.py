"""Worker Versioning settings and declarations (docs/upgrading.md); the upgrade itself runs in
tests/workflows/test_upgrade.py."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import VersioningBehavior

from models.settings import MIN_SECRET_LENGTH, Settings, default_build_id
from workers import versioning
from workflows.registry import WORKFLOWS

KEY = "k" * MIN_SECRET_LENGTH


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Only what each test sets: no TICKETFLOW_* variable of the machine, no .env file."""
    import os

    for name in list(os.environ):
        if name.startswith("TICKETFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_versioning_is_off_by_default_so_a_fresh_dev_server_needs_nothing() -> None:
    settings = Settings()
    assert settings.worker_versioning is False and settings.deployment_name == "ticketflow"
    assert versioning.deployment_config(settings) is None  # build_worker's Worker stays unversioned


def test_the_default_build_id_is_the_version_and_a_hash_of_the_source() -> None:
    assert re.fullmatch(r"\d+(\.\d+)*[^-]*-[0-9a-f]{12}", Settings().build_id)
    assert Settings().build_id == default_build_id()  # every process of one checkout or image agrees


def test_a_deploy_names_its_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_WORKER_VERSIONING", "true")
    monkeypatch.setenv("TICKETFLOW_BUILD_ID", "2025.06.1-3f9c2ab")
    config = versioning.deployment_config(Settings())
    assert config is not None and config.use_worker_versioning
    assert (config.version.deployment_name, config.version.build_id) == ("ticketflow", "2025.06.1-3f9c2ab")
    # No default behaviour: a workflow type that declares none is refused by the worker.
    assert config.default_versioning_behavior == VersioningBehavior.UNSPECIFIED


@pytest.mark.parametrize(
    "env",
    [
        {"TICKETFLOW_DEPLOYMENT_NAME": "ticket.flow"},  # "." separates deployment and build id
        {"TICKETFLOW_DEPLOYMENT_NAME": ""},
        {"TICKETFLOW_BUILD_ID": "has space"},
        {"TICKETFLOW_BUILD_ID": ""},
        {"TICKETFLOW_BUILD_ID": "x" * 256},
        {"TICKETFLOW_WORKER_VERSIONING_SET_CURRENT": "true"},  # without versioning
    ],
)
def test_invalid_versioning_settings_refuse_to_load(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_production_with_versioning_needs_a_named_build_and_never_sets_itself_current(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKETFLOW_ENVIRONMENT", "production")
    monkeypatch.setenv("TICKETFLOW_ACTION_SIGNING_KEY", KEY)
    assert Settings().worker_versioning is False  # production as today: unversioned until a release turns it on
    monkeypatch.setenv("TICKETFLOW_WORKER_VERSIONING", "true")
    with pytest.raises(ValidationError, match="TICKETFLOW_BUILD_ID"):
        Settings()
    monkeypatch.setenv("TICKETFLOW_BUILD_ID", "r42")
    assert Settings().build_id == "r42"
    monkeypatch.setenv("TICKETFLOW_WORKER_VERSIONING_SET_CURRENT", "true")
    with pytest.raises(ValidationError, match="TICKETFLOW_WORKER_VERSIONING_SET_CURRENT"):
        Settings()


def test_development_may_set_itself_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_WORKER_VERSIONING", "true")
    monkeypatch.setenv("TICKETFLOW_WORKER_VERSIONING_SET_CURRENT", "true")
    assert Settings().worker_versioning_set_current


# The behaviour each workflow type declares, and why (docs/upgrading.md).
BEHAVIOURS = {
    "TicketWorkflow": VersioningBehavior.AUTO_UPGRADE,  # weeks: pinning would keep old builds for weeks
    "Survey": VersioningBehavior.AUTO_UPGRADE,  # days, up to 90
    "PersonLeft": VersioningBehavior.PINNED,  # minutes
    "ScheduledTicket": VersioningBehavior.PINNED,  # minutes (a day at most: its run timeout)
}


def behaviours(classes: list[type]) -> dict[str, VersioningBehavior]:
    return {d.name: d.versioning_behavior for d in map(workflow._Definition.must_from_class, classes)}


def test_a_versioned_worker_registers_every_workflow_type_with_its_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_WORKER_VERSIONING", "true")
    options = versioning.worker_options(Settings())
    assert behaviours(options["workflows"]) == BEHAVIOURS
    assert options["deployment_config"] is not None
    # The auto-upgrade types are the ones whose changes are patched and whose runs ``predating`` counts.
    auto = {name for name, b in BEHAVIOURS.items() if b == VersioningBehavior.AUTO_UPGRADE}
    assert set(versioning.AUTO_UPGRADE_TYPES) == auto


def test_an_unversioned_worker_registers_the_plain_classes_which_declare_no_behaviour() -> None:
    """The server refuses a task completed with a behaviour by an unversioned worker: a behaviour on
    a plain class would stop every ticket of ``make run`` and the tests at its first task."""
    options = versioning.worker_options(Settings())
    assert options == {"workflows": WORKFLOWS, "deployment_config": None}
    assert behaviours(WORKFLOWS) == dict.fromkeys(BEHAVIOURS, VersioningBehavior.UNSPECIFIED)


@workflow.defn(name="NewKind")
class NewKind:
    """A workflow type someone adds to the registry and forgets in workflows/versioned.py."""

    @workflow.run
    async def run(self) -> None:
        pass


def test_a_workflow_type_without_a_variant_is_refused_by_a_versioned_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETFLOW_WORKER_VERSIONING", "true")
    with pytest.raises(ValueError, match="NewKind.*workflows/versioned.py"):
        versioning.workflows(Settings(), [*WORKFLOWS, NewKind])


def test_the_predating_query() -> None:
    since = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert versioning.predating_query("tickets", since, margin=timedelta(minutes=5)) == (
        "ExecutionStatus = 'Running' AND TaskQueue = 'tickets' AND WorkflowType IN ('TicketWorkflow', 'Survey') "
        "AND StartTime < '2026-03-01T08:05:00.000000Z'"
    )
