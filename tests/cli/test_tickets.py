"""``ticketflow tickets list|show|act|event`` against the real app over a socket: the caller's
key decides what they see and may do; refusals print the API's status, field and reason."""

import asyncio
import json
import uuid

from tests.cli.conftest import invoke


async def _ticket(stack, title: str, region: str = "east", actor: str = "agent-wang") -> str:
    created = await stack.create(actor=actor, region=region, title=title)
    assert created.status_code == 201, created.text
    tid = created.json()["ticket_id"]
    await stack.until(tid, lambda t: "claim" in t["allowed_actions"], actor="eng-li" if region == "east" else "admin")
    return tid


async def test_list_show_and_act_through_the_api(stack, cli):
    title = f"CLI pump {uuid.uuid4().hex[:6]}"
    tid = await _ticket(stack, title)

    listed = await cli(
        "agent-wang", "tickets", "list", "--region", "east", "--status", "new", "--limit", "200", "--json"
    )
    assert listed.exit_code == 0, listed.output
    rows = {t["id"]: t for t in json.loads(listed.stdout)}
    assert rows[tid]["title"] == title and rows[tid]["status"] == "new"
    text = await cli("agent-wang", "tickets", "list", "--region", "east", "--limit", "200")
    assert (
        text.exit_code == 0
        and text.stdout.startswith("ID ")
        and any(line.startswith(tid) and line.endswith(title) for line in text.stdout.splitlines())
    )

    shown = await cli("eng-li", "tickets", "show", tid)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0] == f"{tid}  {title}" and "claim" in shown.stdout

    claimed = await cli("eng-li", "tickets", "act", tid, "claim", "--idempotency-key", f"{tid}-claim")
    assert claimed.exit_code == 0, claimed.output
    assert claimed.stdout.startswith(f"{tid}: claim done, now assigned (assignee eng-li")
    again = await cli("eng-li", "tickets", "act", tid, "claim", "--idempotency-key", f"{tid}-claim", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["assignee"] == "eng-li"  # the first outcome
    commented = await cli("eng-li", "tickets", "act", tid, "comment", "--set", "text=checked the belt")
    assert commented.exit_code == 0, commented.output

    history = await cli("eng-li", "tickets", "show", tid, "--events", "--json")
    events = json.loads(history.stdout)["events"]
    assert [e["action"] for e in events][-2:] == ["claim", "comment"]
    assert events[-1]["data"].get("text") == "checked the belt"


async def test_refusals_print_status_field_and_reason(stack, cli):
    tid = await _ticket(stack, "CLI refusals")
    # Not allowed in its status: 409 with the reason.
    closed = await cli("eng-li", "tickets", "act", tid, "resolve", "--set", "resolution=done")
    assert closed.exit_code == 1 and "HTTP 409 invalid_transition" in closed.stderr, closed.output
    assert "(status new; allowed:" in closed.stderr and "claim" in closed.stderr
    # A required field left out: 422 naming it.
    claim = await cli("eng-li", "tickets", "act", tid, "claim")
    assert claim.exit_code == 0
    assign = await cli("sup-zhou", "tickets", "act", tid, "assign")
    assert assign.exit_code == 1 and "HTTP 422" in assign.stderr and "body.assignee: Field required" in assign.stderr
    # Another region's ticket does not exist for this caller.
    south = (await stack.create(actor="agent-chen", region="south", title="Shenzhen leak")).json()["ticket_id"]
    hidden = await cli("agent-wang", "tickets", "show", south)
    assert hidden.exit_code == 1 and "HTTP 404 not_found" in hidden.stderr
    # An event the template does not declare.
    event = await cli("agent-wang", "tickets", "event", tid, "no_such_event")
    assert event.exit_code == 1 and "HTTP 422" in event.stderr
    # Bad option values are usage errors before anything is sent.
    bad = await cli("eng-li", "tickets", "act", tid, "comment", "--set", "no-equals-sign")
    assert bad.exit_code == 2 and "name=value" in bad.output


async def test_keys_and_connection_problems_are_usage_errors(cli):
    unknown = await cli(None, "tickets", "list", "--api-key", "not-a-key")
    assert unknown.exit_code == 2 and "HTTP 401 unauthenticated" in unknown.stderr
    missing = await cli(None, "tickets", "list")
    assert missing.exit_code == 2 and "no API key" in missing.stderr


def test_an_api_nobody_answers_is_a_connection_error():
    result = invoke("tickets", "show", "T1", "--api-url", "http://127.0.0.1:9", "--api-key", "k")
    assert result.exit_code == 2 and "cannot reach the API at http://127.0.0.1:9" in result.stderr


async def test_an_event_the_template_declares_reaches_the_ticket(stack, cli, tmp_path):
    """The designer publishes a template with the CLI; an agent sends its event to a ticket of it."""
    key = f"cli_ev_{uuid.uuid4().hex[:8]}"
    spec = {
        "key": key,
        "name": "Event probe",
        "start": "fix",
        "nodes": [
            {"id": "fix", "type": "task", "assignee": {"role": "engineer"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
        "events": [{"name": "nudged", "senders": ["role:agent"]}],
    }
    path = tmp_path / f"{key}.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML too
    assert (await cli("tmpl-admin", "templates", "import", str(path))).exit_code == 0
    created = await stack.create(actor="agent-wang", ticket_type=key, title="Nudge me")
    assert created.status_code == 201, created.text
    tid = created.json()["ticket_id"]
    await stack.until(tid, lambda t: "claim" in t["allowed_actions"], actor="eng-li")

    sent = await cli("agent-wang", "tickets", "event", tid, "nudged", "--text", "any news?")
    assert sent.exit_code == 0, sent.output
    assert sent.stdout.strip() == f"{tid}: event nudged accepted"
    refused = await cli("eng-li", "tickets", "event", tid, "nudged")  # not a declared sender
    assert refused.exit_code == 1 and "HTTP 403" in refused.stderr
    for _ in range(200):  # the workflow took it (202); the read model has it a moment later
        history = await cli("agent-wang", "tickets", "show", tid, "--events", "--json")
        events = json.loads(history.stdout)["events"]
        if any("nudged" in json.dumps(e) for e in events):
            break
        await asyncio.sleep(0.05)
    nudge = next(e for e in events if "nudged" in json.dumps(e))
    assert nudge["actor_id"] == "agent-wang" and "any news?" in json.dumps(nudge["data"])
