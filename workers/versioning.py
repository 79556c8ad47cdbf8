"""Worker Versioning: which version of the Worker Deployment a worker is, and moving tickets to a
new build (docs/upgrading.md says when and why).

A worker with ``TICKETFLOW_WORKER_VERSIONING=true`` is the version ``<deployment name>.<build
id>`` (``TICKETFLOW_DEPLOYMENT_NAME``, default ``ticketflow``; ``TICKETFLOW_BUILD_ID``) and gets
tasks once that version is current (or ramping). It registers each workflow type with the
behaviour declared on its ``@workflow.defn`` in ``workflows/versioned.py``: runs that move to the
current build at their next task (auto-upgrade: tickets, surveys) or finish on the build they
started on (pinned: the short ones). An unversioned worker registers the plain classes, which
declare none (the server refuses a behaviour from an unversioned worker).

``build_worker`` passes ``**worker_options(settings)`` to its ``Worker``: the workflow classes
(``workflows(settings)``) and the deployment config (``deployment_config(settings)``, None when
unversioned).
A release makes a build current from a shell, the same as ``temporal worker deployment
set-current-version --deployment-name ticketflow --build-id <id>``::

    python -m workers.versioning describe                         # versions, current, ramping, drainage
    python -m workers.versioning set-current [--build-id ID]      # default: TICKETFLOW_BUILD_ID
    python -m workers.versioning ramp --build-id ID --percentage 10   # 0 ends the ramp
    python -m workers.versioning drained --build-id OLD           # exit 0 once OLD's workers may stop
    python -m workers.versioning predating --build-id NEW         # exit 0 once no run predates NEW

Development only: ``TICKETFLOW_WORKER_VERSIONING_SET_CURRENT=true`` makes a worker set its own
version current once it polls (``on_start``), so a lone ``make run`` works with versioning on.
"""

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
import temporalio.api.workflowservice.v1 as wsv1
import temporalio.workflow
from temporalio.api.deployment.v1 import RoutingConfig, WorkerDeploymentInfo, WorkerDeploymentVersionInfo
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionProto
from temporalio.api.enums.v1 import RoutingConfigUpdateState, VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.client import Client, WorkflowExecution
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from models.settings import Settings, get_settings
from workflows.registry import WORKFLOWS
from workflows.versioned import VERSIONED

log = structlog.get_logger(__name__)


def _definition(cls: type) -> Any:
    return temporalio.workflow._Definition.must_from_class(cls)


# The auto-upgrade workflow types: their running histories meet new code, so a change to them is
# patched, and a patch may go only once no run of them predates the build that added it.
AUTO_UPGRADE_TYPES = tuple(
    _definition(v).name
    for v in VERSIONED.values()
    if _definition(v).versioning_behavior == VersioningBehavior.AUTO_UPGRADE
)
# Setting a version current reaches every partition of its task queues within a second or two (the
# routing is propagated after the call returns): a run started that soon after may still have had
# its first task on the previous build, so ``predating`` counts runs started up to this much later.
PROPAGATION_MARGIN = timedelta(minutes=5)
_POLL_S = 0.1
T = TypeVar("T")


def version(settings: Settings) -> WorkerDeploymentVersion:
    return WorkerDeploymentVersion(deployment_name=settings.deployment_name, build_id=settings.build_id)


def workflows(settings: Settings, plain: Sequence[type] = WORKFLOWS) -> list[type]:
    """The workflow classes a worker registers: ``plain`` when unversioned; else each one's variant
    of ``workflows/versioned.py`` (a class that declares a behaviour itself is taken as it is)."""
    if not settings.worker_versioning:
        return list(plain)
    chosen = [VERSIONED.get(cls, cls) for cls in plain]
    if undeclared := [c.__name__ for c in chosen if not _definition(c).versioning_behavior]:
        raise ValueError(f"no versioning behaviour for {undeclared}: add a variant to workflows/versioned.py")
    return chosen


def worker_options(settings: Settings) -> dict[str, Any]:
    """``Worker(client, task_queue=…, activities=…, **worker_options(settings))``."""
    return {"workflows": workflows(settings), "deployment_config": deployment_config(settings)}


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The ``Worker(deployment_config=...)`` of this build; None when versioning is off (the worker
    is unversioned and takes every task of its queue)."""
    if not settings.worker_versioning:
        return None
    # No default behaviour: each workflow type declares its own (a type without one is refused).
    return WorkerDeploymentConfig(version=version(settings), use_worker_versioning=True)


async def describe(client: Client, deployment_name: str) -> WorkerDeploymentInfo | None:
    """The deployment's versions and routing; None before any versioned worker of it has polled."""
    try:
        response = await client.workflow_service.describe_worker_deployment(
            wsv1.DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment_name)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return response.worker_deployment_info


async def describe_version(client: Client, v: WorkerDeploymentVersion) -> WorkerDeploymentVersionInfo | None:
    try:
        response = await client.workflow_service.describe_worker_deployment_version(
            wsv1.DescribeWorkerDeploymentVersionRequest(
                namespace=client.namespace,
                deployment_version=VersionProto(deployment_name=v.deployment_name, build_id=v.build_id),
            )
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return response.worker_deployment_version_info


async def _until(client: Client, v: WorkerDeploymentVersion, done: Callable[[WorkerDeploymentInfo], bool],
                 what: str, timeout_s: float) -> None:  # fmt: skip
    """Describe ``v``'s deployment until ``done`` (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = await describe(client, v.deployment_name)
        if info is not None and done(info):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{v.to_canonical_string()} {what} after {timeout_s:g} s")
        await asyncio.sleep(_POLL_S)


def _routed(check: Callable[[RoutingConfig], bool]) -> Callable[[WorkerDeploymentInfo], bool]:
    def done(info: WorkerDeploymentInfo) -> bool:
        completed = info.routing_config_update_state != RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS
        return completed and check(info.routing_config)

    return done


async def _route(v: WorkerDeploymentVersion, call: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """Make a routing change, retried while the server refuses it for want of pollers: a version
    exists once one worker of it polls, but may be made current or ramping only once it polls
    every task queue (workflow and activity) the current version serves."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except RPCError as exc:
            not_yet = exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
            if not not_yet or time.monotonic() > deadline:
                raise
            log.debug("versioning.waiting_for_pollers", version=v.to_canonical_string(), reason=exc.message)
        await asyncio.sleep(_POLL_S)


async def set_current(client: Client, v: WorkerDeploymentVersion, timeout_s: float = 60.0) -> str | None:
    """Make ``v`` the current version of its deployment: new runs start on it and auto-upgrade runs
    move to it at their next task. Waits until workers of ``v`` poll its task queues (the server
    refuses a version without pollers) and until the routing has reached them. Returns the build
    id that was current before (None: unversioned workers were)."""
    request = wsv1.SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=v.deployment_name, build_id=v.build_id
    )
    set_it = client.workflow_service.set_worker_deployment_current_version
    response = await _route(v, lambda: set_it(request), timeout_s)
    current = _routed(lambda rc: rc.current_deployment_version.build_id == v.build_id)
    await _until(client, v, current, "is not routed as current", timeout_s)
    return response.previous_deployment_version.build_id or None


async def set_ramping(client: Client, v: WorkerDeploymentVersion, percentage: float, timeout_s: float = 60.0) -> None:
    """Send ``percentage`` % of new runs (and of auto-upgrade runs, by workflow id) to ``v``
    before it is made current; 0 removes the ramp."""
    request = wsv1.SetWorkerDeploymentRampingVersionRequest(
        namespace=client.namespace,
        deployment_name=v.deployment_name,
        build_id=v.build_id if percentage > 0 else "",
        percentage=percentage,
    )
    await _route(v, lambda: client.workflow_service.set_worker_deployment_ramping_version(request), timeout_s)
    want = (v.build_id, percentage) if percentage > 0 else ("", 0)
    ramped = _routed(lambda rc: (rc.ramping_deployment_version.build_id, rc.ramping_version_percentage) == want)
    await _until(client, v, ramped, f"is not routed at {percentage:g} %", timeout_s)


async def current_since(client: Client, v: WorkerDeploymentVersion) -> datetime:
    """When ``v`` last became current (it must be current now)."""
    info = await describe_version(client, v)
    if info is None or not info.HasField("current_since_time"):
        raise ValueError(f"{v.to_canonical_string()} is not the current version: pass --since")
    return info.current_since_time.ToDatetime(tzinfo=UTC)


def predating_query(
    task_queue: str,
    since: datetime,
    workflow_types: Sequence[str] = AUTO_UPGRADE_TYPES,
    margin: timedelta = PROPAGATION_MARGIN,
) -> str:
    """Visibility: the running runs of ``workflow_types`` on ``task_queue`` that started before
    ``since`` + ``margin`` — those that may have met the code on an older build. Each run counts
    on its own: a continue-as-new starts a run that replays only its own history."""
    before = (since + margin).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    types = ", ".join(f"'{t}'" for t in workflow_types)
    running = f"ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}'"
    return f"{running} AND WorkflowType IN ({types}) AND StartTime < '{before}'"


async def predating(
    client: Client,
    task_queue: str,
    since: datetime,
    workflow_types: Sequence[str] = AUTO_UPGRADE_TYPES,
    margin: timedelta = PROPAGATION_MARGIN,
) -> list[WorkflowExecution]:
    query = predating_query(task_queue, since, workflow_types, margin)
    return [wf async for wf in client.list_workflows(query)]


def is_drained(info: WorkerDeploymentVersionInfo) -> bool:
    """A version no longer current or ramping whose pinned runs have all closed (the server checks
    visibility every few minutes), or one that never served: its workers may stop."""
    status = _name(info.status, WorkerDeploymentVersionStatus)
    if status in ("drained", "inactive"):
        return True
    drainage = _name(info.drainage_info.status, VersionDrainageStatus)
    return status not in ("current", "ramping") and drainage == "drained"


async def on_start(client: Client, settings: Settings) -> None:
    """Development only (``TICKETFLOW_WORKER_VERSIONING_SET_CURRENT``, refused in production):
    make this worker's own version current once it polls. Call it after ``worker.run()`` has
    started; it does nothing unless asked."""
    if not (settings.worker_versioning and settings.worker_versioning_set_current):
        return
    v = version(settings)
    previous = await set_current(client, v, timeout_s=max(settings.temporal_connect_timeout_s, 10.0))
    log.info("versioning.current", version=v.to_canonical_string(), previous=previous)


# --- the command ---


def _name(enum_value: int, enum: type) -> str:
    return str(enum.Name(enum_value)).rsplit("_STATUS_", 1)[-1].lower()  # type: ignore[attr-defined]


def _time(ts: object) -> str:
    return ts.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds") if ts.ByteSize() else "-"  # type: ignore[attr-defined]


async def command(argv: Sequence[str], settings: Settings, client: Client, out: object = sys.stdout) -> int:
    """``python -m workers.versioning …`` on a connected client; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m workers.versioning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployment-name", default=settings.deployment_name)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for pollers and routing")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("describe", help="the deployment's versions, which is current or ramping, and drainage")
    cur = sub.add_parser("set-current", help="make a build current (default: this build, TICKETFLOW_BUILD_ID)")
    cur.add_argument("--build-id", default=settings.build_id)
    ramp = sub.add_parser("ramp", help="send a share of runs to a build before making it current")
    ramp.add_argument("--build-id", default=settings.build_id)
    ramp.add_argument("--percentage", type=float, required=True)
    drained = sub.add_parser("drained", help="exit 0 when an old build's workers may stop")
    drained.add_argument("--build-id", required=True)
    pre = sub.add_parser("predating", help="running auto-upgrade runs started before a build became current")
    pre.add_argument("--build-id", default=settings.build_id, help="the build that added the patch (current now)")
    pre.add_argument("--since", type=datetime.fromisoformat, help="instead of --build-id: when it became current")
    pre.add_argument("--task-queue", default=settings.task_queue)
    pre.add_argument("--workflow-type", action="append", help=f"default: {', '.join(AUTO_UPGRADE_TYPES)}")
    pre.add_argument("--margin", type=float, default=PROPAGATION_MARGIN.total_seconds(), help="seconds after --since")
    args = parser.parse_args(list(argv))

    def say(*parts: object) -> None:
        print(*parts, file=out)  # type: ignore[call-overload]

    v = WorkerDeploymentVersion(args.deployment_name, getattr(args, "build_id", None) or settings.build_id)
    if args.what == "describe":
        info = await describe(client, args.deployment_name)
        if info is None:
            say(f"no deployment {args.deployment_name!r} (no versioned worker of it has polled)")
            return 1
        rc = info.routing_config
        ramping = rc.ramping_deployment_version.build_id
        say(f"deployment {info.name}: current {rc.current_deployment_version.build_id or '(unversioned)'}"
            + (f", ramping {ramping} at {rc.ramping_version_percentage:g} %" if ramping else ""))  # fmt: skip
        for s in info.version_summaries:
            say(
                f"  {s.deployment_version.build_id}: {_name(s.status, WorkerDeploymentVersionStatus)}, "
                f"drainage {_name(s.drainage_info.status, VersionDrainageStatus)}, created {_time(s.create_time)}, "
                f"current since {_time(s.current_since_time)}"
            )
        return 0
    if args.what == "set-current":
        previous = await set_current(client, v, args.timeout)
        say(f"{v.build_id} is current (was {previous or '(unversioned)'})")
        return 0
    if args.what == "ramp":
        await set_ramping(client, v, args.percentage, args.timeout)
        say(f"{v.build_id} ramping at {args.percentage:g} %" if args.percentage > 0 else "no ramp")
        return 0
    if args.what == "drained":
        vinfo = await describe_version(client, v)
        if vinfo is None:
            say(f"no version {v.to_canonical_string()}")
            return 1
        ok = is_drained(vinfo)
        status = _name(vinfo.status, WorkerDeploymentVersionStatus)
        drainage = _name(vinfo.drainage_info.status, VersionDrainageStatus)
        say(f"{v.build_id}: {status}, drainage {drainage}: {'its workers may stop' if ok else 'keep its workers'}")
        return 0 if ok else 1
    since = args.since or await current_since(client, v)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    types = args.workflow_type or AUTO_UPGRADE_TYPES
    margin = timedelta(seconds=args.margin)
    runs = await predating(client, args.task_queue, since, types, margin)
    say(f"query: {predating_query(args.task_queue, since, types, margin)}")
    for wf in runs:
        say(f"  {wf.id} {wf.run_id} {wf.workflow_type} started {wf.start_time.isoformat(timespec='seconds')}")
    verdict = f"{len(runs)} running runs predate {since.isoformat(timespec='seconds')}"
    say(verdict if runs else f"{verdict}: the patch may go")
    return 1 if runs else 0


async def _main(argv: Sequence[str]) -> int:
    from workers.client import connect

    settings = get_settings()
    client = await connect(settings.temporal_address, settings.temporal_namespace, settings.temporal_connect_timeout_s)
    try:
        return await command(argv, settings, client)
    except (ValueError, TimeoutError, RPCError) as exc:  # a build not current, no pollers, refused by the server
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
