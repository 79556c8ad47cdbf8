"""``ticketflow replay PATH...``: recorded histories against today's workflow code, one line each."""

import shutil
from pathlib import Path

from tests.cli.conftest import invoke

HISTORIES = Path(__file__).parents[1] / "histories"
GOOD = [HISTORIES / "corpus" / "general_lifecycle.json", HISTORIES / "approval_deadline.json"]
RACE = next(iter(sorted((HISTORIES / "races").glob("*.json"))))  # kept because it does not replay


def test_histories_that_replay_and_one_that_does_not(tmp_path: Path):
    folder = tmp_path / "recorded"
    (folder / "old").mkdir(parents=True)
    shutil.copy(GOOD[0], folder / "one.json")
    shutil.copy(RACE, folder / "old" / "race.json")
    (folder / "old" / "junk.json").write_text('{"not": "a history"}')
    result = invoke("replay", str(GOOD[1]), str(folder))
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    # In the order named, a directory's files sorted.
    assert [line.split()[:2] for line in lines[:-1]] == [
        ["ok", str(GOOD[1])],
        ["FAIL", f"{folder / 'old' / 'junk.json'}:"],
        ["FAIL", f"{folder / 'old' / 'race.json'}:"],
        ["ok", str(folder / "one.json")],
    ]
    assert "not a workflow history" in next(line for line in lines if "junk.json" in line)
    assert "Nondeterminism" in next(line for line in lines if "race.json" in line)
    assert lines[-1] == "4 histories: 2 replay, 2 failed"


def test_all_replay_is_exit_0_and_nothing_to_replay_is_a_usage_error(tmp_path: Path):
    result = invoke("replay", *map(str, GOOD))
    assert result.exit_code == 0 and result.stdout.splitlines()[-1] == "2 histories: 2 replay, 0 failed"
    assert invoke("replay", str(tmp_path)).exit_code == 2
    missing = invoke("replay", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "no such file or directory" in missing.output
