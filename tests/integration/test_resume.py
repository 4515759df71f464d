"""A real crash (SIGKILL) in the middle of a run, then a resume from the journal."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import TESTS, subprocess_env
from fakes import LEDGER, Harness, write_runbook

from cockpit.engine.views import Outcome
from cockpit.events import StepStateChanged

BODY = """
[[step]]
id = "a"
phase = "window"
kind = "fake.work"
with = { }

[[step]]
id = "b"
phase = "window"
kind = "fake.work"
needs = ["a"]
with = { seconds = 30, checkpoint_key = "position" }

[[step]]
id = "c"
phase = "window"
kind = "fake.work"
needs = ["b"]
with = { }
"""

CRASHER = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from fakes import Harness, LEDGER
    h = Harness(Path({folder!r}), None).start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(e[0].startswith("checkpoint-seen") and e[1] == "b" for e in LEDGER.entries):
            time.sleep(0.2)   # the checkpoint write is synchronous; let a log batch land too
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.01)
    sys.exit(3)
""")


def _crash_mid_step(folder: Path) -> None:
    write_runbook(folder, BODY)
    script = CRASHER.format(tests=str(TESTS), folder=str(folder))
    result = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -9, result.stderr[-2000:]


def test_after_a_crash_finished_steps_never_run_again_and_the_running_one_is_interrupted(tmp_path: Path) -> None:
    _crash_mid_step(tmp_path)
    h = Harness(tmp_path, None).start()
    try:
        assert h.engine.resumed
        assert h.settle() == Outcome.WAITING  # an interrupted step waits for the operator
        assert h.state("a") == "succeeded" and h.state("b") == "interrupted" and h.state("c") == "scheduled"
        assert LEDGER.of("start") == []  # nothing ran again by itself
        interrupted = [e for e in h.of_type(StepStateChanged) if e.step_id == "b"]
        assert interrupted[-1].state == "interrupted" and "retry" in interrupted[-1].reason
    finally:
        h.close()


def test_retry_resumes_the_interrupted_step_from_its_checkpoint(tmp_path: Path) -> None:
    _crash_mid_step(tmp_path)
    h = Harness(tmp_path, None, answers={"b": "retry"}).start()
    try:
        h.wait_for(lambda: LEDGER.count("start", "b") == 1)
        # The new attempt (2) saw the checkpoint written by attempt 1 before the crash.
        assert "checkpoint-seen:1" in [e[0] for e in LEDGER.entries if e[1] == "b"]
        assert LEDGER.count("start", "a") == 0
        h.engine.cancel("b", h.engine.operator)  # no need to wait out the 30 s
    finally:
        h.close()


def test_the_log_lines_written_before_the_crash_are_in_the_journal(tmp_path: Path) -> None:
    _crash_mid_step(tmp_path)
    h = Harness(tmp_path, None)
    h.engine.open()
    try:
        run_id = h.engine.run_id
        assert h.journal.checkpoint(run_id, "b") == {"position": 1}
        assert h.engine.step_runtime("b").attempt == 1
    finally:
        h.journal.close()


def test_answers_skip_and_done_settle_an_interrupted_step(tmp_path: Path) -> None:
    _crash_mid_step(tmp_path)
    h = Harness(tmp_path, None, answers={"b": "done:finished by hand after the crash"}).start()
    try:
        assert h.settle() == Outcome.DONE
        assert h.state("b") == "succeeded"
        assert "finished by hand after the crash" in h.engine.step_runtime("b").reason
        assert LEDGER.of("start") == ["c"]
    finally:
        h.close()
