"""``ticketflow templates export|validate|import|list`` against the real app over a socket."""

import json
import uuid
from pathlib import Path

import yaml

from tests.cli.test_sla_scenario import TEMPLATE


async def test_export_validate_and_import_a_template(cli, tmp_path: Path):
    exported = tmp_path / "general.yaml"
    out = await cli("agent-wang", "templates", "export", "general", "-o", str(exported))
    assert out.exit_code == 0, out.output
    assert yaml.safe_load(exported.read_text())["key"] == "general"
    to_stdout = await cli("agent-wang", "templates", "export", "general", "--version", "1")
    assert to_stdout.exit_code == 0 and yaml.safe_load(to_stdout.stdout)["key"] == "general"

    key = f"cli_t_{uuid.uuid4().hex[:8]}"
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump({**TEMPLATE, "key": key}))
    valid = await cli("agent-wang", "templates", "validate", str(exported), str(new))
    assert valid.exit_code == 0, valid.output
    assert valid.stdout.splitlines() == [f"{exported}: valid (general)", f"{new}: valid ({key})"]

    # Only template authors publish: the agent is refused, the process designer publishes once.
    refused = await cli("agent-wang", "templates", "import", str(new))
    assert refused.exit_code == 1 and "HTTP 403 forbidden" in refused.stderr
    published = await cli("tmpl-admin", "templates", "import", str(new))
    assert published.exit_code == 0, published.output
    assert published.stdout.strip() == f"{new}: published {key} version 1"
    again = await cli("tmpl-admin", "templates", "import", str(new))
    assert again.stdout.strip() == f"{new}: unchanged: {key} version 1 is the same"
    listed = await cli("agent-wang", "templates", "list", "--json")
    assert {"key": key, "version": 1} in [{"key": t["key"], "version": t["version"]} for t in json.loads(listed.stdout)]


async def test_every_problem_of_a_bad_file_is_listed_and_the_good_files_still_go(cli, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    broken = {**TEMPLATE, "sla_policy": {"reminders": [0.8, 0.5]}}
    broken["nodes"] = [{**TEMPLATE["nodes"][0], "next": "nowhere"}, TEMPLATE["nodes"][1]]
    bad.write_text(yaml.safe_dump(broken))
    not_yaml = tmp_path / "not.yaml"
    not_yaml.write_text("key: [unclosed\n")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(TEMPLATE))
    result = await cli("agent-wang", "templates", "validate", str(bad), str(not_yaml), str(good))
    assert result.exit_code == 1
    assert result.stdout.strip() == f"{good}: valid ({TEMPLATE['key']})"
    assert f"{bad}: refused" in result.stderr and "HTTP 422" in result.stderr
    assert "sla_policy: Value error, reminders must be increasing" in result.stderr
    assert f"{not_yaml}: not valid YAML" in result.stderr

    missing = await cli("agent-wang", "templates", "export", "no_such_template")
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr
