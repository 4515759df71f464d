"""kill -9 the headless cockpit at random moments; every restart must continue, never repeat.

Each shell step appends `start ID` and `end ID` to a ledger file. Whatever the moment of the
kill, the journal knew of every start before it happened, and a step whose success reached the
journal never runs again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import COCKPIT, subprocess_env

from cockpit.events import StepStateChanged
from cockpit.journal import Journal

pytestmark = pytest.mark.integration

HEAD = """[runbook]
name = "Kill test"
t0 = 2026-12-05T23:00:00-05:00
window = "30m"

[[phase]]
id = "window"
at = "T-0"
window = true
"""


def _worker(step_id: str, needs: list[str], ledger: Path) -> str:
    script = (
        f"echo start {step_id} >> {ledger}; i=0; while [ $i -lt 12 ]; do echo {step_id} line $i; "
        f"i=$((i+1)); sleep 0.05; done; echo end {step_id} >> {ledger}"
    )
    needs_line = f"needs = {needs!r}".replace("'", '"') if needs else ""
    return (
        f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "shell"\n{needs_line}\n'
        f'with = {{ argv = ["sh", "-c", "{script}"] }}\n'
    )


def test_kill_minus_nine_at_random_moments_never_repeats_finished_work(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    ids = ["s1", "s2", "s3", "s4", "s5", "s6"]
    body = (
        _worker("s1", [], ledger)
        + _worker("s2", [], ledger)
        + _worker("s3", ["s1", "s2"], ledger)
        + _worker("s4", ["s3"], ledger)
        + '\n[[step]]\nid = "pause"\nphase = "window"\nkind = "wait"\nneeds = ["s4"]\nwith = { duration = "2m" }\n'
        + _worker("s5", ["pause"], ledger)
        + _worker("s6", ["s5"], ledger)
    )
    (tmp_path / "runbook.toml").write_text(HEAD + body)
    answers = [arg for step in [*ids, "pause"] for arg in ("--answer", f"{step}=retry")]
    command = [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "60", *answers]
    rng = random.Random(20261205)
    kills = 0
    # Eight kills at random moments (most land mid-step), then a restart that runs to the end.
    for attempt in range(9):
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            proc.wait(timeout=rng.uniform(0.4, 2.0) if attempt < 8 else 120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        output = proc.stdout.read() if proc.stdout else ""
        assert proc.returncode == 0, output
        break
    assert proc.returncode == 0, "the last restart did not finish the run"
    assert kills >= 3, "the test must actually kill the cockpit several times"
    entries = [line.split() for line in ledger.read_text().splitlines()]
    starts = Counter(step for what, step in entries if what == "start")
    ends = Counter(step for what, step in entries if what == "end")
    journal = Journal(tmp_path / ".cockpit" / "journal.db", readonly=True)
    run = journal.latest_run()
    assert run is not None and run.state == "done"
    states = [e for e in journal.events(run.id) if isinstance(e, StepStateChanged)]
    for step in ids:
        mine = [e.state for e in states if e.step_id == step]
        # Finished steps are never run again: nothing after the one journaled success.
        assert mine.count("succeeded") == 1 and mine[-1] == "succeeded", (step, mine)
        # Every start was journaled before the command ran (a kill may fall between the two, so a
        # journaled attempt may have no start; never the other way round).
        assert starts[step] <= mine.count("running"), (step, starts[step], mine)
        # A second end can only come from an attempt that finished in the instant between its
        # command exiting and its success reaching the journal: one recorded as interrupted.
        assert 1 <= ends[step] <= 1 + mine.count("interrupted"), (step, ends[step], mine)
    assert sum(starts.values()) > len(ids), "some step must have been interrupted and resumed"


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for this machine's init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_and_kill(tmp_path: Path, pidfile: Path) -> None:
    first = subprocess.Popen(
        [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal"],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()


def _wait_gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def test_a_shell_command_dies_with_its_cockpit(tmp_path: Path) -> None:
    pidfile = tmp_path / "sleep.pid"
    body = (
        '\n[[step]]\nid = "long"\nphase = "window"\nkind = "shell"\n'
        f'with = {{ argv = ["sh", "-c", "echo $$ > {pidfile}; exec sleep 300"] }}\n'
    )
    (tmp_path / "runbook.toml").write_text(HEAD + body)
    _start_and_kill(tmp_path, pidfile)
    assert _wait_gone(int(pidfile.read_text())), "the command outlived the cockpit"


def test_a_retry_stops_what_the_dead_attempt_left_running(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    body = (
        '\n[[step]]\nid = "long"\nphase = "window"\nkind = "shell"\n'
        f'with = {{ argv = ["sh", "-c", "sleep 300 & echo $! > {pidfile}; wait"] }}\n'
    )
    (tmp_path / "runbook.toml").write_text(HEAD + body)
    # The step's keeper killed first, then the cockpit: nothing stops the tree now...
    first = subprocess.Popen(
        [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal"],
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    ps = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    keeper = next(int(line.split()[0]) for line in ps if "cockpit.process_keeper" in line and str(tmp_path) in line)
    os.kill(keeper, signal.SIGKILL)
    first.send_signal(signal.SIGKILL)
    first.wait()
    orphan = int(pidfile.read_text())
    assert _alive(orphan)
    pidfile.unlink()
    # ...and the retry finds it by the checkpoint's record and stops it before starting anew.
    second = subprocess.Popen(
        [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal", "--answer", "long=retry"],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pidfile.exists(), "the retry did not start"
        assert not _alive(orphan)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    log = subprocess.run(
        [COCKPIT, "status", "runbook.toml", "--log", "long"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
    ).stdout
    assert f"[cockpit] stopped pid {orphan} (sleep) of the interrupted attempt" in log, log


def test_after_a_kill_status_says_interrupted_and_the_restart_stops_its_time(tmp_path: Path) -> None:
    import json

    pidfile = tmp_path / "sleep.pid"
    body = (
        '\n[[step]]\nid = "long"\nphase = "window"\nkind = "shell"\n'
        f'with = {{ argv = ["sh", "-c", "echo $$ > {pidfile}; exec sleep 300"] }}\n'
    )
    (tmp_path / "runbook.toml").write_text(HEAD + body)
    _start_and_kill(tmp_path, pidfile)
    killed_at = time.time()
    status = subprocess.run(
        [COCKPIT, "status", "runbook.toml"], cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True
    ).stdout
    assert "no process drives it now" in status
    line = next(line for line in status.splitlines() if line.startswith("long "))
    assert line.split()[1] == "interrupted" and "the cockpit stopped while it ran" in line
    facts = json.loads(
        subprocess.run(
            [COCKPIT, "status", "runbook.toml", "--json"],
            cwd=tmp_path,
            env=subprocess_env(),
            capture_output=True,
            text=True,
        ).stdout
    )
    assert facts["steps"]["long"]["state"] == "interrupted"
    took = facts["steps"]["long"]["took_s"]
    assert took is not None and 0 <= took < 5  # up to the last sign of life, not up to now
    time.sleep(1.5)
    # The restart (no answer given) records the step interrupted, its time where it stopped.
    restart = subprocess.run(
        [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert restart.returncode == 4, restart.stdout + restart.stderr  # waiting for the operator
    journal = Journal(tmp_path / ".cockpit" / "journal.db", readonly=True)
    record = journal.steps(journal.latest_run().id)["long"]  # type: ignore[union-attr]
    assert record.state == "interrupted" and record.ended_wall is not None
    assert record.ended_wall <= killed_at
