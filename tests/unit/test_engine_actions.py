"""Operator actions and gates: each does what it says, refuses what it cannot, and is journaled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fakes import LEDGER, Harness

from cockpit.engine import ActionRefused
from cockpit.engine.views import Outcome
from cockpit.events import OperatorActed
from cockpit.operator import Operator

ALICE = Operator.current({"USER": "alice", "SSH_CONNECTION": "10.1.2.3 52344 10.0.0.1 22"})


def _step(step_id: str, *, kind: str = "fake.work", extra: str = "", with_: str = "") -> str:
    return f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "{kind}"\n{extra}\nwith = {{ {with_} }}\n'


def test_operator_identity_comes_from_user_and_ssh() -> None:
    assert str(ALICE) == "alice (ssh from 10.1.2.3:52344)"
    assert str(ALICE.acting_via("--answer")) == "alice (ssh from 10.1.2.3:52344) via --answer"
    assert Operator.current({"LOGNAME": "bob"}).user == "bob"


def _actions(h: Harness) -> list[tuple[str, str | None, str, str]]:
    return [(e.action, e.step_id, e.operator, e.detail) for e in h.of_type(OperatorActed)]


def test_skip_needs_a_reason_and_lets_dependents_go_on(tmp_path: Path) -> None:
    body = _step("broken", with_="fail_attempts = 9") + _step("after", extra='needs = ["broken"]')
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.FAILED
        with pytest.raises(ActionRefused, match="reason is required"):
            h.engine.skip("broken", "  ", ALICE)
        h.engine.skip("broken", "done by hand in the console", ALICE)
        assert h.settle() == Outcome.DONE
        assert h.state("broken") == "skipped" and h.state("after") == "succeeded"
        assert ("skip", "broken", str(ALICE), "done by hand in the console") in _actions(h)
        journaled = h.journal.actions(h.engine.run_id)
        assert journaled[-1][1:] == (str(ALICE), "skip", "broken", "done by hand in the console")
    finally:
        h.close()


def test_mark_done_settles_a_step_as_succeeded(tmp_path: Path) -> None:
    body = _step("broken", with_="fail_attempts = 9") + _step("after", extra='needs = ["broken"]')
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.FAILED
        with pytest.raises(ActionRefused, match="reason is required"):
            h.engine.mark_done("broken", "", ALICE)
        h.engine.mark_done("broken", "restored from the console", ALICE)
        assert h.settle() == Outcome.DONE
        assert h.state("broken") == "succeeded"
        assert "marked done by alice" in h.engine.step_runtime("broken").reason
    finally:
        h.close()


def test_retry_after_failure(tmp_path: Path) -> None:
    body = _step("flaky", with_="fail_attempts = 1")
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.FAILED
        h.engine.retry("flaky", ALICE)
        assert h.settle() == Outcome.DONE
        assert LEDGER.count("start", "flaky") == 2
        with pytest.raises(ActionRefused, match="the run has ended"):
            h.engine.retry("flaky", ALICE)
    finally:
        h.close()


def test_retry_refuses_a_step_that_did_not_fail(tmp_path: Path) -> None:
    body = _step("fine") + _step("slow", with_="seconds = 5")
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("fine", "succeeded")
        with pytest.raises(ActionRefused, match="only a failed, cancelled or interrupted step"):
            h.engine.retry("fine", ALICE)
        with pytest.raises(ActionRefused, match="no step 'ghost'"):
            h.engine.retry("ghost", ALICE)
    finally:
        h.close()


def test_cancel_a_running_step(tmp_path: Path) -> None:
    body = _step("long", with_="seconds = 30") + _step("after", extra='needs = ["long"]')
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("long", "running")
        h.engine.cancel("long", ALICE)
        assert h.settle() == Outcome.FAILED  # a cancelled need blocks its dependents
        assert h.state("long") == "cancelled" and h.state("after") == "scheduled"
        assert LEDGER.count("cancelled", "long") == 1
        assert "cancelled by alice" in h.engine.step_runtime("long").reason
    finally:
        h.close()


def test_start_a_step_before_it_is_due(tmp_path: Path) -> None:
    body = _step("first") + _step("later", extra='at = "T+5d"')
    h = Harness(tmp_path, body, jump_idle=False, speed=1, start=timedelta(0)).start()
    try:
        h.wait_state("first", "succeeded")
        assert h.state("later") == "scheduled"
        h.engine.start_step("later", ALICE)
        assert h.settle() == Outcome.DONE
        assert ("start", "later", str(ALICE), "") in _actions(h)
    finally:
        h.close()


def test_start_refuses_a_step_whose_needs_have_not_succeeded(tmp_path: Path) -> None:
    body = _step("first", with_="seconds = 5") + _step("second", extra='needs = ["first"]')
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("first", "running")
        with pytest.raises(ActionRefused, match="needs first to succeed first"):
            h.engine.start_step("second", ALICE)
    finally:
        h.close()


def test_an_operator_start_step_waits_and_an_answer_starts_it(tmp_path: Path) -> None:
    body = _step("gated", extra='start = "operator"')
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.WAITING
        view = h.engine.view().steps["gated"]
        assert view.state.value == "waiting" and view.gate is not None and view.gate.kind == "start"
        h.engine.answer("gated", True, ALICE)
        assert h.settle() == Outcome.DONE
    finally:
        h.close()


def test_pause_stops_new_starts_and_resume_continues(tmp_path: Path) -> None:
    body = _step("first", with_="seconds = 0.3") + _step("second", extra='needs = ["first"]')
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("first", "running")
        h.engine.pause(ALICE, "checking dashboards")
        assert h.engine.view().state == "paused"
        h.wait_state("first", "succeeded")  # running steps carry on
        assert h.settle(1.0) == Outcome.WAITING
        assert h.state("second") in ("scheduled", "ready") and LEDGER.count("start", "second") == 0
        with pytest.raises(ActionRefused, match="already paused"):
            h.engine.pause(ALICE)
        h.engine.resume(ALICE)
        assert h.settle() == Outcome.DONE
        assert [a[0] for a in _actions(h)] == ["pause", "resume"]
    finally:
        h.close()


def test_a_step_the_operator_starts_runs_while_the_run_is_paused_and_a_retry_waits(tmp_path: Path) -> None:
    later = 'at = "T+5d"'
    body = _step("first") + _step("later", extra=later) + _step("flaky", with_="fail_attempts = 1", extra=later)
    h = Harness(tmp_path, body, jump_idle=False, speed=1, start=timedelta(0)).start()
    try:
        h.wait_state("first", "succeeded")
        h.engine.pause(ALICE, "holding")
        h.engine.start_step("later", ALICE)
        h.wait_state("later", "succeeded")  # pressed start: it runs although the run is paused
        h.engine.start_step("flaky", ALICE)
        h.wait_state("flaky", "failed")
        h.engine.retry("flaky", ALICE)
        assert h.settle(1.0) == Outcome.WAITING  # a retry is no start: it waits for the resume
        assert h.state("flaky") in ("scheduled", "ready") and LEDGER.count("start", "flaky") == 1
        h.engine.resume(ALICE)
        h.wait_state("flaky", "succeeded")
        assert LEDGER.count("start", "flaky") == 2
    finally:
        h.close()


def test_manual_gate_yes_succeeds_and_no_fails(tmp_path: Path) -> None:
    body = _step("ask-yes", kind="manual", with_='question = "Backups verified?"') + _step(
        "ask-no", kind="manual", with_='question = "Proceed?"'
    )
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("ask-yes", "waiting")
        h.wait_state("ask-no", "waiting")
        assert h.engine.view().steps["ask-yes"].gate.question == "Backups verified?"  # type: ignore[union-attr]
        h.engine.answer("ask-yes", True, ALICE)
        h.engine.answer("ask-no", False, ALICE)
        assert h.settle() == Outcome.FAILED
        assert h.state("ask-yes") == "succeeded" and h.state("ask-no") == "failed"
        assert h.engine.step_runtime("ask-no").reason == "the operator answered no"
    finally:
        h.close()


def test_a_gate_with_confirm_text_needs_it_typed(tmp_path: Path) -> None:
    body = _step("go", kind="manual", with_='question = "Start the window?", confirm = "GO"')
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("go", "waiting")
        with pytest.raises(ActionRefused, match="type exactly 'GO'"):
            h.engine.answer("go", True, ALICE, typed="go")
        h.engine.answer("go", True, ALICE, typed="GO")
        assert h.settle() == Outcome.DONE
    finally:
        h.close()


def test_checklist_succeeds_when_every_item_is_ticked(tmp_path: Path) -> None:
    body = _step("decom", kind="checklist", with_='items = ["Render scaled to 0", "Supabase paused"]')
    h = Harness(tmp_path, body).start()
    try:
        h.wait_state("decom", "waiting")
        h.engine.tick("decom", 0, ALICE)
        assert h.settle(0.5) == Outcome.WAITING
        with pytest.raises(ActionRefused, match="already ticked"):
            h.engine.tick("decom", 0, ALICE)
        with pytest.raises(ActionRefused, match="no item 5"):
            h.engine.tick("decom", 4, ALICE)
        h.engine.tick("decom", 1, ALICE)
        assert h.settle() == Outcome.DONE
        ticks = [a for a in _actions(h) if a[0] == "tick"]
        assert [t[3] for t in ticks] == ["Render scaled to 0", "Supabase paused"]
        # The log ends with the list as it stands: every box ticked.
        assert h.journal.log_lines(h.engine.run_id, "decom")[-3:] == [
            "[x] Render scaled to 0",
            "[x] Supabase paused",
            "all 2 items ticked",
        ]
    finally:
        h.close()


def test_command_line_answers_settle_gates_as_the_operator_via_answer(tmp_path: Path) -> None:
    body = _step("go", kind="manual", with_='question = "Go?", confirm = "GO"') + _step(
        "gated", extra='start = "operator"\nneeds = ["go"]'
    )
    h = Harness(tmp_path, body, answers={"go": "yes", "gated": "yes"}, operator=ALICE).start()
    try:
        assert h.settle() == Outcome.DONE
        operators = {a[1]: a[2] for a in _actions(h)}
        assert operators["go"] == f"{ALICE} via --answer"
    finally:
        h.close()


def test_without_an_answer_a_gate_leaves_the_run_waiting(tmp_path: Path) -> None:
    body = _step("go", kind="manual", with_='question = "Go?"') + _step("after", extra='needs = ["go"]')
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.WAITING
        assert Outcome.WAITING.exit_code == 4
    finally:
        h.close()


def test_checklist_ticks_survive_a_restart(tmp_path: Path) -> None:
    body = _step("decom", kind="checklist", with_='items = ["Render scaled to 0", "Supabase paused"]')
    first = Harness(tmp_path, body).start()
    first.wait_state("decom", "waiting")
    first.engine.tick("decom", 0, ALICE)
    first.close()  # the cockpit stops while the checklist waits
    second = Harness(tmp_path, None).start()
    try:
        second.wait_state("decom", "waiting")
        gate = second.engine.view().steps["decom"].gate
        assert gate is not None and gate.ticked == frozenset({0})  # asked again, with its tick
        second.engine.tick("decom", 1, ALICE)
        assert second.settle() == Outcome.DONE
    finally:
        second.close()
