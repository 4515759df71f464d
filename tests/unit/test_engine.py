"""Engine scheduling with fake steps: no servers, no Textual."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from fakes import LEDGER, Harness

from cockpit.engine.views import Outcome
from cockpit.events import Alert, StepLog, StepStateChanged


def _step(step_id: str, *, phase: str = "window", kind: str = "fake.work", extra: str = "", with_: str = "") -> str:
    return f'''
[[step]]
id = "{step_id}"
phase = "{phase}"
kind = "{kind}"
{extra}
with = {{ {with_} }}
'''


def test_needs_order_and_independent_steps_run_in_parallel(tmp_path: Path) -> None:
    body = (
        _step("a", with_="seconds = 0.4") + _step("b", with_="seconds = 0.4") + _step("c", extra='needs = ["a", "b"]')
    )
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.DONE
        starts = {e[1]: e[3] for e in LEDGER.entries if e[0] == "start"}
        ends = {e[1]: e[3] for e in LEDGER.entries if e[0] == "end"}
        # a and b overlap in time: both started before either finished.
        assert starts["b"] < ends["a"] and starts["a"] < ends["b"]
        # c started only after both finished.
        assert starts["c"] >= max(ends["a"], ends["b"])
        assert h.states("c") == ["ready", "running", "succeeded"]
    finally:
        h.close()


def test_a_step_does_not_start_before_it_is_due(tmp_path: Path) -> None:
    body = _step("later", extra='at = "T+2h"')
    h = Harness(tmp_path, body, speed=3600, start=timedelta(0), jump_idle=False).start()
    try:
        time.sleep(0.5)  # half an hour of clock time: not yet due
        assert h.state("later") == "scheduled"
        assert h.settle(10) == Outcome.DONE
        running = next(e for e in h.of_type(StepStateChanged) if e.step_id == "later" and e.state == "running")
        assert running.clock >= h.runbook.t0 + timedelta(hours=2)
    finally:
        h.close()


def test_rehearsal_jumps_idle_gaps_so_sixty_days_pass_in_moments(tmp_path: Path) -> None:
    body = (
        '[[phase]]\nid = "announce"\nat = "T-30d"\n'
        + _step("early", phase="announce")
        + _step("window-step")
        + _step("late", extra='at = "T+30d"')
    )
    h = Harness(tmp_path, body, speed=1, start=timedelta(days=-31)).start()
    try:
        started = time.monotonic()
        assert h.settle(20) == Outcome.DONE
        assert time.monotonic() - started < 10
        late = next(e for e in h.of_type(StepStateChanged) if e.step_id == "late" and e.state == "running")
        assert late.clock >= h.runbook.t0 + timedelta(days=30)
    finally:
        h.close()


def test_without_jumps_a_rehearsal_clock_only_runs_faster(tmp_path: Path) -> None:
    body = _step("late", extra='at = "T+30d"')
    h = Harness(tmp_path, body, speed=1, start=timedelta(0), jump_idle=False).start()
    try:
        assert h.settle(0.5) == Outcome.RUNNING
        assert h.state("late") == "scheduled"
    finally:
        h.close()


def test_budget_overrun_is_reported_as_lateness(tmp_path: Path) -> None:
    body = _step("slow", extra='budget = "100ms"', with_="seconds = 0.5")
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("slow", "running")
        h.wait_for(lambda: any(isinstance(e, Alert) and "over its budget" in e.message for e in h.events))
        assert h.settle() == Outcome.DONE
        view = h.engine.view().steps["slow"]
        assert view.late_by is not None and view.late_by.total_seconds() >= 0.3
    finally:
        h.close()


def test_timeout_cancels_the_attempt_and_fails_it(tmp_path: Path) -> None:
    body = _step("hang", extra='timeout = "300ms"', with_="seconds = 30")
    h = Harness(tmp_path, body).start()
    try:
        started = time.monotonic()
        assert h.settle() == Outcome.FAILED
        assert time.monotonic() - started < 5
        assert h.state("hang") == "failed"
        assert "timed out after" in h.engine.step_runtime("hang").reason
        assert LEDGER.count("cancelled", "hang") == 1  # the step saw its cancellation
    finally:
        h.close()


def test_a_step_that_ignores_cancellation_is_abandoned_after_the_grace(tmp_path: Path) -> None:
    body = _step("stubborn", kind="fake.stubborn", extra='timeout = "200ms"', with_="seconds = 3")
    h = Harness(tmp_path, body, grace=0.3).start()
    try:
        started = time.monotonic()
        assert h.settle() == Outcome.FAILED
        assert time.monotonic() - started < 2.5  # did not wait for the 3 s sleep
        assert "did not stop" in h.engine.step_runtime("stubborn").reason
    finally:
        h.close()


def test_retries_wait_a_doubling_delay(tmp_path: Path) -> None:
    body = _step("flaky", extra='retries = 3\nretry_delay = "10m"', with_="fail_attempts = 2")
    h = Harness(tmp_path, body, speed=6000).start()
    try:
        assert h.settle() == Outcome.DONE
        assert LEDGER.of("start") == ["flaky", "flaky", "flaky"]
        running = [e.clock for e in h.of_type(StepStateChanged) if e.step_id == "flaky" and e.state == "running"]
        gaps = [(b - a).total_seconds() for a, b in zip(running, running[1:], strict=False)]
        # Never before the delay: 10 min, then 20 min of clock time. (How much after depends on the
        # machine: at 6000x a millisecond is six clock seconds, so no upper bound is asserted.)
        assert gaps[0] >= 600 and gaps[1] >= 1200
        reasons = [e.reason for e in h.of_type(StepStateChanged) if e.step_id == "flaky" and e.state == "scheduled"]
        assert reasons[0].startswith("failed: it broke; retry 1 of 3 in 10m")
        assert reasons[1].startswith("failed: it broke; retry 2 of 3 in 20m")
    finally:
        h.close()


def test_retries_exhausted_fail_the_step_and_block_its_dependents(tmp_path: Path) -> None:
    body = _step(
        "flaky", extra='retries = 1\nretry_delay = "1s"', with_='fail_attempts = 5, fail_message = "nope"'
    ) + _step("after", extra='needs = ["flaky"]')
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.FAILED
        assert h.state("flaky") == "failed" and h.engine.step_runtime("flaky").reason == "nope"
        assert h.state("after") == "scheduled"
        assert LEDGER.count("start", "flaky") == 2 and LEDGER.count("start", "after") == 0
    finally:
        h.close()


def test_an_unexpected_exception_fails_the_step_with_its_traceback_in_the_log(tmp_path: Path) -> None:
    body = _step("boom", kind="fake.crash", with_='fail_message = "kaboom"')
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.FAILED
        assert h.engine.step_runtime("boom").reason == "ValueError: unexpected: kaboom"
        log = h.journal.log_lines(h.engine.run_id, "boom")
        assert any("Traceback" in line for line in log)
    finally:
        h.close()


def test_every_log_line_reaches_the_journal_in_order(tmp_path: Path) -> None:
    body = _step("chatty", with_="lines = 100000")
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.DONE
        lines = h.journal.log_lines(h.engine.run_id, "chatty")
        assert len(lines) == 100000
        assert lines[0] == "line 1" and lines[-1] == "line 100000"
        assert lines == [f"line {n}" for n in range(1, 100001)]
        batches = [e for e in h.of_type(StepLog) if e.step_id == "chatty"]
        assert sum(len(b.lines) for b in batches) == 100000
        assert len(batches) < 1000  # batched, not a message per line
    finally:
        h.close()


def test_progress_is_reported_with_a_rate(tmp_path: Path) -> None:
    body = _step("copy", with_="seconds = 0.6, progress_total = 100000")
    h = Harness(tmp_path, body).start()
    try:
        h.wait_for(
            lambda: (
                h.engine.view().steps["copy"].progress and h.engine.view().steps["copy"].progress[0].rate is not None
            )
        )
        bar = h.engine.view().steps["copy"].progress[0]
        assert bar.total == 100000 and bar.unit == "rows" and bar.rate and bar.rate > 0
        assert h.settle() == Outcome.DONE
    finally:
        h.close()


def test_events_are_in_the_journal_before_subscribers_see_them(tmp_path: Path) -> None:
    from cockpit.journal import Journal

    body = _step("a") + _step("b", extra='needs = ["a"]')
    h = Harness(tmp_path, body)
    reader = Journal.for_runbook(h.path, readonly=False)
    missing: list[int] = []

    def check(event: object) -> None:
        seq = getattr(event, "seq", 0)
        if seq and not any(e.seq == seq for e in reader.events(h.engine.run_id, after=seq - 1)):
            missing.append(seq)

    h.engine.subscribe(check)
    h.start()
    try:
        assert h.settle() == Outcome.DONE
        assert len([e for e in h.events if e.seq]) > 5
        assert missing == []
    finally:
        h.close()
        reader.close()


def test_secrets_never_reach_the_journal_or_the_events(tmp_path: Path) -> None:
    secret = "s3cr3t-password-value"
    header_extra = """
[connections.db]
kind = "postgres"
dsn = "postgresql://app:${DB_PASSWORD}@127.0.0.1/x"
"""
    from fakes import HEADER

    body = _step(
        "leaky",
        with_='log_text = "connecting with ${DB_PASSWORD}", fail_attempts = 1, '
        'fail_message = "auth failed for ${DB_PASSWORD}", checkpoint_key = "k"',
    )
    h = Harness(tmp_path, body, header=HEADER + header_extra, env={"DB_PASSWORD": secret}).start()
    try:
        assert h.settle() == Outcome.FAILED
        everything = [str(e.to_dict()) for e in h.events]
        assert not any(secret in text for text in everything)
        assert any("••••••" in text for text in everything)
        h.journal.close()
        raw = (h.path.parent / ".cockpit" / "journal.db").read_bytes()
        wal = h.path.parent / ".cockpit" / "journal.db-wal"
        assert secret.encode() not in raw and (not wal.exists() or secret.encode() not in wal.read_bytes())
    finally:
        h.engine.stop()


@pytest.mark.parametrize("dry_run", [True, False])
def test_dry_run_runs_probes_and_describes_the_rest(tmp_path: Path, dry_run: bool) -> None:
    body = (
        _step("look", kind="fake.probe")
        + _step("change", extra='needs = ["look"]')
        + _step("shell-mutate", kind="shell", with_='argv = ["sh", "-c", "echo mutated"]')
    )
    h = Harness(tmp_path, body, dry_run=dry_run).start()
    try:
        assert h.settle() == Outcome.DONE
        assert LEDGER.count("start", "look") == 1  # probes run for real
        assert LEDGER.count("start", "change") == (0 if dry_run else 1)
        view = h.engine.view()
        assert view.steps["change"].not_run is dry_run
        if dry_run:
            assert view.steps["change"].state.value == "skipped"  # never "succeeded"
            assert "dry run" in view.steps["change"].reason
            log = h.journal.log_lines(h.engine.run_id, "shell-mutate")
            assert log == ["dry run: would run sh -c 'echo mutated'"]
    finally:
        h.close()


def test_a_dry_run_does_not_run_a_probe_that_needs_a_step_it_did_not_run(tmp_path: Path) -> None:
    # A verification after an import the dry run skipped would find nothing and raise alarms.
    body = (
        _step("change")
        + _step("verify", kind="fake.probe", extra='needs = ["change"]')
        + _step("after", kind="fake.probe", extra='needs = ["verify"]')
        + _step("independent", kind="fake.probe")
    )
    h = Harness(tmp_path, body, dry_run=True).start()
    try:
        assert h.settle() == Outcome.DONE
        assert LEDGER.count("start", "independent") == 1
        for step in ("change", "verify", "after"):
            assert LEDGER.count("start", step) == 0, step
            assert h.engine.view().steps[step].not_run
        assert h.engine.view().steps["verify"].reason == "dry run: needs change, which did not run"
        assert h.engine.view().steps["after"].reason == "dry run: needs verify, which did not run"
    finally:
        h.close()
