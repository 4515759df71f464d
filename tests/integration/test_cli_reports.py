"""What the command line reports of a runbook and a run: the window's plan, unset variables,
`cockpit status` in full (every action, the triggers, the rollback steps), a forward clock."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from test_cli import cockpit, shell, write

pytestmark = pytest.mark.integration


def test_check_warns_when_the_window_s_planned_work_exceeds_the_window(tmp_path: Path) -> None:
    write(tmp_path, shell("a", "true", 'budget = "25m"') + shell("b", "true", 'budget = "13m40s"\nneeds = ["a"]'))
    result = cockpit(tmp_path, "check", "runbook.toml")
    assert result.returncode == 0
    assert (
        "runbook.toml:4: warning: the window's planned work takes 38m40s, over window = 30m00s by 8m40s"
        in result.stdout
    )
    assert "(1 warning)" in result.stdout
    assert "OVER by 8m40s" in cockpit(tmp_path, "plan", "runbook.toml").stdout  # the same figure as plan's


def test_the_shipped_runbook_s_window_fits_its_thirty_minutes() -> None:
    root = Path(__file__).resolve().parents[2]
    result = cockpit(root, "check", "runbook.toml")
    assert "planned work" not in result.stdout, result.stdout


def test_run_and_check_name_the_same_unset_variables_and_say_where_they_come_from(tmp_path: Path) -> None:
    write(
        tmp_path,
        '\n[connections.db]\nkind = "postgres"\ndsn = "postgresql://${DB_USER}:${DB_PASS}@h/db"\n'
        '[connections.web]\nkind = "http"\nbase_url = "${WEB}"\n' + shell("a", "echo ${TOKEN}"),
    )
    check = cockpit(tmp_path, "check", "runbook.toml")
    run = cockpit(tmp_path, "run", "runbook.toml", "--headless")
    named = sorted(set(re.findall(r"\$\{(\w+)\}", check.stdout + check.stderr)))
    assert named == ["DB_PASS", "DB_USER", "TOKEN", "WEB"]
    assert run.returncode == 2
    assert sorted(set(re.findall(r"\$\{(\w+)\}", run.stderr))) == named
    for output in (check.stdout, run.stderr):
        assert "`cockpit demo` sets them itself" in output


def test_status_shows_every_action_the_triggers_and_rollback_steps_not_needed(tmp_path: Path) -> None:
    ticks = ", ".join(f'"item {n}"' for n in range(14))
    checklist = f'id = "list"\nphase = "window"\nkind = "checklist"\nneeds = ["a"]\nwith = {{ items = [{ticks}] }}'
    write(
        tmp_path,
        shell("a", "true", 'undo = "undo-a"')
        + f"\n[[step]]\n{checklist}\n"
        + shell("undo-a", "true", phase="rollback")
        + '\n[[trigger]]\nid = "a-failed"\nwhen = { step = "a", state = "failed" }\naction = "rollback"\n',
    )
    result = cockpit(tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--answer", "list=yes")
    assert result.returncode == 0, result.stdout + result.stderr
    text = cockpit(tmp_path, "status", "runbook.toml").stdout
    assert "operator actions (1):" in text and "answer list: yes" in text
    assert re.search(r"^undo-a\s+not needed\s+0\s+-\s+rollback step: the run ended without a rollback", text, re.M)
    assert re.search(r"^  a-failed\s+not fired\s+a failed -> rollback", text, re.M)
    facts = json.loads(cockpit(tmp_path, "status", "runbook.toml", "--json").stdout)
    assert facts["actions"][0]["action"] == "answer" and facts["actions"][0]["step"] == "list"
    assert facts["triggers"] == [
        {
            "id": "a-failed",
            "title": "a-failed",
            "when": "a failed",
            "action": "rollback",
            "fired": False,
            "fired_at": None,
            "reason": "",
        }
    ]
    assert facts["steps"]["undo-a"]["state"] == "not needed"


def test_status_lists_every_action_of_a_long_run(tmp_path: Path) -> None:
    from fakes import Harness

    from cockpit.operator import Operator
    from cockpit.status import status_facts, status_text

    items = ", ".join(f'"item {n}"' for n in range(14))
    h = Harness(
        tmp_path, f'\n[[step]]\nid = "list"\nphase = "window"\nkind = "checklist"\nwith = {{ items = [{items}] }}\n'
    ).start()
    try:
        deadline = time.monotonic() + 10
        while h.state("list") != "waiting" and time.monotonic() < deadline:
            time.sleep(0.02)
        for n in range(14):
            h.engine.tick("list", n, Operator("dana" if n % 2 else "sam"))
        h.settle(10)
        text = status_text(status_facts(h.journal, h.journal.latest_run()))  # type: ignore[arg-type]
    finally:
        h.close()
    assert "operator actions (14):" in text
    assert all(f"tick list: item {n}" in text for n in range(14))


def test_headless_stamps_never_go_backwards(tmp_path: Path) -> None:
    write(
        tmp_path, shell("early", "true", phase="prep") + shell("a", "sleep 0.2") + shell("b", "true", 'needs = ["a"]')
    )
    result = cockpit(tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "600")
    assert result.returncode == 0, result.stderr
    stamps = re.findall(r"^\[(\d\d-\d\d \d\d:\d\d:\d\d) T[-+]", result.stdout, re.M)
    assert len(stamps) >= 5 and stamps == sorted(stamps)
    assert any(" T-" in line for line in result.stdout.splitlines())  # the countdown is there too


def test_the_screen_says_what_is_unset_before_it_draws_anything(tmp_path: Path) -> None:
    write(tmp_path, '\n[connections.web]\nkind = "http"\nbase_url = "${WEB}"\n' + shell("a", "true"))
    result = cockpit(tmp_path, "run", "runbook.toml", env={"TERM": "xterm-256color"})
    assert result.returncode == 2
    assert "runbook.toml:21: ${WEB} is not set in the environment" in result.stderr
    assert "\x1b[" not in result.stdout + result.stderr  # no frame was painted and taken back
