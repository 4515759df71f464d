"""Triggers (three conditions, three actions) and the rollback sequence."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fakes import LEDGER, Harness

from cockpit.engine import CONFIRM_WORD, ActionRefused
from cockpit.engine.views import Outcome
from cockpit.events import Alert, RollbackStarted, TriggerFired
from cockpit.operator import Operator

ALICE = Operator("alice")


def _step(step_id: str, *, phase: str = "window", kind: str = "fake.work", extra: str = "", with_: str = "") -> str:
    return f'\n[[step]]\nid = "{step_id}"\nphase = "{phase}"\nkind = "{kind}"\n{extra}\nwith = {{ {with_} }}\n'


def _trigger(trigger_id: str, when: str, action: str, extra: str = "") -> str:
    return f'\n[[trigger]]\nid = "{trigger_id}"\nwhen = {{ {when} }}\naction = "{action}"\n{extra}\n'


ROLLBACK_STEPS = (
    _step("ua", phase="rollback")
    + _step("ub", phase="rollback")
    + _step("uc", phase="rollback")
    + _step("r1", phase="rollback", extra='needs = ["r2"]')
    + _step("r2", phase="rollback")
)


def test_rollback_undoes_completed_steps_latest_first_then_the_rest_in_needs_order(tmp_path: Path) -> None:
    body = (
        _step("a", extra='undo = "ua"')
        + _step("c", extra='undo = "uc"', with_="seconds = 0.15")
        + _step("b", extra='undo = "ub"', with_="seconds = 0.4")
        + _step("never", extra='undo = "unever"\nneeds = ["boom"]')
        + _step("unever", phase="rollback")
        + _step("boom", extra='needs = ["a", "b", "c"]', with_="fail_attempts = 1")
        + ROLLBACK_STEPS
        + _trigger("data-loss", 'step = "boom", state = "failed"', "rollback", 'within = "10m"')
    )
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.ROLLED_BACK
        assert Outcome.ROLLED_BACK.exit_code == 3
        rollback_order = [s for s in LEDGER.of("end") if s.startswith(("u", "r"))]
        # Completed a, c, b (in that order) -> undo ub, uc, ua; "never" did not run, so "unever" does not either.
        assert rollback_order == ["ub", "uc", "ua", "r2", "r1"]
        started = h.of_type(RollbackStarted)[0]
        assert started.plan == ("ub", "uc", "ua", "r2", "r1")
        assert started.deadline is not None
        assert h.state("unever") == "scheduled" and h.state("never") == "scheduled"
        fired = h.of_type(TriggerFired)
        assert [(f.trigger_id, f.action) for f in fired] == [("data-loss", "rollback")]
    finally:
        h.close()


def test_an_undo_step_that_needs_a_rollback_step_waits_for_it_and_its_operator_start(tmp_path: Path) -> None:
    # The shipped runbook's shape: v1 goes read-write again (an undo) only after its data is
    # restored from the backup (a rollback step the operator starts, or skips).
    body = (
        _step("read-only", extra='undo = "read-write"')
        + _step("cutover", extra='undo = "dns-back"\nneeds = ["read-only"]')
        + _step("boom", extra='needs = ["cutover"]', with_="fail_attempts = 1")
        + _step("dns-back", phase="rollback")
        + _step("restore", phase="rollback", extra='start = "operator"')
        + _step("read-write", phase="rollback", extra='needs = ["restore"]')
        + _step("tell-users", phase="rollback")
        + _trigger("broken", 'step = "boom", state = "failed"', "rollback")
    )
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("restore", "waiting")
        assert h.of_type(RollbackStarted)[0].plan == ("dns-back", "restore", "read-write", "tell-users")
        assert h.state("read-write") == "scheduled"  # not before the operator has decided
        h.engine.skip("restore", "v1's data was never touched: read-only since before the backup", ALICE)
        assert h.settle() == Outcome.ROLLED_BACK
        assert [s for s in LEDGER.of("end") if s in ("dns-back", "read-write", "tell-users")][-3:] == [
            "dns-back",
            "read-write",
            "tell-users",
        ]
    finally:
        h.close()


def test_a_rollback_cancels_running_forward_steps_first(tmp_path: Path) -> None:
    body = (
        _step("done", extra='undo = "ua"') + _step("long", extra='undo = "ub"', with_="seconds = 30") + ROLLBACK_STEPS
    )
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("long", "running")
        h.engine.rollback(ALICE, "v2 error rate at 40%")
        assert h.settle() == Outcome.ROLLED_BACK
        assert h.state("long") == "cancelled" and LEDGER.count("cancelled", "long") == 1
        # "long" never completed, so its undo "ub" does not run; "done" did, so "ua" does; "uc" undoes
        # no forward step here, so it runs with the other remaining rollback steps, in needs order.
        assert [s for s in LEDGER.of("end") if s.startswith(("u", "r"))] == ["ua", "uc", "r2", "r1"]
        assert h.engine.view().rollback.reason.startswith("requested by alice: v2 error rate")  # type: ignore[union-attr]
        with pytest.raises(ActionRefused, match="the run has ended"):
            h.engine.rollback(ALICE, "again")
    finally:
        h.close()


def test_metric_trigger_pauses_the_run(tmp_path: Path) -> None:
    body = (
        _step("measure", with_='metric = "rows_missing", value = 3')
        + _step("after", extra='needs = ["measure"]')
        + _trigger("data-loss", 'metric = "rows_missing", above = 0', "pause")
    )
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.WAITING
        assert h.engine.view().paused and h.state("after") in ("scheduled", "ready")  # not started
        assert LEDGER.count("start", "after") == 0
        fired = h.of_type(TriggerFired)[0]
        assert fired.reason == "metric rows_missing = 3 is above 0"
        h.engine.resume(ALICE)
        assert h.settle() == Outcome.DONE
    finally:
        h.close()


def test_metric_at_the_threshold_does_not_fire(tmp_path: Path) -> None:
    body = _step("measure", with_='metric = "rows_missing", value = 0') + _trigger(
        "data-loss", 'metric = "rows_missing", above = 0', "rollback"
    )
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.DONE
        assert h.of_type(TriggerFired) == []
    finally:
        h.close()


def test_phase_overdue_trigger_alerts(tmp_path: Path) -> None:
    # The window is 30 minutes; a step that sleeps 45 clock-minutes makes it overdue.
    body = _step("slow", with_="clock_seconds = 2700") + _trigger(
        "overrun", 'phase = "window", overdue = "5m"', "alert"
    )
    h = Harness(tmp_path, body, speed=6000).start()
    try:
        assert h.settle() == Outcome.DONE
        fired = h.of_type(TriggerFired)
        assert [f.trigger_id for f in fired] == ["overrun"]
        assert fired[0].clock >= h.runbook.t0 + timedelta(minutes=35)
        assert any(
            isinstance(e, Alert) and e.level == "error" and "past its planned end" in e.message for e in h.events
        )
    finally:
        h.close()


def test_a_trigger_fires_once(tmp_path: Path) -> None:
    body = (
        _step("m1", with_='metric = "errors", value = 5')
        + _step("m2", extra='needs = ["m1"]', with_='metric = "errors", value = 9')
        + _trigger("noisy", 'metric = "errors", above = 1', "alert")
    )
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.DONE
        assert len(h.of_type(TriggerFired)) == 1
    finally:
        h.close()


def test_rollback_deadline_passing_is_alerted(tmp_path: Path) -> None:
    body = (
        _step("a", extra='undo = "slow-undo"')
        + _step("boom", extra='needs = ["a"]', with_="fail_attempts = 1")
        + _step("slow-undo", phase="rollback", with_="clock_seconds = 1200")
        + _trigger("t", 'step = "boom", state = "failed"', "rollback", 'within = "10m"')
    )
    h = Harness(tmp_path, body, speed=6000).start()
    try:
        assert h.settle() == Outcome.ROLLED_BACK
        alerts = [e.message for e in h.of_type(Alert)]
        assert any("rollback deadline passed" in m for m in alerts)
    finally:
        h.close()


def test_past_the_point_of_no_return_a_trigger_waits_for_a_typed_confirmation(tmp_path: Path) -> None:
    body = (
        _step("open-v2", extra='point_of_no_return = true\nundo = "ua"')
        + _step("smoke", extra='needs = ["open-v2"]', with_="fail_attempts = 1")
        + _step("ua", phase="rollback")
        + _trigger("auth", 'step = "smoke", state = "failed"', "rollback", 'within = "10m"')
    )
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.WAITING
        view = h.engine.view()
        assert view.ponr_passed and view.rollback is not None and view.rollback.awaiting_confirmation
        with pytest.raises(ActionRefused, match=f"type {CONFIRM_WORD}"):
            h.engine.rollback(ALICE, "yes do it")
        h.engine.rollback(ALICE, "auth is down for everyone", CONFIRM_WORD)
        assert h.settle() == Outcome.ROLLED_BACK
        assert LEDGER.of("end")[-1] == "ua"
    finally:
        h.close()


def test_a_rollback_waiting_for_confirmation_can_be_declined(tmp_path: Path) -> None:
    body = (
        _step("open-v2", extra="point_of_no_return = true")
        + _step("smoke", extra='needs = ["open-v2"]', with_="fail_attempts = 1")
        + _step("ua", phase="rollback")
        + _trigger("auth", 'step = "smoke", state = "failed"', "rollback")
    )
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.WAITING
        with pytest.raises(ActionRefused, match="reason is required"):
            h.engine.decline_rollback(ALICE, "")
        h.engine.decline_rollback(ALICE, "a retry of the smoke test will do")
        assert h.engine.view().rollback is None
        h.engine.retry("smoke", ALICE)
        assert h.settle() == Outcome.DONE
    finally:
        h.close()


def test_answer_rollback_yes_confirms_past_the_point_of_no_return(tmp_path: Path) -> None:
    body = (
        _step("open-v2", extra='point_of_no_return = true\nundo = "ua"')
        + _step("smoke", extra='needs = ["open-v2"]', with_="fail_attempts = 1")
        + _step("ua", phase="rollback")
        + _trigger("auth", 'step = "smoke", state = "failed"', "rollback")
    )
    h = Harness(tmp_path, body, answers={"rollback": "yes"}).start()
    try:
        assert h.settle() == Outcome.ROLLED_BACK
    finally:
        h.close()


def test_a_failing_rollback_step_stops_the_rollback_until_the_operator_acts(tmp_path: Path) -> None:
    body = (
        _step("a", extra='undo = "ua"')
        + _step("boom", extra='needs = ["a"]', with_="fail_attempts = 1")
        + _step("ua", phase="rollback", with_="fail_attempts = 1")
        + _step("r2", phase="rollback")
        + _trigger("t", 'step = "boom", state = "failed"', "rollback")
    )
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.FAILED
        assert h.state("ua") == "failed" and h.state("r2") == "scheduled"
        with pytest.raises(ActionRefused, match="during a rollback only rollback steps run"):
            h.engine.retry("boom", ALICE)
        h.engine.retry("ua", ALICE)
        assert h.settle() == Outcome.ROLLED_BACK
        assert LEDGER.of("end")[-2:] == ["ua", "r2"]
    finally:
        h.close()


def test_a_manual_rollback_needs_a_rollback_phase(tmp_path: Path) -> None:
    from fakes import HEADER

    header = HEADER.replace('[[phase]]\nid = "rollback"\nkind = "rollback"\n', "")
    h = Harness(tmp_path, _step("a", with_="seconds = 3"), header=header).start()
    try:
        with pytest.raises(ActionRefused, match="no rollback phase"):
            h.engine.rollback(ALICE, "why not")
    finally:
        h.close()
