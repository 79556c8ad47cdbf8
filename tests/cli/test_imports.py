"""``ticketflow people import`` (checked here row by row, then PUT/POST per person) and
``ticketflow customers import`` (the API's bulk import), against the real app over a socket."""

import uuid
from pathlib import Path

from cli.imports import check_people


def _csv(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_bad_row_of_a_people_file_is_reported_with_its_row():
    p = f"cli-{uuid.uuid4().hex[:6]}"
    checked = check_people(
        "\n".join(
            [
                "id,name,roles,regions,skills,capacity,active",
                f"{p}-1,Good Person,engineer,east,hvac:3,5,yes",
                "bad id,Bad Id,engineer,east,,,",
                f"{p}-3,,engineer,east,,,",
                f"{p}-4,Level,engineer,east,hvac:9,,",
                f"{p}-5,Cap,engineer,east,,lots,maybe",
                f"{p}-1,Again,engineer,east,,,",
                f"{p}-7,Short,engineer",
            ]
        )
    )
    assert checked.problems == [
        "row 3, column id: 'bad id' is not a person id (^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$)",
        "row 4, column name: Field required",
        "row 5, column skills.hvac: Input should be less than or equal to 5",
        "row 6, column capacity: not a number: 'lots'",
        "row 6, column active: expected true/false, yes/no, y/n or 1/0, got 'maybe'",
        f"row 7, column id: {p}-1 repeats row 2",
        "row 8: 3 cells for 7 columns",
    ]
    header = check_people("id,name,role,regions\nx,X,engineer,east\n")
    assert header.problems == [
        "row 1 (header): unknown column(s) role (known: id, active, name, team, manager_id, roles, regions, "
        "groups, skills, features, home_lat, home_lon, capacity, seniority, working_hours, out_of_office); "
        "missing column(s) roles"
    ]
    cycle = check_people("id,name,roles,regions,manager_id\na,A,engineer,east,b\nb,B,engineer,east,a\n")
    assert [p.split(":")[0] for p in cycle.problems] == ["row 2, column manager_id", "row 3, column manager_id"]


async def test_a_bad_people_file_writes_nobody(stack, cli, tmp_path: Path):
    p = f"cli-{uuid.uuid4().hex[:6]}"
    path = _csv(
        tmp_path,
        "people.csv",
        "id,name,roles,regions,capacity",
        f"{p}-1,Good,engineer,east,5",
        f"{p}-2,Bad,engineer,east,-1",
    )
    result = await cli("hr-tang", "people", "import", str(path))
    assert result.exit_code == 1
    assert f"{path}: 1 problem(s), nothing imported" in result.stderr
    assert "row 3, column capacity: Input should be greater than or equal to 0" in result.stderr
    assert (await stack.http.get(f"/people/{p}-1", headers=stack.as_actor("admin"))).status_code == 404


async def test_people_are_created_managers_first_then_replaced(stack, cli, tmp_path: Path):
    p = f"cli-{uuid.uuid4().hex[:6]}"
    header = "id,name,roles,regions,team,manager_id,skills,home_lat,home_lon,capacity,seniority,features"
    path = _csv(
        tmp_path,
        "people.csv",
        header,
        f"{p}-eng,Eng One,engineer,east,field-service,{p}-sup,hvac:3;electrical:2,31.2,121.4,5,2,rating:4.5",
        f"{p}-sup,Sup One,supervisor,east,,sup-zhou,,,,,,",
    )
    dry = await cli("admin", "people", "import", str(path), "--dry-run")
    assert dry.exit_code == 0 and "2 people, every row valid" in dry.stdout
    assert (await stack.http.get(f"/people/{p}-sup", headers=stack.as_actor("admin"))).status_code == 404

    done = await cli("admin", "people", "import", str(path))
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [
        f"row 3 {p}-sup: created",  # the manager first: the engineer names them
        f"row 2 {p}-eng: created",
        f"{path}: 2 created, 0 updated",
    ]
    eng = (await stack.http.get(f"/people/{p}-eng", headers=stack.as_actor("admin"))).json()
    assert (eng["manager_id"], eng["skills"], eng["capacity"], eng["features"]) == (
        f"{p}-sup",
        {"hvac": 3, "electrical": 2},
        5,
        {"rating": 4.5},
    )
    path.write_text(path.read_text().replace(",5,2,", ",8,2,"))
    again = await cli("admin", "people", "import", str(path))
    assert again.exit_code == 0 and again.stdout.splitlines()[-1] == f"{path}: 0 created, 2 updated"
    eng = (await stack.http.get(f"/people/{p}-eng", headers=stack.as_actor("admin"))).json()
    assert eng["capacity"] == 8

    refused = await cli("agent-wang", "people", "import", str(path))  # not admin or hr
    assert refused.exit_code == 1 and "HTTP 403 forbidden" in refused.stderr
    assert "stopped at row 3; 0 written before it" in refused.stderr


async def test_customers_import_every_row_or_none(stack, cli, tmp_path: Path):
    tag = uuid.uuid4().hex[:8]
    header = "name,region,email,external_id"
    bad = _csv(tmp_path, "bad.csv", header, f"Ok {tag},east,ok-{tag}@example.com,c1", f"Bad {tag},,not-an-email,c2")
    refused = await cli("sup-zhou", "customers", "import", str(bad))
    assert refused.exit_code == 1 and "HTTP 422" in refused.stderr
    assert "row 3, column region:" in refused.stderr and "row 3, column email:" in refused.stderr
    found = await stack.http.get("/customers", params={"q": f"Ok {tag}"}, headers=stack.as_actor("sup-zhou"))
    assert found.json()["items"] == []  # nothing imported

    good = _csv(tmp_path, "good.csv", header, f"Lin {tag},east,lin-{tag}@example.com,crm-{tag}")
    done = await cli("sup-zhou", "customers", "import", str(good))
    assert done.exit_code == 0, done.output
    first, last = done.stdout.splitlines()
    assert first.startswith(f"row 2 (crm-{tag}): cus_") and "1 customers, 1 identities imported" in last
    found = await stack.http.get("/customers", params={"q": f"Lin {tag}"}, headers=stack.as_actor("sup-zhou"))
    assert [c["id"] for c in found.json()["items"]] == [first.rsplit(" ", 1)[1]]
