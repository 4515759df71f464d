"""`cockpit due`: what the plan expects by a time, who must act, and `--run` as cron runs it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_cli import cockpit

pytestmark = pytest.mark.integration


def _runbook(folder: Path, t0: datetime) -> Path:
    """Sixty days in small: a step long done, a check and a checklist due now, one coming, one later."""
    flag = folder / "v1-gone"
    text = f"""[runbook]
name = "Due test"
t0 = {t0.isoformat(timespec="seconds")}
window = "30m"

[[phase]]
id = "announce"
at = "T-2d"

[[phase]]
id = "window"
at = "T-0"
window = true

[[phase]]
id = "later"
at = "T+1d"

[[step]]
id = "announce"
phase = "announce"
kind = "shell"
with = {{ argv = ["sh", "-c", "echo announced >> {folder}/ran"] }}

[[step]]
id = "scale-down"
phase = "later"
kind = "shell"
at = "T+1d"
budget = "5m"
with = {{ argv = ["sh", "-c", "echo scaled >> {folder}/ran"] }}

[[step]]
id = "decom"
phase = "later"
kind = "checklist"
at = "T+1d"
needs = ["scale-down"]
[[step.with.items]]
item = "v1 answers no more"
[step.with.items.check]
kind = "shell"
with = {{ argv = ["test", "-e", "{flag}"], effect = "probe" }}

[[step]]
id = "pause-db"
phase = "later"
kind = "shell"
at = "T+2d"
with = {{ argv = ["sh", "-c", "echo paused >> {folder}/ran"] }}

[[step]]
id = "remove-code"
phase = "later"
kind = "manual"
at = "T+10d"
with = {{ question = "Is v1's code removed?" }}
"""
    path = folder / "runbook.toml"
    path.write_text(text)
    return path


def test_due_lists_overdue_due_and_coming_with_who_acts_and_exits_1_when_overdue(tmp_path: Path) -> None:
    t0 = datetime(2026, 12, 5, 23, 0, tzinfo=UTC)
    _runbook(tmp_path, t0)
    # At T+1d30m: announce is long overdue (nobody ran it), scale-down and decom are due.
    result = cockpit(tmp_path, "due", "runbook.toml", "--at", "T+1d30m")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Due test: 2026-12-06 23:30 +0000 (T+1d30m); no run yet"
    assert lines[1] == "overdue: 1"
    assert lines[2].split()[:3] == ["announce", "T-2d", "Thu"]
    assert lines[2].split()[-3:] == ["scheduled", "cockpit", "announce"]
    assert lines[3] == "due now: 2"
    assert [line.split()[0] for line in lines[4:6]] == ["scale-down", "decom"]
    assert "operator" in lines[5]  # a checklist waits for its operator (or its check)
    assert lines[6] == "coming within 1d: 1"
    assert lines[7].split()[0] == "pause-db"
    assert len(lines) == 8  # remove-code at T+10d is beyond the horizon

    wide = cockpit(tmp_path, "due", "runbook.toml", "--at", "T+1d30m", "--within", "30d", "--json")
    document = json.loads(wide.stdout)
    assert [s["step"] for s in document["coming"]] == ["pause-db", "remove-code"]
    assert document["coming"][1]["who"] == "operator" and document["coming"][1]["offset"] == "T+10d"

    # Before anything is due, nothing is overdue: exit 0.
    early = cockpit(tmp_path, "due", "runbook.toml", "--at", "2026-12-03T23:30:00+00:00")
    assert early.returncode == 0 and "overdue: nothing" in early.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--within", "soon"], "--within: bad duration 'soon'"),
        (["--at", "2026-12-05T10:00"], "--at: '2026-12-05T10:00' has no zone"),
        (["--at", "yesterday"], "--at: 'yesterday' is neither a T-offset"),
        (["--at", "T+1d", "--run"], "--at shows the list at another time; --run runs what is due now"),
    ],
)
def test_due_refuses_bad_input_with_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    _runbook(tmp_path, datetime(2026, 12, 5, 23, 0, tzinfo=UTC))
    result = cockpit(tmp_path, "due", "runbook.toml", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "ran").exists()


def test_due_run_runs_what_is_due_leaves_the_operator_s_steps_and_exits(tmp_path: Path) -> None:
    # T-0 was a day and an hour ago: announce and scale-down are due; decom's check fails for now.
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1, minutes=10)
    _runbook(tmp_path, t0)
    first = cockpit(tmp_path, "due", "runbook.toml", "--run", timeout=60)
    assert sorted((tmp_path / "ran").read_text().split()) == ["announced", "scaled"]  # pause-db is not due yet
    assert "announce               succeeded" in first.stdout
    assert "decom                  unchecked  v1 answers no more: test exited with status 1" in first.stdout
    assert first.returncode == 0, first.stdout + first.stderr  # decom is due, not yet overdue
    tail = first.stdout[first.stdout.index("Due test:") :]
    assert "due now: 1" in tail and "decom" in tail and "waiting" in tail

    # The next hour's cron: v1 is gone now, so decom's check ticks it; nothing is run twice.
    (tmp_path / "v1-gone").touch()
    second = cockpit(tmp_path, "due", "runbook.toml", "--run", timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr
    assert sorted((tmp_path / "ran").read_text().split()) == ["announced", "scaled"]
    assert "decom                  checked    v1 answers no more" in second.stdout
    assert "due now: nothing" in second.stdout
    status = json.loads(cockpit(tmp_path, "status", "runbook.toml", "--json").stdout)
    assert status["steps"]["decom"]["state"] == "succeeded"
    assert status["checks"][-1]["passed"] is True
