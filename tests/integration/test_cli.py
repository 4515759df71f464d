"""The command line as users meet it: real processes, real exit codes, real output."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from conftest import COCKPIT, subprocess_env

HEAD = """[runbook]
name = "CLI test"
t0 = 2026-12-05T23:00:00-05:00
window = "30m"

[[phase]]
id = "prep"
at = "T-1d"

[[phase]]
id = "window"
at = "T-0"
window = true

[[phase]]
id = "rollback"
kind = "rollback"
"""


def shell(step_id: str, script: str, extra: str = "", phase: str = "window") -> str:
    return (
        f'\n[[step]]\nid = "{step_id}"\nphase = "{phase}"\nkind = "shell"\n{extra}\n'
        f'with = {{ argv = ["sh", "-c", {json.dumps(script)}] }}\n'
    )


def cockpit(
    folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COCKPIT, *args], cwd=folder, capture_output=True, text=True, timeout=timeout, env=subprocess_env(**(env or {}))
    )


def write(folder: Path, body: str, name: str = "runbook.toml") -> Path:
    path = folder / name
    path.write_text(HEAD + body)
    return path


def test_check_sound_runbook_exits_0_with_a_summary(tmp_path: Path) -> None:
    write(tmp_path, shell("a", "true"))
    result = cockpit(tmp_path, "check", "runbook.toml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "runbook.toml: sound: 'CLI test', 3 phases, 1 steps, 0 triggers, T-0 2026-12-05 23:00 -0500"
    )


def test_check_reports_every_problem_with_its_line_and_exits_2(tmp_path: Path) -> None:
    write(tmp_path, shell("a", "true", 'budget = "soon"') + shell("a", "true", 'needs = ["nope"]'))
    result = cockpit(tmp_path, "check", "runbook.toml")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        'runbook.toml:23: step \'a\': budget: bad duration \'soon\': use e.g. "90s", "5m", "1h30m", "7d"'
    )
    assert "runbook.toml:27: duplicate step id 'a' (first defined at line 20)" in lines
    assert "runbook.toml:30: step 'a': needs 'nope', which is not a step" in lines
    assert lines[-1] == "runbook.toml: 3 problems"


def test_check_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = cockpit(tmp_path, "check", "nothere.toml")
    assert result.returncode == 2 and "nothere.toml: no such file" in result.stderr


def test_plan_shows_both_zones_the_window_and_the_critical_path(tmp_path: Path) -> None:
    write(
        tmp_path,
        shell("freeze", "true", 'budget = "10s"')
        + shell("move", "true", 'budget = "20m"\nneeds = ["freeze"]')
        + shell("check", "true", 'budget = "2m"\nneeds = ["freeze"]')
        + shell("ann", "true", phase="prep"),
    )
    result = cockpit(tmp_path, "plan", "runbook.toml", env={"TZ": "Europe/Berlin"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "T-0 is 2026-12-05 23:00 UTC-0500 (runbook zone) = 2026-12-06 05:00 CET (local)" in out
    assert " *move                   T+10s     2026-12-05 23:00 2026-12-06 05:00  20m00s  freeze" in out
    assert "Window: planned 20m10s of 30m00s (9m50s to spare)" in out
    assert "Critical path (*): freeze -> move = 20m10s" in out


def test_headless_run_done_exits_0_and_status_shows_it(tmp_path: Path) -> None:
    write(tmp_path, shell("a", "echo hello from a") + shell("b", "echo b", 'needs = ["a"]'))
    result = cockpit(tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "1000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a                      succeeded" in result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith("exit 0")
    status = cockpit(tmp_path, "status", "runbook.toml")
    assert status.returncode == 0
    assert "is done" in status.stdout and "b                        succeeded      1" in status.stdout
    log = cockpit(tmp_path, "status", "runbook.toml", "--log", "a")
    assert log.stdout == "hello from a\n"


def test_headless_failure_exits_1_and_prints_the_log_tail(tmp_path: Path) -> None:
    write(tmp_path, shell("bad", "echo about to fail; echo the real reason >&2; exit 7"))
    result = cockpit(tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "1000")
    assert result.returncode == 1
    assert "bad                    failed       sh exited with status 7" in result.stdout
    assert "    | the real reason" in result.stdout


def test_headless_rollback_exits_3(tmp_path: Path) -> None:
    body = (
        shell("freeze", "echo frozen", 'undo = "thaw"')
        + shell("smoke", "exit 1", 'needs = ["freeze"]')
        + shell("thaw", "echo thawed", phase="rollback")
        + '\n[[trigger]]\nid = "smoke-failed"\nwhen = { step = "smoke", state = "failed" }\n'
        'action = "rollback"\nwithin = "10m"\n'
    )
    write(tmp_path, body)
    result = cockpit(tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "1000")
    assert result.returncode == 3, result.stdout
    assert "TRIGGER smoke-failed fired (rollback)" in result.stdout
    assert "ROLLBACK starts" in result.stdout and "plan: thaw" in result.stdout
    assert "thaw                   succeeded" in result.stdout


def test_headless_gate_without_answer_exits_4_then_answer_continues(tmp_path: Path) -> None:
    body = (
        '\n[[step]]\nid = "go"\nphase = "window"\nkind = "manual"\n'
        'with = { question = "Go?", confirm = "GO" }\n' + shell("after", "echo after", 'needs = ["go"]')
    )
    write(tmp_path, body)
    first = cockpit(tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "1000")
    assert first.returncode == 4, first.stdout
    assert "go                     asks       Go? (type 'GO')" in first.stdout
    second = cockpit(
        tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "1000", "--answer", "go=yes"
    )
    assert second.returncode == 0, second.stdout
    assert "run 1 continues" in second.stdout
    assert "go                     scheduled    asks again: the cockpit stopped while it waited" in second.stdout
    assert "via --answer: answer go: yes" in second.stdout


def test_json_prints_one_event_per_line(tmp_path: Path) -> None:
    write(tmp_path, shell("a", "echo one; echo two"))
    result = cockpit(tmp_path, "run", "runbook.toml", "--headless", "--json", "--rehearsal", "--speed", "1000")
    assert result.returncode == 0
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    types = [e["type"] for e in events]
    assert types[0] == "run_opened" and "step_state" in types and "step_log" in types
    assert types[-1] == "run_state" and events[-1]["state"] == "done"
    logs = [line for e in events if e["type"] == "step_log" for line in e["lines"]]
    assert logs == ["one", "two"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--answer", "ghost=yes"], "--answer 'ghost=yes': no step 'ghost'"),
        (["--answer", "a=maybe"], "the value must be yes, no, retry, skip:REASON or done:REASON"),
        (["--answer", "a=skip:"], "a reason is required"),
        (["--answer", "a"], "write STEP=VALUE"),
        (["--from", "T-1d"], "--from applies to a rehearsal"),
        (["--rehearsal", "--from", "yesterday"], "--from: bad offset 'yesterday'"),
        (["--rehearsal", "--speed", "0"], "--speed must be positive"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    write(tmp_path, shell("a", "true"))
    result = cockpit(tmp_path, "run", "runbook.toml", "--headless", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_an_unset_variable_refuses_the_run_naming_its_line(tmp_path: Path) -> None:
    body = '\n[connections.v1]\nkind = "postgres"\ndsn = "${CLI_TEST_DB}"\n' + shell("a", "true")
    write(tmp_path, body)
    result = cockpit(tmp_path, "run", "runbook.toml", "--headless", "--rehearsal")
    assert result.returncode == 2
    assert "runbook.toml:21: connection 'v1': ${CLI_TEST_DB} is not set in the environment" in result.stderr
    assert (
        not (tmp_path / ".cockpit" / "journal.db").exists()
        or "run 1" not in cockpit(tmp_path, "status", "runbook.toml").stdout
    )


def test_a_second_driver_is_refused_at_once(tmp_path: Path) -> None:
    # A live run whose only step is due in 30 days keeps driving (and holding the lock) meanwhile.
    write(tmp_path, shell("later", "true", 'at = "T+30d"'))
    holder = subprocess.Popen(
        [COCKPIT, "run", "runbook.toml", "--headless"],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = tmp_path / ".cockpit" / "run.lock"
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        second = cockpit(tmp_path, "run", "runbook.toml", "--headless", timeout=30)
        assert time.monotonic() - started < 10  # refused at once, not after waiting
        assert second.returncode == 2
        assert f"holds the lock {lock}" in second.stderr and f"process {holder.pid}" in second.stderr
        status = cockpit(tmp_path, "status", "runbook.toml")
        assert f"driven now by process {holder.pid}" in status.stdout
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert holder.returncode == 130  # SIGTERM unwinds like Ctrl+C: steps recorded, lock released


def test_new_abandons_an_unfinished_run(tmp_path: Path) -> None:
    write(tmp_path, '\n[[step]]\nid = "go"\nphase = "window"\nkind = "manual"\nwith = { question = "Go?" }\n')
    assert cockpit(tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "1000").returncode == 4
    again = cockpit(
        tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "1000", "--new", "--answer", "go=yes"
    )
    assert again.returncode == 0
    assert again.stdout.splitlines()[0].split("]")[-1].strip().startswith("run 2 starts")


def test_continuing_with_other_options_is_refused(tmp_path: Path) -> None:
    write(tmp_path, '\n[[step]]\nid = "go"\nphase = "window"\nkind = "manual"\nwith = { question = "Go?" }\n')
    assert cockpit(tmp_path, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "1000").returncode == 4
    live = cockpit(tmp_path, "run", "runbook.toml", "--headless")
    assert live.returncode == 2 and "is a rehearsal" in live.stderr and "--new" in live.stderr


def test_dry_run_prints_what_mutating_steps_would_do(tmp_path: Path) -> None:
    write(
        tmp_path,
        shell("drop", "echo dropping") + '\n[[step]]\nid = "look"\nphase = "window"\nkind = "shell"\n'
        'with = { argv = ["echo", "looking"], effect = "probe" }\n',
    )
    result = cockpit(tmp_path, "run", "runbook.toml", "--headless", "--dry-run", "--rehearsal", "--speed", "1000")
    assert result.returncode == 0, result.stdout
    assert "drop                   skipped      dry run: mutate step not run" in result.stdout
    assert "look                   succeeded" in result.stdout
    log = cockpit(tmp_path, "status", "runbook.toml", "--log", "drop").stdout
    assert log.strip() == "dry run: would run sh -c 'echo dropping'"
