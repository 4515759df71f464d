"""A step's whole process tree ends with its attempt (cockpit/process_keeper.py): a pipeline, a
daemon that double-forks into a session of its own and a command that ignores SIGTERM, when the
cockpit is killed with -9, when the step succeeds and when it times out. After a crash, what
the keeper stopped is journaled; what is still alive is shown on the step and stopped before
the operator's skip."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import COCKPIT, subprocess_env
from test_kill9 import HEAD

pytestmark = pytest.mark.integration


# Three kinds of descendants, each a `sleep` with a number of its own, then a word that it is ready.
TREE = (
    "sleep {n}1 | cat > /dev/null & "
    "setsid sh -c '(sleep {n}2 &)' & "
    "sh -c 'trap \"\" TERM; exec sleep {n}3' & "
    "sleep 0.3; echo ready > {ready}; {tail}"
)
GRACE_S = 3.0  # run_command's grace between SIGTERM and SIGKILL


def _number() -> int:
    """A number for this test's sleeps, so that nothing else on the machine is taken for them."""
    return random.randrange(10_000, 100_000)


def _runbook(folder: Path, n: int, tail: str = "wait", extra: str = "") -> Path:
    script = TREE.format(n=n, ready=folder / "ready", tail=tail)
    argv = json.dumps(["sh", "-c", script])
    body = f'\n[[step]]\nid = "tree"\nphase = "window"\nkind = "shell"\n{extra}\nwith = {{ argv = {argv} }}\n'
    (folder / "runbook.toml").write_text(HEAD + body)
    return folder / "runbook.toml"


def _sleeps(n: int) -> list[str]:
    """`ps` lines of the tree's sleeps still running (zombies are not running)."""
    out = subprocess.run(["ps", "-eo", "pid,stat,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if re.fullmatch(rf"\s*\d+ [^Z ]\S* +sleep {n}[123]", line)]


def _until(condition: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _start(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal", *args],
        cwd=folder, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    """The cockpit's output once it exits; killed (and the test failed) if it does not."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return output


def _log(folder: Path) -> str:
    return subprocess.run(
        [COCKPIT, "status", "runbook.toml", "--log", "tree"], cwd=folder, env=subprocess_env(), capture_output=True,
        text=True, timeout=60,
    ).stdout  # fmt: skip


def test_kill_minus_nine_of_the_cockpit_stops_the_whole_tree_and_the_restart_journals_it(tmp_path: Path) -> None:
    n = _number()
    _runbook(tmp_path, n)
    cockpit = _start(tmp_path)
    try:
        assert _until(lambda: (tmp_path / "ready").exists() and len(_sleeps(n)) == 3, 30), _sleeps(n)
    finally:
        cockpit.send_signal(signal.SIGKILL)
        cockpit.wait()
    # Within the grace period (and a moment), nothing of the attempt runs, SIGTERM ignored or not.
    assert _until(lambda: not _sleeps(n), GRACE_S + 2.0), _sleeps(n)

    again = _start(tmp_path, "--answer", "tree=skip:the test stopped it")
    output = _finish(again)
    assert again.returncode == 0, output
    log = _log(tmp_path)
    stopped = re.findall(r"after the cockpit stopped, the keeper pid \d+ \((\w+)\) stopped with (SIG\w+)", log)
    assert ("sleep", "SIGKILL") in stopped  # the one that ignored SIGTERM
    assert stopped.count(("sleep", "SIGTERM")) == 2 and ("cat", "SIGTERM") in stopped, log


def test_a_step_that_succeeds_leaves_no_daemon_behind(tmp_path: Path) -> None:
    n = _number()
    _runbook(tmp_path, n, tail="exit 0")
    done = _start(tmp_path)
    output = _finish(done)
    assert done.returncode == 0, output
    assert not _sleeps(n)
    assert re.search(r"\[cockpit\] pid \d+ \(sleep\) outlived 3s: SIGKILL", _log(tmp_path))


def test_a_step_that_times_out_stops_a_tree_that_ignores_sigterm(tmp_path: Path) -> None:
    n = _number()
    _runbook(tmp_path, n, extra='timeout = "2s"')
    run = _start(tmp_path, "--answer", "tree=skip:timed out")
    output = _finish(run)
    assert "timed out" in output
    assert not _sleeps(n)


def test_processes_left_alive_are_shown_and_stopped_before_a_skip(tmp_path: Path) -> None:
    n = _number()
    _runbook(tmp_path, n)
    cockpit = _start(tmp_path)
    try:
        assert _until(lambda: (tmp_path / "ready").exists() and len(_sleeps(n)) == 3, 30), _sleeps(n)
        keeper = next(
            int(line.split()[0])
            for line in subprocess.run(
                ["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True
            ).stdout.splitlines()
            if "cockpit.process_keeper" in line and str(tmp_path) in line
        )
        os.kill(keeper, signal.SIGKILL)  # the keeper too: nothing stops the tree now
    finally:
        cockpit.send_signal(signal.SIGKILL)
        cockpit.wait()
    time.sleep(GRACE_S + 1.0)
    assert len(_sleeps(n)) == 3  # orphaned, still running

    again = _start(tmp_path, "--answer", "tree=skip:its work is done by hand")
    output = _finish(again)
    assert again.returncode == 0, output
    assert re.search(
        r"tree +interrupted +pid \d+ still running `(sleep|cat|sh)` since \d\d:\d\d \(and \d more\)", output
    )
    assert not _sleeps(n)
    log = _log(tmp_path)
    assert len(re.findall(r"\[cockpit\] stopped pid \d+ \(\w+\) of the interrupted attempt", log)) >= 3
