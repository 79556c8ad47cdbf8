"""The replay corpus (tests/histories/corpus/, ``python -m tests.histories.record --corpus``) covers
what a change to the workflows could break: every preset of ``templates/`` through each exit of
each of its nodes, every node type, every workflow type a worker runs, and the named branches
(approvals approved, rejected and decided by their deadline; parallel joins; SLA reminder,
breach and escalation; continue-as-new, also in the middle of an approval and of a parallel; a
leaver's hand-over; settlement; stock reserved, consumed and released; child tickets; surveys
answered and expired; check-in and check-out; a merge; follow-ups and maintenance plans).

Judged from the recorded events only — workflow inputs, updates and their replies (the ticket's
state), signals, activities with their inputs and results, timers, children, continue-as-new —
never from file names or scenario names. tests/workflows/test_replay.py replays every one.
"""

import json
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from domain.ids import ticket_id_for_key
from models.template import Node, TemplateSpec
from tests.support import PRESETS, preset
from workflows.registry import WORKFLOWS

CORPUS = Path(__file__).parents[1] / "histories" / "corpus"
E = EventType


def decode(payload: Payload) -> Any:
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"binary/null":
        return None
    assert encoding == b"json/plain", f"a payload encoded {encoding!r}"
    return json.loads(payload.data)


def first(payloads: Any) -> Any:
    return decode(payloads.payloads[0]) if payloads.payloads else None


@dataclass
class Step:
    """One thing that happened in a run, in history order."""

    # activity, activity_failed, update, signal, timer_fired, child_started, child_completed,
    # external_signal; state: a ticket's state (carried in, an update's reply, the result, carried on)
    kind: str
    name: str  # the activity type, update, signal or child workflow type; a timer's summary
    input: Any = None
    result: Any = None  # an activity's result, a child's, a state


@dataclass
class Run:
    """One recorded workflow run, as its history tells it."""

    file: str
    type: str
    run_id: str
    continued_from: str  # the run this one continues (continue-as-new), or ""
    input: Any
    steps: list[Step] = field(default_factory=list)
    result: Any = None  # the completed run's result
    continued_as_new: Any = None  # the input it handed to its next run

    def activities(self, name: str, failed: bool = False) -> list[Step]:
        return [s for s in self.steps if s.kind == ("activity_failed" if failed else "activity") and s.name == name]

    def updates(self, name: str) -> list[Step]:
        return [s for s in self.steps if s.kind == "update" and s.name == name]

    def after(self, step: Step) -> list[Step]:
        return self.steps[self.steps.index(step) + 1 :]

    @property
    def states(self) -> list[dict[str, Any]]:
        """A ticket's states, in history order."""
        return [s.result for s in self.steps if s.kind == "state"]

    @property
    def ticket_id(self) -> str:
        return str((self.input or {}).get("ticket_id", ""))

    @property
    def template(self) -> TemplateSpec | None:
        if self.type != "TicketWorkflow":
            return None
        return TemplateSpec.model_validate(self.input["template"]["spec"])

    @property
    def template_key(self) -> str:
        return str(self.input["template"]["key"]) if self.type == "TicketWorkflow" else ""


def read(path: Path) -> Run:
    events = WorkflowHistory.from_json(path.stem, path.read_text()).events
    started = events[0].workflow_execution_started_event_attributes
    run = Run(
        file=path.name,
        type=started.workflow_type.name,
        run_id=started.original_execution_run_id,
        continued_from=started.continued_execution_run_id,
        input=first(started.input),
    )
    scheduled: dict[int, Step] = {}
    timers: dict[int, str] = {}
    ticket = run.type == "TicketWorkflow"
    if ticket and run.input.get("carried_state"):
        run.steps.append(Step("state", "carried in", result=run.input["carried_state"]))
    for event in events:
        t = event.event_type
        if t == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = Step("activity", a.activity_type.name, first(a.input))
        elif t == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            a = event.activity_task_completed_event_attributes
            done = scheduled[a.scheduled_event_id]
            run.steps.append(Step("activity", done.name, done.input, first(a.result)))
        elif t == E.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            done = scheduled[event.activity_task_failed_event_attributes.scheduled_event_id]
            run.steps.append(Step("activity_failed", done.name, done.input))
        elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            run.steps.append(Step("update", request.input.name, first(request.input.args)))
        elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            outcome = event.workflow_execution_update_completed_event_attributes.outcome
            if outcome.HasField("success") and ticket:
                run.steps.append(Step("state", "update", result=first(outcome.success)))
        elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            a = event.workflow_execution_signaled_event_attributes
            run.steps.append(Step("signal", a.signal_name, first(a.input)))
        elif t == E.EVENT_TYPE_TIMER_STARTED:
            summary = event.user_metadata.summary if event.HasField("user_metadata") else None
            timers[event.event_id] = str(decode(summary)) if summary is not None and summary.data else ""
        elif t == E.EVENT_TYPE_TIMER_FIRED:
            run.steps.append(Step("timer_fired", timers[event.timer_fired_event_attributes.started_event_id]))
        elif t == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            a = event.start_child_workflow_execution_initiated_event_attributes
            run.steps.append(Step("child_started", a.workflow_type.name, first(a.input)))
        elif t == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
            a = event.child_workflow_execution_completed_event_attributes
            run.steps.append(Step("child_completed", a.workflow_type.name, result=first(a.result)))
        elif t == E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            a = event.signal_external_workflow_execution_initiated_event_attributes
            run.steps.append(Step("external_signal", a.signal_name, first(a.input)))
        elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            run.result = first(event.workflow_execution_completed_event_attributes.result)
            if ticket:
                run.steps.append(Step("state", "completed", result=run.result["state"]))
        elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run.continued_as_new = first(event.workflow_execution_continued_as_new_event_attributes.input)
            run.steps.append(Step("state", "continued as new", result=run.continued_as_new["carried_state"]))
    return run


@cache
def corpus() -> tuple[Run, ...]:
    return tuple(read(p) for p in sorted(CORPUS.glob("*.json")))


def tickets() -> Iterator[Run]:
    return (r for r in corpus() if r.type == "TicketWorkflow")


def node_states(run: Run) -> Iterator[dict[str, Any]]:
    for state in run.states:
        yield from state["nodes"].values()


def ticket(ticket_id: str) -> Run | None:
    return next((r for r in tickets() if r.ticket_id == ticket_id), None)


def test_there_is_a_corpus():
    assert corpus(), "record it: python -m tests.histories.record --corpus"


# --- presets, node types, workflow types ---

PRESET_KEYS = sorted(preset(p.stem).key for p in PRESETS.glob("*.yaml"))


@pytest.mark.parametrize("key", PRESET_KEYS)
def test_every_preset_is_recorded(key: str):
    assert any(r.template_key == key for r in tickets()), f"no history of a {key} ticket (the input's template key)"


def exits(node: Any) -> set[str]:
    """What must be seen of a preset's node: each way out of it (its outcomes), or, for a node
    with a single way on, that it ran ("ran")."""
    if node.type == "gateway":
        return {c.to for c in node.conditions} | ({node.default} if node.default else set())
    if node.type == "approval":
        return {"approved", "rejected"}
    if node.type == "wait" and node.signal:
        return {node.signal} | ({"timeout"} if node.duration else set())
    if node.type == "reserve_parts":
        return {"reserved"} | ({"insufficient"} if node.on_insufficient else set())
    if node.type == "settle":
        return {"settled"} | ({"over_budget"} if node.on_over_budget else set())
    return {"ran"}


@pytest.mark.parametrize("key", PRESET_KEYS)
def test_each_preset_takes_every_exit_of_every_node(key: str):
    """Per preset (its histories by template key, variants with seconds-long durations included):
    every node ran, every gateway took each of its targets, every approval approved and rejected,
    every wait for an event got it and timed out, reservations were made and fell short, and
    settlements were within and over budget."""
    spec = preset(key).spec
    seen: dict[str, set[str]] = {}
    for run in (r for r in tickets() if r.template_key == key):
        for state in run.states:
            for node_id in state["path"]:
                seen.setdefault(node_id, set()).add("ran")
            for node in state["nodes"].values():
                if node.get("outcome"):
                    seen.setdefault(node["id"], set()).add(node["outcome"])
    missing = {n.id: sorted(gap) for n in spec.nodes if (gap := exits(n) - seen.get(n.id, set()))}
    assert missing == {}, f"{key}: exits never taken (node → outcomes)"


NODE_TYPES = sorted(c.model_fields["type"].default for c in typing.get_args(typing.get_args(Node)[0]))


def test_every_node_type_runs():
    seen = set()
    for run in tickets():
        assert run.template is not None
        types = {n.id: n.type for n in run.template.nodes}
        for state in run.states:
            seen |= {types[n] for n in state["path"]} | {n["type"] for n in state["nodes"].values()}
    assert set(NODE_TYPES) - seen == set()


def test_every_workflow_type_is_recorded():
    names = {workflow._Definition.must_from_class(w).name for w in WORKFLOWS}
    assert names - {r.type for r in corpus()} == set()


# --- the named branches ---


def approval_outcome(outcome: str, by: str) -> bool:
    """An approval closed ``outcome``: by a person's vote ("vote"), or a level decided by itself
    at its deadline ("deadline", its ``decided``) with nobody's vote against it."""
    decision = "approve" if outcome == "approved" else "reject"
    for run in tickets():
        for node in node_states(run):
            if node["type"] != "approval" or node.get("outcome") != outcome:
                continue
            voted = any(v["decision"] == decision for v in node["votes"])
            if by == "vote" and voted and (outcome == "approved" or not node["decided"]):
                return True
            if by == "deadline" and outcome in node["decided"].values() and (outcome == "approved" or not voted):
                return True
    return False


def approvals(step: Step, open_only: bool = False) -> Iterator[dict[str, Any]]:
    if step.kind == "state":
        for node in step.result["nodes"].values():
            if node["type"] == "approval" and (node["status"] == "open" or not open_only):
                yield node


def deadline_escalated() -> bool:
    """An approval level's deadline timer fired; the approvers' managers were looked up, and one
    of them then held a seat of that level (their vote on it is in a later state)."""
    for run in tickets():
        for step in run.steps:
            if step.kind != "timer_fired" or "deadline (escalate)" not in step.name:
                continue
            later = run.after(step)
            found = [s for s in later if s.name == "directory.resolve_people" and s.input.get("manager_of")]
            managers = {m for s in found for m in s.result["ids"]}
            votes = {v["actor_id"] for s in later for node in approvals(s) for v in node["votes"]}
            if managers & votes:
                return True
    return False


def parallel_joined(join: str) -> bool:
    for run in tickets():
        assert run.template is not None
        specs = {n.id: n for n in run.template.nodes if n.type == "parallel"}
        for state in run.states:
            for node_id, frame in state["branches"].items():
                node = state["nodes"].get(node_id, {})
                if node.get("status") != "done" or specs[node_id].join != join:
                    continue
                lost = [b for b, at in frame.items() if at != "$joined"]
                cancelled = any(n["status"] == "cancelled" and n.get("branch") in lost for n in state["nodes"].values())
                if (join == "all" and not lost) or (join == "any" and lost and cancelled):
                    return True
    return False


def sla(what: str) -> bool:
    """An SLA milestone told (notify.send of that event) and standing in the ticket's state."""
    for run in tickets():
        if not any(s.input.get("event") == what for s in run.activities("notify.send")):
            continue
        for state in run.states:
            clocks = state["sla"]["clocks"].values()
            if what == "reminder" and any(c["milestone"] >= 1 for c in clocks):
                return True
            if what == "breach" and state["sla"]["breached"] and any(c["breached_at"] for c in clocks):
                return True
            if what == "escalation" and state["sla"]["escalation"] in ("manager", "director"):
                return True
    return False


def next_run(run: Run) -> Run | None:
    return next((r for r in corpus() if r.continued_from == run.run_id), None)


def continued(active_type: str | None) -> bool:
    """A ticket continued as new (while a node of ``active_type`` was active), and its next run,
    recorded too, resumed from the state it carried and completed."""
    for run in tickets():
        carried = (run.continued_as_new or {}).get("carried_state")
        if not carried:
            continue
        types = {carried["nodes"][n]["type"] for n in carried["active"]}
        after = next_run(run)
        if (active_type is None or active_type in types) and after is not None and after.result is not None:
            if after.input["carried_state"]["seq"] == carried["seq"]:
                return True
    return False


def hand_over() -> bool:
    """PersonLeft signalled a ticket the leaver held; the ticket dispatched the work without them."""
    leavers = {
        s.input["person_id"]
        for r in corpus()
        if r.type == "PersonLeft"
        for s in r.steps
        if s.kind == "external_signal" and s.name == "person_left"
    }
    for run in tickets():
        for signal in (s for s in run.steps if s.kind == "signal" and s.name == "person_left"):
            person = signal.input["person_id"]
            redispatched = [
                s
                for s in run.after(signal)
                if s.name == "dispatch.decide" and person in s.input["request"]["excluded"] and s.result["chosen_id"]
            ]
            if person in leavers and redispatched:
                return True
    return False


def approver_replaced() -> bool:
    """A person_left signal for someone holding an approval's seat: the next state of the ticket
    has the seat held by someone else."""
    for run in tickets():
        for signal in (s for s in run.steps if s.kind == "signal" and s.name == "person_left"):
            person = signal.input["person_id"]
            states = [s for s in run.steps[: run.steps.index(signal)] if s.kind == "state"][-1:]
            seats = {n["id"] for s in states for n in approvals(s, open_only=True) if person in n["approvers"]}
            after = next((s for s in run.after(signal) if s.kind == "state"), None)
            held = [n["approvers"] for n in approvals(after) if n["id"] in seats] if after else []
            if held and all(a and person not in a for a in held):
                return True
    return False


def settled(outcome: str) -> bool:
    for run in tickets():
        done = run.activities("settlement.settle")
        if done and any(n["type"] == "settle" and n.get("outcome") == outcome for n in node_states(run)):
            return True
    return False


def settle_retried() -> bool:
    """settlement.settle failed; finance's retry_settlement event; then it settled."""
    for run in tickets():
        for failed in run.activities("settlement.settle", failed=True):
            later = run.after(failed)
            retry = [s for s in later if s.kind == "update" and s.input.get("name") == "retry_settlement"]
            if retry and any(s.name == "settlement.settle" and s.kind == "activity" for s in run.after(retry[0])):
                return True
    return False


def stock(activity: str, check: Callable[[Any], bool]) -> bool:
    return any(check(s.result) for r in tickets() for s in r.activities(activity))


def spawned() -> bool:
    """A parent started child tickets, heard each complete, and the children's histories are in
    the corpus (their input names the parent)."""
    for run in tickets():
        started = [s for s in run.steps if s.kind == "child_started" and s.name == "TicketWorkflow"]
        completed = [s for s in run.steps if s.kind == "child_completed" and s.name == "TicketWorkflow"]
        parents = [c.input["parent_id"] if c else None for c in (ticket(s.input["ticket_id"]) for s in started)]
        if started and len(completed) == len(started) and set(parents) == {run.ticket_id}:
            return True
    return False


def children_cancelled() -> bool:
    """A cancelled parent's children.cancel cancelled a child, whose history shows the system's cancel."""
    for run in tickets():
        for step in run.activities("children.cancel"):
            for child_id in step.result["cancelled"]:
                child = ticket(child_id)
                cancels = child.updates("cancel") if child else []
                if any(c.input["actor"]["id"] == "system" and run.ticket_id in c.input["reason"] for c in cancels):
                    return True
    return False


def surveys(status: str) -> list[Run]:
    """Survey runs that ended ``status``, whose ticket started them (its history is in the corpus)."""
    found = []
    for run in (r for r in corpus() if r.type == "Survey" and (r.result or {}).get("status") == status):
        owner = ticket(run.input["ticket_id"])
        if owner and any(s.kind == "child_started" and s.name == "Survey" for s in owner.steps):
            found.append(run)
    return found


def survey_answered() -> bool:
    return any(r.updates("answer") and r.activities("survey.record_answer") for r in surveys("answered"))


def survey_expired() -> bool:
    return any(r.activities("survey.remind") and r.activities("survey.expire") for r in surveys("expired"))


def survey_follow_up() -> bool:
    """A low rating opened the supervisor's call-back ticket, whose history is in the corpus."""
    for run in surveys("answered"):
        for step in run.activities("intake.open_ticket"):
            opened = ticket(ticket_id_for_key(step.input["key"]))
            if step.result["new"] and opened and opened.result is not None:
                return True
    return False


def on_site(update: str) -> bool:
    """The update taken, and the visit it writes standing in a later state of the task."""
    stamp = {"check_in": "checked_in_at", "check_out": "checked_out_at"}[update]
    for run in tickets():
        for taken in run.updates(update):
            later = [s.result for s in run.after(taken) if s.kind == "state"]
            if any(v[stamp] for state in later for n in state["nodes"].values() for v in n.get("visits", [])):
                return True
    return False


def merged() -> bool:
    """A duplicate cancelled "merged into <master>"; the master, in the corpus, took an event after."""
    for run in tickets():
        for cancel in run.updates("cancel"):
            reason = cancel.input.get("reason") or ""
            if reason.startswith("merged into "):
                master = ticket(reason.removeprefix("merged into "))
                if master and master.updates("send_event") and master.result is not None:
                    return True
    return False


def follow_up_fired() -> bool:
    """A closed ticket scheduled its follow-up; the schedule's ScheduledTicket run opened it (by its fixed key)."""
    scheduled = {s.input["ticket_id"] for r in tickets() for s in r.activities("schedules.follow_up")}
    for run in (r for r in corpus() if r.type == "ScheduledTicket"):
        key = run.input.get("key") or ""
        if key.startswith("follow-up:") and key.split(":")[1] in scheduled and run.activities("intake.open_ticket"):
            return True
    return False


def maintenance_fired() -> bool:
    """A maintenance plan's firing: its ticket keyed by the schedule and the scheduled time."""
    for run in (r for r in corpus() if r.type == "ScheduledTicket" and not r.input.get("key")):
        for step in run.activities("intake.open_ticket"):
            schedule, _, when = step.input["key"].removeprefix("schedule:").partition(":")
            try:
                datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                continue  # started by hand: keyed by the workflow id
            if schedule == run.input["schedule_id"]:
                return True
    return False


BRANCHES: dict[str, Callable[[], bool]] = {
    "approval_approved": lambda: approval_outcome("approved", "vote"),
    "approval_rejected": lambda: approval_outcome("rejected", "vote"),
    "approval_deadline_escalates": deadline_escalated,
    "approval_deadline_approves": lambda: approval_outcome("approved", "deadline"),
    "approval_deadline_rejects": lambda: approval_outcome("rejected", "deadline"),
    "parallel_join_all": lambda: parallel_joined("all"),
    "parallel_join_any": lambda: parallel_joined("any"),
    "sla_reminder": lambda: sla("reminder"),
    "sla_breach": lambda: sla("breach"),
    "sla_escalation": lambda: sla("escalation"),
    "continue_as_new": lambda: continued(None),
    "continue_as_new_in_an_approval": lambda: continued("approval"),
    "continue_as_new_in_a_parallel": lambda: continued("parallel"),
    "continue_as_new_in_a_wait": lambda: continued("wait"),
    "person_left_hand_over": hand_over,
    "person_left_approver_replaced": approver_replaced,
    "settle_settled": lambda: settled("settled"),
    "settle_over_budget": lambda: settled("over_budget"),
    "settle_failed_and_retried": settle_retried,
    "stock_reserved": lambda: stock("inventory.reserve", lambda r: r["status"] == "reserved"),
    "stock_insufficient": lambda: stock("inventory.reserve", lambda r: r["status"] == "insufficient"),
    "stock_consumed": lambda: stock("inventory.consume", lambda r: bool(r["consumed"])),
    "stock_released": lambda: stock("inventory.release", lambda r: bool(r["released"])),
    "spawn_children_finished": spawned,
    "spawn_children_cancelled_with_the_parent": children_cancelled,
    "survey_answered": survey_answered,
    "survey_expired": survey_expired,
    "survey_low_rating_follow_up_ticket": survey_follow_up,
    "check_in": lambda: on_site("check_in"),
    "check_out": lambda: on_site("check_out"),
    "merge_duplicate": merged,
    "follow_up_fired": follow_up_fired,
    "maintenance_plan_fired": maintenance_fired,
}


@pytest.mark.parametrize("branch", BRANCHES)
def test_the_corpus_takes_the_branch(branch: str):
    assert BRANCHES[branch](), f"no history in tests/histories/corpus/ shows: {branch}"
